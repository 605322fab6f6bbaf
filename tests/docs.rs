//! Shell completions and man pages, checked the way people use them: the
//! bash script is sourced and asked to complete, and every page is rendered
//! by groff with its warnings on.

mod util;

use std::process::{Command, Stdio};

use util::*;

/// Every subcommand path, as `--help` lists them (`["tcp", "connect"]`, ...).
fn subcommands() -> Vec<Vec<String>> {
    fn walk(path: &[String], out: &mut Vec<Vec<String>>) {
        let mut args: Vec<&str> = path.iter().map(|s| s.as_str()).collect();
        args.push("--help");
        let f = run(&args, b"");
        let text = String::from_utf8_lossy(&f.stdout).into_owned();
        let mut in_cmds = false;
        for line in text.lines() {
            if line.starts_with("Commands:") {
                in_cmds = true;
                continue;
            }
            if in_cmds && line.trim().is_empty() {
                break;
            }
            if in_cmds {
                let name = line.split_whitespace().next().unwrap_or("").to_string();
                if name.is_empty() || name == "help" {
                    continue;
                }
                let mut p = path.to_vec();
                p.push(name);
                out.push(p.clone());
                walk(&p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&[], &mut out);
    out
}

#[test]
fn bash_completes_subcommands_and_flags() {
    if !have_tool("bash") {
        return;
    }
    let f = run(&["completions", "bash"], b"");
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("sockit.bash");
    std::fs::write(&script, &f.stdout).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let ask = |words: &str| -> Vec<String> {
        let n = words.split(' ').count() - 1;
        let prog = format!(
            "source {script}; COMP_WORDS=({words}); COMP_CWORD={n}; COMP_LINE='{words}'; \
             COMP_POINT=${{#COMP_LINE}}; _sockit sockit \"${{COMP_WORDS[$COMP_CWORD]}}\" \
             \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script = script.display()
        );
        let out = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &prog])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    };
    assert_eq!(ask("sockit tc"), ["tcp"]);
    let got = ask("sockit tcp c");
    assert!(got.contains(&"connect".to_string()), "{got:?}");
    let got = ask("sockit tcp connect --id");
    assert!(got.contains(&"--idle-timeout".to_string()), "{got:?}");
    let got = ask("sockit completions ");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        assert!(got.contains(&shell.to_string()), "{got:?}");
    }
}

#[test]
fn every_shell_gets_a_script() {
    for (shell, marker) in [
        ("zsh", "#compdef sockit"),
        ("fish", "complete -c sockit"),
        ("elvish", "edit:completion:arg-completer[sockit]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let f = run(&["completions", shell], b"");
        assert_eq!(f.code(), 0, "{shell}: {}", f.stderr);
        let text = String::from_utf8_lossy(&f.stdout);
        assert!(text.contains(marker), "{shell}: no {marker:?}");
        assert!(text.contains("connect"), "{shell}");
    }
    let f = run(&["completions", "tcsh"], b"");
    assert_eq!(f.code(), 2);
}

#[test]
fn every_subcommand_has_a_page_that_renders_without_warnings() {
    if !have_tool("groff") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = run(&["manpages", dir.path().to_str().unwrap()], b"");
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let mut want = vec!["sockit.1".to_string()];
    for p in subcommands() {
        want.push(format!("sockit-{}.1", p.join("-")));
    }
    assert!(
        want.contains(&"sockit-tcp-connect.1".to_string()),
        "{want:?}"
    );
    assert!(want.contains(&"sockit-nc.1".to_string()), "{want:?}");
    for page in &want {
        let path = dir.path().join(page);
        assert!(path.is_file(), "no page {page}");
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{page}");
        assert!(
            out.stderr.is_empty(),
            "{page}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut made: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    want.sort();
    assert_eq!(made, want, "pages that no subcommand has, or the other way");
}

#[test]
fn each_page_carries_the_examples_help_shows() {
    if !have_tool("groff") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        run(&["manpages", dir.path().to_str().unwrap()], b"").code(),
        0
    );
    let mut checked = 0;
    for p in subcommands() {
        let mut args: Vec<&str> = p.iter().map(|s| s.as_str()).collect();
        args.push("--help");
        let help = String::from_utf8_lossy(&run(&args, b"").stdout).into_owned();
        let Some((_, examples)) = help.split_once("Examples:\n") else {
            continue;
        };
        let page = dir.path().join(format!("sockit-{}.1", p.join("-")));
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-P-cbou"])
            .arg(&page)
            .env("MANWIDTH", "200")
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&out.stdout).replace(['\u{2010}', '\u{2212}'], "-");
        for line in examples
            .lines()
            .filter(|l| l.starts_with("  sockit") || l.starts_with("  "))
        {
            let cmd = line.trim().split("  ").next().unwrap().trim();
            assert!(
                shown.contains(cmd),
                "{}: example {cmd:?} is not on the page",
                p.join(" ")
            );
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} commands have examples");
}
