//! PID 1 of the boot environment (DESIGN §4): a straight list of named
//! steps. It never returns and never panics out: a PID 1 that exits is a
//! kernel panic, so every failure ends on the console, then in a countdown
//! and a reboot.
//!
//! Everything it does to the machine goes through [`Sys`], what it says
//! and asks through [`Terminal`], and the pull + convert through
//! [`Loader`]: the unit tests below drive the whole flow with fakes of the
//! three.

pub mod clock;
pub mod coldplug;
pub mod config;
pub mod console;
pub mod links;
pub mod net;
pub mod net6;
pub mod syslog;

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use wyrcan_core::cmdline::{CmdlineError, EfiAction, WyrcanArgs};
use wyrcan_core::efivar::{self, StoredConfig, FIRMWARE_WARNING};

use crate::boot::{self, Prepared};
use crate::progress::Progress;
use crate::pull::PullOptions;
use crate::sys::{self, LinuxSys, Power, Sys};
use config::{BootConfig, Source};
use console::{Console, Terminal};

/// Mounts made before anything else; a failure here is reported and the
/// boot goes on (some may already be mounted by the kernel).
const MOUNTS: &[(&str, &str, &str, Option<&str>)] = &[
    ("proc", "/proc", "proc", None),
    ("sysfs", "/sys", "sysfs", None),
    ("devtmpfs", "/dev", "devtmpfs", None),
    ("tmpfs", "/run", "tmpfs", Some("mode=0755")),
    ("tmpfs", "/tmp", "tmpfs", Some("mode=1777")),
];

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
    wyrcan.proxy=URL        pull through this HTTP proxy
    wyrcan.mirror=REG=URL   try this mirror (site cache) first; resolve+URL
                            lets it answer tags too; REG * = any registry
    wyrcan.ntp=HOST         set the clock (and the RTC) from this NTP server
    wyrcan.syslog=HOST[:PORT]  send every message as syslog over UDP too
    wyrcan.pcr=N            measure the boot into TPM PCR N (default 12)
    wyrcan.tpm=required     refuse to boot without a TPM
    wyrcan.debug            more output

With the ISO: press e at the menu to edit the command line.
";

/// Timing of the failure policy; tests shorten it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Tries of the whole pull + convert + load before giving up.
    pub attempts: u32,
    /// Wait after the first failed try; doubles after each.
    pub first_delay: Duration,
    /// Seconds of countdown before a reboot after a failure.
    pub countdown: u64,
    /// Template of the pull options (retries, scratch directory).
    pub pull: PullOptions,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            attempts: 4,
            first_delay: Duration::from_secs(2),
            countdown: 30,
            pull: config::pull_options(&[]),
        }
    }
}

/// The steps that pull: checking an image resolves, and turning it into
/// a kernel ready for kexec.
pub trait Loader {
    /// Resolve the image (for `wyrcan.efi=write`: only a working
    /// configuration is stored).
    fn check(&self, cfg: &BootConfig) -> Result<()>;
    /// Pull, convert, decide on memory, compose the next cmdline.
    fn prepare(&self, sys: &dyn Sys, cfg: &BootConfig, progress: &Progress) -> Result<Prepared>;
}

/// The registry and the conversion.
pub struct Registry;

impl Loader for Registry {
    fn check(&self, cfg: &BootConfig) -> Result<()> {
        crate::pull::resolve_only(&cfg.image, &cfg.pull).map(drop)
    }

    fn prepare(&self, sys: &dyn Sys, cfg: &BootConfig, progress: &Progress) -> Result<Prepared> {
        let given = cfg.raw.img.as_deref().unwrap_or_default();
        // A squashfs root's stage 2 is this very binary.
        let next = boot::Next {
            extra: &cfg.args,
            tpm: Some(&cfg.tpm),
            root: cfg.root,
            stage2: Some(std::path::Path::new("/proc/self/exe")),
        };
        boot::prepare(sys, given, &cfg.image, &cfg.pull, &next, progress)
    }
}

/// Entry point when running as PID 1.
pub fn main() -> ! {
    let sys = LinuxSys;
    let (parsed, warnings) = early(&sys);
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
    for w in warnings {
        console.say(&format!("wyrcan: {w}\n"));
    }
    let settings = Settings::default();
    let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(&sys, &console, &Registry, parsed, &settings)
    }));
    let err = match ended {
        Ok(e) => e,
        Err(_) => fail(
            &sys,
            &console,
            &anyhow!("internal error (a bug in Wyrcan: please report it with the messages above)"),
            &settings,
        ),
    };
    park(&console, &err)
}

/// The end when even the reboot failed: say so and wait forever. Never
/// exit: a PID 1 that exits panics the kernel.
pub fn park(term: &dyn Terminal, reboot: &sys::Error) -> ! {
    term.say(&format!("wyrcan: could not reboot: {reboot}\n"));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Mount `mounts` (source, target, fstype, data) in order; what failed,
/// as lines to show once a console is open. Already mounted (devtmpfs
/// automount) is not a failure.
pub fn mount_all(sys: &dyn Sys, mounts: &[(&str, &str, &str, Option<&str>)]) -> Vec<String> {
    let mut warnings = Vec::new();
    for (src, target, fstype, data) in mounts {
        if let Err(e) = sys.mount(src, target, fstype, *data) {
            if e.raw_errno() != Some(libc::EBUSY) {
                warnings.push(e.to_string());
            }
        }
    }
    warnings
}

/// Mounts, then the cmdline. Returns what to say about the mounts once a
/// console is open. A cmdline that is not UTF-8 is read with the bad bytes
/// replaced: the rest of it (the `wyrcan.img` someone typed) still counts.
pub fn early(sys: &dyn Sys) -> (Result<WyrcanArgs, CmdlineError>, Vec<String>) {
    let mut warnings = mount_all(sys, MOUNTS);
    let bytes = sys.read(Path::new("/proc/cmdline")).unwrap_or_else(|e| {
        warnings.push(format!("reading /proc/cmdline: {e}"));
        Vec::new()
    });
    let cmdline = String::from_utf8_lossy(&bytes);
    (WyrcanArgs::from_cmdline(&cmdline), warnings)
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

/// The flow after [`early`]: returns only the error of the final
/// `reboot(2)` (kexec or restart), which on a real machine never comes.
pub fn run(
    sys: &dyn Sys,
    term: &dyn Terminal,
    loader: &dyn Loader,
    parsed: Result<WyrcanArgs, CmdlineError>,
    settings: &Settings,
) -> sys::Error {
    match steps(sys, term, loader, parsed, settings) {
        Ok(end) => end,
        Err(e) => fail(sys, term, &e, settings),
    }
}

/// Show the error, count down, reboot; with a key pressed, wait for Enter.
fn fail(
    sys: &dyn Sys,
    term: &dyn Terminal,
    err: &anyhow::Error,
    settings: &Settings,
) -> sys::Error {
    term.say(&format!("\nwyrcan: boot failed: {err:#}\n\n"));
    syslog::send(
        wyrcan_core::syslog::Severity::Error,
        &format!("boot failed: {err:#}"),
    );
    countdown_reboot(sys, term, settings.countdown)
}

/// Count `secs` down, then restart; a key stops the countdown, and the
/// reboot then waits for Enter (someone wants to read the messages).
/// Returns only the error of `reboot(2)`.
pub fn countdown_reboot(sys: &dyn Sys, term: &dyn Terminal, secs: u64) -> sys::Error {
    if term.countdown("Rebooting", secs) {
        term.say("Stopped. Press Enter to reboot.\n");
        term.read_line();
    }
    sys.power(Power::Restart)
}

fn mount_efivarfs(sys: &dyn Sys) -> bool {
    if !sys.exists(Path::new("/sys/firmware/efi")) {
        return false;
    }
    if sys
        .read_dir(config::efivars())
        .is_ok_and(|names| !names.is_empty())
    {
        return true;
    }
    match sys.mount("efivarfs", sys::efivarfs::MOUNT, "efivarfs", None) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("{e}: the EFI configuration cannot be read or saved");
            false
        }
    }
}

fn steps(
    sys: &dyn Sys,
    term: &dyn Terminal,
    loader: &dyn Loader,
    parsed: Result<WyrcanArgs, CmdlineError>,
    settings: &Settings,
) -> Result<sys::Error> {
    let args =
        parsed.map_err(|e| anyhow!("the kernel command line is not valid: {e}\n\n{HELP}"))?;
    // Site settings baked in by `wyrcan customize`: defaults below the
    // cmdline and EFI, secrets for every image.
    let mut pull = settings.pull.clone();
    let site = config::site(sys, &mut pull)?;
    // Checked before any module loads or the network comes up.
    let from_cmdline = match &site {
        Some(s) if s.img.is_some() && args.img.is_none() => {
            // The site's image boots unless EFI stores another: check it now.
            config::validate(&config::with_defaults(&args, Some(s)), Source::Site, &pull)?;
            None
        }
        _ => config::validate(
            &config::with_defaults(&args, site.as_ref()),
            Source::Cmdline,
            &pull,
        )?,
    };

    let release = sys.kernel_release();
    tracing::info!("kernel {release}");
    let efi_firmware = sys.exists(Path::new("/sys/firmware/efi"));
    // efivarfs refuses to load without EFI firmware: ask only on EFI.
    let mut always: Vec<&str> = if efi_firmware {
        vec!["efivarfs"]
    } else {
        vec![]
    };
    always.extend(links::modules(&args));
    let moddir = Path::new("/lib/modules").join(&release);
    let loaded = coldplug::run(sys, Path::new("/sys"), &moddir, &always).unwrap_or_else(|e| {
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
        if term.confirm("Remove the Wyrcan configuration stored in EFI NVRAM?") {
            sys.efivar_remove(config::efivars(), &efivar::file_name())
                .context("removing the stored configuration")?;
            term.say("The stored configuration was removed.\n");
        } else {
            term.say("Nothing was changed.\n");
        }
        return Ok(sys.power(Power::Restart));
    }

    let cfg = match from_cmdline {
        Some(c) => Some(c),
        None => {
            let stored = match efi {
                true => config::from_efi(sys, config::efivars(), &args, site.as_ref(), &pull)?,
                false => None,
            };
            match stored {
                Some(c) => Some(c),
                None => config::validate(
                    &config::with_defaults(&args, site.as_ref()),
                    Source::Site,
                    &pull,
                )?,
            }
        }
    };
    let Some(cfg) = cfg else {
        term.say(&format!(
            "\nNo image to boot.\n\n{HELP}\nPress Enter to reboot.\n"
        ));
        term.read_line();
        return Ok(sys.power(Power::Restart));
    };
    let image = cfg.image.to_string();

    let learned = net::up(sys, &cfg.net).context("bringing the network up")?;
    links::start_netconsole(sys, &moddir);
    // Before the first TLS connection: certificates need the right time.
    let mut ntp = cfg.ntp.clone();
    ntp.extend(learned.ntp.iter().map(|a| a.to_string()));
    let clock = clock::sync(sys, &ntp);
    clock::check_plausible(sys, &clock, !ntp.is_empty());
    if let Some(to) = &cfg.syslog {
        syslog::start(sys, to);
    }

    if cfg.efi == Some(EfiAction::Write) {
        if !efi {
            return Err(anyhow!(
                "wyrcan.efi=write: this machine has no EFI variables (BIOS boot, or a VM without OVMF): \
                 boot without wyrcan.efi, or from the ISO in EFI mode"
            ));
        }
        loader
            .check(&cfg)
            .context("checking the image before saving it")?;
        let stored =
            StoredConfig::from_args(&cfg.raw).ok_or_else(|| anyhow!("nothing to store"))?;
        term.say(&format!("\n{FIRMWARE_WARNING}\n\nImage: {image}\n"));
        if site.is_some() {
            term.say(
                "Credentials, CAs and the proxy of the site settings are not stored in NVRAM: \
                 they stay on the boot media.\n",
            );
        }
        if term.confirm("Save this configuration in EFI NVRAM?") {
            sys.efivar_write(config::efivars(), &efivar::file_name(), &stored.to_file())
                .context("writing the configuration into EFI NVRAM")?;
            term.say("Saved. Later boots without wyrcan.img will boot this image.\n");
        } else {
            term.say("Not saved; booting anyway.\n");
        }
    }

    let progress = Progress::lines();
    let mut delay = settings.first_delay;
    let mut attempt = 1;
    let prepared = loop {
        match loader.prepare(sys, &cfg, &progress) {
            Ok(p) => break p,
            Err(e) if attempt < settings.attempts && crate::registry::worth_retrying(&e) => {
                tracing::warn!(
                    "attempt {attempt}/{} failed: {e:#}; trying again in {delay:?}",
                    settings.attempts
                );
                std::thread::sleep(delay);
                delay *= 2;
                attempt += 1;
            }
            // The error names the image already.
            Err(e) => return Err(e),
        }
    };
    boot::load(sys, &prepared)?;
    drop(prepared);
    tracing::info!("booting {image}");
    Ok(sys.power(Power::Kexec))
}

#[cfg(test)]
mod tests;
