//! The flattened tree against a reference model written the plain way
//! (a map from cleaned path to node): layers of directories, files,
//! whiteouts and opaque markers under names with `.`, `..` and `//`, and
//! both must agree on every surviving path and on which entry supplies
//! each file. Symlinks and hard links are left to the unit tests: the model
//! would have to repeat the resolution it is meant to check.
#![no_main]
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use wyrcan_core::tree::{EntryKind, LayerEntry, Meta, Sink, Special, Tree};

const COMPONENTS: [&str; 8] = ["a", "b", "c", "..", ".", "", ".wh.a", ".wh..wh..opq"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File(u32, u32),
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    touched: u32,
}

type Model = BTreeMap<Vec<String>, Node>;

fn clean(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

fn remove_subtree(m: &mut Model, p: &[String]) {
    m.retain(|k, _| !k.starts_with(p));
}

/// Parents as directories, created or replacing non-directories, each
/// marked as touched by `layer`.
fn ensure_parents(m: &mut Model, parents: &[String], layer: u32) {
    for i in 1..=parents.len() {
        let p = parents[..i].to_vec();
        match m.get_mut(&p) {
            Some(n) if n.kind == Kind::Dir => n.touched = n.touched.max(layer),
            _ => {
                remove_subtree(m, &p);
                m.insert(p, Node { kind: Kind::Dir, touched: layer });
            }
        }
    }
}

fn exists_as_dirs(m: &Model, parents: &[String]) -> bool {
    (1..=parents.len()).all(|i| m.get(&parents[..i]).is_some_and(|n| n.kind == Kind::Dir))
}

fn prune(m: &mut Model, dir: &[String], layer: u32) {
    let children: Vec<Vec<String>> = m
        .keys()
        .filter(|k| k.len() == dir.len() + 1 && k.starts_with(dir))
        .cloned()
        .collect();
    for c in children {
        let n = m[&c].clone();
        if n.touched < layer {
            remove_subtree(m, &c);
        } else if n.kind == Kind::Dir {
            prune(m, &c, layer);
        }
    }
}

fn apply(m: &mut Model, layer: u32, index: u32, path: &str, dir: bool) {
    let comps = clean(path);
    let Some((name, parents)) = comps.split_last() else { return };
    if name == ".wh..wh..opq" {
        ensure_parents(m, parents, layer);
        prune(m, parents, layer);
        return;
    }
    if let Some(victim) = name.strip_prefix(".wh.") {
        if victim.starts_with(".wh.") || victim.is_empty() {
            return;
        }
        if exists_as_dirs(m, parents) {
            let mut p = parents.to_vec();
            p.push(victim.to_string());
            remove_subtree(m, &p);
        }
        return;
    }
    ensure_parents(m, parents, layer);
    if dir {
        if let Some(n) = m.get_mut(&comps) {
            if n.kind == Kind::Dir {
                n.touched = n.touched.max(layer);
                return;
            }
        }
        remove_subtree(m, &comps);
        m.insert(comps, Node { kind: Kind::Dir, touched: layer });
    } else {
        remove_subtree(m, &comps);
        m.insert(comps, Node { kind: Kind::File(layer, index), touched: layer });
    }
}

#[derive(Default)]
struct Dirs(BTreeSet<Vec<String>>);

impl Sink for Dirs {
    fn dir(&mut self, path: &[u8], _: &Meta) -> io::Result<()> {
        let p = clean(&String::from_utf8_lossy(path));
        if !p.is_empty() {
            self.0.insert(p);
        }
        Ok(())
    }
    fn symlink(&mut self, _: &[u8], _: &[u8], _: &Meta) -> io::Result<()> {
        panic!("no symlinks were written")
    }
    fn special(&mut self, _: &[u8], _: Special, _: &Meta) -> io::Result<()> {
        panic!("no devices were written")
    }
    fn file(&mut self, _: &[Vec<u8>], _: &Meta, _: u64, _: &mut dyn Read) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut model = Model::new();
    let mut tree = Tree::new();
    // Each layer: a length byte, then per entry a kind byte and up to three
    // component bytes.
    let mut rest = data;
    let mut layer = 0u32;
    while let Some((&n, tail)) = rest.split_first() {
        rest = tail;
        let mut entries = Vec::new();
        for index in 0..u32::from(n % 16) {
            let Some((&k, tail)) = rest.split_first() else { break };
            rest = tail;
            let depth = usize::from(k >> 4) % 4;
            let take = depth.min(rest.len());
            let path: Vec<&str> = rest[..take]
                .iter()
                .map(|b| COMPONENTS[usize::from(*b) % COMPONENTS.len()])
                .collect();
            rest = &rest[take..];
            let path = path.join("/");
            let dir = k & 1 == 1;
            apply(&mut model, layer, index, &path, dir);
            entries.push(LayerEntry {
                index,
                path: path.into_bytes(),
                kind: if dir { EntryKind::Dir } else { EntryKind::File { size: 0 } },
                meta: Meta::IMPLIED_DIR,
            });
        }
        tree.apply_layer(layer, &entries).expect("no symlinks, no hard links: nothing can fail");
        layer += 1;
    }
    let mut dirs = Dirs::default();
    tree.emit_skeleton(&mut dirs).unwrap();
    let want_dirs: BTreeSet<Vec<String>> = model
        .iter()
        .filter(|(_, n)| n.kind == Kind::Dir)
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(dirs.0, want_dirs, "directories");
    let plan = tree.plan(None, None);
    let mut files = BTreeMap::new();
    for l in 0..layer {
        for job in plan.layer(l) {
            for p in &job.paths {
                files.insert(clean(&String::from_utf8_lossy(p)), Kind::File(job.layer, job.entry));
            }
        }
    }
    let want_files: BTreeMap<Vec<String>, Kind> = model
        .into_iter()
        .filter(|(_, n)| n.kind != Kind::Dir)
        .map(|(k, n)| (k, n.kind))
        .collect();
    assert_eq!(files, want_files, "files");
});
