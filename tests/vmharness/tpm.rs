//! A software TPM for a VM.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A software TPM 2.0 (`swtpm`) for one VM: its state in a scratch
/// directory, killed (by PID) when dropped.
pub struct Swtpm {
    child: Child,
    dir: tempfile::TempDir,
}

impl Swtpm {
    /// Start `swtpm socket --tpm2` and wait for its control socket.
    pub fn start() -> Swtpm {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("sock");
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", dir.path().display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", sock.display()))
            .arg("--flags")
            .arg("startup-clear")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting swtpm (packages swtpm swtpm-tools: scripts/install-deps)");
        let t = Instant::now();
        while !sock.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "swtpm made no socket"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Swtpm { child, dir }
    }

    /// The socket QEMU connects to.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
