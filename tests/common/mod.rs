//! Harness shared by the integration tests: the real `docker-registry`,
//! images built in code, the umoci/cpio oracle, one small HTTP server and
//! request parser (`http`: fake registries, dripping ones too, and the
//! lying proxy built on it), a forward proxy (`connect_proxy`: CONNECT and
//! absolute form), the registry client's options, and a runner for the
//! real `wyrcan` binary with a bounded run time. (The QEMU harness is
//! `tests/vmharness`.)
#![allow(dead_code)]

pub mod client;
pub mod connect_proxy;
pub mod cosign;
pub mod http;
pub mod image;
pub mod oracle;
pub mod proxy;
pub mod registry;

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use image::Image;
use oracle::{
    check_order, compare, cpio_list, extract_initrd, forget_symlink_mtimes, normalize, snapshot,
    umoci_rootfs,
};

/// The longest a single `wyrcan` run may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(180);

/// Environment variables never passed to `wyrcan`: proxies (all traffic
/// stays on loopback) and the user's own registry credentials.
const SCRUBBED_ENV: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "DOCKER_CONFIG",
    "REGISTRY_AUTH_FILE",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// An empty HOME for `wyrcan`, so no real `~/.docker/config.json` is read.
fn test_home() -> PathBuf {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wyrcan-test-home");
    fs::create_dir_all(&home).unwrap();
    home
}

/// Runs the `wyrcan` binary with `args` (no stdin, clean environment).
pub fn wyrcan<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    wyrcan_with_env(args, &[])
}

/// Runs `wyrcan` with `args` and extra environment variables; fails the
/// test if it runs longer than [`TIMEOUT`].
pub fn wyrcan_with_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &Path)]) -> Output {
    wyrcan_via(&[], args, env)
}

/// Runs `WRAPPER… /path/to/wyrcan ARGS…` (e.g. `unshare … sh -c …`) with
/// the same clean environment and time limit as [`wyrcan_with_env`].
pub fn wyrcan_via<S: AsRef<std::ffi::OsStr>>(
    wrapper: &[&str],
    args: &[S],
    env: &[(&str, &Path)],
) -> Output {
    let bin = env!("CARGO_BIN_EXE_wyrcan");
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("HOME", test_home())
        // The host's registries.conf may name mirrors: not in tests.
        .env("CONTAINERS_REGISTRIES_CONF", "/nonexistent/registries.conf")
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "1");
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("running the wyrcan binary");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_thread.join().unwrap_or_default();
            panic!(
                "wyrcan {:?} ran over {TIMEOUT:?}; stderr:\n{}",
                args.iter()
                    .map(|a| a.as_ref().to_owned())
                    .collect::<Vec<_>>(),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

/// A run's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails the test unless the run exited 0; shows its output.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: wyrcan failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

/// Fails the test unless the run exited non-zero with something on stderr;
/// returns stderr (also printed when `WYRCAN_TEST_SHOW_ERRORS` is set).
pub fn assert_failure(out: &Output, what: &str) -> String {
    let err = stderr(out);
    if std::env::var_os("WYRCAN_TEST_SHOW_ERRORS").is_some() {
        eprintln!("--- {what}: wyrcan stderr\n{err}");
    }
    assert!(
        !out.status.success(),
        "{what}: wyrcan succeeded but should have failed\n--- stdout\n{}\n--- stderr\n{err}",
        String::from_utf8_lossy(&out.stdout),
    );
    assert!(
        !err.trim().is_empty(),
        "{what}: wyrcan failed ({}) without a message on stderr",
        out.status
    );
    err
}

/// The final error of a failed run: its stderr from the last line that
/// starts with `error:` (the retry warnings before it are left out).
pub fn final_error(stderr: &str) -> &str {
    stderr
        .rfind("\nerror:")
        .map(|i| &stderr[i + 1..])
        .or_else(|| stderr.starts_with("error:").then_some(stderr))
        .unwrap_or_else(|| panic!("no `error:` line in:\n{stderr}"))
}

/// Fails the test unless `haystack` contains `needle` (ASCII case-insensitive).
pub fn assert_mentions(haystack: &str, needle: &str, what: &str) {
    assert!(
        haystack.to_lowercase().contains(&needle.to_lowercase()),
        "{what}: expected the message to mention {needle:?}; it was:\n{haystack}"
    );
}

/// The names in a directory (sorted).
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Fails the test if `dir` holds anything (outputs or temp files).
pub fn assert_no_outputs(dir: &Path) {
    let left = list_dir(dir);
    assert!(
        left.is_empty(),
        "a failed run left files in the output dir: {left:?}"
    );
}

/// The output paths of one `wyrcan morph`, in a fresh directory of their own
/// (so any leftover, temp files included, is seen).
pub struct Outputs {
    dir: TempDir,
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs::new()
    }
}

impl Outputs {
    /// A fresh, empty output directory.
    pub fn new() -> Outputs {
        Outputs {
            dir: tempfile::Builder::new()
                .prefix("wyrcan-out-")
                .tempdir()
                .unwrap(),
        }
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--kernel` path.
    pub fn kernel(&self) -> PathBuf {
        self.dir.path().join("kernel")
    }

    /// `--initrd` path.
    pub fn initrd(&self) -> PathBuf {
        self.dir.path().join("initrd")
    }

    /// `--cmdline` path.
    pub fn cmdline(&self) -> PathBuf {
        self.dir.path().join("cmdline")
    }

    /// `--kernel K --initrd I --cmdline C`.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--kernel".into(),
            self.kernel().display().to_string(),
            "--initrd".into(),
            self.initrd().display().to_string(),
            "--cmdline".into(),
            self.cmdline().display().to_string(),
        ]
    }

    /// Fails the test if anything was left in the output dir.
    pub fn assert_nothing_left(&self) {
        assert_no_outputs(self.dir.path());
    }

    /// Fails the test unless the output dir holds exactly K, I and C.
    pub fn assert_exactly_outputs(&self) {
        assert_eq!(
            list_dir(self.dir.path()),
            ["cmdline", "initrd", "kernel"],
            "the output dir should hold the three outputs and nothing else"
        );
    }

    /// The cmdline output, split on whitespace.
    pub fn cmdline_words(&self) -> Vec<String> {
        fs::read_to_string(self.cmdline())
            .expect("reading the cmdline output")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

/// `127.0.0.1:PORT/repo:tag`.
pub fn reference(addr: &str, repo: &str, tag: &str) -> String {
    format!("{addr}/{repo}:{tag}")
}

/// Runs `wyrcan morph REF --kernel K --initrd I --cmdline C --insecure HOST`
/// plus `extra`.
pub fn morph(insecure: &str, image_ref: &str, outputs: &Outputs, extra: &[&str]) -> Output {
    let mut args = vec!["morph".to_string(), image_ref.to_string()];
    args.extend(outputs.args());
    args.push("--insecure".into());
    args.push(insecure.into());
    args.extend(extra.iter().map(|s| s.to_string()));
    wyrcan(&args)
}

/// The oracle: checks a successful morph of `image` against umoci.
///
/// - the kernel output holds `kernel_bytes`;
/// - the cpio lists parents before children, no escaping names, and not the
///   kernel file `kernel_path`;
/// - the initrd extracted by GNU cpio equals umoci's rootfs of the same
///   image minus `kernel_path` (types, modes, owners, contents, symlink
///   targets, devices, mtimes except symlinks', hardlink groups).
pub fn check_initrd(image: &Image, outputs: &Outputs, kernel_path: &str, kernel_bytes: &[u8]) {
    let kernel = fs::read(outputs.kernel()).expect("reading the kernel output");
    assert!(
        kernel == kernel_bytes,
        "the kernel output is not /{kernel_path} ({} bytes, expected {})",
        kernel.len(),
        kernel_bytes.len()
    );
    let list = cpio_list(&outputs.initrd());
    if let Err(e) = check_order(&list) {
        panic!("initrd entry order:\n{e}");
    }
    assert!(
        !list.iter().any(|n| normalize(n) == kernel_path),
        "the kernel file /{kernel_path} must be left out of the initrd"
    );
    let rootfs = umoci_rootfs(image);
    let mut expected = snapshot(rootfs.path());
    let extracted = extract_initrd(&outputs.initrd());
    let mut actual = snapshot(extracted.path());
    forget_symlink_mtimes(&mut expected);
    forget_symlink_mtimes(&mut actual);
    if let Err(e) = compare(&expected, &actual, &[kernel_path]) {
        let kept = keep_for_debugging(&outputs.initrd());
        panic!(
            "initrd differs from umoci's rootfs (minus /{kernel_path}):\n{e}\n(initrd kept at {})",
            kept.display()
        );
    }
}

/// Copies a failing test's file to `$CARGO_TARGET_TMPDIR/failed/<test name>.<file name>`.
pub fn keep_for_debugging(path: &Path) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("failed");
    fs::create_dir_all(&dir).unwrap();
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .replace("::", "-");
    let name = path.file_name().unwrap().to_string_lossy();
    let kept = dir.join(format!("{test}.{name}"));
    let _ = fs::copy(path, &kept);
    kept
}

/// The oracle of `--root squashfs`: the kernel output holds
/// `kernel_bytes`; the squashfs extracted by `unsquashfs` equals umoci's
/// rootfs of `image` minus `kernel_path`; the second archive holds the
/// stage 2 (`stage2`'s bytes as `/init`), its config naming the image's
/// init, and the `modules` it lists.
pub fn check_squashfs_initrd(
    image: &Image,
    outputs: &Outputs,
    kernel_path: &str,
    kernel_bytes: &[u8],
    stage2: &Path,
    modules: &[&str],
) {
    let kernel = fs::read(outputs.kernel()).expect("reading the kernel output");
    assert!(
        kernel == kernel_bytes,
        "the kernel output is not /{kernel_path}"
    );
    let parts = oracle::squash_initrd(&outputs.initrd());
    assert!(
        parts.files.get("init") == Some(&fs::read(stage2).unwrap()),
        "/init of the initrd is not the stage-2 binary; entries: {:?}",
        parts.files.keys().collect::<Vec<_>>()
    );
    let config: serde_json::Value = serde_json::from_slice(
        parts
            .files
            .get("wyrcan/stage2.json")
            .expect("wyrcan/stage2.json in the initrd"),
    )
    .expect("stage2.json is JSON");
    assert_eq!(config["root"], "/wyrcan/root.squashfs", "{config}");
    let listed: Vec<String> = config["modules"]
        .as_array()
        .expect("modules")
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, modules, "{config}");
    for m in modules {
        assert!(
            parts.files.contains_key(m.trim_start_matches('/')),
            "{m} listed but not in the initrd"
        );
    }
    assert!(
        parts.files.contains_key("dev/console"),
        "no dev/console: the stage 2 would start without a console"
    );
    let rootfs = oracle::umoci_rootfs(image);
    let mut expected = oracle::snapshot(rootfs.path());
    let extracted = oracle::unsquashfs(&parts.squashfs);
    let mut actual = oracle::snapshot(extracted.path());
    oracle::forget_symlink_mtimes(&mut expected);
    oracle::forget_symlink_mtimes(&mut actual);
    if let Err(e) = oracle::compare(&expected, &actual, &[kernel_path]) {
        let kept = keep_for_debugging(&outputs.initrd());
        panic!(
            "the squashfs differs from umoci's rootfs (minus /{kernel_path}):\n{e}\n(initrd kept at {})",
            kept.display()
        );
    }
}
