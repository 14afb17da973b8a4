//! Outputs that appear whole or not at all: files are written beside
//! their targets and renamed into place only when every one is complete.

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

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

    /// A scratch file beside `target`; returns its index.
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
            .permissions(std::fs::Permissions::from_mode(0o644))
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
