//! What is on disk: the repository's own configs, and a snapshot of a directory tree
//! to show a command changed nothing there (issue 15: `portcullis check` writes
//! nothing). Also compiled into tests/deploy.rs (`#[path]`), which has its own harness.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One entry of a [`snapshot`]: relative path, size, modification time, content hash.
pub type Entry = (PathBuf, u64, SystemTime, u64);

/// Every file and directory under `dir` (sorted): a file written, removed, renamed
/// or touched, or a directory created (or its listing changed, through its mtime),
/// makes two snapshots differ.
pub fn snapshot(dir: &Path) -> Vec<Entry> {
    use std::hash::{Hash, Hasher};
    fn walk(base: &Path, dir: &Path, out: &mut Vec<Entry>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            if meta.is_file() {
                std::fs::read(&p).unwrap().hash(&mut h);
            }
            let rel = p.strip_prefix(base).unwrap().to_path_buf();
            out.push((rel, meta.len(), meta.modified().unwrap(), h.finish()));
            if meta.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    let top = std::fs::metadata(dir).unwrap();
    out.push((PathBuf::new(), 0, top.modified().unwrap(), 0));
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Copies the tree `from` into `to` (which exists).
pub fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// Every `proxy.toml` in the repository root and under `deploy/`.
pub fn shipped_configs() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.file_name().is_some_and(|f| f == "proxy.toml") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![root.join("proxy.toml")];
    walk(&root.join("deploy"), &mut out);
    out
}
