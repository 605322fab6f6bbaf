//! `get` into a disk that is too small (issue 15, part 3): a tmpfs of a
//! few MiB mounted for the test. The error says so in one sentence, nothing
//! outside the target folder is touched, a `.part` that never got a byte is
//! not left behind, and once there is room the same command finishes with
//! a verified file. A `.part` reserves room for the whole file, so a disk
//! that fills after an interruption does not stop the resume. Needs root
//! (mount); skipped with a printed reason otherwise.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use util::*;

/// A tmpfs of `mib` MiB, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: mounting a tmpfs needs root (CAP_SYS_ADMIN)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn resize(&self, mib: u32) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(self.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn names_in(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn served(size: usize) -> (tempfile::TempDir, PathBuf, Proc) {
    let srv = tempfile::tempdir().unwrap();
    let file = srv.path().join("big.bin");
    std::fs::write(&file, random_bytes(size, 31)).unwrap();
    let p = sockit_noinput(&[
        "serve",
        srv.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    (srv, file, p)
}

#[test]
fn too_small_a_disk_is_one_sentence_and_room_lets_the_same_command_finish() {
    let Some(disk) = Tmpfs::mount(2) else { return };
    let (_srv, file, server) = served(3 << 20);
    let dest = disk.path().join("in");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(disk.path().join("neighbour.txt"), b"left alone\n").unwrap();
    let addr = server.listening().to_string();
    let get = |extra: &[&str]| {
        let mut args = vec![
            "get",
            addr.as_str(),
            "big.bin",
            "-d",
            dest.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args, b"")
    };
    let f = get(&[]);
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert_eq!(f.stderr.lines().count(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("not enough disk space"), "{}", f.stderr);
    // Decision: a .part that never got a byte is not left behind.
    assert!(names_in(&dest).is_empty(), "{:?}", names_in(&dest));
    assert_eq!(
        std::fs::read(disk.path().join("neighbour.txt")).unwrap(),
        b"left alone\n"
    );
    disk.resize(8);
    let f = get(&[]);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(hash_file(&file), hash_file(&dest.join("big.bin")));
    assert_eq!(names_in(&dest), ["big.bin"]);
}

#[test]
fn an_interrupted_download_keeps_the_room_it_reserved() {
    let Some(disk) = Tmpfs::mount(6) else { return };
    let (_srv, file, server) = served(4 << 20);
    let dest = disk.path().to_path_buf();
    // The first attempt is cut after about 1 MiB by a relay that resets.
    let fwd = sockit_noinput(&[
        "forward",
        "127.0.0.1:0",
        &server.listening().to_string(),
        "--reset-after",
        "down:1M",
        "--rate",
        "down:20M",
    ]);
    let out = dest.join("big.bin");
    let f = run(
        &[
            "get",
            &fwd.listening().to_string(),
            "big.bin",
            "-o",
            out.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
    let part = dest.join("big.bin.part");
    assert!(std::fs::metadata(&part).unwrap().len() > 0);
    // Something else fills the disk meanwhile: the .part holds the room
    // for the whole file, so the resume still fits.
    let free = free_bytes(&dest);
    std::fs::write(
        dest.join("filler"),
        vec![0u8; free.saturating_sub(256 << 10) as usize],
    )
    .unwrap();
    let addr = server.listening().to_string();
    let f = run(&["get", &addr, "big.bin", "-o", out.to_str().unwrap()], b"");
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(f.stderr.contains("resumed from"), "{}", f.stderr);
    assert_eq!(hash_file(&file), hash_file(&out));
    assert!(!part.exists());
}

/// Free bytes on the file system holding `p` (`df`'s "Available").
fn free_bytes(p: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-k", "--output=avail"])
        .arg(p)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().last().unwrap().trim().parse::<u64>().unwrap() * 1024
}
