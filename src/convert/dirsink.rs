//! Writing a flattened tree into a directory (`wyrcan unpack`).
//!
//! The tree's paths are already resolved inside the image (no `..`, no
//! symlink in a parent position), and the target starts empty, so creating
//! each path in order cannot write outside it.
//!
//! Directory owners, modes and mtimes are applied at the end, deepest first:
//! a read-only directory would block its own children, and adding a child
//! changes the directory's mtime.
//!
//! The root itself keeps the owner and mode it was created with (0700, the
//! caller's): the image's `./` entry is not applied to it. Applied, a
//! `./` of mode 0755 (the usual) or 07777 would let every local user reach
//! the image's device nodes and setuid files inside.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, CWD};
use rustix::process::{Gid, Uid};
use wyrcan_core::tree::{Meta, Sink, Special};

/// A [`Sink`] that creates files under `root`.
pub struct DirSink {
    root: PathBuf,
    dirs: Vec<(PathBuf, Meta)>,
    /// Owners and device nodes need root; without it they are skipped once
    /// with a warning instead of failing the whole unpack.
    privileged: bool,
    warned: bool,
}

fn with_path(e: io::Error, what: &str, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
}

fn times(meta: &Meta) -> Timestamps {
    let t = Timespec {
        tv_sec: meta.mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl DirSink {
    /// Write into `root`, which must exist and be empty; `root`'s own
    /// owner, mode and mtime are left as they are.
    pub fn new(root: &Path) -> Self {
        DirSink {
            root: root.to_path_buf(),
            dirs: Vec::new(),
            privileged: rustix::process::geteuid().is_root(),
            warned: false,
        }
    }

    fn path(&self, p: &[u8]) -> PathBuf {
        if p == b"." {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(p))
        }
    }

    fn not_root(&mut self, what: &str) {
        if !self.warned {
            tracing::warn!(
                "not running as root: {what} skipped (run as root to keep owners and device nodes)"
            );
            self.warned = true;
        }
    }
}

/// An owner for `chown`: 4294967295 is chown's "leave it" (-1), as GNU tar
/// and umoci pass it; above 32 bits is an error rather than a wrap-around.
fn owner(id: u64, what: &str, p: &Path) -> io::Result<Option<u32>> {
    match u32::try_from(id) {
        Ok(u32::MAX) => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} {id} of {} does not fit in 32 bits", p.display()),
        )),
    }
}

impl DirSink {
    /// Owner, then mode (chown clears setuid), then mtime; never follows
    /// a symlink.
    fn finish_path(&mut self, p: &Path, meta: &Meta, is_link: bool) -> io::Result<()> {
        if self.privileged {
            let uid = owner(meta.uid, "owner", p)?.map(Uid::from_raw);
            let gid = owner(meta.gid, "group", p)?.map(Gid::from_raw);
            rustix::fs::chownat(CWD, p, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| with_path(e.into(), "changing the owner of", p))?;
        } else if meta.uid != 0 || meta.gid != 0 {
            self.not_root("owners");
        }
        if !is_link {
            fs::set_permissions(p, fs::Permissions::from_mode(meta.mode))
                .map_err(|e| with_path(e, "setting the mode of", p))?;
        }
        rustix::fs::utimensat(CWD, p, &times(meta), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| with_path(e.into(), "setting the mtime of", p))?;
        Ok(())
    }

    /// Apply the deferred directory metadata; call once at the end.
    pub fn finish(mut self) -> io::Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for (p, meta) in dirs.iter().rev() {
            self.finish_path(p, meta, false)?;
        }
        Ok(())
    }
}

impl Sink for DirSink {
    fn dir(&mut self, path: &[u8], meta: &Meta) -> io::Result<()> {
        if path == b"." {
            // The image's root metadata stays out of the target (module doc).
            return Ok(());
        }
        let p = self.path(path);
        fs::create_dir(&p).map_err(|e| with_path(e, "creating directory", &p))?;
        self.dirs.push((p, *meta));
        Ok(())
    }

    fn symlink(&mut self, path: &[u8], target: &[u8], meta: &Meta) -> io::Result<()> {
        let p = self.path(path);
        symlink(OsStr::from_bytes(target), &p).map_err(|e| with_path(e, "creating symlink", &p))?;
        self.finish_path(&p, meta, true)
    }

    fn special(&mut self, path: &[u8], kind: Special, meta: &Meta) -> io::Result<()> {
        let p = self.path(path);
        let (ty, dev) = match kind {
            Special::Char { major, minor } => {
                (FileType::CharacterDevice, rustix::fs::makedev(major, minor))
            }
            Special::Block { major, minor } => {
                (FileType::BlockDevice, rustix::fs::makedev(major, minor))
            }
            Special::Fifo => (FileType::Fifo, 0),
        };
        if ty != FileType::Fifo && !self.privileged {
            self.not_root("device nodes");
            return Ok(());
        }
        rustix::fs::mknodat(CWD, &p, ty, Mode::from_raw_mode(0o600), dev)
            .map_err(|e| with_path(e.into(), "creating node", &p))?;
        self.finish_path(&p, meta, false)
    }

    fn file(
        &mut self,
        paths: &[Vec<u8>],
        meta: &Meta,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let Some((first, rest)) = paths.split_first() else {
            return Ok(());
        };
        let p = self.path(first);
        let mut f: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .map_err(|e| with_path(e, "creating", &p))?;
        let n = io::copy(&mut data.take(size), &mut f).map_err(|e| with_path(e, "writing", &p))?;
        if n != size {
            return Err(with_path(
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("got {n} of {size} bytes"),
                ),
                "writing",
                &p,
            ));
        }
        drop(f);
        self.finish_path(&p, meta, false)?;
        for other in rest {
            let o = self.path(other);
            fs::hard_link(&p, &o).map_err(|e| with_path(e, "hard-linking", &o))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};

    #[test]
    fn the_image_root_metadata_stays_off_the_target_but_reaches_its_contents() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("root");
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&root)
            .expect("creating the root");
        let before = fs::metadata(&root).unwrap();
        let wide = Meta {
            mode: 0o7777,
            uid: 1234,
            gid: 1234,
            mtime: 1,
        };
        let mut sink = DirSink::new(&root);
        sink.dir(b".", &wide).unwrap();
        sink.dir(
            b"sub",
            &Meta {
                mode: 0o750,
                ..wide
            },
        )
        .unwrap();
        sink.finish().unwrap();
        let after = fs::metadata(&root).unwrap();
        assert_eq!(after.mode() & 0o7777, 0o700, "the root keeps 0700");
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        let sub = fs::metadata(root.join("sub")).unwrap();
        assert_eq!(sub.mode() & 0o7777, 0o750, "contents get the image's mode");
        assert_eq!(sub.mtime(), 1);
    }
}
