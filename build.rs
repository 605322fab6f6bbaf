//! Puts the git commit into `--version` when sockit is built from a
//! checkout (`0.1.0 (commit 0123456789ab)`), and nothing else otherwise (a
//! crate from crates.io has no `.git`).

use std::process::Command;

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty());
    let dirty = commit.is_some()
        && Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .output()
            .ok()
            .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
    let shown = match commit {
        Some(c) if dirty => format!("{version} (commit {c}, with local changes)"),
        Some(c) => format!("{version} (commit {c})"),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=SOCKIT_VERSION={shown}");
    // Again when HEAD moves or the index changes (a commit, a checkout).
    for f in [".git/HEAD", ".git/index", ".git/refs/heads"] {
        if std::path::Path::new(f).exists() {
            println!("cargo:rerun-if-changed={f}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
