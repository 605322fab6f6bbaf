//! The path jail: an arbitrary request never resolves outside the served
//! root, and the answer (a path, not found, or forbidden) agrees with a
//! reference that walks a model of the same small tree, symlinks included.
#![no_main]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::{arbitrary, fuzz_target};
use sockit::transfer::paths::Root;
use sockit::transfer::proto::ErrorCode;

/// The tree, under a base folder: `root/` is served, `outside/` is not.
/// Paths are relative to the base; link targets to the link's folder, or
/// absolute when they start with `BASE/` (the base folder's real path).
const TREE: &[(&str, Node)] = &[
    ("root", Node::Dir),
    ("root/a", Node::Dir),
    ("root/a/b.txt", Node::File),
    ("root/a/.hid", Node::File),
    ("root/a/up", Node::Link("..")),
    ("root/a/esc", Node::Link("../../outside")),
    ("root/a/loop", Node::Link("loop")),
    ("root/.secret", Node::File),
    ("root/.d", Node::Dir),
    ("root/.d/f", Node::File),
    ("root/c.txt", Node::File),
    ("root/in_link", Node::Link("a")),
    ("root/file_link", Node::Link("a/b.txt")),
    ("root/out_link", Node::Link("../outside")),
    ("root/abs_link", Node::Link("BASE/outside")),
    ("root/dot_link", Node::Link(".d/f")),
    ("outside", Node::Dir),
    ("outside/x.txt", Node::File),
];

#[derive(Clone, Copy)]
enum Node {
    Dir,
    File,
    Link(&'static str),
}

const NAMES: &[&str] = &[
    "a",
    "b.txt",
    ".hid",
    "up",
    "esc",
    "loop",
    ".secret",
    ".d",
    "f",
    "c.txt",
    "in_link",
    "file_link",
    "out_link",
    "abs_link",
    "dot_link",
    "x.txt",
    "nope",
];

#[derive(Debug, arbitrary::Arbitrary)]
enum Part {
    Name(u8),
    Dot,
    DotDot,
    Empty,
    Raw(String),
}

#[derive(Debug, arbitrary::Arbitrary)]
struct Case {
    hidden: bool,
    lead_slash: bool,
    trail_slash: bool,
    parts: Vec<Part>,
}

struct Fixture {
    base: PathBuf,
    tree: HashMap<String, Node>,
    plain: Root,
    hidden: Root,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let base = std::env::temp_dir()
            .join(format!("sockit-fuzz-jail-{}", std::process::id()))
            .canonicalize()
            .unwrap_or_else(|_| {
                let b =
                    std::env::temp_dir().join(format!("sockit-fuzz-jail-{}", std::process::id()));
                std::fs::create_dir_all(&b).unwrap();
                b.canonicalize().unwrap()
            });
        for (p, node) in TREE {
            let full = base.join(p);
            match node {
                Node::Dir => std::fs::create_dir_all(&full).unwrap(),
                Node::File => std::fs::write(&full, b"x").unwrap(),
                Node::Link(t) => {
                    let _ = std::fs::remove_file(&full);
                    let t = match t.strip_prefix("BASE/") {
                        Some(rest) => base.join(rest),
                        None => PathBuf::from(t),
                    };
                    std::os::unix::fs::symlink(t, &full).unwrap();
                }
            }
        }
        let tree = TREE.iter().map(|(p, n)| (p.to_string(), *n)).collect();
        Fixture {
            plain: Root::new(&base.join("root"), false).unwrap(),
            hidden: Root::new(&base.join("root"), true).unwrap(),
            base,
            tree,
        }
    })
}

#[derive(Debug, PartialEq)]
enum Answer {
    Ok(PathBuf),
    NotFound,
    Forbidden,
}

/// What realpath(3) does, on the model: each component looked up, links
/// followed (at most 40, as Linux allows), files cannot be walked into.
fn walk(
    tree: &HashMap<String, Node>,
    start: Vec<String>,
    comps: &[&str],
    hops: &mut u32,
) -> Result<Vec<String>, Answer> {
    let mut at = start;
    for (i, c) in comps.iter().enumerate() {
        match *c {
            "" | "." => continue,
            ".." => {
                at.pop();
                continue;
            }
            _ => {}
        }
        let mut next = at.clone();
        next.push(c.to_string());
        match tree.get(&next.join("/")) {
            None => return Err(Answer::NotFound),
            Some(Node::File) => {
                if comps[i + 1..].iter().any(|c| !c.is_empty() && *c != ".") {
                    return Err(Answer::Forbidden); // ENOTDIR
                }
                at = next;
            }
            Some(Node::Dir) => at = next,
            Some(Node::Link(t)) => {
                *hops += 1;
                if *hops > 40 {
                    return Err(Answer::Forbidden); // ELOOP
                }
                let (from, t) = match t.strip_prefix("BASE/") {
                    Some(rest) => (Vec::new(), rest),
                    None => (at, *t),
                };
                let tc: Vec<&str> = t.split('/').collect();
                at = walk(tree, from, &tc, hops)?;
                if matches!(tree.get(&at.join("/")), Some(Node::File))
                    && comps[i + 1..].iter().any(|c| !c.is_empty() && *c != ".")
                {
                    return Err(Answer::Forbidden);
                }
            }
        }
    }
    Ok(at)
}

fn reference(f: &Fixture, hidden: bool, request: &str) -> Answer {
    if request.contains('\0') || request.contains('\\') || request.starts_with('/') {
        return Answer::Forbidden;
    }
    let trimmed = request.strip_suffix('/').unwrap_or(request);
    let comps: Vec<&str> = if trimmed.is_empty() {
        vec![]
    } else {
        trimmed.split('/').collect()
    };
    for c in &comps {
        if c.is_empty()
            || *c == "."
            || *c == ".."
            || (!hidden && c.starts_with('.'))
            || c.len() > 255
        {
            return Answer::Forbidden;
        }
    }
    let real = match walk(&f.tree, vec!["root".into()], &comps, &mut 0) {
        Ok(r) => r,
        Err(a) => return a,
    };
    if real.first().map(String::as_str) != Some("root") {
        return Answer::Forbidden;
    }
    if !hidden && real[1..].iter().any(|c| c.starts_with('.')) {
        return Answer::Forbidden;
    }
    Answer::Ok(f.base.join(real.join("/")))
}

fuzz_target!(|c: Case| {
    let f = fixture();
    let mut req = String::new();
    if c.lead_slash {
        req.push('/');
    }
    let parts: Vec<String> = c
        .parts
        .iter()
        .take(12)
        .map(|p| match p {
            Part::Name(i) => NAMES[usize::from(*i) % NAMES.len()].to_string(),
            Part::Dot => ".".into(),
            Part::DotDot => "..".into(),
            Part::Empty => String::new(),
            Part::Raw(s) => s.clone(),
        })
        .collect();
    req.push_str(&parts.join("/"));
    if c.trail_slash {
        req.push('/');
    }
    let root = if c.hidden { &f.hidden } else { &f.plain };
    let got = match root.resolve(&req) {
        Ok(p) => {
            assert!(
                p.starts_with(root.path()),
                "{req:?} escaped to {}",
                p.display()
            );
            Answer::Ok(p)
        }
        Err(r) if r.code == ErrorCode::NotFound => Answer::NotFound,
        Err(r) => {
            assert_eq!(r.code, ErrorCode::Forbidden);
            Answer::Forbidden
        }
    };
    assert_eq!(got, reference(f, c.hidden, &req), "request {req:?}");
});
