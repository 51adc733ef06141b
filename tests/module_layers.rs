//! The house's layering, read from the source: every `crate::NAME` path (and every `super::`
//! path that climbs to the crate root) in a file under `src/NAME/` (or `src/NAME.rs`) is an
//! edge from that top-level module to another. Two rules:
//!
//! - no cycle among the top-level modules (not two that import each other, nor a longer ring);
//! - `protocol`, the wire types, imports nothing of the crate.
//!
//! `lib.rs` and `main.rs` wire the modules together and are not read. Test code inside `src/`
//! counts: a `#[cfg(test)]` import makes the same knot for a reader.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges: from module → to module → the files that make the edge.
type Edges = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

#[test]
fn no_top_level_module_of_src_depends_on_itself_through_others() {
    let edges = edges_of(&src_dir());
    assert!(
        edges.len() > 10,
        "the check read too little of src/: {:?}",
        edges.keys()
    );
    if let Some(cycle) = find_cycle(&edges) {
        let mut text = String::new();
        for pair in cycle.windows(2) {
            let files = &edges[&pair[0]][&pair[1]];
            let some: Vec<&String> = files.iter().take(3).collect();
            text.push_str(&format!("\n  {} -> {}  ({some:?})", pair[0], pair[1]));
        }
        panic!("the top-level modules of src/ form a cycle:{text}");
    }
}

#[test]
fn the_protocol_module_imports_nothing_of_the_crate() {
    let edges = edges_of(&src_dir());
    let from_protocol = edges.get("protocol").cloned().unwrap_or_default();
    assert!(
        from_protocol.is_empty(),
        "src/protocol must stay a leaf, but imports {from_protocol:?}"
    );
    assert!(
        edges.values().any(|to| to.contains_key("protocol")),
        "nothing imports protocol: is the check reading src/?"
    );
}

#[test]
fn the_reader_finds_grouped_nested_and_climbing_paths() {
    let text = "use crate::{alpha::X, beta};\nfn f() { crate::gamma::g(); }\n\
                // crate::commented::out\nuse super::super::delta::Y;\n";
    let found = paths_in(text, &["one".into(), "two".into()]);
    assert_eq!(found, ["alpha", "beta", "gamma", "delta"].map(String::from));
    let shallow = paths_in("use super::epsilon;", &["one".into()]);
    assert_eq!(shallow, ["epsilon"].map(String::from));
    let inner = paths_in("use super::zeta;", &["one".into(), "two".into()]);
    assert!(inner.is_empty(), "super:: inside a module stays in it");
}

#[test]
fn a_ring_of_three_is_a_cycle_and_a_chain_is_not() {
    fn add(edges: &mut Edges, a: &str, b: &str) {
        edges
            .entry(a.into())
            .or_default()
            .entry(b.into())
            .or_default()
            .insert("f.rs".into());
    }
    let mut edges = Edges::new();
    add(&mut edges, "a", "b");
    add(&mut edges, "b", "c");
    add(&mut edges, "x", "a");
    assert_eq!(find_cycle(&edges), None);
    add(&mut edges, "c", "a");
    let cycle = find_cycle(&edges).expect("a -> b -> c -> a");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn edges_of(src: &Path) -> Edges {
    // Only names of real top-level modules count (a `super::x` inside an inline `mod tests`
    // of a top-level file reads like a climb to the root but is not).
    let tops: BTreeSet<String> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .map(|n| n.trim_end_matches(".rs").to_string())
        .collect();
    let mut edges = Edges::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if parts == ["lib.rs"] || parts == ["main.rs"] {
            continue;
        }
        // The module path of the file: src/a/b.rs → [a, b]; src/a/mod.rs → [a].
        let mut module: Vec<String> = parts.clone();
        let last = module.pop().unwrap();
        if last != "mod.rs" {
            module.push(last.trim_end_matches(".rs").to_string());
        }
        let top = module[0].clone();
        let text = std::fs::read_to_string(&file).unwrap();
        for to in paths_in(&text, &module) {
            if to != top && tops.contains(&to) {
                edges
                    .entry(top.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    edges
}

/// The top-level modules `text` names, in order: `crate::NAME`, each name of a
/// `crate::{A, B::..}` group, and `super::` chains that climb out of `module` to the root.
fn paths_in(text: &str, module: &[String]) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let boundary = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        if boundary && rest.starts_with("crate::") {
            let after = &rest["crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                found.extend(inner.split(',').filter_map(first_ident));
            } else if let Some(name) = first_ident(after) {
                found.push(name);
            }
            at += "crate::".len();
        } else if boundary && rest.starts_with("super::") {
            let mut ups = 0;
            let mut tail = rest;
            while let Some(t) = tail.strip_prefix("super::") {
                ups += 1;
                tail = t;
            }
            // A file's own module is `module`; `super` is its parent.
            if ups >= module.len() {
                if let Some(name) = first_ident(tail) {
                    found.push(name);
                }
            }
            at += "super::".len() * ups;
        } else {
            at += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found.retain(|n| n != "self");
    found
}

fn first_ident(text: &str) -> Option<String> {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    (end > 0).then(|| text[..end].to_string())
}

/// A cycle as a path that starts and ends at the same module, if the graph has one.
fn find_cycle(edges: &Edges) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &Edges,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flat_map(|to| to.keys()) {
            if let Some(cycle) = visit(next, edges, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, edges, &mut done, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}
