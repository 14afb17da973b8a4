//! Outputs that appear whole or not at all: files are written beside
//! their targets and renamed into place only when every one is complete.
//!
//! Every output is created mode 0600 (before umask), staging file and
//! final file alike: an initrd holds the image's private files
//! (`/etc/shadow`, keys), and the kernel and cmdline go with it.

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

/// The mode of every output and staging file: readable by its owner only,
/// since an initrd carries the image's 0600 files.
pub const OUTPUT_MODE: u32 = 0o600;

/// Files written next to their final names and renamed into place only
/// when everything succeeded; dropped unfinished, they vanish.
pub struct Staged {
    items: Vec<(tempfile::NamedTempFile, PathBuf)>,
}

impl Staged {
    /// Nothing staged yet.
    pub fn new() -> Self {
        Staged { items: Vec::new() }
    }

    /// A scratch file beside `target`, mode [`OUTPUT_MODE`]; returns its index.
    pub fn add(&mut self, target: &Path) -> Result<usize> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target
            .file_name()
            .ok_or_else(|| anyhow!("{} is not a file name", target.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".wyrcan-partial")
            .permissions(std::fs::Permissions::from_mode(OUTPUT_MODE))
            .tempfile_in(dir)
            .with_context(|| {
                format!(
                    "creating a file in {} for {}",
                    dir.display(),
                    target.display()
                )
            })?;
        self.items.push((tmp, target.to_path_buf()));
        Ok(self.items.len() - 1)
    }

    /// The open scratch file.
    pub fn file(&mut self, i: usize) -> &mut File {
        self.items[i].0.as_file_mut()
    }

    /// Sync and rename everything into place.
    pub fn commit(self) -> Result<()> {
        for (tmp, _) in &self.items {
            tmp.as_file().sync_all().context("syncing an output file")?;
        }
        for (tmp, target) in self.items {
            tmp.persist(&target)
                .with_context(|| format!("moving the output into place at {}", target.display()))?;
        }
        Ok(())
    }
}

impl Default for Staged {
    fn default() -> Self {
        Self::new()
    }
}

/// Reject an unpack target that has anything in it.
pub fn check_empty_dir(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut it) => {
            if it.next().is_some() {
                bail!(
                    "{} is not empty: unpack needs an empty or missing directory (remove it or pick another)",
                    dir.display()
                );
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn outputs_are_created_0600_and_stay_so_once_in_place() {
        let dir = tempfile::tempdir().unwrap();
        // An existing 0644 file is replaced, not reused with its mode.
        let initrd = dir.path().join("initrd");
        std::fs::write(&initrd, "old").unwrap();
        std::fs::set_permissions(&initrd, std::fs::Permissions::from_mode(0o644)).unwrap();
        let kernel = dir.path().join("kernel");
        let mut staged = Staged::new();
        let k = staged.add(&kernel).unwrap();
        let i = staged.add(&initrd).unwrap();
        let partials: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".wyrcan-partial"))
            .collect();
        assert_eq!(partials.len(), 2, "{partials:?}");
        for p in &partials {
            assert_eq!(mode(p), 0o600, "staging file {}", p.display());
        }
        staged.file(k).write_all(b"kernel").unwrap();
        staged.file(i).write_all(b"initrd").unwrap();
        staged.commit().unwrap();
        assert_eq!(mode(&kernel), 0o600);
        assert_eq!(mode(&initrd), 0o600);
        assert_eq!(std::fs::read(&initrd).unwrap(), b"initrd");
    }
}
