//! The house rules that `docs/ARCHITECTURE.md` states and the compiler
//! does not check: data flows one way. No module imports one that imports
//! it back, at the top of `src/` or between the sibling files of a folder
//! (a file and its folder's `mod.rs` may use each other). Read from the
//! `crate::…` and `super::…` paths in the code, comments and test modules
//! left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/` but the binary's own (`main.rs`, `cli/`).
fn library_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut todo = vec![root.clone()];
    // Bounded: the tree is finite; stop at 10,000 entries.
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten().take(10_000) {
            let p = e.path();
            if p.is_dir() {
                if p != root.join("cli") {
                    todo.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") && p != root.join("main.rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The module path of a file: `src/proxy/server/mod.rs` is `proxy::server`.
fn module_of(file: &Path) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rel = file.strip_prefix(&root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its test modules
/// (from the first `#[cfg(test)]` on: they sit at the end of each file).
fn code_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module paths `code` names, resolved from the module `me`: each
/// `crate::a::b…` and `super::…::x…`, with `{a, b}` groups expanded one
/// level.
fn references(code: &str, me: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let n = chars.len();
    let mut i = 0;
    while i < n {
        let at_word = i == 0 || !is_ident(chars[i - 1]);
        let rest: String = chars[i..n.min(i + 7)].iter().collect();
        let (base, skip) = if at_word && rest.starts_with("crate::") {
            (Vec::new(), 7)
        } else if at_word && rest.starts_with("super::") {
            let mut base = me.to_vec();
            base.pop();
            let mut j = i + 7;
            // Bounded by the text: each pass eats one `super::`.
            while chars[j..].iter().take(7).collect::<String>() == "super::" {
                base.pop();
                j += 7;
            }
            (base, j - i)
        } else {
            i += 1;
            continue;
        };
        let mut j = i + skip;
        if j < n && chars[j] == '{' {
            let end = chars[j..]
                .iter()
                .position(|&c| c == '}')
                .map_or(n, |p| j + p);
            let group: String = chars[j + 1..end].iter().collect();
            for item in group.split(',') {
                let first: String = item.trim().chars().take_while(|&c| is_ident(c)).collect();
                if !first.is_empty() {
                    let mut p = base.clone();
                    p.push(first);
                    out.push(p);
                }
            }
            i = end;
            continue;
        }
        let mut path = base;
        // Bounded by the text: each pass eats one segment.
        loop {
            let seg: String = chars[j..].iter().take_while(|&&c| is_ident(c)).collect();
            if seg.is_empty() {
                break;
            }
            j += seg.len();
            path.push(seg);
            if chars[j..].iter().take(2).collect::<String>() == "::" {
                j += 2;
            } else {
                break;
            }
        }
        out.push(path);
        i = j.max(i + 1);
    }
    out
}

/// The first cycle in `graph`, as the nodes around it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|s| s == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(node, graph, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

/// Every module path referenced by each module.
fn all_references() -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    library_files()
        .iter()
        .map(|f| {
            let me = module_of(f);
            let refs = references(&code_of(f), &me);
            (me, refs)
        })
        .collect()
}

#[test]
fn no_top_level_module_imports_one_that_imports_it_back() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let tops: BTreeSet<String> = library_files()
        .iter()
        .filter_map(|f| module_of(f).first().cloned())
        .collect();
    for (me, refs) in all_references() {
        let Some(from) = me.first() else { continue };
        for r in refs {
            if let Some(to) = r.first() {
                if to != from && tops.contains(to) {
                    graph.entry(from.clone()).or_default().insert(to.clone());
                }
            }
        }
    }
    assert!(
        graph.contains_key("forward"),
        "the graph was not read: {graph:?}"
    );
    if let Some(c) = find_cycle(&graph) {
        panic!(
            "an import circle between top-level modules: {}",
            c.join(" -> ")
        );
    }
    // Named in docs/ARCHITECTURE.md: the floors under the commands.
    for (low, high) in [
        ("net", "dial"),
        ("net", "proxy"),
        ("relay", "forward"),
        ("listener", "forward"),
        ("listener", "proxy"),
        ("proxy", "forward"),
        ("session", "tcp"),
        ("peers", "unix"),
    ] {
        let up = graph.get(low).is_some_and(|s| s.contains(high));
        assert!(!up, "{low} imports {high}, which sits above it");
    }
}

#[test]
fn no_sibling_files_import_each_other_in_a_circle() {
    // For each folder: which of its children use which others.
    let mut folders: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let files = library_files();
    let children: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    for (me, refs) in all_references() {
        // Every ancestor folder of `me`: the child of it that holds `me`.
        for depth in 0..me.len() {
            let folder = me[..depth].to_vec();
            let from = me[depth].clone();
            for r in &refs {
                if r.len() > depth && r[..depth] == folder[..] && r[depth] != from {
                    let mut sibling = folder.clone();
                    sibling.push(r[depth].clone());
                    if children.contains(&sibling) {
                        folders
                            .entry(folder.clone())
                            .or_default()
                            .entry(from.clone())
                            .or_default()
                            .insert(r[depth].clone());
                    }
                }
            }
        }
    }
    for (folder, graph) in &folders {
        if folder.is_empty() {
            continue; // the top level has its own test
        }
        if let Some(c) = find_cycle(graph) {
            panic!(
                "an import circle between the files of src/{}: {}",
                folder.join("/"),
                c.join(" -> ")
            );
        }
    }
}

#[test]
fn nothing_below_the_command_line_knows_about_clap() {
    for f in library_files() {
        let code = code_of(&f);
        assert!(
            !code.contains("clap::") && !code.contains("use clap"),
            "{} uses clap; flags belong in src/cli",
            f.display()
        );
    }
}

#[test]
fn the_reader_resolves_paths() {
    let me = vec![
        "proxy".to_string(),
        "server".to_string(),
        "open".to_string(),
    ];
    let refs = references(
        "use super::Ctx; use super::super::guard::X; crate::{net, dial::DialError}; x_crate::y",
        &me,
    );
    let shown: Vec<String> = refs.iter().map(|r| r.join("::")).collect();
    assert_eq!(
        shown,
        ["proxy::server::Ctx", "proxy::guard::X", "net", "dial"],
        "{refs:?}"
    );
}
