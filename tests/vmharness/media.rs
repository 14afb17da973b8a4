//! Boot media for the VM tests: an OVMF variable store per test, an ISO
//! from `scripts/build-iso`, `wyrcan customize` of an initrd or ISO.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{artifact, repo};

/// A fresh copy of OVMF's variable store for one test (reused across the
/// boots of that test to keep variables).
pub fn ovmf_vars(dir: &Path) -> PathBuf {
    let p = dir.join("OVMF_VARS.fd");
    std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &p)
        .expect("copying OVMF_VARS_4M.fd (package ovmf)");
    p
}

/// Runs `scripts/build-iso --out DIR/NAME.iso [--cmdline CMDLINE]`.
pub fn build_iso(dir: &Path, name: &str, cmdline: &str) -> PathBuf {
    artifact("wyrcan.kernel");
    artifact("wyrcan.initrd");
    let out = dir.join(format!("{name}.iso"));
    let mut child = Command::new(repo().join("scripts/build-iso"))
        .arg("--out")
        .arg(&out)
        .args(["--cmdline", cmdline])
        .stdin(Stdio::null())
        .spawn()
        .expect("running scripts/build-iso");
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("scripts/build-iso ran over 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "scripts/build-iso failed ({status})");
    out
}

/// `wyrcan customize MEDIA IN -o OUT ARGS…` (`MEDIA` is `--iso` or
/// `--initrd`), which must succeed.
pub fn customize(media: &str, input: &Path, out: &Path, args: &[&str]) {
    let mut argv = vec![
        "customize",
        media,
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    argv.extend_from_slice(args);
    crate::common::assert_success(&crate::common::wyrcan(&argv), &format!("customize {media}"));
}
