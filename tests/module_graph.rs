//! The layers run one way (issue 15): no import cycle between the modules of `src/`.
//! Each file is a node (`src/auth/verify.rs` is `auth::verify`, a `mod.rs` its
//! directory); each `crate::` or `super::` path outside `#[cfg(test)]` code is an edge
//! to the longest module it names (comments are skipped). The graph must be acyclic,
//! and so must the graph of the top-level modules (`app` -> `issuer::endpoint` ->
//! `app` is a cycle between `app` and `issuer/` even though no file imports itself).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut p = prefix.to_vec();
            p.push(name);
            modules(&path, &p, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut p = prefix.to_vec();
            if name != "mod" && name != "lib" && name != "main" {
                p.push(name);
            }
            if p.is_empty() {
                continue; // the crate root declares modules; it is no layer
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            // Comments (doc links included) are no dependency.
            let code: String = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            out.insert(p.join("::"), code);
        }
    }
}

/// The module paths a file's code names, as `a::b::c` (not yet resolved).
fn references(module: &str, code: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut found = Vec::new();
    for (kw, base) in [("crate::", String::new()), ("super::", parent(module))] {
        let mut rest = code;
        while let Some(i) = rest.find(kw) {
            let before = rest[..i].chars().last();
            rest = &rest[i + kw.len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = rest.chars().take_while(|c| ident(*c)).collect();
            let path = path.trim_end_matches(':');
            let full = if base.is_empty() {
                path.to_owned()
            } else {
                format!("{base}::{path}")
            };
            found.push(full.clone());
            // `use crate::x::{a, b::c}`: each name inside the braces, too.
            if let Some(group) = rest.strip_prefix(&format!("{path}::{{")) {
                let group = &group[..group.find('}').unwrap_or(0)];
                for item in group.split(',') {
                    let item: String = item.trim().chars().take_while(|c| ident(*c)).collect();
                    if !item.is_empty() {
                        found.push(format!("{full}::{item}"));
                    }
                }
            }
        }
    }
    found
}

fn parent(module: &str) -> String {
    module.rsplit_once("::").map_or("", |(p, _)| p).to_owned()
}

/// The longest known module `path` starts with.
fn resolve<'a>(path: &str, known: &'a BTreeMap<String, String>) -> Option<&'a str> {
    let mut p = path.to_owned();
    loop {
        if let Some((k, _)) = known.get_key_value(&p) {
            return Some(k);
        }
        p = p.rsplit_once("::")?.0.to_owned();
    }
}

/// File-to-file edges of `src/`.
fn file_edges(known: &BTreeMap<String, String>) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (m, code) in known {
        for r in references(m, code) {
            if let Some(to) = resolve(&r, known) {
                // A module and its own submodules are one unit with their parent file.
                if to != m && !to.starts_with(&format!("{m}::")) {
                    edges.entry(m).or_default().insert(to);
                }
            }
        }
    }
    edges
}

fn cycles<'a>(
    nodes: impl Iterator<Item = &'a str>,
    edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
) -> Vec<String> {
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for start in nodes {
        let mut stack = vec![start];
        walk(edges, &mut stack, &mut done, &mut cycles);
    }
    cycles
}

#[test]
fn src_modules_form_no_cycle() {
    let mut known = BTreeMap::new();
    modules(Path::new("src"), &[], &mut known);
    let edges = file_edges(&known);
    let cycles = cycles(known.keys().map(String::as_str), &edges);
    assert!(
        cycles.is_empty(),
        "import cycles in src/:\n{}",
        cycles.join("\n")
    );
}

/// The top-level module of a module path (`auth` of `auth::verify`).
fn top(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

/// File edges a top-level cycle may still use, each with the work that removes it.
const KNOWN: &[(&str, &str, &str)] = &[];

#[test]
fn top_level_modules_form_no_cycle() {
    let mut known = BTreeMap::new();
    modules(Path::new("src"), &[], &mut known);
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, tos) in file_edges(&known) {
        for to in tos {
            let allowed = KNOWN.iter().any(|(f, t, _)| *f == from && *t == to);
            if top(from) != top(to) && !allowed {
                edges.entry(top(from)).or_default().insert(top(to));
            }
        }
    }
    let nodes: BTreeSet<&str> = known.keys().map(|k| top(k)).collect();
    let cycles = cycles(nodes.into_iter(), &edges);
    assert!(
        cycles.is_empty(),
        "import cycles between the top-level modules of src/:\n{}",
        cycles.join("\n")
    );
}

fn walk<'a>(
    edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
    stack: &mut Vec<&'a str>,
    done: &mut BTreeSet<&'a str>,
    cycles: &mut Vec<String>,
) {
    let node = *stack.last().unwrap();
    if done.contains(node) {
        return;
    }
    for next in edges.get(node).into_iter().flatten() {
        if let Some(i) = stack.iter().position(|s| s == next) {
            let mut c: Vec<&str> = stack[i..].to_vec();
            c.push(next);
            cycles.push(c.join(" -> "));
            continue;
        }
        stack.push(next);
        walk(edges, stack, done, cycles);
        stack.pop();
    }
    done.insert(node);
}
