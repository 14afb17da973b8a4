//! Emitting the final tree: counts, the skeleton (directories, symlinks,
//! devices), and the plan of the second pass (which tar entry of which
//! layer feeds which paths, and in which role), through a [`Sink`].

use std::io::{self, Read};

use super::*;

impl Tree {
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
