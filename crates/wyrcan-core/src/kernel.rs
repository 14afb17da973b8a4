//! Finding the kernel of a bootable container and composing its cmdline
//! (DESIGN §1): `/boot/wyrcan.kernel`, else the fallbacks, with errors that
//! teach the convention.

use crate::tree::{NodeId, NodeInfo, Tree, TreeError};

/// Where the convention says the kernel is.
pub const KERNEL_PATH: &str = "/boot/wyrcan.kernel";
/// Where an image keeps the arguments it wants.
pub const CMDLINE_PATH: &str = "/boot/wyrcan.cmdline";

/// The kernel that was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The regular file holding the kernel (symlinks resolved).
    pub node: NodeId,
    /// Its absolute path in the image.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// How it was found, for the log: `/boot/wyrcan.kernel` or a fallback.
    pub via: String,
}

/// Why no kernel could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Nothing matches the convention or its fallbacks.
    #[error(
        "the image has no kernel: a bootable container needs /boot/wyrcan.kernel (a file, or a \
         relative symlink such as vmlinuz-6.1.0-amd64); /boot/vmlinuz, a single /boot/vmlinuz-*, \
         or a single /usr/lib/modules/*/vmlinuz are also accepted. Install a kernel package in the \
         image and add: RUN ln -s vmlinuz-<version> /boot/wyrcan.kernel"
    )]
    None,
    /// Several candidates and no `/boot/wyrcan.kernel` to choose.
    #[error(
        "the image has several kernels ({}) and no /boot/wyrcan.kernel to choose one: add \
         RUN ln -s <one of them, relative to /boot> /boot/wyrcan.kernel",
        .0.join(", ")
    )]
    Ambiguous(Vec<String>),
    /// `/boot/wyrcan.kernel` exists but is not (a link to) a regular file.
    #[error("/boot/wyrcan.kernel is not a regular file and does not link to one ({0}): point it at the kernel image")]
    NotAFile(String),
    /// A symlink loop while resolving.
    #[error(transparent)]
    Tree(#[from] TreeError),
}

fn file_at(tree: &mut Tree, path: &str) -> Result<Option<(NodeId, u64)>, TreeError> {
    Ok(match tree.lookup(path.as_bytes(), true)? {
        Some(id) => match tree.info(id) {
            Some(NodeInfo::File { size }) => Some((id, size)),
            _ => None,
        },
        None => None,
    })
}

fn found(tree: &Tree, node: NodeId, size: u64, via: &str) -> Found {
    Found {
        node,
        path: String::from_utf8_lossy(&tree.path_of(node)).into_owned(),
        size,
        via: via.to_string(),
    }
}

/// Apply DESIGN §1: `/boot/wyrcan.kernel`, `/boot/vmlinuz`, a single
/// `/boot/vmlinuz-*`, a single `{/usr,}/lib/modules/*/vmlinuz`.
pub fn find(tree: &mut Tree) -> Result<Found, KernelError> {
    if let Some(id) = tree.lookup(KERNEL_PATH.as_bytes(), false)? {
        return match file_at(tree, KERNEL_PATH)? {
            Some((node, size)) => Ok(found(tree, node, size, KERNEL_PATH)),
            None => {
                let what = match tree.info(id) {
                    Some(NodeInfo::Symlink { target }) => format!(
                        "a symlink to {}, which is missing or not a file",
                        String::from_utf8_lossy(&target)
                    ),
                    Some(NodeInfo::Dir) => "a directory".into(),
                    _ => "a special file".into(),
                };
                Err(KernelError::NotAFile(what))
            }
        };
    }
    if let Some((node, size)) = file_at(tree, "/boot/vmlinuz")? {
        return Ok(found(tree, node, size, "/boot/vmlinuz"));
    }
    let mut groups: Vec<Vec<(NodeId, u64)>> = Vec::new();
    let mut boot = Vec::new();
    if let Some(dir) = tree.lookup(b"/boot", true)? {
        for (name, _) in tree.list(dir) {
            if name.starts_with(b"vmlinuz-") {
                let p = format!("/boot/{}", String::from_utf8_lossy(&name));
                if let Some(f) = file_at(tree, &p)? {
                    boot.push(f);
                }
            }
        }
    }
    groups.push(boot);
    let mut modules = Vec::new();
    for base in ["/usr/lib/modules", "/lib/modules"] {
        if let Some(dir) = tree.lookup(base.as_bytes(), true)? {
            for (name, _) in tree.list(dir) {
                let p = format!("{base}/{}/vmlinuz", String::from_utf8_lossy(&name));
                if let Some(f) = file_at(tree, &p)? {
                    // With merged /usr, /lib/modules is /usr/lib/modules.
                    if !modules.contains(&f) {
                        modules.push(f);
                    }
                }
            }
        }
    }
    groups.push(modules);
    for (group, via) in groups
        .iter()
        .zip(["/boot/vmlinuz-*", "/usr/lib/modules/*/vmlinuz"])
    {
        match group.as_slice() {
            [] => continue,
            [(node, size)] => return Ok(found(tree, *node, *size, via)),
            many => {
                let names = many
                    .iter()
                    .map(|(n, _)| String::from_utf8_lossy(&tree.path_of(*n)).into_owned())
                    .collect();
                return Err(KernelError::Ambiguous(names));
            }
        }
    }
    Err(KernelError::None)
}

/// Whether the image can be started as the kernel's first process: `/init`
/// exists (usually a symlink to systemd) → no extra argument; else
/// `/sbin/init` → `rdinit=/sbin/init`; else nothing to add, and the caller
/// should warn that the image may not boot.
pub fn init_arg(tree: &mut Tree) -> Result<InitArg, TreeError> {
    if tree.lookup(b"/init", false)?.is_some() {
        return Ok(InitArg::Init);
    }
    if tree.lookup(b"/sbin/init", true)?.is_some() {
        return Ok(InitArg::Rdinit("rdinit=/sbin/init"));
    }
    Ok(InitArg::Missing)
}

/// What [`init_arg`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitArg {
    /// `/init` is there.
    Init,
    /// Add this argument to the cmdline.
    Rdinit(&'static str),
    /// Neither `/init` nor `/sbin/init`.
    Missing,
}

/// The next kernel's cmdline from the image's point of view: the content
/// of `/boot/wyrcan.cmdline` on one line, then the init argument.
pub fn image_cmdline(file: Option<&[u8]>, init: &InitArg) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(f) = file {
        let text = String::from_utf8_lossy(f);
        let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if !joined.is_empty() {
            parts.push(joined);
        }
    }
    if let InitArg::Rdinit(a) = init {
        parts.push((*a).to_string());
    }
    parts.join(" ")
}

/// Bytes of a bzImage that [`cmdline_limit`] needs.
pub const SETUP_HEADER_LEN: usize = 0x240;

/// The longest cmdline (in bytes, without the terminating NUL) an x86
/// bzImage accepts, from its setup header (Documentation/arch/x86/boot.rst:
/// `cmdline_size` at 0x238 from boot protocol 2.06; 255 before). `None`
/// when `header` is not a bzImage setup header. `kexec_file_load` answers
/// `EINVAL` to a longer one, which reads like a memory problem: checking
/// first gives the real reason.
pub fn cmdline_limit(header: &[u8]) -> Option<usize> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(header.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(header.get(o..o + 4)?.try_into().ok()?));
    if u16_at(0x1fe)? != 0xaa55 || header.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    if u16_at(0x206)? < 0x0206 {
        return Some(255);
    }
    let size = u32_at(0x238)? as usize;
    // kexec counts the terminating NUL against `cmdline_size`.
    Some(size.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{EntryKind, LayerEntry, Meta};

    fn tree(entries: &[(&str, EntryKind)]) -> Tree {
        let mut t = Tree::new();
        let es: Vec<LayerEntry> = entries
            .iter()
            .enumerate()
            .map(|(i, (p, k))| LayerEntry {
                index: i as u32,
                path: p.as_bytes().to_vec(),
                kind: k.clone(),
                meta: Meta::default(),
            })
            .collect();
        t.apply_layer(0, &es).unwrap();
        t
    }
    fn file(n: u64) -> EntryKind {
        EntryKind::File { size: n }
    }
    fn link(t: &str) -> EntryKind {
        EntryKind::Symlink {
            target: t.as_bytes().to_vec(),
        }
    }

    #[test]
    fn convention_symlink_anywhere_in_stream() {
        let mut t = tree(&[
            ("boot/wyrcan.kernel", link("vmlinuz-6.1")),
            ("boot/vmlinuz-6.1", file(9)),
        ]);
        let k = find(&mut t).unwrap();
        assert_eq!(k.path, "/boot/vmlinuz-6.1");
        assert_eq!(k.size, 9);
        assert_eq!(k.via, KERNEL_PATH);
    }

    #[test]
    fn fallbacks_in_order() {
        let mut t = tree(&[("boot/vmlinuz", file(1)), ("boot/vmlinuz-a", file(2))]);
        assert_eq!(find(&mut t).unwrap().path, "/boot/vmlinuz");
        let mut t = tree(&[("boot/vmlinuz-a", file(2)), ("boot/config-a", file(2))]);
        assert_eq!(find(&mut t).unwrap().path, "/boot/vmlinuz-a");
        let mut t = tree(&[
            ("usr/lib/modules/6.1/vmlinuz", file(3)),
            ("lib", link("usr/lib")),
        ]);
        let k = find(&mut t).unwrap();
        assert_eq!(k.path, "/usr/lib/modules/6.1/vmlinuz");
    }

    #[test]
    fn ambiguous_and_missing_explain_what_to_do() {
        let mut t = tree(&[("boot/vmlinuz-a", file(1)), ("boot/vmlinuz-b", file(1))]);
        let e = find(&mut t).unwrap_err().to_string();
        assert!(
            e.contains("/boot/vmlinuz-a") && e.contains("/boot/vmlinuz-b"),
            "{e}"
        );
        assert!(e.contains("wyrcan.kernel"));
        let mut t = tree(&[("etc/x", file(1))]);
        let e = find(&mut t).unwrap_err().to_string();
        assert!(e.contains("/boot/wyrcan.kernel"), "{e}");
        let mut t = tree(&[("boot/wyrcan.kernel", link("gone"))]);
        assert!(matches!(find(&mut t), Err(KernelError::NotAFile(_))));
    }

    #[test]
    fn init_and_cmdline() {
        let mut t = tree(&[("init", link("lib/systemd/systemd"))]);
        assert_eq!(init_arg(&mut t).unwrap(), InitArg::Init);
        let mut t = tree(&[("usr/sbin/init", file(1)), ("sbin", link("usr/sbin"))]);
        let a = init_arg(&mut t).unwrap();
        assert_eq!(a, InitArg::Rdinit("rdinit=/sbin/init"));
        assert_eq!(
            image_cmdline(Some(b" quiet\n  ro \n"), &a),
            "quiet ro rdinit=/sbin/init"
        );
        assert_eq!(image_cmdline(None, &InitArg::Init), "");
    }

    #[test]
    fn cmdline_limit_from_the_setup_header() {
        let mut h = vec![0u8; SETUP_HEADER_LEN];
        assert_eq!(cmdline_limit(&h), None);
        h[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        h[0x202..0x206].copy_from_slice(b"HdrS");
        h[0x206..0x208].copy_from_slice(&0x0205u16.to_le_bytes());
        assert_eq!(cmdline_limit(&h), Some(255));
        h[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        h[0x238..0x23c].copy_from_slice(&2048u32.to_le_bytes());
        assert_eq!(cmdline_limit(&h), Some(2047));
        assert_eq!(cmdline_limit(&h[..0x200]), None);
    }
}
