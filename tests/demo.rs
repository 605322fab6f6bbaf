//! `sockit demo` is the README's first command: it must pass end to end.

mod util;

#[test]
fn demo_passes_every_step() {
    let f = util::run(&["demo"], b"");
    let out = String::from_utf8_lossy(&f.stdout);
    assert_eq!(f.code(), 0, "demo failed:\n{out}\n{}", f.stderr);
    assert!(out.contains("steps passed"), "{out}");
    assert!(!out.contains("FAILED"), "{out}");
    for needle in ["[alice] hi everyone", "blake3", "second message"] {
        assert!(out.contains(needle), "demo output lacks {needle:?}:\n{out}");
    }
}
