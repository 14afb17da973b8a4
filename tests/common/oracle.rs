//! The reference side of every comparison: umoci's rootfs of an image, GNU
//! cpio's extraction of an initrd, and lstat snapshots of both trees.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

use super::image::{write_oci_layout, Image};

/// A directory tree kept alive by its temp dir.
pub struct Tree {
    _dir: TempDir,
    root: PathBuf,
}

impl Tree {
    /// The tree's root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The rootfs umoci unpacks from `image` (run as root: owners and device
/// nodes are kept).
pub fn umoci_rootfs(image: &Image) -> Tree {
    let dir = tempfile::Builder::new()
        .prefix("wyrcan-umoci-")
        .tempdir()
        .unwrap();
    let layout = dir.path().join("layout");
    let bundle = dir.path().join("bundle");
    write_oci_layout(&layout, "test", image);
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:test", layout.display()))
        .arg(&bundle)
        .stdin(Stdio::null()));
    Tree {
        _dir: dir,
        root: bundle.join("rootfs"),
    }
}

/// The compression of an initrd, by magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitrdCompression {
    /// `28 b5 2f fd`.
    Zstd,
    /// `1f 8b`.
    Gzip,
    /// A bare newc cpio (`070701`).
    None,
}

/// Detects an initrd's compression; panics on anything else.
pub fn initrd_compression(data: &[u8]) -> InitrdCompression {
    if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        InitrdCompression::Zstd
    } else if data.starts_with(&[0x1f, 0x8b]) {
        InitrdCompression::Gzip
    } else if data.starts_with(b"070701") {
        InitrdCompression::None
    } else {
        panic!(
            "initrd is neither zstd, gzip nor a newc cpio: starts with {:02x?}",
            &data[..data.len().min(8)]
        )
    }
}

/// The initrd's bare newc cpio bytes.
pub fn decompress_initrd(path: &Path) -> Vec<u8> {
    let data = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    match initrd_compression(&data) {
        InitrdCompression::Zstd => zstd::decode_all(&data[..]).expect("zstd-decoding the initrd"),
        InitrdCompression::Gzip => {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&data[..]), &mut out)
                .expect("gzip-decoding the initrd");
            out
        }
        InitrdCompression::None => data,
    }
}

fn cpio_file(path: &Path) -> (TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("wyrcan-cpio-")
        .tempdir()
        .unwrap();
    let file = dir.path().join("initrd.cpio");
    fs::write(&file, decompress_initrd(path)).unwrap();
    (dir, file)
}

/// Extracts the initrd at `path` with GNU cpio as root into a fresh dir.
///
/// `-u` makes a later entry for a path replace an earlier one, as the
/// kernel's initramfs unpacker does.
pub fn extract_initrd(path: &Path) -> Tree {
    let (dir, file) = cpio_file(path);
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    run(Command::new("cpio")
        .args(["-idmu", "--no-absolute-filenames", "--quiet"])
        .current_dir(&root)
        .stdin(fs::File::open(&file).unwrap()));
    Tree { _dir: dir, root }
}

/// The entry names of the initrd's cpio, in archive order, as `cpio -t` prints them.
pub fn cpio_list(path: &Path) -> Vec<String> {
    let (_dir, file) = cpio_file(path);
    let out = run(Command::new("cpio")
        .args(["-t", "--quiet"])
        .stdin(fs::File::open(&file).unwrap()));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A cpio entry name as a path relative to the root (`./a/b`, `/a/b` → `a/b`;
/// the root itself → empty).
pub fn normalize(name: &str) -> String {
    let mut s = name;
    loop {
        if let Some(r) = s.strip_prefix("./") {
            s = r;
        } else if let Some(r) = s.strip_prefix('/') {
            s = r;
        } else {
            break;
        }
    }
    if s == "." {
        return String::new();
    }
    s.trim_end_matches('/').to_string()
}

/// Checks that every entry's parent directory comes earlier in the list
/// (the kernel creates nothing in a directory that does not exist yet),
/// and that no name is absolute or has a `..` component.
pub fn check_order(list: &[String]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    let mut errors = Vec::new();
    for raw in list {
        if raw.starts_with('/') || raw.split('/').any(|c| c == "..") {
            errors.push(format!("escaping name {raw:?}"));
        }
        let name = normalize(raw);
        if name.is_empty() {
            continue;
        }
        if let Some((parent, _)) = name.rsplit_once('/') {
            if !seen.contains(parent) {
                errors.push(format!("{name:?} comes before its directory {parent:?}"));
            }
        }
        seen.insert(name);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        errors.truncate(20);
        Err(errors.join("\n"))
    }
}

/// A file type as lstat sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Character device.
    Char,
    /// Block device.
    Block,
    /// Named pipe.
    Fifo,
    /// Socket.
    Socket,
}

/// What lstat says about one path (the fields compared between trees).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// File type.
    pub kind: FileKind,
    /// Permission bits including setuid/setgid/sticky.
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size of a regular file.
    pub size: Option<u64>,
    /// sha256 of a regular file's contents.
    pub sha256: Option<String>,
    /// A symlink's target.
    pub target: Option<String>,
    /// A device's (major, minor).
    pub rdev: Option<(u32, u32)>,
    /// Modification time of anything but a directory.
    pub mtime: Option<i64>,
    /// First path (sorted) of the hardlink group this path belongs to, when
    /// the group has more than one path in the tree.
    pub link_group: Option<String>,
    /// (dev, inode): identifies hardlink groups; not compared.
    pub inode: (u64, u64),
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {:04o} {}:{}",
            self.kind, self.perm, self.uid, self.gid
        )?;
        if let Some(s) = self.size {
            write!(f, " size={s}")?;
        }
        if let Some(t) = &self.target {
            write!(f, " -> {t:?}")?;
        }
        if let Some((a, b)) = self.rdev {
            write!(f, " dev={a}:{b}")?;
        }
        if let Some(g) = &self.link_group {
            write!(f, " linked-with={g:?}")?;
        }
        Ok(())
    }
}

/// Every path under a root (relative, root excluded) and its [`Node`].
pub type Snapshot = BTreeMap<String, Node>;

fn major(dev: u64) -> u32 {
    (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)) as u32
}

fn minor(dev: u64) -> u32 {
    ((dev & 0xff) | ((dev >> 12) & !0xff)) as u32
}

fn walk(root: &Path, rel: &str, out: &mut Snapshot) {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let full = root.join(&path);
        let node = node_at(&full, |t| t.to_string_lossy().into_owned());
        let kind = node.kind;
        out.insert(path.clone(), node);
        if kind == FileKind::Dir {
            walk(root, &path, out);
        }
    }
}

/// The node of the file at `full` (not following a symlink), its link
/// target written by `target_text`; `link_group` is left to the caller.
pub fn node_at(full: &Path, target_text: fn(&std::ffi::OsStr) -> String) -> Node {
    let meta = fs::symlink_metadata(full).unwrap();
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        FileKind::File
    } else if ft.is_dir() {
        FileKind::Dir
    } else if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_char_device() {
        FileKind::Char
    } else if ft.is_block_device() {
        FileKind::Block
    } else if ft.is_fifo() {
        FileKind::Fifo
    } else {
        FileKind::Socket
    };
    let (size, sha256) = if kind == FileKind::File {
        let data = fs::read(full).unwrap();
        (
            Some(meta.len()),
            Some(format!("{:x}", Sha256::digest(&data))),
        )
    } else {
        (None, None)
    };
    Node {
        kind,
        perm: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size,
        sha256,
        target: (kind == FileKind::Symlink)
            .then(|| target_text(fs::read_link(full).unwrap().as_os_str())),
        rdev: matches!(kind, FileKind::Char | FileKind::Block)
            .then(|| (major(meta.rdev()), minor(meta.rdev()))),
        mtime: (kind != FileKind::Dir).then(|| meta.mtime()),
        link_group: None,
        inode: (meta.dev(), meta.ino()),
    }
}

fn set_link_groups(snap: &mut Snapshot) {
    let mut groups: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for (path, node) in snap.iter() {
        if node.kind != FileKind::Dir {
            groups.entry(node.inode).or_default().push(path.clone());
        }
    }
    for node in snap.values_mut() {
        node.link_group = groups
            .get(&node.inode)
            .filter(|g| g.len() > 1 && node.kind != FileKind::Dir)
            .map(|g| g.iter().min().unwrap().clone());
    }
}

/// lstat of every path under `root` (not following symlinks), with hardlink groups.
pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    walk(root, "", &mut out);
    set_link_groups(&mut out);
    out
}

/// Drops symlink mtimes (GNU cpio does not restore them when extracting).
pub fn forget_symlink_mtimes(snap: &mut Snapshot) {
    for node in snap.values_mut() {
        if node.kind == FileKind::Symlink {
            node.mtime = None;
        }
    }
}

fn describe(expected: &Node, actual: &Node) -> String {
    let mut d = Vec::new();
    macro_rules! field {
        ($f:ident) => {
            if expected.$f != actual.$f {
                d.push(format!(
                    concat!(stringify!($f), ": expected {:?}, got {:?}"),
                    expected.$f, actual.$f
                ));
            }
        };
    }
    field!(kind);
    if expected.perm != actual.perm {
        d.push(format!(
            "perm: expected {:04o}, got {:04o}",
            expected.perm, actual.perm
        ));
    }
    field!(uid);
    field!(gid);
    field!(size);
    field!(sha256);
    field!(target);
    field!(rdev);
    field!(mtime);
    field!(link_group);
    d.join("; ")
}

/// Compares two snapshots, leaving out the paths in `ignore` (hardlink
/// groups are recomputed without them); the error lists up to 20 differences.
pub fn compare(expected: &Snapshot, actual: &Snapshot, ignore: &[&str]) -> Result<(), String> {
    let filter = |s: &Snapshot| -> Snapshot {
        let mut s: Snapshot = s
            .iter()
            .filter(|(p, _)| !ignore.contains(&p.as_str()))
            .map(|(p, n)| (p.clone(), n.clone()))
            .collect();
        set_link_groups(&mut s);
        s
    };
    let (expected, actual) = (filter(expected), filter(actual));
    let mut diffs = Vec::new();
    let mut count = 0;
    let keys: std::collections::BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    for key in keys {
        let line = match (expected.get(key), actual.get(key)) {
            (Some(e), None) => format!("missing {key:?} (expected {e})"),
            (None, Some(a)) => format!("unexpected {key:?} ({a})"),
            (Some(e), Some(a)) => {
                let d = describe(e, a);
                if d.is_empty() {
                    continue;
                }
                format!("differs {key:?}: {d}")
            }
            (None, None) => unreachable!(),
        };
        count += 1;
        if diffs.len() < 20 {
            diffs.push(line);
        }
    }
    if count == 0 {
        Ok(())
    } else {
        Err(format!(
            "{count} difference(s) (expected vs actual):\n  {}",
            diffs.join("\n  ")
        ))
    }
}

/// The pieces of a squashfs-root initrd (`--root squashfs`): the
/// squashfs of its first, plain archive, and the entries of the
/// compressed archives after it, as the kernel would apply them.
pub struct SquashInitrd {
    /// `wyrcan/root.squashfs`.
    pub squashfs: Vec<u8>,
    /// Every other entry of the whole initrd: name → data.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Splits an initrd written with `--root squashfs`.
pub fn squash_initrd(path: &Path) -> SquashInitrd {
    let data = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(
        data.starts_with(b"070701"),
        "a squashfs-root initrd starts with a plain newc archive"
    );
    let mut files = BTreeMap::new();
    let (plain, mut at) = wyrcan_core::cpio::read_first(&data).expect("the plain archive");
    let squashfs = plain
        .into_iter()
        .find(|e| e.name == b"wyrcan/root.squashfs")
        .map(|e| e.data);
    while at < data.len() && data[at] == 0 {
        at += 1;
    }
    // The compressed archives after it, through GNU cpio.
    let rest = tempfile::NamedTempFile::new().unwrap();
    fs::write(rest.path(), &data[at..]).unwrap();
    let (_dir, cpio) = cpio_file(rest.path());
    let listed = run(Command::new("cpio")
        .args(["-t", "--quiet"])
        .stdin(fs::File::open(&cpio).unwrap()));
    let out = tempfile::tempdir().unwrap();
    run(Command::new("cpio")
        .args(["-idmu", "--no-absolute-filenames", "--quiet"])
        .current_dir(out.path())
        .stdin(fs::File::open(&cpio).unwrap()));
    for name in String::from_utf8_lossy(&listed.stdout).lines() {
        let p = out.path().join(name);
        if p.is_file() {
            files.insert(name.to_string(), fs::read(&p).unwrap());
        } else {
            files.insert(name.to_string(), Vec::new());
        }
    }
    SquashInitrd {
        squashfs: squashfs.expect("no wyrcan/root.squashfs in the plain archive"),
        files,
    }
}

/// The tree `unsquashfs` extracts from `image` (as root: owners and
/// devices kept).
pub fn unsquashfs(image: &[u8]) -> Tree {
    let dir = tempfile::Builder::new()
        .prefix("wyrcan-unsquashfs-")
        .tempdir()
        .unwrap();
    let file = dir.path().join("root.squashfs");
    fs::write(&file, image).unwrap();
    let root = dir.path().join("root");
    run(Command::new("unsquashfs")
        .args(["-no-progress", "-quiet", "-d"])
        .arg(&root)
        .arg(&file)
        .stdin(Stdio::null()));
    Tree { _dir: dir, root }
}
