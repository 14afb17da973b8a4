//! What the tree is built from: layer entries reduced to what flattening
//! needs, their metadata, and why a layer cannot be applied.

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
    /// Member number in the layer's tar stream (extension headers not
    /// counted); the second pass finds file contents by it.
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
}

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The tar stream itself is unreadable or not acceptable.
    #[error("reading the layer's tar stream")]
    Tar(#[from] crate::tar::TarError),
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
    /// The image's layers hold more entries than allowed.
    #[error("entry {entry} ({path:?}) is one more than the image may have in all its layers (a hostile layer? if not, raise --max-entries)")]
    TooManyEntries {
        /// Member number in its layer.
        entry: u32,
        /// Its name.
        path: String,
    },
    /// Symlink resolution over the whole tree went past [`SYMLINK_WORK`].
    #[error("resolving {path:?} through symbolic links: the layers make symlink resolution exceed its bound (a hostile layer?)")]
    TooMuchWork {
        /// The path being resolved.
        path: String,
    },
    /// A symlink chain too long to be resolved (or a loop).
    #[error("too many levels of symbolic links while resolving {path:?}")]
    SymlinkLoop {
        /// The path being resolved.
        path: String,
    },
}
