//! The calls of stage 2 (a squashfs-root initrd, `src/stage2`): a loop
//! device over the squashfs, moving mounts, freeing the initramfs without
//! crossing into other mounts, and the switch to the image's root.
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Error, Result};

// <linux/loop.h>; the libc crate does not carry them.
const LOOP_SET_FD: libc::Ioctl = 0x4C00;
const LOOP_CLR_FD: libc::Ioctl = 0x4C01;
const LOOP_SET_STATUS64: libc::Ioctl = 0x4C04;
const LOOP_CONFIGURE: libc::Ioctl = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::Ioctl = 0x4C82;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;

/// `struct loop_info64`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` (Linux 5.8+: attach and set flags in one call).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Read-only, and detached by the kernel once nothing holds it: when the
/// squashfs is unmounted at shutdown, the device goes too.
fn loop_config(backing_fd: u32, name: &Path) -> LoopConfig {
    let mut file_name = [0u8; LO_NAME_SIZE];
    let bytes = name.as_os_str().as_encoded_bytes();
    // Informational only (losetup -l); the last byte stays NUL.
    let n = bytes.len().min(LO_NAME_SIZE - 1);
    file_name[..n].copy_from_slice(&bytes[..n]);
    LoopConfig {
        fd: backing_fd,
        block_size: 0,
        info: LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
            lo_file_name: file_name,
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        },
        reserved: [0; 8],
    }
}

/// A loop device attached by [`loop_attach`]. Keep it until the device is
/// mounted: with autoclear, the last close of an unmounted loop device
/// detaches it.
#[derive(Debug)]
pub struct LoopDevice {
    /// `/dev/loopN`.
    pub path: PathBuf,
    _hold: Option<File>,
}

impl LoopDevice {
    /// A device at `path`, held open by `hold` (fakes hold nothing).
    pub fn new(path: PathBuf, hold: Option<File>) -> Self {
        LoopDevice { path, _hold: hold }
    }
}

fn ioctl_ptr<T>(f: &File, req: libc::Ioctl, arg: &T) -> io::Result<libc::c_int> {
    // SAFETY: `f` is an open fd; `arg` points to a live `#[repr(C)]` value
    // of the layout `req` expects, which the kernel only reads.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), req, arg as *const T) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

fn ioctl_int(f: &File, req: libc::Ioctl, arg: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: `f` is an open fd and `req` takes an integer argument (or
    // none), so no memory is passed.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), req, arg) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// Attach `dev` to `backing`: `LOOP_CONFIGURE`, or on kernels before 5.8
/// (or when `legacy`) `LOOP_SET_FD` + `LOOP_SET_STATUS64` (read-only then
/// comes from both being opened read-only).
fn configure(dev: &File, backing: &File, name: &Path, legacy: bool) -> io::Result<()> {
    let cfg = loop_config(backing.as_raw_fd() as u32, name);
    if !legacy {
        match ioctl_ptr(dev, LOOP_CONFIGURE, &cfg) {
            Ok(_) => return Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTTY)) => {}
            Err(e) => return Err(e),
        }
    }
    ioctl_int(dev, LOOP_SET_FD, backing.as_raw_fd() as libc::c_ulong)?;
    if let Err(e) = ioctl_ptr(dev, LOOP_SET_STATUS64, &cfg.info) {
        let _ = ioctl_int(dev, LOOP_CLR_FD, 0);
        return Err(e);
    }
    Ok(())
}

/// Open `/dev/loopN`, waiting (about a second at most) for devtmpfs to
/// create a node `LOOP_CTL_GET_FREE` has just added.
fn open_loop(path: &Path) -> io::Result<File> {
    let mut tries = 0;
    loop {
        match File::open(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

/// Attach `file` read-only to a free loop device.
pub fn loop_attach(file: &Path) -> Result<LoopDevice> {
    attach(file, false)
}

fn attach(file: &Path, legacy: bool) -> Result<LoopDevice> {
    let what = |step: &str| format!("attaching {} to a loop device: {step}", file.display());
    let backing = File::open(file).map_err(|e| Error::io(what("opening it"), e))?;
    let ctl = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .map_err(|e| Error::io(what("opening /dev/loop-control"), e))?;
    // Another process may take the free device between the two calls:
    // EBUSY then, and the next free one is asked for.
    let mut tries = 0;
    loop {
        let n = ioctl_int(&ctl, LOOP_CTL_GET_FREE, 0)
            .map_err(|e| Error::io(what("LOOP_CTL_GET_FREE"), e))?;
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = open_loop(&path)
            .map_err(|e| Error::io(what(&format!("opening {}", path.display())), e))?;
        match configure(&dev, &backing, file, legacy) {
            Ok(()) => return Ok(LoopDevice::new(path, Some(dev))),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 8 => tries += 1,
            Err(e) => return Err(Error::io(what(&format!("{}", path.display())), e)),
        }
    }
}

/// `mkdir -p` with mode 0755.
pub fn mkdir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| Error::io(format!("creating directory {}", path.display()), e))
}

/// `mount --move from to`.
pub fn move_mount(from: &Path, to: &Path) -> Result<()> {
    rustix::mount::mount_move(from, to).map_err(|e| {
        Error::errno(
            format!("moving the mount {} to {}", from.display(), to.display()),
            e,
        )
    })
}

/// Remove `path` and what is under it, staying on the filesystem of its
/// parent (busybox switch_root's rule): a mount below is left alone.
/// Absent is fine.
pub fn remove_tree_same_dev(path: &Path) -> Result<()> {
    let what = || format!("removing {}", path.display());
    let parent = path.parent().unwrap_or(Path::new("/"));
    let dev = fs::symlink_metadata(parent)
        .map_err(|e| Error::io(what(), e))?
        .dev();
    remove(path, dev).map_err(|e| Error::io(what(), e))
}

fn remove(path: &Path, dev: u64) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.dev() != dev {
        return Ok(());
    }
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    for entry in fs::read_dir(path)? {
        remove(&entry?.path(), dev)?;
    }
    match fs::remove_dir(path) {
        // A mount point below kept it.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EBUSY)) => Ok(()),
        r => r,
    }
}

/// Make the mount at `new_root` the root (chdir, `mount --move . /`,
/// chroot, chdir `/`), then exec `init` with `args` after argv[0] and this
/// process's environment. Returns only on failure.
pub fn switch_root(new_root: &Path, init: &Path, args: &[OsString]) -> Error {
    let step = |what: &str, r: rustix::io::Result<()>| {
        r.map_err(|e| {
            Error::errno(
                format!("switching root to {}: {what}", new_root.display()),
                e,
            )
        })
    };
    let moved = step("chdir", rustix::process::chdir(new_root))
        .and_then(|()| step("mount --move . /", rustix::mount::mount_move(".", "/")))
        .and_then(|()| step("chroot .", rustix::process::chroot(".")))
        .and_then(|()| step("chdir /", rustix::process::chdir("/")));
    if let Err(e) = moved {
        return e;
    }
    let e = std::process::Command::new(init).args(args).exec();
    Error::io(format!("executing {} in the new root", init.display()), e)
}

/// Give fds 0–2 the console when the kernel could not (an initramfs
/// without `/dev/console`): the image's init inherits them.
pub fn stdio_to_console() -> Result<()> {
    // SAFETY: F_GETFD on an fd number reads its flags and touches no memory.
    if unsafe { libc::fcntl(0, libc::F_GETFD) } >= 0 {
        return Ok(());
    }
    let what = "opening /dev/console for stdin, stdout and stderr";
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/console")
        .map_err(|e| Error::io(what, e))?;
    for fd in 0..3 {
        // SAFETY: `f` is open; dup2 onto 0–2 replaces nothing (0 is closed,
        // and 1, 2 are whatever the kernel left, which we mean to replace).
        if unsafe { libc::dup2(f.as_raw_fd(), fd) } < 0 {
            return Err(Error::io(what, io::Error::last_os_error()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn loop_structs_have_the_kernels_layout() {
        // <linux/loop.h> on every architecture (no padding: u64s first).
        assert_eq!(size_of::<LoopInfo64>(), 232);
        assert_eq!(offset_of!(LoopInfo64, lo_flags), 52);
        assert_eq!(offset_of!(LoopInfo64, lo_file_name), 56);
        assert_eq!(offset_of!(LoopInfo64, lo_init), 216);
        assert_eq!(size_of::<LoopConfig>(), 304);
        assert_eq!(offset_of!(LoopConfig, info), 8);
        let c = loop_config(7, Path::new(&format!("/{}", "x".repeat(100))));
        assert_eq!(c.fd, 7);
        assert_eq!(c.info.lo_flags, 1 | 4);
        assert_eq!(c.info.lo_file_name[0], b'/');
        assert_eq!(c.info.lo_file_name[62], b'x');
        assert_eq!(c.info.lo_file_name[63], 0);
    }

    #[test]
    fn removal_stays_on_one_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("wyrcan");
        fs::create_dir_all(top.join("modules/sub")).unwrap();
        fs::write(top.join("modules/sub/a.ko"), b"x").unwrap();
        fs::write(top.join("stage2.json"), b"{}").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", top.join("link")).unwrap();
        let init = dir.path().join("init");
        fs::write(&init, b"x").unwrap();
        remove_tree_same_dev(&top).unwrap();
        remove_tree_same_dev(&init).unwrap();
        assert!(!top.exists() && !init.exists());
        assert!(Path::new("/etc/passwd").exists());
        // Absent is fine.
        remove_tree_same_dev(&top).unwrap();
    }

    const CHILD: &str = "WYRCAN_TEST_SWITCH_ROOT";

    /// switch_root for real, in a mount namespace of its own: this test
    /// binary runs itself under `unshare --mount` as the one to switch.
    #[test]
    fn switch_root_execs_init_in_the_new_root() {
        if let Some(dir) = std::env::var_os(CHILD) {
            let new = Path::new(&dir).join("new");
            mkdir(&new).unwrap();
            rustix::mount::mount(
                "tmpfs",
                &new,
                "tmpfs",
                rustix::mount::MountFlags::empty(),
                None,
            )
            .unwrap();
            mkdir(&new.join("bin")).unwrap();
            fs::copy("/usr/bin/busybox", new.join("bin/busybox")).unwrap();
            let args: Vec<OsString> = ["sh", "-c", "echo \"switched $WHO $0\"; ls /"]
                .map(OsString::from)
                .to_vec();
            panic!("{}", switch_root(&new, Path::new("/bin/busybox"), &args));
        }
        let can = rustix::process::geteuid().is_root()
            && Path::new("/usr/bin/unshare").exists()
            && Path::new("/usr/bin/busybox").exists();
        if !can {
            eprintln!("skipped: needs root, unshare and a static busybox");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sys::root::tests::switch_root_execs_init_in_the_new_root",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD, dir.path())
            .env("WHO", "pid-one")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // The environment and arguments carried over; `/` is the new root.
        assert!(
            stdout.ends_with("switched pid-one sh\nbin\n"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The real calls on this host, when it has loop devices, squashfs
    /// and mksquashfs, and we may mount: attach read-only, mount, read,
    /// and a mount below a removed tree survives.
    #[test]
    fn squashfs_on_a_loop_device() {
        let can = rustix::process::geteuid().is_root()
            && Path::new("/dev/loop-control").exists()
            && std::process::Command::new("mksquashfs")
                .arg("-version")
                .output()
                .is_ok_and(|o| o.status.success());
        if !can {
            eprintln!("skipped: needs root, /dev/loop-control and mksquashfs");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("sbin")).unwrap();
        fs::write(tree.join("sbin/init"), b"#!/bin/sh\n").unwrap();
        let img = dir.path().join("root.squashfs");
        let made = std::process::Command::new("mksquashfs")
            .args([&tree, &img])
            .args(["-comp", "zstd", "-quiet", "-no-progress"])
            .status()
            .unwrap();
        assert!(made.success());

        // The pre-5.8 way first: its device is detached again by the
        // unmount, so the second attach may get the same one.
        let lower = dir.path().join("lower");
        mkdir(&lower).unwrap();
        let mount = |dev: LoopDevice| {
            use crate::sys::Sys as _;
            let source = dev.path.to_str().unwrap();
            crate::sys::LinuxSys.mount_readonly(source, lower.to_str().unwrap(), "squashfs", None)
        };
        mount(attach(&img, true).unwrap()).unwrap();
        let legacy = fs::read(lower.join("sbin/init"));
        rustix::mount::unmount(&lower, rustix::mount::UnmountFlags::empty()).unwrap();
        assert_eq!(legacy.unwrap(), b"#!/bin/sh\n");

        mount(loop_attach(&img).unwrap()).unwrap();
        let read = fs::read(lower.join("sbin/init"));
        let write = fs::write(lower.join("x"), b"x");
        // Not crossed: the mount under `top` keeps its files.
        let top = dir.path().join("top");
        mkdir(&top.join("m")).unwrap();
        rustix::mount::mount_move(&lower, top.join("m")).unwrap();
        let removed = remove_tree_same_dev(&top);
        let kept = top.join("m/sbin/init").exists();
        rustix::mount::unmount(top.join("m"), rustix::mount::UnmountFlags::DETACH).unwrap();
        assert_eq!(read.unwrap(), b"#!/bin/sh\n");
        assert_eq!(write.unwrap_err().raw_os_error(), Some(libc::EROFS));
        removed.unwrap();
        assert!(kept);
    }
}
