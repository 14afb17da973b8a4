//! Pulls through an HTTP proxy (`common/connect_proxy.rs`, CONNECT and
//! absolute form), with the real `docker-registry` (plain HTTP, and TLS
//! with basic auth) and the real binary.
//!
//! The registries listen on 127.0.0.1, and loopback hosts always go direct
//! (a proxy cannot reach the client's loopback): `127.0.0.1:PORT` would
//! never use the proxy. So the tests address them as `registry.test:PORT`,
//! a name that only the test proxy resolves (to 127.0.0.1): the rule stays
//! as it is in production, the client never looks the name up when it goes
//! through the proxy (a real proxy resolves for its clients too), and the
//! proxy is the only way in. Runs that must go direct (`--no-proxy`,
//! `NO_PROXY`) run the binary in a mount namespace of its own whose
//! `/etc/hosts` maps the name to 127.0.0.1; nothing changes outside.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;

use base64::Engine as _;
use common::connect_proxy::ConnectProxy;
use common::http::{Reply, Server};
use common::image::{noise, push, Entry, Image, Layer};
use common::registry::{self, Registry, PROXIED_NAME};
use common::{
    assert_failure, assert_mentions, assert_success, check_initrd, final_error, morph, wyrcan,
    wyrcan_via, wyrcan_with_env, Outputs,
};

const KPATH: &str = "boot/vmlinuz-6.1";

fn kernel(tag: &str) -> Vec<u8> {
    let mut v = format!("FAKE-KERNEL {tag}\n").into_bytes();
    v.extend(noise(1500, 17));
    v
}

/// A small bootable image with a second layer of noise.
fn image(tag: &str) -> Image {
    Image::oci(vec![
        Layer::new(vec![
            Entry::dir("boot"),
            Entry::file(KPATH, kernel(tag)),
            Entry::symlink("boot/wyrcan.kernel", "vmlinuz-6.1"),
            Entry::file("init", "#!/bin/sh\n").mode(0o755),
        ]),
        Layer::new(vec![
            Entry::dir("data"),
            Entry::file("data/noise", noise(32 * 1024, 3)),
            Entry::file("data/tag", tag),
        ]),
    ])
}

/// `registry.test:PORT` of a registry.
fn named(reg: &Registry) -> String {
    format!("{PROXIED_NAME}:{}", reg.port())
}

/// `registry.test:PORT/REPO:t`.
fn named_ref(reg: &Registry, repo: &str) -> String {
    format!("{}/{repo}:t", named(reg))
}

/// Pushes `image(tag)` as `proxy/TAG:t` to `reg`; returns the image and
/// the reference by name.
fn pushed(reg: &Registry, tag: &str) -> (Image, String) {
    let img = image(tag);
    let repo = format!("proxy/{tag}");
    push(reg, &repo, "t", &img);
    (img, named_ref(reg, &repo))
}

// The TLS registry's credentials, and the proxy's.
const USER: &str = "wyrcan";
const PASS: &str = "registry-pass";
const PROXY_USER: &str = "proxy-user";
/// The proxy password, with characters a URL needs escaped…
const PROXY_PASS: &str = "pr0xy:p@ss/w%rd";
/// … and as it goes in the URL.
const PROXY_PASS_ENCODED: &str = "pr0xy%3Ap%40ss%2Fw%25rd";

fn tls_registry() -> &'static Registry {
    static TLS: OnceLock<Registry> = OnceLock::new();
    TLS.get_or_init(|| Registry::start_tls_basic(USER, PASS))
}

fn ca() -> String {
    tls_registry().ca_path().unwrap().display().to_string()
}

/// `wyrcan morph REF` of the TLS registry by name, with its CA and
/// credentials, plus `extra`.
fn tls_args(reference: &str, out: &Outputs, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["morph".to_string(), reference.to_string()];
    args.extend(out.args());
    let creds = format!("{USER}:{PASS}");
    args.extend(["--ca".into(), ca(), "--creds".into(), creds]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// `wyrcan morph REF` of a plain-HTTP registry by name, plus `extra`.
fn plain_args(reg: &Registry, reference: &str, out: &Outputs, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["morph".to_string(), reference.to_string()];
    args.extend(out.args());
    args.extend(["--insecure".into(), named(reg)]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Runs `wyrcan ARGS` with `env`, in a user and mount namespace of its own
/// where `/etc/hosts` maps `registry.test` to 127.0.0.1, so that a direct
/// connection to the name works (and needs no DNS).
fn wyrcan_resolving(args: &[String], env: &[(&str, &Path)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n127.0.0.1 {PROXIED_NAME}\n"),
    )
    .unwrap();
    let mut env = env.to_vec();
    env.push(("WYRCAN_TEST_HOSTS", &hosts));
    let out = wyrcan_via(
        &[
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            "mount --bind \"$WYRCAN_TEST_HOSTS\" /etc/hosts || exit 97; exec \"$0\" \"$@\"",
        ],
        args,
        &env,
    );
    assert_ne!(
        out.status.code(),
        Some(97),
        "/etc/hosts cannot be replaced for the binary (`unshare --user --map-root-user \
         --mount` failed: are user namespaces disabled?): {}",
        common::stderr(&out)
    );
    out
}

/// Fails unless nothing on stderr gives the proxy password away: raw,
/// percent-encoded, or as the Basic token.
fn assert_no_password(stderr: &str, what: &str) {
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{PROXY_USER}:{PROXY_PASS}"));
    for secret in [PROXY_PASS, PROXY_PASS_ENCODED, "pr0xy", token.as_str()] {
        assert!(
            !stderr.contains(secret),
            "{what}: stderr shows the proxy password ({secret:?}):\n{stderr}"
        );
    }
}

// ------------------------------------------------------------- plain HTTP

/// A plain-HTTP registry through `--proxy`: every request goes to the proxy
/// in absolute form (`GET http://registry.test:PORT/v2/…`), the image is
/// converted exactly.
#[test]
fn plain_http_registry_through_the_proxy_in_absolute_form() {
    let reg = registry::shared();
    let (img, reference) = pushed(reg, "plain");
    let proxy = ConnectProxy::start(&[PROXIED_NAME]);
    let out = Outputs::new();
    let res = morph(&named(reg), &reference, &out, &["--proxy", &proxy.url()]);
    assert_success(&res, "morph through the proxy");
    check_initrd(&img, &out, KPATH, &kernel("plain"));

    let seen = proxy.seen();
    let prefix = format!("http://{}/v2/", named(reg));
    assert!(
        seen.iter().any(|s| s.target.contains("/manifests/t"))
            && seen.iter().any(|s| s.target.contains("/blobs/sha256:")),
        "manifest and blobs came through the proxy: {seen:#?}"
    );
    for s in &seen {
        assert_eq!(s.method, "GET", "{s:?}");
        assert!(s.target.starts_with(&prefix), "absolute form: {s:?}");
        assert_eq!(s.host.as_deref(), Some(named(reg).as_str()), "{s:?}");
        assert_eq!(s.proxy_authorization, None, "{s:?}");
        assert_eq!(s.status, 200, "{s:?}");
    }
}

/// Proxy credentials go with every absolute-form request; without them the
/// proxy's 407 is a clear error, not retried.
#[test]
fn plain_http_proxy_auth_and_407() {
    let reg = registry::shared();
    let (img, reference) = pushed(reg, "plain-auth");
    let proxy = ConnectProxy::with_auth(&[PROXIED_NAME], PROXY_USER, PROXY_PASS);

    let out = Outputs::new();
    let url = proxy.url_with(PROXY_USER, PROXY_PASS_ENCODED);
    let res = wyrcan(&plain_args(
        reg,
        &reference,
        &out,
        &["--proxy", &url, "-vv"],
    ));
    assert_success(&res, "morph through the proxy with credentials");
    check_initrd(&img, &out, KPATH, &kernel("plain-auth"));
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{PROXY_USER}:{PROXY_PASS}"))
    );
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    for s in &seen {
        assert_eq!(
            s.proxy_authorization.as_deref(),
            Some(want.as_str()),
            "{s:?}"
        );
        assert_eq!(s.status, 200, "{s:?}");
    }
    let stderr = common::stderr(&res);
    assert_no_password(&stderr, "-vv");
    assert_mentions(
        &stderr,
        &format!("through proxy http://{PROXY_USER}:***@{}", proxy.addr()),
        "-vv names the proxy, password masked",
    );

    // No credentials: 407, said as such, once.
    let out = Outputs::new();
    let res = wyrcan(&plain_args(
        reg,
        &reference,
        &out,
        &["--proxy", &proxy.url()],
    ));
    let err = assert_failure(&res, "no proxy credentials");
    assert_mentions(
        final_error(&err),
        &format!(
            "proxy {} refused {} (HTTP 407): the proxy wants credentials: put them in the proxy URL",
            proxy.url(),
            named(reg)
        ),
        "407 names the proxy and what to do",
    );
    assert!(!err.contains("retrying"), "a 407 is not retried:\n{err}");
    out.assert_nothing_left();
}

// -------------------------------------------------------------------- TLS

/// The TLS registry with basic auth through the proxy's CONNECT tunnel,
/// with proxy credentials; the password never on stderr, even with `-vv`.
#[test]
fn tls_registry_through_connect_with_proxy_auth() {
    let reg = tls_registry();
    let (img, reference) = pushed(reg, "tls");
    let proxy = ConnectProxy::with_auth(&[PROXIED_NAME], PROXY_USER, PROXY_PASS);
    let url = proxy.url_with(PROXY_USER, PROXY_PASS_ENCODED);
    let out = Outputs::new();
    let res = wyrcan(&tls_args(&reference, &out, &["--proxy", &url, "-vv"]));
    assert_success(&res, "TLS through CONNECT");
    check_initrd(&img, &out, KPATH, &kernel("tls"));

    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{PROXY_USER}:{PROXY_PASS}"))
    );
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    for s in &seen {
        assert_eq!(s.method, "CONNECT", "{s:?}");
        assert_eq!(s.target, named(reg), "{s:?}");
        assert_eq!(
            s.proxy_authorization.as_deref(),
            Some(want.as_str()),
            "{s:?}"
        );
        assert_eq!(s.status, 200, "{s:?}");
    }
    let stderr = common::stderr(&res);
    assert_no_password(&stderr, "-vv");
    assert_mentions(
        &stderr,
        &format!("http://{PROXY_USER}:***@{}", proxy.addr()),
        "-vv names the proxy, password masked",
    );
}

/// A wrong proxy password: the CONNECT's 407 is a clear error naming the
/// proxy (password masked) and what to check, not retried.
#[test]
fn tls_wrong_proxy_password_is_a_clear_407() {
    let reg = tls_registry();
    let (_, reference) = pushed(reg, "tls-407");
    let proxy = ConnectProxy::with_auth(&[PROXIED_NAME], PROXY_USER, PROXY_PASS);
    let url = proxy.url_with(PROXY_USER, "pr0xy-wrong");
    let out = Outputs::new();
    let res = wyrcan(&tls_args(&reference, &out, &["--proxy", &url, "-vv"]));
    let err = assert_failure(&res, "wrong proxy password");
    assert_mentions(
        final_error(&err),
        &format!(
            "proxy http://{PROXY_USER}:***@{} refused {} (HTTP 407): check the user and password in the proxy URL",
            proxy.addr(),
            named(reg)
        ),
        "407 names the proxy and what to check",
    );
    assert!(!err.contains("pr0xy-wrong"), "the password shows:\n{err}");
    assert_no_password(&err, "wrong password");
    assert!(!err.contains("retrying"), "a 407 is not retried:\n{err}");
    assert!(proxy.seen().iter().all(|s| s.status == 407));
    out.assert_nothing_left();
}

// ------------------------------------------------------------ unreachable

/// Nothing listens where the proxy should be: a transient error (retried)
/// naming the proxy, password masked, and what to check.
#[test]
fn unreachable_proxy_is_named_and_retried() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let reg = registry::shared();
    let (_, reference) = pushed(reg, "unreachable");
    let url = format!("http://{PROXY_USER}:{PROXY_PASS_ENCODED}@127.0.0.1:{port}");
    let out = Outputs::new();
    let res = wyrcan(&plain_args(reg, &reference, &out, &["--proxy", &url, "-v"]));
    let err = assert_failure(&res, "unreachable proxy");
    assert_mentions(
        final_error(&err),
        &format!("cannot connect to proxy http://{PROXY_USER}:***@127.0.0.1:{port}"),
        "names the proxy",
    );
    assert_mentions(
        final_error(&err),
        "check that a proxy runs there and that its address and port are right",
        "says what to check",
    );
    assert_mentions(final_error(&err), "giving up after 6 attempts", "retried");
    assert!(err.contains("retrying"), "transient: retried\n{err}");
    assert_no_password(&err, "unreachable proxy");
    out.assert_nothing_left();
}

/// A proxy URL that does not parse is refused before any request, masked.
#[test]
fn bad_proxy_flags_are_refused_up_front() {
    let out = Outputs::new();
    for (flags, want) in [
        (
            vec!["--proxy", "socks5://me:pr0xy-secret@127.0.0.1:1080"],
            "--proxy socks5://me:***@127.0.0.1:1080: only http:// proxies are supported",
        ),
        (
            vec!["--proxy", "http://me:pr0xy-secret@127.0.0.1:99999"],
            "--proxy http://me:***@127.0.0.1:99999: \"99999\" is not a port",
        ),
        (
            vec!["--no-proxy", "a.lan,10.0.0.0/33"],
            "--no-proxy: no-proxy entry \"10.0.0.0/33\"",
        ),
    ] {
        let mut args = vec!["morph".to_string(), "registry.test:1/x:t".into()];
        args.extend(out.args());
        args.extend(flags.iter().map(|s| s.to_string()));
        let err = assert_failure(&wyrcan(&args), want);
        assert_mentions(final_error(&err), want, "names the flag");
        assert!(!err.contains("pr0xy-secret"), "{err}");
    }
    out.assert_nothing_left();
}

// ------------------------------------------------------------- no proxy

/// `--no-proxy` sends a host direct: the proxy sees nothing. (The control
/// run, same namespace without `--no-proxy`, does go through the proxy.)
#[test]
fn no_proxy_hosts_go_direct() {
    let reg = registry::shared();
    let (img, reference) = pushed(reg, "no-proxy");
    let proxy = ConnectProxy::start(&[PROXIED_NAME]);

    let out = Outputs::new();
    let res = wyrcan_resolving(
        &plain_args(reg, &reference, &out, &["--proxy", &proxy.url()]),
        &[],
    );
    assert_success(&res, "control: through the proxy");
    assert!(!proxy.seen().is_empty(), "the control run used the proxy");

    for list in [
        PROXIED_NAME.to_string(),
        format!("other.lan,{}", named(reg)),
        ".test".to_string(),
        "*".to_string(),
    ] {
        let proxy = ConnectProxy::start(&[PROXIED_NAME]);
        let out = Outputs::new();
        let args = plain_args(
            reg,
            &reference,
            &out,
            &["--proxy", &proxy.url(), "--no-proxy", &list],
        );
        assert_success(&wyrcan_resolving(&args, &[]), &format!("--no-proxy {list}"));
        check_initrd(&img, &out, KPATH, &kernel("no-proxy"));
        assert!(
            proxy.seen().is_empty(),
            "--no-proxy {list}: the proxy saw {:#?}",
            proxy.seen()
        );
    }

    // A list that does not match this host (other port, other domain,
    // networks a name is never compared with): through the proxy.
    let proxy = ConnectProxy::start(&[PROXIED_NAME]);
    let out = Outputs::new();
    let list = format!("{PROXIED_NAME}:1,.lan,127.0.0.0/8");
    let args = plain_args(
        reg,
        &reference,
        &out,
        &["--proxy", &proxy.url(), "--no-proxy", &list],
    );
    assert_success(&wyrcan_resolving(&args, &[]), "non-matching --no-proxy");
    assert!(!proxy.seen().is_empty(), "--no-proxy {list} does not match");
}

// ------------------------------------------------------------ environment

/// `HTTPS_PROXY` from the environment serves `https://` (CONNECT), and
/// `NO_PROXY` sends the host direct.
#[test]
fn https_proxy_and_no_proxy_from_the_environment() {
    let reg = tls_registry();
    let (img, reference) = pushed(reg, "tls-env");
    let proxy = ConnectProxy::start(&[PROXIED_NAME]);
    let proxy_url = proxy.url();
    let out = Outputs::new();
    let res = wyrcan_with_env(
        &tls_args(&reference, &out, &[]),
        &[("HTTPS_PROXY", Path::new(&proxy_url))],
    );
    assert_success(&res, "HTTPS_PROXY");
    check_initrd(&img, &out, KPATH, &kernel("tls-env"));
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|s| s.method == "CONNECT"), "{seen:#?}");

    // NO_PROXY (and its lowercase twin) send the host direct.
    for var in ["NO_PROXY", "no_proxy"] {
        let proxy = ConnectProxy::start(&[PROXIED_NAME]);
        let proxy_url = proxy.url();
        let out = Outputs::new();
        let res = wyrcan_resolving(
            &tls_args(&reference, &out, &[]),
            &[
                ("https_proxy", Path::new(&proxy_url)),
                (var, Path::new(".example.com,registry.test")),
            ],
        );
        assert_success(&res, var);
        assert!(proxy.seen().is_empty(), "{var}: {:#?}", proxy.seen());
    }
}

/// A plain-HTTP registry: `HTTPS_PROXY` does not apply (direct), and
/// `HTTP_PROXY` does (absolute form); `--proxy` wins over both.
#[test]
fn http_proxy_from_the_environment_is_per_scheme() {
    let reg = registry::shared();
    let (_, reference) = pushed(reg, "plain-env");
    let proxy = ConnectProxy::start(&[PROXIED_NAME]);
    let proxy_url = proxy.url();

    let out = Outputs::new();
    let res = wyrcan_resolving(
        &plain_args(reg, &reference, &out, &[]),
        &[("HTTPS_PROXY", Path::new(&proxy_url))],
    );
    assert_success(&res, "HTTPS_PROXY only, plain HTTP");
    assert!(proxy.seen().is_empty(), "{:#?}", proxy.seen());

    let out = Outputs::new();
    let res = wyrcan_with_env(
        &plain_args(reg, &reference, &out, &[]),
        &[("HTTP_PROXY", Path::new(&proxy_url))],
    );
    assert_success(&res, "HTTP_PROXY");
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|s| s.target.starts_with("http://")),
        "{seen:#?}"
    );

    // --proxy wins over a variable that points nowhere.
    let dead = "http://127.0.0.1:9";
    let out = Outputs::new();
    let res = wyrcan_with_env(
        &plain_args(reg, &reference, &out, &["--proxy", &proxy_url]),
        &[
            ("HTTP_PROXY", Path::new(dead)),
            ("ALL_PROXY", Path::new(dead)),
        ],
    );
    assert_success(&res, "--proxy over HTTP_PROXY");
}

/// A bad proxy variable is an error naming it, password masked.
#[test]
fn a_bad_proxy_variable_is_named() {
    let reg = registry::shared();
    let (_, reference) = pushed(reg, "bad-env");
    let out = Outputs::new();
    let res = wyrcan_with_env(
        &plain_args(reg, &reference, &out, &[]),
        &[(
            "http_proxy",
            Path::new("ftp://me:pr0xy-secret@proxy.lan:21"),
        )],
    );
    let err = assert_failure(&res, "bad http_proxy");
    assert_mentions(
        final_error(&err),
        "http_proxy=ftp://me:***@proxy.lan:21: only http:// proxies are supported, not ftp:// \
         (expected http://[USER:PASS@]HOST:PORT) (fix or unset the variable)",
        "names the variable, says it once",
    );
    assert_eq!(err.matches("only http://").count(), 1, "{err}");
    assert!(!err.contains("pr0xy-secret"), "{err}");
}

// ------------------------------------------------------- redirect hops

/// Each redirect hop chooses its own route: a registry reached through the
/// proxy redirecting a blob to a loopback CDN (direct), and a loopback
/// registry (direct) redirecting to a CDN by name (through the proxy, with
/// the proxy credentials, without the registry's `Authorization`).
#[test]
fn each_redirect_hop_chooses_its_route() {
    use wyrcan::registry::{Client, ProxyUrl};
    use wyrcan_core::digest::Digest;
    use wyrcan_core::manifest::Descriptor;
    use wyrcan_core::reference::Reference;

    let data = noise(20_000, 9);
    let desc = Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        digest: Digest::of(&data),
        size: data.len() as u64,
        platform: None,
        urls: Vec::new(),
        annotations: Default::default(),
    };
    let cdn = {
        let data = data.clone();
        Server::start(move |_, _| Reply::new(200).body(&data))
    };
    let proxy = ConnectProxy::with_auth(&[PROXIED_NAME, "cdn.test"], PROXY_USER, PROXY_PASS);
    let proxy_url = ProxyUrl::parse(&proxy.url_with(PROXY_USER, PROXY_PASS_ENCODED)).unwrap();

    // Registry through the proxy → CDN on 127.0.0.1, direct.
    let cdn_direct = format!("http://{}/direct/object", cdn.addr());
    let registry = Server::registry(move |_, _| Reply::new(307).header("Location", &cdn_direct));
    let host = format!(
        "{PROXIED_NAME}:{}",
        registry.addr().rsplit_once(':').unwrap().1
    );
    let mut opts = common::client::client_options(&[&host, &cdn.addr()], None);
    opts.proxy = Some(proxy_url.clone());
    let reference: Reference = format!("{host}/test/img:latest").parse().unwrap();
    let bytes = Client::new(&reference, &opts)
        .unwrap()
        .fetch_blob_bytes(&desc)
        .unwrap();
    assert!(bytes == data);
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .all(|s| s.target.starts_with(&format!("http://{host}/"))),
        "only the registry went through the proxy: {seen:#?}"
    );
    assert!(seen.iter().any(|s| s.target.contains("/blobs/")));
    let direct = cdn.requests("/direct/object");
    assert_eq!(direct.len(), 1, "the CDN hop went direct");
    assert_eq!(direct[0].header("proxy-authorization"), None);

    // Registry on 127.0.0.1, direct → CDN by name, through the proxy.
    let cdn_named = format!(
        "http://cdn.test:{}/named/object",
        cdn.addr().rsplit_once(':').unwrap().1
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
    );
    let registry = Server::registry(move |req, _| {
        if req.header("authorization") != Some(basic.as_str()) {
            return Reply::new(401).header("WWW-Authenticate", "Basic realm=\"r\"");
        }
        Reply::new(307).header("Location", &cdn_named)
    });
    let cdn_host = format!("cdn.test:{}", cdn.addr().rsplit_once(':').unwrap().1);
    let mut opts = common::client::client_options(
        &[&registry.addr(), &cdn_host],
        Some(common::client::creds(USER, PASS)),
    );
    opts.proxy = Some(proxy_url);
    let before = proxy.seen().len();
    let reference: Reference = format!("{}/test/img:latest", registry.addr())
        .parse()
        .unwrap();
    let bytes = Client::new(&reference, &opts)
        .unwrap()
        .fetch_blob_bytes(&desc)
        .unwrap();
    assert!(bytes == data);
    let seen = &proxy.seen()[before..];
    assert_eq!(
        seen.len(),
        1,
        "only the CDN hop went through the proxy: {seen:#?}"
    );
    assert_eq!(seen[0].target, format!("http://{cdn_host}/named/object"));
    assert!(seen[0].proxy_authorization.is_some());
    let named = cdn.requests("/named/object");
    assert_eq!(named.len(), 1);
    assert_eq!(
        named[0].header("authorization"),
        None,
        "the registry's credentials stay home"
    );
    assert_eq!(
        named[0].header("proxy-authorization"),
        None,
        "the proxy keeps its own"
    );
}

/// A proxy that cannot reach the registry: its 502 to a CONNECT is a
/// refusal naming the proxy and the registry, retried; a 502 to a
/// forwarded request is the status, said to have come through the proxy.
#[test]
fn a_proxy_that_cannot_reach_the_registry_is_named() {
    use wyrcan::registry::{Client, ProxyUrl, RegistryError};
    use wyrcan_core::reference::Reference;

    // The proxy resolves no name: every target is unreachable for it.
    let proxy = ConnectProxy::start(&[]);
    let mut opts = common::client::client_options(&["nowhere.test:5000"], None);
    opts.proxy = Some(ProxyUrl::parse(&proxy.url()).unwrap());

    let tls: Reference = "unknown.test:443/x/y:t".parse().unwrap();
    let err = Client::new(&tls, &opts)
        .unwrap()
        .fetch_manifest("t", None)
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        matches!(
            RegistryError::find(&err),
            Some(RegistryError::ProxyRefused { status: 502, .. })
        ),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "proxy {} refused unknown.test:443 (HTTP 502): the proxy could not reach unknown.test:443",
            proxy.url()
        )),
        "{msg}"
    );
    assert!(msg.contains("giving up after 3 attempts"), "retried: {msg}");
    assert!(wyrcan::registry::worth_retrying(&err));

    let plain: Reference = "nowhere.test:5000/x/y:t".parse().unwrap();
    let err = Client::new(&plain, &opts)
        .unwrap()
        .fetch_manifest("t", None)
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&format!(
            "through proxy {} (if the registry is up, check that the proxy can reach it): \
             http://nowhere.test:5000/v2/x/y/manifests/t answered HTTP 502",
            proxy.url()
        )),
        "{msg}"
    );
    assert!(msg.contains("giving up after 3 attempts"), "retried: {msg}");
    assert!(proxy.seen().iter().all(|s| s.status == 502));
}
