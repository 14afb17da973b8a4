//! Docker credential helpers: `docker-credential-NAME get`, the registry on
//! stdin, `{"ServerURL":…,"Username":…,"Secret":…}` on stdout; the user
//! name `<token>` means the secret is an identity token.
//!
//! Which helper serves which registry is decided in `auth` (pure); what a
//! helper answers is parsed by [`parse_output`] (pure); only [`run`] starts
//! a process, and it never waits longer than its timeout. Helpers run on a
//! host only ([`super::auth::lookup`]): the boot environment reads one auth
//! file and runs nothing.

use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::auth::{json_problem, Credentials, IDENTITY_TOKEN_USER};

/// The longest a helper may take to answer (docker waits forever; a helper
/// that asks for a password on a desktop nobody sees would hang the pull).
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The most output read from a helper.
const MAX_OUTPUT: u64 = 1 << 20;
/// What docker-credential-helpers answer for a registry they do not know.
const NOT_FOUND: &str = "credentials not found";

/// A credential helper an auth file names for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    /// `NAME` of `docker-credential-NAME`.
    pub name: String,
    /// The auth file's field that named it: `credHelpers` or `credsStore`.
    pub field: &'static str,
    /// What it is asked for on stdin: the server `docker login` stored the
    /// credentials under (`https://index.docker.io/v1/` for Docker Hub,
    /// else the registry's `host[:port]`).
    pub server: String,
}

impl Helper {
    /// The helper `name` from the auth file's `field`, asked for `server`.
    pub fn new(name: &str, field: &'static str, server: &str) -> Helper {
        Helper {
            name: name.to_string(),
            field,
            server: server.to_string(),
        }
    }

    /// The program to run, `docker-credential-NAME`, found on `PATH`. A
    /// name with a `/` would run a program elsewhere: refused.
    pub fn program(&self) -> Result<String, HelperError> {
        let program = format!("docker-credential-{}", self.name);
        if self.name.contains(['/', '\0']) || self.name.trim().is_empty() {
            return Err(HelperError {
                who: program,
                failure: Failure::BadName,
            });
        }
        Ok(program)
    }

    /// `the credential helper docker-credential-NAME (FIELD in PATH)`, for messages.
    pub fn describe(&self, path: &Path) -> String {
        format!(
            "the credential helper docker-credential-{} ({} in {})",
            self.name,
            self.field,
            path.display()
        )
    }
}

/// A helper that could not give an answer. The message names the helper
/// (and the file that named it, once [`HelperError::named`]).
#[derive(Debug, thiserror::Error)]
#[error("{who} {failure}")]
pub struct HelperError {
    /// The helper, for the message.
    pub who: String,
    /// What went wrong.
    pub failure: Failure,
}

impl HelperError {
    /// The same failure, with the helper described as `who`.
    pub fn named(self, who: &str) -> HelperError {
        HelperError {
            who: who.to_string(),
            ..self
        }
    }
}

/// What went wrong with a helper.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The program is not on `PATH`.
    #[error("cannot be run: it is not on PATH (install it, or remove it from the auth file)")]
    Missing,
    /// The program could not be started or waited for.
    #[error("cannot be run: {0}")]
    Spawn(std::io::Error),
    /// The name is not a program name.
    #[error("has a name that is not a program name (it contains '/')")]
    BadName,
    /// It exited with an error.
    #[error("failed ({status}): {message}")]
    Failed {
        /// How it exited.
        status: ExitStatus,
        /// The start of what it said (stderr, or stdout when stderr is empty).
        message: String,
    },
    /// It did not answer in time (it was killed).
    #[error("did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// It answered something else than its JSON.
    #[error("answered something other than credentials JSON ({0})")]
    BadOutput(String),
}

/// Parse a helper's answer: `Ok(None)` for an empty secret, an identity
/// token for the user name `<token>`. The error never quotes the answer.
pub fn parse_output(stdout: &[u8]) -> Result<Option<Credentials>, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: Option<String>,
        #[serde(rename = "Secret", default)]
        secret: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(stdout).map_err(|e| json_problem(&e))?;
    let Some(secret) = answer.secret.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let username = answer.username.unwrap_or_default();
    if username == IDENTITY_TOKEN_USER {
        return Ok(Some(Credentials::identity_token(secret)));
    }
    Ok(Some(Credentials {
        username,
        password: secret,
    }))
}

/// Whether a failed helper only said it knows no credentials for the
/// server (not an error: the pull goes on anonymously, as in docker).
pub fn says_not_found(stdout: &[u8], stderr: &[u8]) -> bool {
    let has = |b: &[u8]| String::from_utf8_lossy(b).contains(NOT_FOUND);
    has(stdout) || has(stderr)
}

/// The start of what a failed helper said, on one line.
fn excerpt(stdout: &[u8], stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = if text.trim().is_empty() {
        String::from_utf8_lossy(stdout)
    } else {
        text
    };
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None if one_line.is_empty() => "no message".to_string(),
        None => one_line,
    }
}

/// Run `PROGRAM get` with `server` on stdin and parse its answer; kill it
/// after `timeout`.
pub fn run(
    program: impl AsRef<OsStr>,
    server: &str,
    timeout: Duration,
) -> Result<Option<Credentials>, HelperError> {
    let program = program.as_ref();
    let fail = |failure| HelperError {
        who: program.to_string_lossy().into_owned(),
        failure,
    };
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => fail(Failure::Missing),
            _ => fail(Failure::Spawn(e)),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading: nothing to do about it.
        let _ = stdin.write_all(server.as_bytes());
    } // dropped: the helper sees the end of its input
    let (tx, rx) = mpsc::channel();
    for (i, pipe) in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(MAX_OUTPUT).read_to_end(&mut buf);
            }
            let _ = tx.send((i, buf));
        });
    }
    drop(tx);

    let start = Instant::now();
    let timed_out = |child: &mut std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
        fail(Failure::Timeout(timeout))
    };
    // Bounded by `timeout`.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(Failure::Spawn(e)));
            }
        }
        if start.elapsed() >= timeout {
            return Err(timed_out(&mut child));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // The pipes close when the helper exits, unless it left a child
    // holding them: never wait past the timeout for that.
    let mut outputs = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        let left = timeout.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok((i, buf)) => outputs[i] = buf,
            Err(_) => return Err(fail(Failure::Timeout(timeout))),
        }
    }
    let [stdout, stderr] = outputs;
    if !status.success() {
        if says_not_found(&stdout, &stderr) {
            return Ok(None);
        }
        return Err(fail(Failure::Failed {
            status,
            message: excerpt(&stdout, &stderr),
        }));
    }
    parse_output(&stdout).map_err(|e| fail(Failure::BadOutput(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_parsing() {
        let got = parse_output(br#"{"ServerURL":"r.io","Username":"u","Secret":"p:w"}"#);
        assert_eq!(
            got.unwrap(),
            Some(Credentials {
                username: "u".into(),
                password: "p:w".into()
            })
        );
        let got = parse_output(br#"{"ServerURL":"r.io","Username":"<token>","Secret":"rt"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(got.refresh_token(), Some("rt"));
        assert_eq!(
            parse_output(br#"{"Username":"u","Secret":""}"#).unwrap(),
            None
        );
        assert_eq!(parse_output(br#"{"ServerURL":"r.io"}"#).unwrap(), None);
        // Errors never quote the answer: it may hold the secret.
        let err = parse_output(br#"{"Username":"u","Secret":12345678}"#).unwrap_err();
        assert!(!err.contains("12345678"), "{err}");
        let err = parse_output(b"hunter2").unwrap_err();
        assert!(
            !err.contains("hunter2") && err.contains("not JSON"),
            "{err}"
        );
    }

    #[test]
    fn not_found_and_excerpts() {
        assert!(says_not_found(
            b"credentials not found in native keychain\n",
            b""
        ));
        assert!(!says_not_found(b"", b"dbus: no session"));
        assert_eq!(excerpt(b"out", b"  err\n line 2 "), "err line 2");
        assert_eq!(excerpt(b"out\n", b""), "out");
        assert_eq!(excerpt(b"", b""), "no message");
        assert_eq!(
            excerpt(b"", "é".repeat(300).as_bytes()).chars().count(),
            201
        );
    }

    #[test]
    fn program_names() {
        let h = Helper::new("pass", "credsStore", "r.io");
        assert_eq!(h.program().unwrap(), "docker-credential-pass");
        assert_eq!(
            h.describe(Path::new("/c.json")),
            "the credential helper docker-credential-pass (credsStore in /c.json)"
        );
        for bad in ["../../bin/sh", "", " "] {
            let h = Helper::new(bad, "credHelpers", "r.io");
            assert!(
                matches!(h.program().unwrap_err().failure, Failure::BadName),
                "{bad:?}"
            );
        }
    }

    /// A helper script in a temp dir; returns the dir and the script's path.
    fn script(body: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker-credential-t");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    }

    #[test]
    fn running_helpers() {
        let t = Duration::from_secs(20);
        // It gets `get` and the server on stdin.
        let (_d, p) = script(
            r#"[ "$1" = get ] || exit 3
read -r server || true
[ "$server" = r.io:5000 ] || { echo "asked for $server" >&2; exit 4; }
printf '{"ServerURL":"%s","Username":"u","Secret":"s"}' "$server""#,
        );
        let got = run(&p, "r.io:5000", t).unwrap().unwrap();
        assert_eq!((got.username.as_str(), got.password.as_str()), ("u", "s"));
        let err = run(&p, "other.io", t).unwrap_err();
        assert!(
            matches!(&err.failure, Failure::Failed { message, .. } if message == "asked for other.io"),
            "{err}"
        );

        let (_d, p) = script("echo 'credentials not found in native keychain'; exit 1");
        assert_eq!(run(&p, "r.io", t).unwrap(), None);

        let (_d, p) = script("echo garbage");
        let err = run(&p, "r.io", t).unwrap_err();
        assert!(matches!(err.failure, Failure::BadOutput(_)), "{err}");

        let (_d, p) = script("exec sleep 10");
        let start = Instant::now();
        let err = run(&p, "r.io", Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err.failure, Failure::Timeout(_)), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));

        let dir = tempfile::tempdir().unwrap();
        let err = run(dir.path().join("docker-credential-none"), "r.io", t).unwrap_err();
        assert!(matches!(err.failure, Failure::Missing), "{err}");
        let err = err.named("the credential helper docker-credential-none (credHelpers in /c)");
        assert_eq!(
            err.to_string(),
            "the credential helper docker-credential-none (credHelpers in /c) cannot be run: \
             it is not on PATH (install it, or remove it from the auth file)"
        );
    }
}
