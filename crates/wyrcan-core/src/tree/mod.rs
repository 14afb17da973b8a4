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

use std::collections::{BTreeMap, HashMap, VecDeque};

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

/// The flattened filesystem of an image, headers only. Slots of removed
/// nodes and inodes are reused, so memory follows the paths that survive,
/// not the entries that went by (10 million entries all named `a` cost
/// one node).
#[derive(Debug)]
pub struct Tree {
    nodes: Vec<Node>,
    inodes: Vec<Inode>,
    free_nodes: Vec<NodeId>,
    free_inodes: Vec<u32>,
    /// Directories already made opaque by a layer: a second marker in the
    /// same layer has nothing left to remove (keeps n markers O(n), not O(n²)).
    opaque: std::collections::HashSet<(NodeId, u32)>,
    /// Components still allowed to come from symlink targets while
    /// resolving names, over the whole tree.
    symlink_work: u64,
    /// Whether some layer gave the root its own metadata (`./` entry).
    root_meta: bool,
}

/// Components all symlink resolutions of one tree may expand, in total:
/// far above any real image (each resolution is at most 40 links of at most
/// 4096 bytes), far below hours of CPU.
pub const SYMLINK_WORK: u64 = 1 << 26;

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

/// A name cleaned as text, the way umoci, containerd and moby clean a tar
/// member's name before they look at the filesystem: `.` and empty
/// components dropped, `..` removes the component before it and stops at
/// the root. `tmp/../../moo` is `moo` (no stray `tmp/`), and `l/../x` is
/// `x` whatever `l` is.
fn clean(path: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
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
            free_nodes: Vec::new(),
            free_inodes: Vec::new(),
            opaque: std::collections::HashSet::new(),
            symlink_work: SYMLINK_WORK,
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
        let comps = clean(&e.path);
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
                let inode = Inode {
                    layer,
                    entry: e.index,
                    size: *size,
                    meta: e.meta,
                    links: 0,
                };
                // The old file at this path goes first, so its inode slot
                // can be the new one's.
                if let Some(old) = existing {
                    self.detach(old);
                }
                let ino = match self.free_inodes.pop() {
                    Some(i) => {
                        self.inodes[i as usize] = inode;
                        i
                    }
                    None => {
                        self.inodes.push(inode);
                        (self.inodes.len() - 1) as u32
                    }
                };
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
                let tcomps = clean(target);
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
            if self.opaque.insert((dir, layer)) {
                self.prune_lower(dir, layer);
            }
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
                        let cost = target.len() as u64 / 2 + 1;
                        if self.symlink_work < cost {
                            return Err(TreeError::TooMuchWork { path: lossy(whole) });
                        }
                        self.symlink_work -= cost;
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
        let node = Node {
            name: name.into(),
            parent,
            kind,
            meta,
            touched: layer,
        };
        let id = match self.free_nodes.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as NodeId
            }
        };
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
            let node = &mut self.nodes[n as usize];
            node.name = Box::default();
            match std::mem::replace(&mut node.kind, NodeKind::Removed) {
                NodeKind::Dir(children) => stack.extend(children.into_values()),
                NodeKind::File(ino) => {
                    let inode = &mut self.inodes[ino as usize];
                    inode.links -= 1;
                    if inode.links == 0 {
                        self.free_inodes.push(ino);
                    }
                }
                _ => {}
            }
            self.free_nodes.push(n);
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
}

mod emit;
mod entry;
mod layer;

pub use emit::{FileJob, Plan, Role, Sink};
pub use entry::{EntryKind, LayerEntry, Meta, Special, TreeError};
pub use layer::{for_each_file, index_layer, index_layer_bounded};

#[cfg(test)]
mod tests;
