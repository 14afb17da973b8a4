//! PID 1 of the boot environment (DESIGN §4): a straight list of named
//! steps. It never returns and never panics out: a PID 1 that exits is a
//! kernel panic, so every failure ends on the console, then in a countdown
//! and a reboot.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use wyrcan_core::cmdline::{EfiAction, WyrcanArgs};
use wyrcan_core::efivar::{self, StoredConfig};

use crate::cli::PullArgs;
use crate::console::Console;
use crate::efi::FIRMWARE_WARNING;
use crate::progress::Progress;
use crate::sys::{efivarfs, LinuxSys, Power, Sys};
use crate::{boot, coldplug, net};

/// Mounts made before anything else; a failure here is reported and the
/// boot goes on (some may already be mounted by the kernel).
const MOUNTS: &[(&str, &str, &str, Option<&str>)] = &[
    ("proc", "/proc", "proc", None),
    ("sysfs", "/sys", "sysfs", None),
    ("devtmpfs", "/dev", "devtmpfs", None),
    ("tmpfs", "/run", "tmpfs", Some("mode=0755")),
    ("tmpfs", "/tmp", "tmpfs", Some("mode=1777")),
];

/// Tries of the whole pull + convert + load before giving up.
const ATTEMPTS: u32 = 4;
/// Seconds of countdown before a reboot after a failure.
const REBOOT_COUNTDOWN: u64 = 30;

/// What to type at the boot menu, shown when no image is configured.
pub const HELP: &str = "\
Wyrcan boots a container image: it pulls the image, then boots the kernel
inside it. Tell it which image on the kernel command line, for example:

    wyrcan.img=quay.io/example/os:latest

Other arguments:
    wyrcan.arg=ARGS         arguments for the image's kernel (repeatable;
                            quote spaces: wyrcan.arg=\"quiet ro\")
    wyrcan.insecure=HOST    allow plain HTTP to this registry (labs only)
    wyrcan.efi=write        save this configuration in EFI NVRAM and use it
                            on every later boot; wyrcan.efi=clear removes it
    ip=dhcp | ip=ADDR::GW:MASK:HOST:IFACE:none[:DNS]   network (default dhcp)
    nameserver=ADDR         DNS server
    wyrcan.debug            more output

With the ISO: press e at the menu to edit the command line.
";

/// Entry point when running as PID 1.
pub fn main() -> ! {
    let sys = LinuxSys;
    for (src, target, fstype, data) in MOUNTS {
        let _ = std::fs::create_dir_all(target);
        if let Err(e) = sys.mount(src, target, fstype, *data) {
            // Already mounted (devtmpfs automount) is fine; say the rest.
            if e.raw_os_error() != Some(libc::EBUSY) {
                eprintln!("wyrcan: {e}");
            }
        }
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let parsed = WyrcanArgs::from_cmdline(&cmdline);
    let console_args = match &parsed {
        Ok(a) => a.console.clone(),
        Err(_) => Vec::new(),
    };
    let console = Console::open(&console_args);
    let debug = parsed.as_ref().is_ok_and(|a| a.debug);
    init_logging(&console, debug);
    console.say(&format!(
        "\nWyrcan {} (the container bootloader) starting\n",
        env!("CARGO_PKG_VERSION")
    ));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match parsed {
        Ok(args) => run(&sys, &console, args),
        Err(e) => Err(anyhow!(
            "the kernel command line is not valid: {e}\n\n{HELP}"
        )),
    }));
    let err = match result {
        Ok(Ok(never)) => match never {},
        Ok(Err(e)) => e,
        Err(_) => {
            anyhow!("internal error (a bug in Wyrcan: please report it with the messages above)")
        }
    };
    fail(&sys, &console, &err)
}

fn init_logging(console: &Console, debug: bool) {
    let level = if debug { "debug" } else { "info" };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(console.clone())
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

/// Show the error, count down, reboot; with a key pressed, wait for Enter.
fn fail(sys: &dyn Sys, console: &Console, err: &anyhow::Error) -> ! {
    console.say(&format!("\nwyrcan: boot failed: {err:#}\n\n"));
    if console.countdown("Rebooting", REBOOT_COUNTDOWN) {
        console.say("Stopped. Press Enter to reboot.\n");
        console.read_line();
    }
    reboot(sys, console)
}

fn reboot(sys: &dyn Sys, console: &Console) -> ! {
    let e = sys.power(Power::Restart);
    console.say(&format!("wyrcan: could not reboot: {e}\n"));
    // Nothing left to try; never exit (that would panic the kernel).
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The configuration that boots: the cmdline's if it names an image,
/// else the one stored in EFI NVRAM.
fn config(args: WyrcanArgs) -> Result<Option<WyrcanArgs>> {
    if args.img.is_some() {
        return Ok(Some(args));
    }
    let dir = Path::new(efivarfs::MOUNT);
    if !dir.exists() {
        return Ok(None);
    }
    match efivarfs::read(dir, &efivar::file_name())
        .context("reading the stored configuration from EFI")?
    {
        None => Ok(None),
        Some(bytes) => {
            let (_, payload) = efivar::decode_file(&bytes).map_err(|e| anyhow!("{e}"))?;
            let stored = StoredConfig::from_json(payload)
                .map_err(|e| anyhow!("{e}"))
                .context("the configuration stored in EFI is unreadable: boot once with wyrcan.efi=clear")?;
            tracing::info!(
                "using the configuration stored in EFI NVRAM: {}",
                stored.img
            );
            let mut merged = stored.into_args();
            merged.debug |= args.debug;
            merged.console = args.console;
            merged.efi = args.efi;
            Ok(Some(merged))
        }
    }
}

fn pull_args(a: &WyrcanArgs) -> PullArgs {
    PullArgs {
        insecure: a.insecure.clone(),
        ca: Vec::new(),
        platform: None,
        creds: None,
        jobs: 4,
        tmpdir: Some("/tmp".into()),
    }
}

fn mount_efivarfs(sys: &dyn Sys) -> bool {
    if !Path::new("/sys/firmware/efi").exists() {
        return false;
    }
    if Path::new(efivarfs::MOUNT)
        .join(".")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some())
    {
        return true;
    }
    match sys.mount("efivarfs", efivarfs::MOUNT, "efivarfs", None) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("{e}: the EFI configuration cannot be read or saved");
            false
        }
    }
}

fn run(sys: &dyn Sys, console: &Console, args: WyrcanArgs) -> Result<std::convert::Infallible> {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    tracing::info!("kernel {release}");
    // efivarfs refuses to load without EFI firmware: ask only on EFI.
    let always: &[&str] = if Path::new("/sys/firmware/efi").exists() {
        &["efivarfs"]
    } else {
        &[]
    };
    let loaded = coldplug::run(
        sys,
        Path::new("/sys"),
        &coldplug::module_dir(&release),
        always,
    )
    .unwrap_or_else(|e| {
        tracing::warn!("loading modules: {e:#}");
        Vec::new()
    });
    tracing::debug!("modules loaded: {loaded:?}");
    let efi = mount_efivarfs(sys);

    if args.efi == Some(EfiAction::Clear) {
        if !efi {
            return Err(anyhow!(
                "wyrcan.efi=clear: this machine has no EFI variables (BIOS boot, or a VM without OVMF): nothing to clear"
            ));
        }
        if console.confirm("Remove the Wyrcan configuration stored in EFI NVRAM?") {
            efivarfs::remove(Path::new(efivarfs::MOUNT), &efivar::file_name())
                .context("removing the stored configuration")?;
            console.say("The stored configuration was removed.\n");
        } else {
            console.say("Nothing was changed.\n");
        }
        reboot(sys, console)
    }

    let Some(cfg) = config(args)? else {
        console.say(&format!(
            "\nNo image to boot.\n\n{HELP}\nPress Enter to reboot.\n"
        ));
        console.read_line();
        reboot(sys, console)
    };
    let image = cfg.img.clone().unwrap_or_default();

    net::up(sys, &cfg).context("bringing the network up")?;

    if cfg.efi == Some(EfiAction::Write) {
        if !efi {
            return Err(anyhow!(
                "wyrcan.efi=write: this machine has no EFI variables (BIOS boot, or a VM without OVMF): \
                 boot without wyrcan.efi, or from the ISO in EFI mode"
            ));
        }
        // Only a configuration that works is worth storing.
        crate::cli::resolve_only(&image, &pull_args(&cfg))
            .context("checking the image before saving it")?;
        let stored = StoredConfig::from_args(&cfg).ok_or_else(|| anyhow!("nothing to store"))?;
        console.say(&format!("\n{FIRMWARE_WARNING}\n\nImage: {image}\n"));
        if console.confirm("Save this configuration in EFI NVRAM?") {
            efivarfs::write(
                Path::new(efivarfs::MOUNT),
                &efivar::file_name(),
                &stored.to_file(),
            )
            .context("writing the configuration into EFI NVRAM")?;
            console.say("Saved. Later boots without wyrcan.img will boot this image.\n");
        } else {
            console.say("Not saved; booting anyway.\n");
        }
    }

    let progress = Progress::lines();
    let mut delay = Duration::from_secs(2);
    let mut attempt = 1;
    let prepared = loop {
        match boot::prepare(&image, &pull_args(&cfg), &cfg.args, &progress) {
            Ok(p) => break p,
            Err(e) if attempt < ATTEMPTS && crate::registry::worth_retrying(&e) => {
                tracing::warn!(
                    "attempt {attempt}/{ATTEMPTS} failed: {e:#}; trying again in {delay:?}"
                );
                std::thread::sleep(delay);
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e.context(format!("booting {image}"))),
        }
    };
    boot::load(sys, &prepared)?;
    drop(prepared);
    tracing::info!("booting {image}");
    Err(anyhow!("{}", sys.power(Power::Kexec)))
}
