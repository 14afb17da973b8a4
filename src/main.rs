//! `wyrcan`: PID 1 of the boot environment, or the command line tool.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wyrcan::cli::{self, Opt};
use wyrcan::progress::Progress;

fn main() -> ExitCode {
    // As the boot environment's /init the kernel starts us with no
    // subcommand (and may pass its own arguments): run the boot flow. In
    // a squashfs-root initrd, its config says we are stage 2 (stage 1's
    // own initrd never holds it).
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if std::process::id() == 1 || std::path::Path::new(&argv0).file_name() == Some("init".as_ref())
    {
        if std::path::Path::new(wyrcan_core::stage2::CONFIG_PATH).exists() {
            wyrcan::stage2::main();
        }
        wyrcan::pid1::main();
    }
    let opt = Opt::parse();
    let default = match (opt.quiet, opt.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("WYRCAN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let progress = Progress::new(!opt.quiet);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress.log_writer())
        .without_time()
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    match cli::run(opt, &progress) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
