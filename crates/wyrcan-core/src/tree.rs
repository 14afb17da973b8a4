//! Layer flattening: applies image layers, in order, to an in-memory tree of
//! *headers only*, then plans how to emit the result.
//!
//! Why two passes over the layers instead of one: the kernel's initramfs
//! unpacker only links a file to an earlier one with the same inode when the
//! earlier entry already said `nlink >= 2`, and a tar stream only reveals a
//! hardlink after its target has gone by. Knowing the final tree first also
//! lets every directory be written before any file (the unpacker cannot
//! create parents), keeps deleted and overwritten data out of the initrd
//! entirely, and finds the kernel wherever its symlink sits in the stream.
//!
//! Memory is proportional to the number of paths, never to file contents:
//! contents are streamed in the second pass ([`for_each_file`]) straight
//! from each layer into a [`Sink`].
//!
//! Semantics follow the OCI image spec and `umoci unpack` (our oracle):
//! whiteouts `.wh.NAME` remove NAME, `.wh..wh..opq` hides everything the
//! directory held in lower layers, a later entry replaces an earlier one of
//! another type, a directory entry over a directory only updates metadata.
//! Paths are resolved like a chroot: `..` stops at the root, and symlinks in
//! intermediate components are followed inside the tree, so no entry can
//! land outside it.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Read};
use std::rc::Rc;

/// The parts of an inode that survive flattening, besides its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

impl Meta {
    /// What an implied parent directory gets: the tar has files under it
    /// but no entry for it, so we choose what `mkdir -p` as root would.
    pub const IMPLIED_DIR: Meta = Meta {
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 0,
    };
}

/// Device nodes and fifos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// Character device.
    Char {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// Block device.
    Block {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// Named pipe.
    Fifo,
}

/// One tar entry of a layer, reduced to what flattening needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// Position of the entry in the layer's tar stream, as the `tar` crate
    /// yields them; the second pass finds file contents by it.
    pub index: u32,
    /// Path as written in the tar (raw bytes, may be absolute or hold `..`).
    pub path: Vec<u8>,
    /// What the entry is.
    pub kind: EntryKind,
    /// Owner, mode and mtime from the header.
    pub meta: Meta,
}

/// The type of a layer entry, from the tar typeflag (never from the mode,
/// which Go-written tars often leave without type bits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// Directory.
    Dir,
    /// Regular file with this many bytes of content.
    File {
        /// Content length.
        size: u64,
    },
    /// Hard link to another path of this or a lower layer.
    Hardlink {
        /// Link target as written in the tar.
        target: Vec<u8>,
    },
    /// Symbolic link.
    Symlink {
        /// Link target, any length.
        target: Vec<u8>,
    },
    /// Device node or fifo.
    Special(Special),
    /// Entries that carry nothing for the filesystem (global PAX headers,
    /// volume labels); kept so indices stay aligned between the passes.
    Ignored,
}

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The tar stream itself is unreadable.
    #[error("reading the layer's tar stream: {0}")]
    Tar(#[source] io::Error),
    /// A tar entry type we cannot represent faithfully.
    #[error("entry {path:?} has unsupported tar type {typeflag:?} (sparse and multi-volume entries are not supported)")]
    Unsupported {
        /// Entry path.
        path: String,
        /// The typeflag byte as a character.
        typeflag: char,
    },
    /// A hard link whose target does not exist at that point.
    #[error(
        "hard link {path:?} points to {target:?}, which does not exist in this or a lower layer"
    )]
    HardlinkTarget {
        /// Entry path.
        path: String,
        /// Missing target.
        target: String,
    },
    /// A symlink chain too long to be resolved (or a loop).
    #[error("too many levels of symbolic links while resolving {path:?}")]
    SymlinkLoop {
        /// The path being resolved.
        path: String,
    },
}

/// Index of a node in the tree.
pub type NodeId = u32;

const ROOT: NodeId = 0;
/// Same limit as Linux (`MAXSYMLINKS`).
const MAX_SYMLINKS: u32 = 40;

#[derive(Debug)]
enum NodeKind {
    Dir(BTreeMap<Box<[u8]>, NodeId>),
    File(u32),
    Symlink(Box<[u8]>),
    Special(Special),
    Removed,
}

#[derive(Debug)]
struct Node {
    name: Box<[u8]>,
    parent: NodeId,
    kind: NodeKind,
    meta: Meta,
    /// Highest layer that wrote this node or anything below it: an opaque
    /// marker in layer N keeps exactly what layer N itself wrote.
    touched: u32,
}

#[derive(Debug)]
struct Inode {
    layer: u32,
    entry: u32,
    size: u64,
    meta: Meta,
    links: u32,
}

/// What a path resolves to, for callers outside this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeInfo {
    /// Directory.
    Dir,
    /// Regular file.
    File {
        /// Content length.
        size: u64,
    },
    /// Symbolic link.
    Symlink {
        /// Target bytes.
        target: Vec<u8>,
    },
    /// Device node or fifo.
    Special(Special),
}

/// The flattened filesystem of an image, headers only.
#[derive(Debug)]
pub struct Tree {
    nodes: Vec<Node>,
    inodes: Vec<Inode>,
    /// Whether some layer gave the root its own metadata (`./` entry).
    root_meta: bool,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

/// Totals of a flattened tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Directories, root included.
    pub dirs: u64,
    /// Regular files (inodes, not paths).
    pub files: u64,
    /// Symlinks, devices and fifos.
    pub others: u64,
    /// Sum of regular file sizes: what unpacking the tree needs at least.
    pub bytes: u64,
}

fn components(path: &[u8]) -> Vec<&[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect()
}

fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
const WHITEOUT_META: &[u8] = b".wh..wh.";

impl Tree {
    /// An empty root directory.
    pub fn new() -> Self {
        Tree {
            nodes: vec![Node {
                name: Box::default(),
                parent: ROOT,
                kind: NodeKind::Dir(BTreeMap::new()),
                meta: Meta::IMPLIED_DIR,
                touched: 0,
            }],
            inodes: Vec::new(),
            root_meta: false,
        }
    }

    /// Apply one layer's entries on top of what is there. `layer` must grow
    /// from one call to the next (it orders opaque markers).
    pub fn apply_layer(&mut self, layer: u32, entries: &[LayerEntry]) -> Result<(), TreeError> {
        for e in entries {
            self.apply(layer, e)?;
        }
        Ok(())
    }

    fn apply(&mut self, layer: u32, e: &LayerEntry) -> Result<(), TreeError> {
        if e.kind == EntryKind::Ignored {
            return Ok(());
        }
        let comps = components(&e.path);
        let Some((&name, parents)) = comps.split_last() else {
            if e.kind == EntryKind::Dir {
                self.nodes[ROOT as usize].meta = e.meta;
                self.root_meta = true;
            }
            return Ok(());
        };
        if name.starts_with(WHITEOUT) {
            return self.whiteout(layer, e, parents, name);
        }
        let parent = self.resolve(parents, Some(layer), &e.path)?;
        if name == b".." {
            // "a/.." names a directory, never a new entry: nothing to create.
            return Ok(());
        }
        let existing = self.child(parent, name);
        match &e.kind {
            EntryKind::Dir => {
                if let Some(id) = existing {
                    if matches!(self.nodes[id as usize].kind, NodeKind::Dir(_)) {
                        let n = &mut self.nodes[id as usize];
                        n.meta = e.meta;
                        n.touched = n.touched.max(layer);
                        return Ok(());
                    }
                }
                self.insert(parent, name, NodeKind::Dir(BTreeMap::new()), e.meta, layer);
            }
            EntryKind::File { size } => {
                self.inodes.push(Inode {
                    layer,
                    entry: e.index,
                    size: *size,
                    meta: e.meta,
                    links: 0,
                });
                let ino = (self.inodes.len() - 1) as u32;
                self.insert(parent, name, NodeKind::File(ino), e.meta, layer);
            }
            EntryKind::Symlink { target } => {
                let kind = NodeKind::Symlink(target.clone().into_boxed_slice());
                self.insert(parent, name, kind, e.meta, layer);
            }
            EntryKind::Special(s) => {
                self.insert(parent, name, NodeKind::Special(*s), e.meta, layer);
            }
            EntryKind::Hardlink { target } => {
                let tcomps = components(target);
                let found = match tcomps.split_last() {
                    Some((&tname, tparents)) => self
                        .lookup_parent(tparents, target)?
                        .and_then(|p| self.child(p, tname)),
                    None => None,
                };
                let Some(tid) = found else {
                    return Err(TreeError::HardlinkTarget {
                        path: lossy(&e.path),
                        target: lossy(target),
                    });
                };
                if Some(tid) == existing {
                    return Ok(());
                }
                let kind = match &self.nodes[tid as usize].kind {
                    // The link's own header metadata is ignored, as umoci
                    // (our oracle) and GNU tar do: the inode keeps its own.
                    NodeKind::File(ino) => NodeKind::File(*ino),
                    NodeKind::Symlink(t) => NodeKind::Symlink(t.clone()),
                    NodeKind::Special(s) => NodeKind::Special(*s),
                    NodeKind::Dir(_) | NodeKind::Removed => {
                        return Err(TreeError::HardlinkTarget {
                            path: lossy(&e.path),
                            target: lossy(target),
                        })
                    }
                };
                self.insert(parent, name, kind, e.meta, layer);
            }
            EntryKind::Ignored => {}
        }
        Ok(())
    }

    fn whiteout(
        &mut self,
        layer: u32,
        e: &LayerEntry,
        parents: &[&[u8]],
        name: &[u8],
    ) -> Result<(), TreeError> {
        if name == OPAQUE {
            let dir = self.resolve(parents, Some(layer), &e.path)?;
            self.prune_lower(dir, layer);
            return Ok(());
        }
        if name.starts_with(WHITEOUT_META) {
            // Other `.wh..wh.` names are aufs bookkeeping, not deletions.
            return Ok(());
        }
        let victim = &name[WHITEOUT.len()..];
        if victim.is_empty() || victim == b"." || victim == b".." {
            return Ok(());
        }
        if let Some(p) = self.lookup_parent(parents, &e.path)? {
            if let Some(id) = self.child(p, victim) {
                self.detach(id);
            }
        }
        Ok(())
    }

    fn child(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        match &self.nodes[dir as usize].kind {
            NodeKind::Dir(children) => children.get(name).copied(),
            _ => None,
        }
    }

    /// Walk `comps` from the root following every symlink, creating missing
    /// directories (and replacing non-directories in the way) when `create`
    /// names the layer doing it.
    fn resolve(
        &mut self,
        comps: &[&[u8]],
        create: Option<u32>,
        whole: &[u8],
    ) -> Result<NodeId, TreeError> {
        let mut pending: VecDeque<Vec<u8>> = comps.iter().map(|c| c.to_vec()).collect();
        let mut cur = ROOT;
        let mut links = 0;
        while let Some(c) = pending.pop_front() {
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                cur = self.nodes[cur as usize].parent;
                continue;
            }
            match self.child(cur, &c) {
                Some(id) => match &self.nodes[id as usize].kind {
                    NodeKind::Dir(_) => {
                        if let Some(layer) = create {
                            let n = &mut self.nodes[id as usize];
                            n.touched = n.touched.max(layer);
                        }
                        cur = id;
                    }
                    NodeKind::Symlink(target) => {
                        links += 1;
                        if links > MAX_SYMLINKS {
                            return Err(TreeError::SymlinkLoop { path: lossy(whole) });
                        }
                        if target.first() == Some(&b'/') {
                            cur = ROOT;
                        }
                        for t in target.split(|&b| b == b'/').rev() {
                            pending.push_front(t.to_vec());
                        }
                    }
                    _ => match create {
                        Some(layer) => {
                            cur = self.insert(
                                cur,
                                &c,
                                NodeKind::Dir(BTreeMap::new()),
                                Meta::IMPLIED_DIR,
                                layer,
                            );
                        }
                        None => return Ok(u32::MAX),
                    },
                },
                None => match create {
                    Some(layer) => {
                        cur = self.insert(
                            cur,
                            &c,
                            NodeKind::Dir(BTreeMap::new()),
                            Meta::IMPLIED_DIR,
                            layer,
                        );
                    }
                    None => return Ok(u32::MAX),
                },
            }
        }
        Ok(cur)
    }

    fn lookup_parent(
        &mut self,
        comps: &[&[u8]],
        whole: &[u8],
    ) -> Result<Option<NodeId>, TreeError> {
        let id = self.resolve(comps, None, whole)?;
        Ok((id != u32::MAX).then_some(id))
    }

    /// Put a new node at `parent/name`, replacing whatever was there.
    fn insert(
        &mut self,
        parent: NodeId,
        name: &[u8],
        kind: NodeKind,
        meta: Meta,
        layer: u32,
    ) -> NodeId {
        if let Some(old) = self.child(parent, name) {
            self.detach(old);
        }
        if let NodeKind::File(ino) = kind {
            self.inodes[ino as usize].links += 1;
        }
        let id = self.nodes.len() as NodeId;
        self.nodes.push(Node {
            name: name.into(),
            parent,
            kind,
            meta,
            touched: layer,
        });
        if let NodeKind::Dir(children) = &mut self.nodes[parent as usize].kind {
            children.insert(name.into(), id);
        }
        id
    }

    /// Remove a node and everything below it.
    fn detach(&mut self, id: NodeId) {
        if id == ROOT {
            return;
        }
        let parent = self.nodes[id as usize].parent;
        let name = self.nodes[id as usize].name.clone();
        if let NodeKind::Dir(children) = &mut self.nodes[parent as usize].kind {
            children.remove(&name);
        }
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            match std::mem::replace(&mut self.nodes[n as usize].kind, NodeKind::Removed) {
                NodeKind::Dir(children) => stack.extend(children.into_values()),
                NodeKind::File(ino) => self.inodes[ino as usize].links -= 1,
                _ => {}
            }
        }
    }

    /// Opaque directory: drop every child not written by `layer` itself,
    /// and recurse into the ones it did write.
    fn prune_lower(&mut self, dir: NodeId, layer: u32) {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            let NodeKind::Dir(children) = &self.nodes[d as usize].kind else {
                continue;
            };
            let kids: Vec<NodeId> = children.values().copied().collect();
            for k in kids {
                if self.nodes[k as usize].touched < layer {
                    self.detach(k);
                } else if matches!(self.nodes[k as usize].kind, NodeKind::Dir(_)) {
                    stack.push(k);
                }
            }
        }
    }

    /// Find a path; `follow_final` also follows a symlink in the last
    /// component. Absolute and relative paths both start at the root.
    pub fn lookup(&mut self, path: &[u8], follow_final: bool) -> Result<Option<NodeId>, TreeError> {
        // One more than the links it may follow: this first call counts too.
        let mut budget = MAX_SYMLINKS + 1;
        self.lookup_from(path.to_vec(), follow_final, &mut budget)
    }

    fn lookup_from(
        &mut self,
        path: Vec<u8>,
        follow_final: bool,
        budget: &mut u32,
    ) -> Result<Option<NodeId>, TreeError> {
        if *budget == 0 {
            return Err(TreeError::SymlinkLoop { path: lossy(&path) });
        }
        *budget -= 1;
        let comps = components(&path);
        let Some((&name, parents)) = comps.split_last() else {
            return Ok(Some(ROOT));
        };
        let Some(p) = self.lookup_parent(parents, &path)? else {
            return Ok(None);
        };
        if name == b".." {
            return Ok(Some(self.nodes[p as usize].parent));
        }
        let Some(id) = self.child(p, name) else {
            return Ok(None);
        };
        if follow_final {
            if let NodeKind::Symlink(target) = &self.nodes[id as usize].kind {
                // Resolve the target relative to the link's directory by
                // building "<dir>/<target>" (or the absolute target).
                let mut full = if target.first() == Some(&b'/') {
                    Vec::new()
                } else {
                    self.path_of(p)
                };
                full.push(b'/');
                full.extend_from_slice(target);
                return self.lookup_from(full, true, budget);
            }
        }
        Ok(Some(id))
    }

    /// What a node is.
    pub fn info(&self, id: NodeId) -> Option<NodeInfo> {
        Some(match &self.nodes.get(id as usize)?.kind {
            NodeKind::Dir(_) => NodeInfo::Dir,
            NodeKind::File(ino) => NodeInfo::File {
                size: self.inodes[*ino as usize].size,
            },
            NodeKind::Symlink(t) => NodeInfo::Symlink { target: t.to_vec() },
            NodeKind::Special(s) => NodeInfo::Special(*s),
            NodeKind::Removed => return None,
        })
    }

    /// The names in a directory, sorted.
    pub fn list(&self, dir: NodeId) -> Vec<(Vec<u8>, NodeId)> {
        match &self.nodes[dir as usize].kind {
            NodeKind::Dir(children) => children.iter().map(|(k, v)| (k.to_vec(), *v)).collect(),
            _ => Vec::new(),
        }
    }

    /// Absolute path of a node, `/` for the root.
    pub fn path_of(&self, id: NodeId) -> Vec<u8> {
        let mut parts = Vec::new();
        let mut cur = id;
        while cur != ROOT {
            parts.push(&self.nodes[cur as usize].name);
            cur = self.nodes[cur as usize].parent;
        }
        let mut out = Vec::new();
        for p in parts.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(p);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        out
    }

    /// Counts and the unpacked size of what is in the tree.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        self.walk(|_, n| match &n.kind {
            NodeKind::Dir(_) => s.dirs += 1,
            NodeKind::File(_) => {}
            _ => s.others += 1,
        });
        for i in &self.inodes {
            if i.links > 0 {
                s.files += 1;
                s.bytes += i.size;
            }
        }
        s
    }

    /// Pre-order walk, children sorted; paths are relative (`usr/bin`).
    fn walk(&self, mut f: impl FnMut(&[u8], &Node)) {
        let mut stack: Vec<(NodeId, Vec<u8>)> = vec![(ROOT, Vec::new())];
        while let Some((id, path)) = stack.pop() {
            let node = &self.nodes[id as usize];
            f(&path, node);
            if let NodeKind::Dir(children) = &node.kind {
                for (name, &cid) in children.iter().rev() {
                    let mut p = path.clone();
                    if !p.is_empty() {
                        p.push(b'/');
                    }
                    p.extend_from_slice(name);
                    stack.push((cid, p));
                }
            }
        }
    }

    /// First pass of emitting: every directory (parents first), symlink,
    /// device and fifo. Regular files follow through [`Plan`].
    pub fn emit_skeleton<S: Sink + ?Sized>(&self, sink: &mut S) -> io::Result<()> {
        let mut result = Ok(());
        self.walk(|path, node| {
            if result.is_err() {
                return;
            }
            result = match &node.kind {
                NodeKind::Dir(_) if path.is_empty() => {
                    if self.root_meta {
                        sink.dir(b".", &node.meta)
                    } else {
                        Ok(())
                    }
                }
                NodeKind::Dir(_) => sink.dir(path, &node.meta),
                NodeKind::Symlink(t) => sink.symlink(path, t, &node.meta),
                NodeKind::Special(s) => sink.special(path, *s, &node.meta),
                NodeKind::File(_) | NodeKind::Removed => Ok(()),
            };
        });
        result
    }

    /// Plan the second pass: which tar entry of which layer feeds which
    /// paths. `kernel`, if given, is a file node whose path is left out of
    /// the plan's paths and whose job is marked [`Role::Kernel`]; `capture`
    /// marks a small file whose bytes the caller wants to read.
    pub fn plan(&self, kernel: Option<NodeId>, capture: Option<NodeId>) -> Plan {
        let kernel_ino = kernel.and_then(|k| match self.nodes[k as usize].kind {
            NodeKind::File(i) => Some(i),
            _ => None,
        });
        let capture_ino = capture.and_then(|k| match self.nodes[k as usize].kind {
            NodeKind::File(i) => Some(i),
            _ => None,
        });
        let mut paths: HashMap<u32, Vec<Vec<u8>>> = HashMap::new();
        let kernel_path = kernel.map(|k| self.path_of(k));
        self.walk(|path, node| {
            if let NodeKind::File(ino) = node.kind {
                let entry = paths.entry(ino).or_default();
                let is_kernel = kernel_path
                    .as_deref()
                    .is_some_and(|kp| kp.get(1..) == Some(path));
                if !is_kernel {
                    entry.push(path.to_vec());
                }
            }
        });
        let mut jobs: Vec<FileJob> = Vec::new();
        for (ino, paths) in paths {
            let inode = &self.inodes[ino as usize];
            let role = if Some(ino) == kernel_ino {
                Role::Kernel
            } else if Some(ino) == capture_ino {
                Role::Capture
            } else {
                Role::Normal
            };
            if paths.is_empty() && role == Role::Normal {
                continue;
            }
            jobs.push(FileJob {
                layer: inode.layer,
                entry: inode.entry,
                inode: ino,
                paths,
                meta: inode.meta,
                size: inode.size,
                role,
            });
        }
        jobs.sort_by_key(|j| (j.layer, j.entry));
        Plan { jobs }
    }
}

/// What the caller should do with a file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Goes into the output under its paths.
    Normal,
    /// The kernel: goes out on the side; `paths` holds its other hard links.
    Kernel,
    /// Goes into the output and the caller also wants the bytes.
    Capture,
}

/// One regular file (inode) of the final tree and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileJob {
    /// Layer holding the content.
    pub layer: u32,
    /// Tar entry index in that layer.
    pub entry: u32,
    /// Inode number within the tree (unique per job).
    pub inode: u32,
    /// Every final path of this inode, sorted; more than one is a hardlink group.
    pub paths: Vec<Vec<u8>>,
    /// Owner, mode, mtime.
    pub meta: Meta,
    /// Content length.
    pub size: u64,
    /// Kernel, captured, or plain.
    pub role: Role,
}

/// The second pass: regular files in stream order.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    jobs: Vec<FileJob>,
}

impl Plan {
    /// The jobs of one layer, in tar order.
    pub fn layer(&self, layer: u32) -> &[FileJob] {
        let start = self.jobs.partition_point(|j| j.layer < layer);
        let end = self.jobs.partition_point(|j| j.layer <= layer);
        &self.jobs[start..end]
    }

    /// Every job.
    pub fn jobs(&self) -> &[FileJob] {
        &self.jobs
    }
}

/// Where a flattened tree goes: a cpio archive, a directory.
/// Paths are relative (`usr/bin/ls`; the root is `.`), parents first.
pub trait Sink {
    /// A directory; each comes once, after its parent.
    fn dir(&mut self, path: &[u8], meta: &Meta) -> io::Result<()>;
    /// A symbolic link.
    fn symlink(&mut self, path: &[u8], target: &[u8], meta: &Meta) -> io::Result<()>;
    /// A device node or fifo.
    fn special(&mut self, path: &[u8], kind: Special, meta: &Meta) -> io::Result<()>;
    /// A regular file, written once under `paths[0]` and hard-linked under
    /// the rest. `data` yields exactly `size` bytes.
    fn file(
        &mut self,
        paths: &[Vec<u8>],
        meta: &Meta,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()>;
}

fn header_meta(entry: &mut tar::Entry<'_, impl Read>) -> io::Result<Meta> {
    let h = entry.header();
    let mut meta = Meta {
        mode: h.mode()? & 0o7777,
        uid: h.uid()?,
        gid: h.gid()?,
        mtime: h.mtime()? as i64,
    };
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax.flatten() {
            let Ok(v) = ext.value() else { continue };
            match ext.key_bytes() {
                b"uid" => meta.uid = v.parse().unwrap_or(meta.uid),
                b"gid" => meta.gid = v.parse().unwrap_or(meta.gid),
                b"mtime" => {
                    let secs = v.split('.').next().unwrap_or("");
                    meta.mtime = secs.parse().unwrap_or(meta.mtime);
                }
                _ => {}
            }
        }
    }
    Ok(meta)
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// First pass over one (decompressed) layer: read every header, skip the
/// contents.
pub fn index_layer<R: Read>(tar: R) -> Result<Vec<LayerEntry>, TreeError> {
    let consumed = Rc::new(Cell::new(0u64));
    let mut archive = tar::Archive::new(Counting {
        inner: tar,
        count: consumed.clone(),
    });
    let mut out = Vec::new();
    // Where the last entry's data ends in the stream.
    let mut data_end = 0u64;
    for (i, entry) in archive.entries().map_err(TreeError::Tar)?.enumerate() {
        let mut entry = match entry {
            Ok(e) => e,
            // Some writers (umoci 0.4's `insert`, seen in our tests) stop
            // right after the last file's bytes: no padding, no end-of-
            // archive blocks. Nothing is missing then, so accept it; a
            // stream cut inside a file's data is still an error.
            Err(e)
                if (e.kind() == io::ErrorKind::UnexpectedEof
                    || e.to_string().contains("unexpected EOF"))
                    && consumed.get() >= data_end =>
            {
                break;
            }
            Err(e) => return Err(TreeError::Tar(e)),
        };
        data_end = entry.raw_file_position() + entry.size();
        let path = entry.path_bytes().into_owned();
        let meta = header_meta(&mut entry).map_err(TreeError::Tar)?;
        let link = || {
            entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default()
        };
        let h = entry.header();
        let dev = || -> io::Result<(u32, u32)> {
            Ok((
                h.device_major()?.unwrap_or(0),
                h.device_minor()?.unwrap_or(0),
            ))
        };
        let kind = match h.entry_type().as_byte() {
            // Old (V7) tars mark directories only by a trailing slash.
            b'0' | b'\0' | b'7' if path.ends_with(b"/") => EntryKind::Dir,
            b'0' | b'\0' | b'7' => EntryKind::File { size: entry.size() },
            b'1' => EntryKind::Hardlink { target: link() },
            b'2' => EntryKind::Symlink { target: link() },
            b'3' => {
                let (major, minor) = dev().map_err(TreeError::Tar)?;
                EntryKind::Special(Special::Char { major, minor })
            }
            b'4' => {
                let (major, minor) = dev().map_err(TreeError::Tar)?;
                EntryKind::Special(Special::Block { major, minor })
            }
            b'5' => EntryKind::Dir,
            b'6' => EntryKind::Special(Special::Fifo),
            b'g' | b'V' => EntryKind::Ignored,
            other => {
                return Err(TreeError::Unsupported {
                    path: lossy(&path),
                    typeflag: other as char,
                })
            }
        };
        out.push(LayerEntry {
            index: i as u32,
            path,
            kind,
            meta,
        });
    }
    Ok(out)
}

/// Second pass over one (decompressed) layer: hand each planned file's
/// bytes to `f`, in stream order. Stops reading the layer as soon as its
/// last planned file is done, so trailing deleted data is never inflated.
pub fn for_each_file<R: Read>(
    tar: R,
    jobs: &[FileJob],
    mut f: impl FnMut(&FileJob, &mut dyn Read) -> io::Result<()>,
) -> Result<(), TreeError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let mut archive = tar::Archive::new(tar);
    let mut next = jobs.iter().peekable();
    for (i, entry) in archive.entries().map_err(TreeError::Tar)?.enumerate() {
        let mut entry = entry.map_err(TreeError::Tar)?;
        let Some(job) = next.peek() else { break };
        if job.entry as usize != i {
            continue;
        }
        if entry.size() != job.size {
            return Err(TreeError::Tar(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "entry {} changed size between passes ({} then {})",
                    lossy(&entry.path_bytes()),
                    job.size,
                    entry.size()
                ),
            )));
        }
        f(job, &mut entry).map_err(TreeError::Tar)?;
        next.next();
        if next.peek().is_none() {
            return Ok(());
        }
    }
    match next.peek() {
        None => Ok(()),
        Some(job) => Err(TreeError::Tar(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("layer ended before entry {} was reached", job.entry),
        ))),
    }
}

#[cfg(test)]
mod tests;
