//! Stage 2 of a squashfs-root initrd (`wyrcan.root=squashfs`): the same
//! wyrcan binary, started by the image's own kernel as the initrd's
//! `/init`. It mounts the image's tree from `/wyrcan/root.squashfs`
//! (read-only, on a loop device) under a tmpfs overlay at `/sysroot`,
//! moves `/dev`, `/proc`, `/sys` and `/run` into it, frees the initramfs
//! and execs the image's init there: nothing of Wyrcan stays running.
//!
//! Like stage 1 it never returns and never exits (PID 1 exiting panics the
//! kernel): a failure is said on the console as
//! `wyrcan stage 2: <step>: <error> — <what to do>`, then a countdown and
//! a reboot. Everything it does to the machine goes through [`Sys`], what
//! it says through [`Terminal`]: the tests drive it on fakes.

use std::convert::Infallible;
use std::ffi::OsString;
use std::fmt::Display;
use std::path::{Component, Path, PathBuf};

use anyhow::anyhow;
use wyrcan_core::cmdline::WyrcanArgs;
use wyrcan_core::stage2::{Stage2Config, CONFIG_PATH};

use crate::pid1::{
    self,
    console::{Console, Terminal},
};
use crate::sys::{self, LinuxSys, Sys};

/// Where the image's root is assembled, then made `/`.
pub const SYSROOT: &str = "/sysroot";
// The squashfs and the writable layer live under /run: they move with it
// into the new root and stay reachable there (and visible in its
// /proc/mounts), instead of being left behind in the freed initramfs.
const LOWER: &str = "/run/wyrcan/lower";
const RW: &str = "/run/wyrcan/rw";
const UPPER: &str = "/run/wyrcan/rw/upper";
const WORK: &str = "/run/wyrcan/rw/work";

/// Mounted first: devtmpfs before anything needs a device node
/// (`/dev/console`, `/dev/loop-control`).
const MOUNTS: &[(&str, &str, &str, Option<&str>)] = &[
    ("devtmpfs", "/dev", "devtmpfs", None),
    ("proc", "/proc", "proc", None),
    ("sysfs", "/sys", "sysfs", None),
    ("tmpfs", "/run", "tmpfs", Some("mode=0755")),
];
/// What moves into the new root before the switch.
const MOVED: [&str; 4] = ["/dev", "/proc", "/sys", "/run"];
/// Ours in the initramfs, freed before the switch (the loop device keeps
/// the squashfs's pages).
const OURS: [&str; 3] = ["/init", "/wyrcan", "/etc"];
/// The boot record stage 1 appended to the initrd; the booted system
/// finds it at the same path in its own root.
const BOOTED: &str = "/etc/wyrcan/booted.json";
/// The countdown when the config, which sets it, could not be read.
const COUNTDOWN: u64 = 30;
/// Symlinks followed to find the init (the kernel's own limit).
const MAX_LINKS: usize = 40;

const OR_CPIO: &str = "or boot the image with wyrcan.root=cpio";

/// A step that failed: its name, the error, what to do about it.
struct Failure {
    step: String,
    error: anyhow::Error,
    hint: String,
}

trait Step<T> {
    /// Name the step and what to do if it failed.
    fn step(self, step: impl Display, hint: impl Display) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> Step<T> for Result<T, E> {
    fn step(self, step: impl Display, hint: impl Display) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            step: step.to_string(),
            error: e.into(),
            hint: hint.to_string(),
        })
    }
}

/// Entry point when running as PID 1 of a squashfs-root initrd.
pub fn main() -> ! {
    let sys = LinuxSys;
    let (consoles, warnings) = early(&sys);
    let console = Console::open(&consoles);
    for w in warnings {
        console.say(&format!("wyrcan stage 2: {w}\n"));
    }
    // The kernel passes the cmdline words it does not know to init: they
    // are the image's init's.
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let ended =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&sys, &console, &args)));
    let err = ended.unwrap_or_else(|_| {
        console.say(
            "\nwyrcan stage 2: internal error (a bug in Wyrcan: please report it with the messages above)\n",
        );
        pid1::countdown_reboot(&sys, &console, COUNTDOWN)
    });
    pid1::park(&console, &err)
}

/// The mounts, and fds 0–2 on the console for the image's init. Returns
/// the cmdline's `console=` devices and what failed, to say once a console
/// is open.
pub fn early(sys: &dyn Sys) -> (Vec<String>, Vec<String>) {
    let mut warnings = pid1::mount_all(sys, MOUNTS);
    if let Err(e) = sys.stdio_to_console() {
        warnings.push(e.to_string());
    }
    // The image's own cmdline: only its console= count here, and a
    // `wyrcan.` word it got wrong costs no more than those.
    let cmdline = sys.read(Path::new("/proc/cmdline")).unwrap_or_default();
    let consoles = WyrcanArgs::from_cmdline(&String::from_utf8_lossy(&cmdline))
        .map(|a| a.console)
        .unwrap_or_default();
    (consoles, warnings)
}

/// The steps after [`early`], ending in the image's init; returns only the
/// error of the reboot after a failure, which on a real machine never comes.
pub fn run(sys: &dyn Sys, term: &dyn Terminal, args: &[OsString]) -> sys::Error {
    let mut countdown = COUNTDOWN;
    let Err(f) = steps(sys, term, args, &mut countdown);
    // `{}`, not `{:#}`: no step adds context, and a `sys::Error` already
    // says its source.
    term.say(&format!(
        "\nwyrcan stage 2: {}: {} — {}\n\n",
        f.step, f.error, f.hint
    ));
    pid1::countdown_reboot(sys, term, countdown)
}

fn steps(
    sys: &dyn Sys,
    term: &dyn Terminal,
    args: &[OsString],
    countdown: &mut u64,
) -> Result<Infallible, Failure> {
    let rebuild = format!("build the initrd again with this wyrcan, {OR_CPIO}");
    let reading = format!("reading {CONFIG_PATH}");
    let bytes = sys.read(Path::new(CONFIG_PATH)).step(&reading, &rebuild)?;
    let cfg = Stage2Config::parse(&bytes).step(&reading, &rebuild)?;
    *countdown = cfg.countdown_secs.into();
    term.say(&format!("wyrcan stage 2: starting {}\n", cfg.image));

    for m in &cfg.modules {
        sys.load_module(Path::new(m))
            .map_err(|e| match e.raw_errno() {
                Some(libc::ENOENT) => anyhow!("module {m} is missing from the initrd: {e}"),
                _ => e.into(),
            })
            .step(
                "loading modules",
                format!("the initrd's modules must be the image kernel's own: {rebuild}"),
            )?;
    }

    let root = &cfg.root;
    let dev = sys.loop_attach(Path::new(root)).step(
        format!("attaching {root} to a loop device"),
        format!("the image's kernel needs loop devices (CONFIG_BLK_DEV_LOOP, or loop.ko in the image), {OR_CPIO}"),
    )?;
    sys.mount_readonly(&dev.path.to_string_lossy(), LOWER, "squashfs", None)
        .map_err(|e| {
            anyhow!("the image's squashfs {root} could not be mounted (corrupt or not supported by this kernel: {e})")
        })
        .step(
            "mounting the image's tree",
            format!("the image's kernel needs squashfs with zstd (CONFIG_SQUASHFS and CONFIG_SQUASHFS_ZSTD, or squashfs.ko in the image); with them, {rebuild}"),
        )?;
    // Mounted: the mount holds the device now.
    drop(dev);

    let overlay_hint = format!(
        "the image's kernel needs overlayfs (CONFIG_OVERLAY_FS, or overlay.ko in the image), {OR_CPIO}"
    );
    let size = cfg
        .overlay_size
        .as_ref()
        .map(|s| format!(",size={s}"))
        .unwrap_or_default();
    let options = format!("lowerdir={LOWER},upperdir={UPPER},workdir={WORK}");
    sys.mount("tmpfs", RW, "tmpfs", Some(&format!("mode=0755{size}")))
        .and_then(|()| sys.mkdir(Path::new(UPPER)))
        .and_then(|()| sys.mkdir(Path::new(WORK)))
        .and_then(|()| sys.mount("overlay", SYSROOT, "overlay", Some(&options)))
        .step("mounting the writable overlay", &overlay_hint)?;

    find_init(sys, &cfg).step(
        "finding the image's init",
        "give the image an init at that path, or name the right one with init= in the image's kernel arguments",
    )?;

    copy_booted(sys).step(
        format!("copying {BOOTED} into the image's root"),
        format!("the image's /etc must be a writable directory, {OR_CPIO}"),
    )?;

    for from in MOVED {
        let to = Path::new(SYSROOT).join(&from[1..]);
        sys.mkdir(&to)
            .and_then(|()| sys.move_mount(Path::new(from), &to))
            .step(
                "moving /dev, /proc, /sys and /run into the image's root",
                format!("the image's /dev, /proc, /sys and /run must be directories or absent, {OR_CPIO}"),
            )?;
    }
    // Memory only: a failure here costs RAM, not the boot.
    for p in OURS {
        if let Err(e) = sys.remove_tree_same_dev(Path::new(p)) {
            term.say(&format!("wyrcan stage 2: {e} (its memory stays in use)\n"));
        }
    }

    Err(sys.switch_root(Path::new(SYSROOT), Path::new(&cfg.init), args)).step(
        format!("starting the image's init {}", cfg.init),
        "it must be a program for this machine, with its interpreter and libraries in the image",
    )
}

/// [`BOOTED`] into the overlay (its upper layer), when stage 1 wrote one.
fn copy_booted(sys: &dyn Sys) -> anyhow::Result<()> {
    let from = Path::new(BOOTED);
    if !sys.exists(from) {
        return Ok(());
    }
    let bytes = sys.read(from)?;
    let to = Path::new(SYSROOT).join(&BOOTED[1..]);
    if let Some(dir) = to.parent() {
        sys.mkdir(dir)?;
    }
    sys.write(&to, &bytes)?;
    Ok(())
}

/// The init inside [`SYSROOT`], every symlink on the way resolved as the
/// new root will see it (`/sbin/init` → `/lib/systemd/systemd` is not the
/// initramfs's `/lib`).
fn find_init(sys: &dyn Sys, cfg: &Stage2Config) -> anyhow::Result<PathBuf> {
    let root = Path::new(SYSROOT);
    let Some(found) = resolve_in(sys, root, Path::new(&cfg.init)) else {
        return Err(anyhow!(
            "{} in the image {} is a symlink loop (more than {MAX_LINKS} links)",
            cfg.init,
            cfg.image
        ));
    };
    if sys.exists(&found) {
        return Ok(found);
    }
    let inside = Path::new("/").join(found.strip_prefix(root).unwrap_or(&found));
    let via = match inside == Path::new(&cfg.init) {
        true => String::new(),
        false => format!(" (it leads to {}, which is missing)", inside.display()),
    };
    Err(anyhow!("the image {} has no {}{via}", cfg.image, cfg.init))
}

/// `path` (absolute) inside `root`, symlinks resolved: absolute targets
/// start again at `root`, `..` stops there. None after [`MAX_LINKS`] links.
fn resolve_in(sys: &dyn Sys, root: &Path, path: &Path) -> Option<PathBuf> {
    let join = |names: &[OsString]| names.iter().fold(root.to_path_buf(), |p, n| p.join(n));
    let mut todo = names(path);
    todo.reverse();
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            done.pop();
            continue;
        }
        let here = join(&done).join(&name);
        match sys.read_link(&here) {
            Ok(target) => {
                links += 1;
                if links > MAX_LINKS {
                    return None;
                }
                if target.is_absolute() {
                    done.clear();
                }
                todo.extend(names(&target).into_iter().rev());
            }
            Err(_) => done.push(name),
        }
    }
    Some(join(&done))
}

fn names(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
