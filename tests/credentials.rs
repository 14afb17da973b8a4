//! Private registries: where credentials come from and what is done with
//! them. Docker credential helpers (a fake `docker-credential-test` on
//! `PATH`, named by `credHelpers` in a `DOCKER_CONFIG`) against the real
//! TLS and htpasswd `docker-registry`; `--creds-file` in both forms; identity
//! tokens traded by `POST grant_type=refresh_token` at a fake token server
//! (`common/http.rs`); no secret in the output even at `-vv`; and a
//! certificate that is not valid yet, refused with a message about this
//! machine's clock. Everything listens on 127.0.0.1.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use common::client::client_options;
use common::http::{read_request, Reply, Request, Server};
use common::image::{noise, push, Built, Entry, Image, Layer};
use common::registry::Registry;
use common::{
    assert_failure, assert_mentions, assert_success, check_initrd, final_error, reference, stderr,
    wyrcan_with_env, Outputs,
};
use tempfile::TempDir;
use wyrcan::registry::{Client, CredentialSource, PullOptions};
use wyrcan_core::reference::Reference;

const KPATH: &str = "boot/vmlinuz-6.1";
const USER: &str = "wyrcan";
/// The registry's password: no run's output may contain it.
const PASS: &str = "pw-Zq8#secret:x";

fn kernel(tag: &str) -> Vec<u8> {
    let mut v = format!("FAKE-KERNEL {tag}\n").into_bytes();
    v.extend(noise(1500, 17));
    v
}

/// A small bootable image.
fn image(tag: &str) -> Image {
    Image::oci(vec![
        Layer::new(vec![
            Entry::dir("boot"),
            Entry::file(KPATH, kernel(tag)),
            Entry::symlink("boot/wyrcan.kernel", "vmlinuz-6.1"),
            Entry::file("init", "#!/bin/sh\n").mode(0o755),
        ]),
        Layer::new(vec![Entry::file("tag", tag)]),
    ])
}

/// The TLS registry with basic auth shared by this file's tests.
fn tls_registry() -> &'static Registry {
    static TLS: OnceLock<Registry> = OnceLock::new();
    TLS.get_or_init(|| Registry::start_tls_basic(USER, PASS))
}

fn ca() -> String {
    tls_registry().ca_path().unwrap().display().to_string()
}

/// Pushes `image(tag)` as `creds/TAG:t`; returns the image and its reference.
fn pushed(tag: &str) -> (Image, String) {
    let img = image(tag);
    let repo = format!("creds/{tag}");
    push(tls_registry(), &repo, "t", &img);
    (img, reference(&tls_registry().addr(), &repo, "t"))
}

/// `wyrcan -vv morph REF OUTPUTS EXTRA…`.
fn morph_args(image_ref: &str, out: &Outputs, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["-vv".to_string(), "morph".into(), image_ref.into()];
    args.extend(out.args());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Fails unless `text` holds none of the secrets.
fn assert_no_secret(text: &str, secrets: &[&str], what: &str) {
    for s in secrets {
        assert!(
            !text.contains(s),
            "{what}: the output shows the secret {s:?}:\n{text}"
        );
    }
}

/// An executable `sh` script.
fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A `DOCKER_CONFIG` whose `config.json` names helpers, and a `bin` dir
/// holding a `docker-credential-test` that runs `body`.
struct HelperSetup {
    dir: TempDir,
}

impl HelperSetup {
    fn new(config: &str, body: &str) -> HelperSetup {
        let dir = tempfile::Builder::new()
            .prefix("wyrcan-creds-")
            .tempdir()
            .unwrap();
        fs::create_dir(dir.path().join("docker")).unwrap();
        fs::write(dir.path().join("docker/config.json"), config).unwrap();
        fs::create_dir(dir.path().join("bin")).unwrap();
        write_script(&dir.path().join("bin/docker-credential-test"), body);
        HelperSetup { dir }
    }

    /// `credHelpers` naming `test` for `registry`.
    fn for_registry(registry: &str, body: &str) -> HelperSetup {
        HelperSetup::new(
            &format!(r#"{{"auths":{{"{registry}":{{}}}},"credHelpers":{{"{registry}":"test"}}}}"#),
            body,
        )
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("docker/config.json")
    }

    /// What the helper wrote to `$LOG` (its arguments and stdin).
    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("helper.log")).unwrap_or_default()
    }

    /// Runs wyrcan with `PATH=bin:/usr/bin:/bin`, `DOCKER_CONFIG`, and `LOG`
    /// for the helper.
    fn run(&self, args: &[String]) -> std::process::Output {
        let path = PathBuf::from(format!(
            "{}:/usr/bin:/bin",
            self.dir.path().join("bin").display()
        ));
        let docker = self.dir.path().join("docker");
        let log = self.dir.path().join("helper.log");
        wyrcan_with_env(
            args,
            &[("PATH", &path), ("DOCKER_CONFIG", &docker), ("LOG", &log)],
        )
    }
}

/// A helper body that logs its argument and stdin to `$LOG`, then answers
/// `answer` (printed with printf, so `%s` is the server asked for).
fn logging_helper(answer: &str) -> String {
    format!(
        r#"read -r server || true
printf '%s %s\n' "$1" "$server" >> "$LOG"
printf '{answer}' "$server""#
    )
}

// ---------------------------------------------------- credential helpers

#[test]
fn helper_credentials_pull_from_the_tls_registry() {
    let (img, r) = pushed("helper-ok");
    let addr = tls_registry().addr();
    let setup = HelperSetup::for_registry(
        &addr,
        &logging_helper(&format!(
            r#"{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASS}"}}"#
        )),
    );
    let out = Outputs::new();
    let res = setup.run(&morph_args(&r, &out, &["--ca", &ca()]));
    assert_success(&res, "pull with credentials from docker-credential-test");
    check_initrd(&img, &out, KPATH, &kernel("helper-ok"));
    // Run once, as `get`, asked for the registry's host:port.
    assert_eq!(setup.log(), format!("get {addr}\n"));
    let err = stderr(&res);
    assert_mentions(
        &err,
        "docker-credential-test",
        "-vv says where the credentials came from",
    );
    assert_no_secret(&err, &[PASS], "-vv pull through a helper");
}

#[test]
fn failing_helper_is_a_clear_error() {
    let (_, r) = pushed("helper-fails");
    let setup = HelperSetup::for_registry(
        &tls_registry().addr(),
        "echo 'the keyring is locked' >&2; exit 3",
    );
    let out = Outputs::new();
    let res = setup.run(&morph_args(&r, &out, &["--ca", &ca()]));
    let err = assert_failure(&res, "a failing helper");
    let err = final_error(&err);
    assert_mentions(
        err,
        &format!(
            "the credential helper docker-credential-test (credHelpers in {}) failed (exit status: 3): the keyring is locked",
            setup.config().display()
        ),
        "names the helper, the file and what it said",
    );
    out.assert_nothing_left();
}

#[test]
fn helper_missing_from_path_is_a_clear_error() {
    let (_, r) = pushed("helper-missing");
    let addr = tls_registry().addr();
    let setup = HelperSetup::new(
        &format!(r#"{{"credHelpers":{{"{addr}":"absent"}}}}"#),
        "exit 0",
    );
    let out = Outputs::new();
    let err = assert_failure(
        &setup.run(&morph_args(&r, &out, &["--ca", &ca()])),
        "a helper not on PATH",
    );
    assert_mentions(
        final_error(&err),
        &format!(
            "the credential helper docker-credential-absent (credHelpers in {}) cannot be run: it is not on PATH",
            setup.config().display()
        ),
        "names the missing helper",
    );
    out.assert_nothing_left();
}

#[test]
fn refused_helper_credentials_name_the_helper_in_the_401() {
    let (_, r) = pushed("helper-wrong");
    let setup = HelperSetup::for_registry(
        &tls_registry().addr(),
        &logging_helper(&format!(
            r#"{{"ServerURL":"%s","Username":"{USER}","Secret":"wrong-Zq8"}}"#
        )),
    );
    let out = Outputs::new();
    let res = setup.run(&morph_args(&r, &out, &["--ca", &ca()]));
    let err = assert_failure(&res, "wrong credentials from a helper");
    assert_no_secret(&err, &["wrong-Zq8"], "a refused pull at -vv");
    assert_mentions(
        final_error(&err),
        &format!(
            "refused access to creds/helper-wrong (401): check the credentials (--creds USER:PASS \
             or docker/podman login); the credentials sent came from the credential helper \
             docker-credential-test (credHelpers in {})",
            setup.config().display()
        ),
        "the 401 says the helper's credentials were refused",
    );
}

#[test]
fn helper_without_credentials_pulls_anonymously_and_says_so() {
    let (_, r) = pushed("helper-none");
    let setup = HelperSetup::for_registry(
        &tls_registry().addr(),
        "echo 'credentials not found in native keychain'; exit 1",
    );
    let out = Outputs::new();
    let err = assert_failure(
        &setup.run(&morph_args(&r, &out, &["--ca", &ca()])),
        "a helper without credentials",
    );
    assert_mentions(
        final_error(&err),
        &format!(
            "(401): check the credentials (--creds USER:PASS or docker/podman login); the \
             credential helper docker-credential-test (credHelpers in {}) has no credentials for {}",
            setup.config().display(),
            tls_registry().addr()
        ),
        "the 401 says the helper had nothing",
    );
}

// ---------------------------------------------------------- --creds-file

#[test]
fn creds_file_with_user_and_password() {
    let (img, r) = pushed("creds-file-line");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("creds");
    fs::write(&file, format!("{USER}:{PASS}\n")).unwrap();
    let out = Outputs::new();
    let args = morph_args(
        &r,
        &out,
        &["--ca", &ca(), "--creds-file", &file.display().to_string()],
    );
    let res = wyrcan_with_env(&args, &[]);
    assert_success(&res, "--creds-file USER:PASS");
    check_initrd(&img, &out, KPATH, &kernel("creds-file-line"));
    assert_no_secret(&stderr(&res), &[PASS], "-vv with --creds-file");
}

#[test]
fn creds_file_with_a_json_auth_file() {
    let (img, r) = pushed("creds-file-json");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.json");
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    fs::write(
        &file,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{token}"}}}}}}"#,
            tls_registry().addr()
        ),
    )
    .unwrap();
    let out = Outputs::new();
    let args = morph_args(
        &r,
        &out,
        &["--ca", &ca(), "--creds-file", &file.display().to_string()],
    );
    let res = wyrcan_with_env(&args, &[]);
    assert_success(&res, "--creds-file auth.json");
    check_initrd(&img, &out, KPATH, &kernel("creds-file-json"));
    assert_no_secret(&stderr(&res), &[PASS, &token], "-vv with an auth file");

    // The same file without an entry for the registry: the 401 says so.
    fs::write(&file, r#"{"auths":{"elsewhere.example":{"auth":"eDp5"}}}"#).unwrap();
    let out = Outputs::new();
    let args = morph_args(
        &r,
        &out,
        &["--ca", &ca(), "--creds-file", &file.display().to_string()],
    );
    let err = assert_failure(&wyrcan_with_env(&args, &[]), "no entry in --creds-file");
    assert_mentions(
        final_error(&err),
        &format!(
            "; {} holds no credentials for {}",
            file.display(),
            tls_registry().addr()
        ),
        "the 401 names the file",
    );
}

#[test]
fn creds_file_errors_name_the_file_and_not_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("creds");
    fs::write(&file, "no-colon-secret\n").unwrap();
    let out = Outputs::new();
    let r = reference(&tls_registry().addr(), "creds/never", "t");
    let args = morph_args(&r, &out, &["--creds-file", &file.display().to_string()]);
    let err = assert_failure(&wyrcan_with_env(&args, &[]), "a bad --creds-file");
    assert_mentions(
        &err,
        &format!("--creds-file {}", file.display()),
        "names the file",
    );
    assert_no_secret(&err, &["no-colon-secret"], "a bad --creds-file");

    let json = dir.path().join("auth.json");
    fs::write(&json, r#"{"auths":{"x":"malformed-secret"}}"#).unwrap();
    let args = morph_args(&r, &out, &["--creds-file", &json.display().to_string()]);
    let err = assert_failure(&wyrcan_with_env(&args, &[]), "a malformed auth file");
    assert_mentions(
        &err,
        &format!(
            "reading auth file {}: not a valid auth file",
            json.display()
        ),
        "names the file",
    );
    assert_no_secret(&err, &["malformed-secret"], "a malformed auth file");

    let args = morph_args(&r, &out, &["--creds", "a:b", "--creds-file", "x"]);
    let err = assert_failure(&wyrcan_with_env(&args, &[]), "--creds with --creds-file");
    assert_mentions(&err, "cannot be used with", "the flags conflict");
    out.assert_nothing_left();
}

// ------------------------------------------------------- identity tokens

const REFRESH: &str = "rt-Zq8-refresh";
const ACCESS: &str = "at-Zq8-access";

/// Decodes an `application/x-www-form-urlencoded` body.
fn form(body: &[u8]) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// A registry serving `built` as `test/img:latest` that wants a bearer
/// token from its `/token` endpoint, which hands one out only for an
/// OAuth2 refresh-token `POST` with [`REFRESH`] (a `GET` is refused).
fn oauth_registry(built: Option<Built>) -> Server {
    Server::registry(move |req: &Request, authority| {
        if req.path.starts_with("/token") {
            if req.method != "POST" {
                return Reply::new(401);
            }
            let f = form(&req.body);
            let want = [
                ("grant_type", "refresh_token"),
                ("client_id", "wyrcan"),
                ("service", "fake-service"),
                ("scope", "repository:test/img:pull"),
                ("refresh_token", REFRESH),
            ];
            let ok = req.header("content-type") == Some("application/x-www-form-urlencoded")
                && want
                    .iter()
                    .all(|(k, v)| f.get(*k).map(String::as_str) == Some(*v));
            if !ok {
                // RFC 6749 §5.2.
                return Reply::new(400).body(br#"{"error":"invalid_grant"}"#);
            }
            return Reply::new(200).body(
                format!(
                    r#"{{"access_token":"{ACCESS}","refresh_token":"rt-next","expires_in":300,"scope":"repository:test/img:pull"}}"#
                )
                .as_bytes(),
            );
        }
        if req.header("authorization") != Some(&format!("Bearer {ACCESS}")) {
            let challenge = format!(
                r#"Bearer realm="http://{authority}/token",service="fake-service",scope="repository:test/img:pull""#
            );
            return Reply::new(401).header("WWW-Authenticate", &challenge);
        }
        let Some(built) = &built else {
            return match req.path.as_str() {
                "/v2/test/img/manifests/latest" => Reply::new(200)
                    .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    .body(br#"{"schemaVersion":2}"#),
                _ => Reply::new(404),
            };
        };
        if req.path == "/v2/test/img/manifests/latest" {
            return Reply::new(200)
                .header("Content-Type", &built.manifest.media_type)
                .body(&built.manifest.data);
        }
        let blobs = std::iter::once(&built.config).chain(&built.layers);
        for b in blobs {
            if req.path == format!("/v2/test/img/blobs/{}", b.digest) {
                return Reply::new(200).body(&b.data);
            }
        }
        Reply::new(404)
    })
}

/// The token requests the server got.
fn token_requests(server: &Server) -> Vec<Request> {
    server.requests("/token")
}

#[test]
fn identity_token_from_an_auth_file_is_traded_by_post() {
    let server = oauth_registry(None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.json");
    fs::write(
        &file,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"","identitytoken":"{REFRESH}"}}}}}}"#,
            server.addr()
        ),
    )
    .unwrap();
    let opts = PullOptions {
        credentials: CredentialSource::AuthFile(file.clone()),
        ..client_options(&[&server.addr()], None)
    };
    let r: Reference = format!("{}/test/img:latest", server.addr())
        .parse()
        .unwrap();
    let client = Client::new(&r, &opts).unwrap();
    client.fetch_manifest("latest", None).unwrap();
    let tokens = token_requests(&server);
    assert_eq!(tokens.len(), 1, "one token request: {tokens:?}");
    assert_eq!(tokens[0].method, "POST");
    assert_eq!(tokens[0].header("authorization"), None);
    // The options, shown, hold no secret.
    assert_no_secret(&format!("{opts:?}"), &[REFRESH], "PullOptions Debug");

    // A refused identity token: the 401 says the token server refused it.
    fs::write(
        &file,
        format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"rt-revoked"}}}}}}"#,
            server.addr()
        ),
    )
    .unwrap();
    let client = Client::new(&r, &opts).unwrap();
    let err = format!("{:#}", client.fetch_manifest("latest", None).unwrap_err());
    assert!(
        err.contains(&format!(
            "(400): check the credentials (--creds USER:PASS or docker/podman login); the token \
             server http://{}/token refused the identity token (log in again); the credentials \
             sent came from {}",
            server.addr(),
            file.display()
        )),
        "{err}"
    );
    assert_no_secret(&err, &["rt-revoked"], "a refused identity token");
}

#[test]
fn identity_token_from_a_helper_pulls_an_image() {
    let tag = "oauth-helper";
    let img = image(tag);
    let server = oauth_registry(Some(img.build()));
    let addr = server.addr();
    let setup = HelperSetup::for_registry(
        &addr,
        &logging_helper(&format!(
            r#"{{"ServerURL":"%s","Username":"<token>","Secret":"{REFRESH}"}}"#
        )),
    );
    let out = Outputs::new();
    let r = format!("{addr}/test/img:latest");
    let res = setup.run(&morph_args(&r, &out, &["--insecure", &addr]));
    assert_success(&res, "an identity token from a helper");
    check_initrd(&img, &out, KPATH, &kernel(tag));
    assert_eq!(setup.log(), format!("get {addr}\n"));
    let tokens = token_requests(&server);
    assert!(
        !tokens.is_empty() && tokens.iter().all(|t| t.method == "POST"),
        "{tokens:?}"
    );
    let err = stderr(&res);
    assert_mentions(&err, "identity token", "-vv says what kind of credentials");
    assert_no_secret(&err, &[REFRESH, ACCESS], "-vv with an identity token");
}

// ------------------------------------------------------- TLS and the clock

/// A TLS server on 127.0.0.1 with one certificate, answering every request
/// with `reply` (HTTP read by `common::http`); at most 50 connections;
/// stopped on drop.
struct TlsServer {
    addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TlsServer {
    fn start(cert: &rcgen::Certificate, key: &rcgen::KeyPair, reply: Reply) -> TlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let Ok((tcp, _)) = listener.accept() else {
                        break;
                    };
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                    let _ = tcp.set_write_timeout(Some(Duration::from_secs(10)));
                    let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let mut reader = BufReader::new(&mut tls);
                    // A refused handshake ends here, as an error.
                    if let Ok(Some(_)) = read_request(&mut reader, 1 << 20) {
                        let _ = write_reply(&mut tls, &reply);
                    }
                }
            })
        };
        TlsServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `reply` on the wire, closing (the parts of `Reply::write_to` a TLS
/// stream needs).
fn write_reply(out: &mut impl std::io::Write, reply: &Reply) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} OK\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    out.write_all(head.as_bytes())?;
    out.write_all(&reply.body)?;
    out.flush()
}

#[test]
fn certificate_not_valid_yet_blames_the_clock() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.not_before = rcgen::date_time_ymd(2020, 1, 1);
    ca.not_after = rcgen::date_time_ymd(2300, 1, 1);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf = |not_before| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        p.not_before = not_before;
        p.not_after = rcgen::date_time_ymd(2299, 1, 1);
        (p.signed_by(&key, &ca_cert, &ca_key).unwrap(), key)
    };
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    fs::write(&ca_file, ca_cert.pem()).unwrap();
    let manifest = Reply::new(200)
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(br#"{"schemaVersion":2}"#);
    let fetch = |server: &TlsServer| {
        let opts = PullOptions {
            ca_files: vec![ca_file.clone()],
            ..client_options(&[], None)
        };
        let r: Reference = format!("{}/test/img:latest", server.addr).parse().unwrap();
        Client::new(&r, &opts)
            .unwrap()
            .fetch_manifest("latest", None)
    };

    // The control: the same CA and server, a certificate valid now.
    let (cert, key) = leaf(rcgen::date_time_ymd(2020, 1, 1));
    let good = TlsServer::start(&cert, &key, manifest.clone());
    fetch(&good).expect("a certificate valid now is accepted");

    let (cert, key) = leaf(rcgen::date_time_ymd(2200, 1, 1));
    let future = TlsServer::start(&cert, &key, manifest);
    let err = fetch(&future).unwrap_err();
    let text = format!("{err:#}");
    let start = format!(
        "the certificate of {} is not valid until 2200-01-01 00:00:00 UTC but this machine's clock says ",
        future.addr
    );
    let end = ": set the clock (or wait for NTP), then retry";
    let i = text.find(&start).unwrap_or_else(|| panic!("{text}"));
    let rest = &text[i + start.len()..];
    assert!(rest.ends_with(end), "{text}");
    // The clock's time: `YYYY-MM-DD hh:mm:ss UTC`, this century.
    let now = &rest[..rest.len() - end.len()];
    assert_eq!(now.len(), "2024-01-01 00:00:00 UTC".len(), "{text}");
    assert!(now.starts_with("20") && now.ends_with(" UTC"), "{text}");
    assert!(
        !text.contains("--insecure"),
        "no advice about trust: {text}"
    );
}
