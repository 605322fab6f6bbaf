//! The command line itself: help text, -q and -vv (issue 12, items 5 and 7).

mod util;

use util::*;

const COMMANDS: &[&[&str]] = &[
    &["tcp", "connect"],
    &["tcp", "listen"],
    &["udp", "send"],
    &["udp", "listen"],
    &["serve"],
    &["get"],
    &["ls"],
    &["lookup", "host"],
    &["ping"],
    &["scan"],
    &["bench", "client"],
    &["forward"],
];

#[test]
fn every_command_s_help_has_examples_and_keeps_global_options_apart() {
    for cmd in COMMANDS {
        let mut args = cmd.to_vec();
        args.push("--help");
        let f = run(&args, b"");
        assert_eq!(f.code(), 0, "{cmd:?}");
        let help = String::from_utf8_lossy(&f.stdout).into_owned();
        assert!(help.contains("Examples:\n  sockit "), "{cmd:?}: {help}");
        assert!(help.contains("Global options:"), "{cmd:?}: {help}");
        assert!(
            !help.contains("[default: ]") && !help.contains("[default: \"\"]"),
            "{cmd:?}: {help}"
        );
    }
}

#[test]
fn quiet_leaves_errors_and_verbose_twice_shows_more_than_once() {
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let a = echo.listening();
    let (h, p) = (a.ip().to_string(), a.port().to_string());
    let v1 = run(&["-v", "tcp", "connect", &h, &p], b"x\n");
    let v2 = run(&["-vv", "tcp", "connect", &h, &p], b"x\n");
    assert_eq!(v1.code(), 0, "{}", v1.stderr);
    assert!(
        v2.stderr.lines().count() > v1.stderr.lines().count(),
        "{}\n--\n{}",
        v1.stderr,
        v2.stderr
    );
    assert!(v2.stderr.contains("trying 127.0.0.1:"), "{}", v2.stderr);
    // -q: the scan summary goes, the result stays on stdout.
    let q = run(&["-q", "scan", "127.0.0.1", &p], b"");
    assert_eq!(q.code(), 0, "{}", q.stderr);
    assert!(q.stderr.is_empty(), "{}", q.stderr);
    assert!(String::from_utf8_lossy(&q.stdout).contains("/tcp open"));
    // ... and errors stay.
    let q = run(&["-q", "tcp", "connect", "300.1.1.1", "80"], b"");
    assert_eq!(q.code(), 2);
    assert!(q.stderr.starts_with("sockit: "), "{}", q.stderr);
    echo.kill();
}

/// Found by fuzz/parsers in the bind parser, then fixed for every
/// HOST:PORT argument: an unclosed bracket is a usage error, not a host.
#[test]
fn unbalanced_brackets_in_an_address_are_usage_errors() {
    for args in [
        vec!["get", "[0:::6", "f"],
        vec!["tcp", "listen", "[::1:0"],
        vec!["bench", "client", "::1]:5301", "tcp"],
    ] {
        let f = run(&args, b"");
        assert_eq!(f.code(), 2, "{args:?}: {}", f.stderr);
        assert!(
            f.stderr.contains("unbalanced [ ]"),
            "{args:?}: {}",
            f.stderr
        );
    }
}
