//! Flattening over synthetic layers, through the cpio writer and back.

use std::collections::BTreeMap;

use super::*;
use crate::cpio;

/// A layer built with the `tar` crate, entry by entry.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }
    fn head(ty: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(ty);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }
    fn dir(mut self, p: &str) -> Self {
        let mut h = Self::head(tar::EntryType::Directory, 0o755, 0);
        self.0.append_data(&mut h, p, &[][..]).unwrap();
        self
    }
    fn dir_mode(mut self, p: &str, mode: u32) -> Self {
        let mut h = Self::head(tar::EntryType::Directory, mode, 0);
        self.0.append_data(&mut h, p, &[][..]).unwrap();
        self
    }
    fn file(mut self, p: &str, data: &str) -> Self {
        let mut h = Self::head(tar::EntryType::Regular, 0o644, data.len() as u64);
        self.0.append_data(&mut h, p, data.as_bytes()).unwrap();
        self
    }
    fn link(mut self, p: &str, target: &str) -> Self {
        let mut h = Self::head(tar::EntryType::Link, 0o644, 0);
        self.0.append_link(&mut h, p, target).unwrap();
        self
    }
    fn symlink(mut self, p: &str, target: &str) -> Self {
        let mut h = Self::head(tar::EntryType::Symlink, 0o777, 0);
        self.0.append_link(&mut h, p, target).unwrap();
        self
    }
    fn fifo(mut self, p: &str) -> Self {
        let mut h = Self::head(tar::EntryType::Fifo, 0o600, 0);
        self.0.append_data(&mut h, p, &[][..]).unwrap();
        self
    }
    fn whiteout(self, p: &str) -> Self {
        let (dir, name) = p.rsplit_once('/').map_or(("", p), |(d, n)| (d, n));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, "")
    }
    fn done(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Dir(u32),
    File(String, u32),
    Link(String),
    Fifo,
}

/// Flatten `layers`, write a cpio, read it back the way the kernel would
/// apply it (later entries win), and describe the result.
fn flatten(layers: &[Vec<u8>]) -> (BTreeMap<String, Out>, Vec<cpio::Entry>) {
    let mut tree = Tree::new();
    for (i, l) in layers.iter().enumerate() {
        let entries = index_layer(&l[..]).unwrap();
        tree.apply_layer(i as u32, &entries).unwrap();
    }
    let mut w = cpio::Writer::new(Vec::new());
    tree.emit_skeleton(&mut w).unwrap();
    let plan = tree.plan(None, None);
    for (i, l) in layers.iter().enumerate() {
        for_each_file(&l[..], plan.layer(i as u32), |job, data| {
            w.file(&job.paths, &job.meta, job.size, data)
        })
        .unwrap();
    }
    let bytes = w.finish().unwrap();
    let entries = cpio::read(&bytes).unwrap();
    let mut fs = BTreeMap::new();
    let mut data_by_ino: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    for e in &entries {
        let name = String::from_utf8(e.name.clone()).unwrap();
        // Parents must already exist, as the kernel needs.
        if let Some((parent, _)) = name.rsplit_once('/') {
            assert!(
                matches!(fs.get(parent), Some(Out::Dir(_))),
                "{name} written before its parent {parent}"
            );
        }
        let out = match e.mode & cpio::S_IFMT {
            0o040000 => Out::Dir(e.mode & 0o7777),
            0o120000 => Out::Link(String::from_utf8(e.data.clone()).unwrap()),
            0o010000 => Out::Fifo,
            _ => {
                if !e.data.is_empty() {
                    data_by_ino.insert(e.ino, e.data.clone());
                }
                let d = data_by_ino.get(&e.ino).cloned().unwrap_or_default();
                Out::File(String::from_utf8(d).unwrap(), e.nlink)
            }
        };
        fs.insert(name, out);
    }
    (fs, entries)
}

fn get<'a>(fs: &'a BTreeMap<String, Out>, p: &str) -> Option<&'a Out> {
    fs.get(p)
}

#[test]
fn whiteouts_and_opaque_dirs() {
    let l0 = Layer::new()
        .dir("etc")
        .file("etc/a", "a0")
        .file("etc/b", "b0")
        .dir("var")
        .dir("var/cache")
        .file("var/cache/x", "x")
        .dir("opt")
        .file("opt/old", "o")
        .dir("opt/sub")
        .file("opt/sub/deep", "d")
        .done();
    let l1 = Layer::new()
        .dir("etc")
        .whiteout("etc/a")
        .file("etc/b", "b1")
        .whiteout("var/cache")
        .dir("opt")
        .file("opt/.wh..wh..opq", "")
        .file("opt/new", "n")
        .done();
    let (fs, _) = flatten(&[l0, l1]);
    assert_eq!(get(&fs, "etc/a"), None);
    assert_eq!(get(&fs, "etc/b"), Some(&Out::File("b1".into(), 1)));
    assert_eq!(get(&fs, "var/cache"), None);
    assert_eq!(get(&fs, "var/cache/x"), None);
    assert_eq!(get(&fs, "var"), Some(&Out::Dir(0o755)));
    assert_eq!(get(&fs, "opt/old"), None);
    assert_eq!(get(&fs, "opt/sub/deep"), None);
    assert_eq!(get(&fs, "opt/new"), Some(&Out::File("n".into(), 1)));
    assert!(!fs.keys().any(|k| k.contains(".wh.")));
}

#[test]
fn opaque_keeps_same_layer_entries_written_before_marker() {
    let l0 = Layer::new().dir("d").file("d/old", "o").done();
    let l1 = Layer::new()
        .dir("d")
        .file("d/new", "n")
        .file("d/.wh..wh..opq", "")
        .done();
    let (fs, _) = flatten(&[l0, l1]);
    assert_eq!(get(&fs, "d/old"), None);
    assert_eq!(get(&fs, "d/new"), Some(&Out::File("n".into(), 1)));
}

#[test]
fn type_changes_between_layers() {
    let l0 = Layer::new()
        .file("a", "file")
        .dir("b")
        .file("b/child", "c")
        .done();
    let l1 = Layer::new()
        .dir("a")
        .file("a/inner", "i")
        .symlink("b", "a")
        .done();
    let (fs, _) = flatten(&[l0, l1]);
    assert_eq!(get(&fs, "a"), Some(&Out::Dir(0o755)));
    assert_eq!(get(&fs, "a/inner"), Some(&Out::File("i".into(), 1)));
    assert_eq!(get(&fs, "b"), Some(&Out::Link("a".into())));
    assert_eq!(get(&fs, "b/child"), None);
}

#[test]
fn hardlinks_within_and_across_layers() {
    let l0 = Layer::new()
        .dir("bin")
        .file("bin/perl", "PERL")
        .link("bin/perl5", "bin/perl")
        .file("bin/old", "OLD")
        .done();
    // Link to a lower-layer file, then replace the target: the link keeps
    // the old bytes.
    let l1 = Layer::new()
        .link("bin/old-link", "bin/old")
        .file("bin/old", "NEW")
        .done();
    let (fs, entries) = flatten(&[l0, l1]);
    assert_eq!(get(&fs, "bin/perl"), Some(&Out::File("PERL".into(), 2)));
    assert_eq!(get(&fs, "bin/perl5"), Some(&Out::File("PERL".into(), 2)));
    assert_eq!(get(&fs, "bin/old"), Some(&Out::File("NEW".into(), 1)));
    assert_eq!(get(&fs, "bin/old-link"), Some(&Out::File("OLD".into(), 1)));
    let perl: Vec<_> = entries
        .iter()
        .filter(|e| e.name.starts_with(b"bin/perl"))
        .collect();
    assert_eq!(perl[0].ino, perl[1].ino);
    // The data travels once.
    assert_eq!(perl.iter().filter(|e| !e.data.is_empty()).count(), 1);
}

#[test]
fn hardlink_to_missing_target_is_an_error() {
    let l0 = Layer::new().link("a", "nowhere").done();
    let mut tree = Tree::new();
    let err = tree
        .apply_layer(0, &index_layer(&l0[..]).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
}

#[test]
fn hostile_paths_stay_inside() {
    let mut l = tar::Builder::new(Vec::new());
    for p in ["../../etc/evil", "/abs/file", "a/../../b"] {
        let mut h = Layer::head(tar::EntryType::Regular, 0o644, 1);
        // `append_data` refuses `..`; write the raw header as an attacker would.
        h.as_gnu_mut().unwrap().name[..p.len()].copy_from_slice(p.as_bytes());
        h.set_cksum();
        l.append(&h, &b"x"[..]).unwrap();
    }
    // A symlink pointing out of the root, then a file written through it.
    let l0 = Layer::new().symlink("out", "../../../../tmp").done();
    let l1_raw = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Layer::head(tar::EntryType::Regular, 0o644, 1);
        h.set_path("out/escaped").unwrap();
        h.set_cksum();
        b.append(&h, &b"y"[..]).unwrap();
        b.into_inner().unwrap()
    };
    let (fs, _) = flatten(&[l.into_inner().unwrap(), l0, l1_raw]);
    assert_eq!(get(&fs, "etc/evil"), Some(&Out::File("x".into(), 1)));
    assert_eq!(get(&fs, "abs/file"), Some(&Out::File("x".into(), 1)));
    assert_eq!(get(&fs, "b"), Some(&Out::File("x".into(), 1)));
    // Resolved inside the tree: /tmp/escaped.
    assert_eq!(get(&fs, "tmp/escaped"), Some(&Out::File("y".into(), 1)));
    assert!(fs.keys().all(|k| !k.starts_with('/') && !k.contains("..")));
}

#[test]
fn symlinked_parent_directories_are_followed() {
    let l0 = Layer::new()
        .dir("usr")
        .dir("usr/lib")
        .symlink("lib", "usr/lib")
        .done();
    let l1 = Layer::new().file("lib/libc.so", "C").done();
    let (fs, _) = flatten(&[l0, l1]);
    assert_eq!(get(&fs, "usr/lib/libc.so"), Some(&Out::File("C".into(), 1)));
    assert_eq!(get(&fs, "lib"), Some(&Out::Link("usr/lib".into())));
}

#[test]
fn symlink_loops_are_an_error_not_a_hang() {
    let l0 = Layer::new().symlink("a", "b").symlink("b", "a").done();
    let l1 = Layer::new().file("a/x", "x").done();
    let mut tree = Tree::new();
    tree.apply_layer(0, &index_layer(&l0[..]).unwrap()).unwrap();
    let err = tree
        .apply_layer(1, &index_layer(&l1[..]).unwrap())
        .unwrap_err();
    assert!(matches!(err, TreeError::SymlinkLoop { .. }));
}

#[test]
fn implied_parents_and_later_dir_metadata() {
    // Child before its directory entry: the directory comes out first
    // anyway, with the metadata the layer gave it.
    let l0 = Layer::new()
        .file("x/y/z", "z")
        .dir_mode("x/y", 0o700)
        .fifo("x/p")
        .done();
    let (fs, entries) = flatten(&[l0]);
    assert_eq!(get(&fs, "x"), Some(&Out::Dir(0o755)));
    assert_eq!(get(&fs, "x/y"), Some(&Out::Dir(0o700)));
    assert_eq!(get(&fs, "x/p"), Some(&Out::Fifo));
    let names: Vec<_> = entries.iter().map(|e| e.name.clone()).collect();
    assert_eq!(names.last().unwrap(), b"x/y/z");
}

#[test]
fn directory_over_directory_keeps_children() {
    let l0 = Layer::new().dir("d").file("d/keep", "k").done();
    let l1 = Layer::new().dir_mode("d", 0o1777).done();
    let (fs, _) = flatten(&[l0, l1]);
    assert_eq!(get(&fs, "d"), Some(&Out::Dir(0o1777)));
    assert_eq!(get(&fs, "d/keep"), Some(&Out::File("k".into(), 1)));
}

#[test]
fn go_style_modes_take_type_from_typeflag() {
    // Mode 0o755 without S_IFDIR; 0o644 without S_IFREG.
    let l0 = Layer::new().dir_mode("d", 0o755).file("d/f", "f").done();
    let (_, entries) = flatten(&[l0]);
    assert_eq!(entries[0].mode, 0o040755);
    assert_eq!(entries[1].mode, 0o100644);
}

#[test]
fn plan_leaves_the_kernel_out_and_marks_it() {
    let l0 = Layer::new()
        .dir("boot")
        .file("boot/vmlinuz-6", "KERNEL")
        .symlink("boot/wyrcan.kernel", "vmlinuz-6")
        .done();
    let mut tree = Tree::new();
    tree.apply_layer(0, &index_layer(&l0[..]).unwrap()).unwrap();
    let k = tree.lookup(b"/boot/wyrcan.kernel", true).unwrap().unwrap();
    assert_eq!(tree.path_of(k), b"/boot/vmlinuz-6");
    let plan = tree.plan(Some(k), None);
    assert_eq!(plan.jobs().len(), 1);
    assert_eq!(plan.jobs()[0].role, Role::Kernel);
    assert!(plan.jobs()[0].paths.is_empty());
    assert_eq!(tree.stats().bytes, 6);
}

#[test]
fn tar_without_end_padding_is_accepted_but_cut_data_is_not() {
    let full = Layer::new().dir("etc").file("etc/a", "abc").done();
    // Header (512) + header (512) + 3 data bytes: no padding, no zero blocks.
    let cut = &full[..512 + 512 + 3];
    let entries = index_layer(cut).unwrap();
    assert_eq!(entries.len(), 2);
    let (fs, _) = flatten(&[cut.to_vec()]);
    assert_eq!(fs.get("etc/a"), Some(&Out::File("abc".into(), 1)));
    // Cut inside the file's bytes: an error.
    let e = index_layer(&full[..512 + 512 + 2]).unwrap_err();
    let cause = std::error::Error::source(&e).map(|s| s.to_string());
    assert!(
        cause
            .as_deref()
            .is_some_and(|c| c.contains("ends inside the entry's data")),
        "{e}: {cause:?}"
    );
}

/// A regular file whose raw name holds `..`, as an attacker (or a sloppy
/// writer) would store it.
fn raw_file(b: &mut tar::Builder<Vec<u8>>, p: &str, data: &[u8]) {
    let mut h = Layer::head(tar::EntryType::Regular, 0o644, data.len() as u64);
    h.as_gnu_mut().unwrap().name[..p.len()].copy_from_slice(p.as_bytes());
    h.set_cksum();
    b.append(&h, data).unwrap();
}

#[test]
fn names_are_cleaned_as_text_before_they_are_resolved() {
    // `tmp/../../moo` is `moo`: no stray `tmp/`.
    let mut b = tar::Builder::new(Vec::new());
    raw_file(&mut b, "tmp/../../moo", b"m");
    let (fs, _) = flatten(&[b.into_inner().unwrap()]);
    assert_eq!(get(&fs, "moo"), Some(&Out::File("m".into(), 1)));
    assert!(!fs.contains_key("tmp"), "{fs:?}");

    // `l/../x` with `l -> a/b` is `/x` (umoci, containerd, moby), not `a/x`.
    let l0 = Layer::new().dir("a").dir("a/b").symlink("l", "a/b").done();
    let mut b = tar::Builder::new(Vec::new());
    raw_file(&mut b, "l/../x", b"x");
    let (fs, _) = flatten(&[l0, b.into_inner().unwrap()]);
    assert_eq!(get(&fs, "x"), Some(&Out::File("x".into(), 1)));
    assert!(!fs.contains_key("a/x"), "{fs:?}");
}

fn entry(index: u32, path: &str, kind: EntryKind) -> LayerEntry {
    LayerEntry {
        index,
        path: path.as_bytes().to_vec(),
        kind,
        meta: Meta::IMPLIED_DIR,
    }
}

#[test]
fn memory_follows_surviving_paths_not_entries() {
    let entries: Vec<LayerEntry> = (0..100_000)
        .map(|i| entry(i, "a", EntryKind::File { size: 1 }))
        .collect();
    let mut tree = Tree::new();
    tree.apply_layer(0, &entries).unwrap();
    assert!(tree.nodes.len() <= 3, "{} nodes", tree.nodes.len());
    assert!(tree.inodes.len() <= 2, "{} inodes", tree.inodes.len());
    let plan = tree.plan(None, None);
    // The last one wins.
    assert_eq!(plan.layer(0).len(), 1);
    assert_eq!(plan.layer(0)[0].entry, 99_999);
}

#[test]
fn many_opaque_markers_in_one_directory_stay_linear() {
    // n files in a lower layer, then n files and n markers in the next:
    // each marker after the first has nothing left to do.
    let n = 20_000;
    let lower: Vec<LayerEntry> = (0..n)
        .map(|i| entry(i, &format!("d/f{i}"), EntryKind::File { size: 0 }))
        .collect();
    let mut upper = Vec::new();
    for i in 0..n {
        upper.push(entry(
            2 * i,
            &format!("d/g{i}"),
            EntryKind::File { size: 0 },
        ));
        upper.push(entry(
            2 * i + 1,
            "d/.wh..wh..opq",
            EntryKind::File { size: 0 },
        ));
    }
    let mut tree = Tree::new();
    tree.apply_layer(0, &lower).unwrap();
    tree.apply_layer(1, &upper).unwrap();
    let stats = tree.stats();
    assert_eq!(stats.files, u64::from(n));
    assert!(tree.lookup(b"d/f0", false).unwrap().is_none());
    assert!(tree.lookup(b"d/g0", false).unwrap().is_some());
}

#[test]
fn symlink_resolution_has_a_total_budget() {
    // A chain of long symlinks walked by many entries: bounded work, then
    // a clear error instead of minutes of CPU.
    let target = "x/".repeat(2000) + "y";
    let mut entries = vec![entry(
        0,
        "l",
        EntryKind::Symlink {
            target: target.into_bytes(),
        },
    )];
    for i in 1..10_000 {
        entries.push(entry(i, &format!("l/f{i}"), EntryKind::File { size: 0 }));
    }
    let mut tree = Tree::new();
    tree.symlink_work = SYMLINK_WORK / 64;
    let e = tree.apply_layer(0, &entries).unwrap_err();
    assert!(e.to_string().contains("exceed its bound"), "{e}");
}

#[test]
fn the_entry_budget_is_shared_and_enforced() {
    let l = Layer::new()
        .file("a", "1")
        .file("b", "2")
        .file("c", "3")
        .done();
    let budget = std::sync::atomic::AtomicU64::new(5);
    assert_eq!(index_layer_bounded(&l[..], &budget).unwrap().len(), 3);
    let e = index_layer_bounded(&l[..], &budget)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("entry 2 (\"c\") is one more than the image may have"),
        "{e}"
    );
}

#[test]
fn a_failed_index_gives_its_entries_back() {
    let l = Layer::new()
        .file("a", "1")
        .file("b", "2")
        .file("c", "3")
        .done();
    let budget = std::sync::atomic::AtomicU64::new(10);
    // Cut inside the third header: two entries taken, then an error.
    assert!(index_layer_bounded(&l[..1024 + 100], &budget).is_err());
    assert_eq!(budget.load(std::sync::atomic::Ordering::Relaxed), 10);
}
