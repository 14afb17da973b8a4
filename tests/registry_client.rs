//! The registry client (`wyrcan::registry::Client`, public API only) against
//! the in-process fake registry of `common/http.rs`, which misbehaves on
//! purpose: auth challenges, token endpoints, error statuses, cut bodies,
//! ignored ranges, wrong bytes, redirects — faults a real registry cannot
//! be made to produce. Everything listens on 127.0.0.1.

mod common;

use std::collections::BTreeMap;
use std::io::{BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::client::{client_options, creds};
use common::http::{read_request, read_response, Reply, Server};
use common::image::noise;
use wyrcan::registry::Credentials;
use wyrcan::registry::{Client, PullOptions, RegistryError};
use wyrcan_core::digest::Digest;
use wyrcan_core::manifest::{Descriptor, MANIFEST_ACCEPT};
use wyrcan_core::reference::Reference;

const MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `Client::fetch_blob_bytes` refuses blobs over 64 MiB (a private limit of
/// src/registry/download.rs).
const MAX_BLOB_IN_MEMORY: u64 = 64 << 20;

/// A client for `SERVER/test/img:latest` with these options.
fn client_with(server: &Server, opts: &PullOptions) -> Client {
    let r: Reference = format!("{}/test/img:latest", server.addr())
        .parse()
        .unwrap();
    Client::new(&r, opts).unwrap()
}

/// A client for `SERVER/test/img:latest`, plain HTTP allowed to that server.
fn client(server: &Server, credentials: Option<Credentials>) -> Client {
    client_with(server, &client_options(&[&server.addr()], credentials))
}

fn desc(data: &[u8]) -> Descriptor {
    Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        digest: Digest::of(data),
        size: data.len() as u64,
        platform: None,
        urls: Vec::new(),
        annotations: BTreeMap::new(),
    }
}

/// Deterministic bytes that do not repeat with a short period.
fn blob(n: usize) -> Vec<u8> {
    noise(n, 0x1234_5678)
}

fn blob_path(d: &Digest) -> String {
    format!("/v2/test/img/blobs/{d}")
}

/// Downloads into a temp file; returns the result, the file's bytes and
/// the progress values seen.
fn download(c: &Client, d: &Descriptor) -> (anyhow::Result<()>, Vec<u8>, Vec<u64>) {
    let mut f = tempfile::tempfile().unwrap();
    let seen = Mutex::new(Vec::new());
    let r = c.download_blob(d, &mut f, false, &|n| seen.lock().unwrap().push(n));
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).unwrap();
    (r, bytes, seen.into_inner().unwrap())
}

/// The first `RegistryError` of `err`, or a panic that shows the chain.
fn registry_error(err: &anyhow::Error) -> &RegistryError {
    RegistryError::find(err).unwrap_or_else(|| panic!("no RegistryError in: {err:#}"))
}

/// A registry that wants a bearer token (`tok123`), handed out by its
/// `/token` endpoint in the JSON field `token_field`, after HTTP basic
/// auth `want_basic` if given.
fn bearer_registry(token_field: &'static str, want_basic: Option<String>) -> Server {
    Server::registry(move |req, authority| {
        if req.path.starts_with("/token") {
            if want_basic.is_some() && req.header("authorization") != want_basic.as_deref() {
                return Reply::new(401);
            }
            return Reply::new(200)
                .body(format!(r#"{{"{token_field}":"tok123","expires_in":300}}"#).as_bytes());
        }
        if req.header("authorization") != Some("Bearer tok123") {
            let challenge = format!(
                r#"Bearer realm="http://{authority}/token",service="fake",scope="repository:test/img:pull""#
            );
            return Reply::new(401).header("WWW-Authenticate", &challenge);
        }
        match req.path.as_str() {
            "/v2/test/img/manifests/latest" => Reply::new(200)
                .header("Content-Type", OCI_MANIFEST)
                .body(MANIFEST),
            _ => Reply::new(404),
        }
    })
}

/// A registry that wants HTTP basic auth as `bob`/`pw`.
fn basic_registry() -> Server {
    let want = creds("bob", "pw").basic_header();
    Server::registry(move |req, _| {
        if req.header("authorization") != Some(want.as_str()) {
            return Reply::new(401).header("WWW-Authenticate", r#"Basic realm="fake""#);
        }
        Reply::new(200)
            .header("Content-Type", OCI_MANIFEST)
            .body(MANIFEST)
    })
}

// ------------------------------------------------------- harness self-tests

#[test]
fn harness_http_server_parses_logs_and_cuts() {
    let server = Server::start(|req, _| match req.path.as_str() {
        "/cut" => Reply::new(200).body(&[7u8; 1000]).cut_at(10),
        _ => Reply::new(201)
            .header("X-Echo", req.header("x-test").unwrap_or("none"))
            .body(&req.body),
    });
    let send = |raw: &[u8]| {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.write_all(raw).unwrap();
        read_response(&mut BufReader::new(s), 1 << 20).unwrap()
    };

    let resp = send(
        b"POST /echo?q=1 HTTP/1.1\r\nHost: x\r\nX-Test:  a b \r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(resp.status, 201);
    assert_eq!(resp.body, b"hello");
    let header = |name: &str| common::http::header(&resp.headers, name).map(str::to_string);
    assert_eq!(header("x-echo").as_deref(), Some("a b"));
    assert_eq!(header("content-length").as_deref(), Some("5"));
    assert_eq!(header("connection").as_deref(), Some("close"));

    let resp = send(b"GET /cut HTTP/1.1\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(
        common::http::header(&resp.headers, "content-length"),
        Some("1000")
    );
    assert_eq!(resp.body, [7u8; 10], "a cut body stops after 10 bytes");

    // Bytes that are not HTTP get a 400, as from a real server, and are
    // not logged: a malformed request line, a TLS ClientHello.
    for raw in [&b"garbage\r\n\r\n"[..], &[0x16, 0x03, 0x01, 0x02, 0x00][..]] {
        let resp = send(raw);
        assert_eq!(resp.status, 400, "{raw:?}");
    }

    let log = server.all_requests();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str()),
        ("POST", "/echo?q=1")
    );
    assert_eq!(log[0].header("X-TEST"), Some("a b"));
    assert_eq!(server.requests("/cut").len(), 1);

    // The parser on its own: bounded head, body by Content-Length.
    let raw = b"GET /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcdef";
    let req = read_request(&mut &raw[..], 10).unwrap().unwrap();
    assert_eq!(req.body, b"abc");
    let err = read_request(&mut &raw[..], 2).unwrap_err();
    assert!(err.to_string().contains("over 2"), "{err}");
    assert!(read_request(&mut &b""[..], 10).unwrap().is_none());
    let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(300));
    let err = read_request(&mut many.as_bytes(), 10).unwrap_err();
    assert!(err.to_string().contains("header lines"), "{err}");
}

#[test]
fn client_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Client>();
}

// ------------------------------------------------------------------- auth

#[test]
fn bearer_token_flow_with_credentials_and_cache() {
    let basic = creds("alice", "s3cret").basic_header();
    let server = bearer_registry("token", Some(basic.clone()));
    let c = client(&server, Some(creds("alice", "s3cret")));
    let m = c.fetch_manifest("latest", None).unwrap();
    assert_eq!(m.body, MANIFEST);
    assert_eq!(m.content_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(m.digest, Digest::of(MANIFEST));

    let tokens = server.requests("/token");
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        tokens[0].path,
        "/token?service=fake&scope=repository%3Atest%2Fimg%3Apull"
    );
    assert_eq!(tokens[0].header("authorization"), Some(basic.as_str()));
    let manifests = server.requests("/v2/test/img/manifests/");
    assert_eq!(manifests[0].header("accept"), Some(MANIFEST_ACCEPT));
    assert!(manifests[0]
        .header("user-agent")
        .unwrap()
        .starts_with("wyrcan/"));

    // The token is cached: a second fetch asks no new one.
    c.fetch_manifest("latest", Some(&Digest::of(MANIFEST)))
        .unwrap();
    assert_eq!(server.requests("/token").len(), 1);
}

#[test]
fn threads_share_one_client_and_one_token() {
    let blobs: Vec<Vec<u8>> = (1..=4).map(|i| blob(20_000 * i)).collect();
    let server = {
        let blobs = blobs.clone();
        Server::registry(move |req, authority| {
            if req.path.starts_with("/token") {
                return Reply::new(200).body(br#"{"token":"tok123"}"#);
            }
            if req.header("authorization") != Some("Bearer tok123") {
                let challenge = format!(r#"Bearer realm="http://{authority}/token""#);
                return Reply::new(401).header("WWW-Authenticate", &challenge);
            }
            match blobs.iter().find(|b| req.path == blob_path(&Digest::of(b))) {
                Some(b) => Reply::new(200).body(b),
                None => Reply::new(404),
            }
        })
    };
    let c = client(&server, None);
    std::thread::scope(|s| {
        for b in &blobs {
            let c = &c;
            s.spawn(move || {
                let (r, bytes, _) = download(c, &desc(b));
                r.unwrap();
                assert!(bytes == *b);
            });
        }
    });
    // Threads refused together wait for one token rather than each fetching one.
    assert_eq!(server.requests("/token").len(), 1);
}

#[test]
fn anonymous_bearer_with_access_token() {
    let server = bearer_registry("access_token", None);
    let c = client(&server, None);
    assert_eq!(c.fetch_manifest("latest", None).unwrap().body, MANIFEST);
    assert_eq!(server.requests("/token")[0].header("authorization"), None);
}

#[test]
fn token_endpoint_refusing_credentials_is_a_clear_error() {
    let server = bearer_registry("token", Some(creds("alice", "right").basic_header()));
    let c = client(&server, Some(creds("alice", "wrong")));
    let err = c.fetch_manifest("latest", None).unwrap_err();
    assert!(matches!(
        registry_error(&err),
        RegistryError::Unauthorized { status: 401, .. }
    ));
    let msg = format!("{err:#}");
    assert!(msg.contains("refused access to test/img (401)"), "{msg}");
    assert!(
        msg.contains("--creds USER:PASS or docker/podman login"),
        "{msg}"
    );
    // Not retried: it will not get better.
    assert_eq!(server.requests("/token").len(), 1);
}

#[test]
fn basic_auth() {
    let server = basic_registry();
    let c = client(&server, Some(creds("bob", "pw")));
    assert_eq!(c.fetch_manifest("latest", None).unwrap().body, MANIFEST);
    // The header is kept: the next request sends it straight away.
    c.fetch_manifest("latest", None).unwrap();
    let reqs = server.requests("/v2/test/img/manifests/");
    assert_eq!(reqs.len(), 3);
    assert!(reqs[2].header("authorization").is_some());
}

#[test]
fn basic_auth_without_or_with_wrong_credentials() {
    let server = basic_registry();
    // (Without credentials the auth files are read; they hold nothing for
    // a random 127.0.0.1 port.)
    for o in [None, Some(creds("bob", "nope"))] {
        let c = client(&server, o);
        let err = c.fetch_manifest("latest", None).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("registry {} refused access", server.addr())),
            "{msg}"
        );
    }
}

// -------------------------------------------------------------- manifests

#[test]
fn manifest_404_is_a_clear_error_without_retries() {
    let server = Server::registry(|_, _| Reply::new(404));
    let c = client(&server, None);
    let err = c.fetch_manifest("v9", None).unwrap_err();
    assert!(matches!(
        registry_error(&err),
        RegistryError::ManifestNotFound { .. }
    ));
    // One line that says what failed and what to do.
    assert_eq!(
        format!("{err:#}"),
        format!(
            "image {}/test/img:v9 not found at {}: check the name and tag",
            server.addr(),
            server.addr()
        )
    );
    assert_eq!(server.requests("/v2/test/").len(), 1);
}

#[test]
fn manifest_503_twice_then_ok() {
    let n = Arc::new(AtomicUsize::new(0));
    let server = {
        let n = n.clone();
        Server::registry(move |_, _| {
            if n.fetch_add(1, Ordering::SeqCst) < 2 {
                Reply::new(503)
            } else {
                Reply::new(200)
                    .header("Content-Type", OCI_MANIFEST)
                    .body(MANIFEST)
            }
        })
    };
    let c = client(&server, None);
    assert_eq!(c.fetch_manifest("latest", None).unwrap().body, MANIFEST);
    assert_eq!(n.load(Ordering::SeqCst), 3);
}

#[test]
fn manifest_503_forever_gives_up_after_the_retries() {
    let server = Server::registry(|_, _| Reply::new(503));
    let c = client(&server, None);
    let err = c.fetch_manifest("latest", None).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("giving up after 3 attempts"), "{msg}");
    assert!(msg.contains("answered HTTP 503"), "{msg}");
    assert_eq!(server.requests("/v2/test/").len(), 3);
}

#[test]
fn manifest_with_the_wrong_digest_is_an_error() {
    let server = Server::registry(|_, _| {
        Reply::new(200)
            .header("Content-Type", OCI_MANIFEST)
            .body(MANIFEST)
    });
    let c = client(&server, None);
    let other = Digest::of(b"other");
    let err = c
        .fetch_manifest(&other.to_string(), Some(&other))
        .unwrap_err();
    match registry_error(&err) {
        RegistryError::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(*expected, other);
            assert_eq!(*actual, Digest::of(MANIFEST));
        }
        e => panic!("expected a digest mismatch, got {e:?} ({err:#})"),
    }
    assert_eq!(server.requests("/v2/test/").len(), 3);
}

// ------------------------------------------------------------------ blobs

#[test]
fn blob_cut_mid_body_resumes_with_range() {
    let data = blob(300_000);
    let d = desc(&data);
    let server = {
        let data = data.clone();
        Server::registry(move |req, _| match req.header("range") {
            None => Reply::new(200).body(&data).cut_at(100_000),
            Some(r) => {
                let start: usize = r
                    .strip_prefix("bytes=")
                    .unwrap()
                    .trim_end_matches('-')
                    .parse()
                    .unwrap();
                let range = format!("bytes {start}-{}/{}", data.len() - 1, data.len());
                Reply::new(206)
                    .header("Content-Range", &range)
                    .body(&data[start..])
            }
        })
    };
    let c = client(&server, None);
    let (r, bytes, seen) = download(&c, &d);
    r.unwrap();
    assert!(bytes == data, "downloaded bytes differ");
    let reqs = server.requests(&blob_path(&d.digest));
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("range"), None);
    let resumed_from: u64 = reqs[1].header("range").unwrap()["bytes=".len()..]
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(
        resumed_from > 0 && resumed_from <= 100_000,
        "resumed from {resumed_from}"
    );
    assert_eq!(seen.last(), Some(&300_000));
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress went back on a resume"
    );
}

/// A server answering ranges properly (206 from the asked byte).
fn range_server(data: Vec<u8>) -> Server {
    Server::registry(move |req, _| match req.header("range") {
        None => Reply::new(200).body(&data),
        Some(r) => {
            let start: usize = r
                .strip_prefix("bytes=")
                .unwrap()
                .trim_end_matches('-')
                .parse()
                .unwrap();
            let range = format!("bytes {start}-{}/{}", data.len() - 1, data.len());
            Reply::new(206)
                .header("Content-Range", &range)
                .body(&data[start..])
        }
    })
}

#[test]
fn a_partial_file_from_an_earlier_pull_is_resumed_and_a_whole_one_kept() {
    // What PID 1's whole-pull retry finds: the bytes an earlier attempt got.
    let data = blob(300_000);
    let d = desc(&data);
    let server = range_server(data.clone());
    let c = client(&server, None);
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(&data[..123_456]).unwrap();
    c.download_blob(&d, &mut f, true, &|_| {}).unwrap();
    let mut got = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut got).unwrap();
    assert!(got == data, "resumed bytes differ");
    let reqs = server.requests(&blob_path(&d.digest));
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("range"), Some("bytes=123456-"));

    // Complete already: verified, no request at all.
    c.download_blob(&d, &mut f, true, &|_| {}).unwrap();
    assert_eq!(server.requests(&blob_path(&d.digest)).len(), 1);

    // Wrong bytes in the partial file: the digest catches it and the blob
    // is downloaded again whole.
    let mut bad = tempfile::tempfile().unwrap();
    let mut wrong = data[..200_000].to_vec();
    wrong[10] ^= 1;
    bad.write_all(&wrong).unwrap();
    c.download_blob(&d, &mut bad, true, &|_| {}).unwrap();
    let mut got = Vec::new();
    bad.seek(SeekFrom::Start(0)).unwrap();
    bad.read_to_end(&mut got).unwrap();
    assert!(got == data, "a bad partial file was not replaced");
    // Without `resume`, the file's bytes are never used.
    let mut other = tempfile::tempfile().unwrap();
    other.write_all(&data[..1000]).unwrap();
    c.download_blob(&d, &mut other, false, &|_| {}).unwrap();
    let last = server.requests(&blob_path(&d.digest)).pop().unwrap();
    assert_eq!(last.header("range"), None);
}

#[test]
fn blob_server_ignoring_range_restarts_from_zero() {
    let data = blob(200_000);
    let d = desc(&data);
    let n = Arc::new(AtomicUsize::new(0));
    let server = {
        let (data, n) = (data.clone(), n.clone());
        Server::registry(move |_, _| {
            if n.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::new(200).body(&data).cut_at(50_000)
            } else {
                Reply::new(200).body(&data)
            }
        })
    };
    let c = client(&server, None);
    let (r, bytes, seen) = download(&c, &d);
    r.unwrap();
    assert!(bytes == data, "downloaded bytes differ");
    let reqs = server.requests(&blob_path(&d.digest));
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].header("range").is_some());
    assert!(seen.contains(&0), "progress was not reset on the restart");
    assert_eq!(seen.last(), Some(&200_000));
}

#[test]
fn blob_with_wrong_bytes_is_an_error_after_the_retries() {
    let data = blob(10_000);
    let d = desc(&data);
    let mut bad = data.clone();
    bad[5_000] ^= 1;
    let server = Server::registry(move |_, _| Reply::new(200).body(&bad));
    let c = client(&server, None);
    let (r, _, _) = download(&c, &d);
    let err = r.unwrap_err();
    match registry_error(&err) {
        RegistryError::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(*expected, d.digest);
            assert_ne!(*actual, d.digest);
        }
        other => panic!("expected a digest mismatch, got {other:?} ({err:#})"),
    }
    assert!(
        format!("{err:#}").contains("giving up after 3 attempts"),
        "{err:#}"
    );
    // Each retry starts from scratch, never with a Range.
    let reqs = server.requests(&blob_path(&d.digest));
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.header("range").is_none()));
}

#[test]
fn blob_longer_than_announced_is_an_error() {
    let data = blob(1_000);
    let d = desc(&data[..900]);
    let server = Server::registry(move |_, _| Reply::new(200).body(&data));
    let c = client(&server, None);
    let (r, _, _) = download(&c, &d);
    let err = r.unwrap_err();
    assert!(
        matches!(
            registry_error(&err),
            RegistryError::SizeMismatch { expected: 900, .. }
        ),
        "{err:#}"
    );
}

#[test]
fn blob_404_says_it_is_missing() {
    let server = Server::registry(|_, _| Reply::new(404));
    let c = client(&server, None);
    let d = desc(b"gone");
    let (r, _, _) = download(&c, &d);
    let err = r.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&format!("blob {} of", d.digest)) && msg.contains("is missing"),
        "{msg}"
    );
    assert_eq!(server.requests("/v2/test/").len(), 1);
    let err = c.fetch_blob_bytes(&d).unwrap_err();
    assert!(matches!(
        registry_error(&err),
        RegistryError::BlobNotFound { .. }
    ));
}

#[test]
fn fetch_blob_bytes_verifies_size_and_digest() {
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let good = desc(&config);
    let server = {
        let config = config.clone();
        Server::registry(move |_, _| Reply::new(200).body(&config))
    };
    let c = client(&server, None);
    assert_eq!(c.fetch_blob_bytes(&good).unwrap(), config);

    let mut short = good.clone();
    short.size -= 1;
    let err = c.fetch_blob_bytes(&short).unwrap_err();
    assert!(
        matches!(registry_error(&err), RegistryError::SizeMismatch { .. }),
        "{err:#}"
    );

    let mut wrong = good.clone();
    wrong.digest = Digest::of(b"something else");
    let err = c.fetch_blob_bytes(&wrong).unwrap_err();
    assert!(
        matches!(registry_error(&err), RegistryError::DigestMismatch { .. }),
        "{err:#}"
    );

    // Too big to hold in memory: refused before any request.
    let before = server.all_requests().len();
    let mut huge = good;
    huge.size = MAX_BLOB_IN_MEMORY + 1;
    let err = c.fetch_blob_bytes(&huge).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&format!(
            "blob {} of {}/test/img:latest is {} bytes, too big to hold in memory",
            huge.digest,
            server.addr(),
            huge.size
        )),
        "{msg}"
    );
    assert_eq!(server.all_requests().len(), before);
}

// -------------------------------------------------------------- redirects

#[test]
fn redirects_do_not_carry_the_registry_credentials() {
    let data = blob(70_000);
    let d = desc(&data);
    let cdn = {
        let data = data.clone();
        Server::start(move |_, _| Reply::new(200).body(&data))
    };
    let cdn_url = format!("http://{}/bucket/object?sig=abc", cdn.addr());
    let registry = Server::registry(move |req, authority| {
        if req.path.starts_with("/token") {
            return Reply::new(200).body(br#"{"token":"tok123"}"#);
        }
        if req.header("authorization") != Some("Bearer tok123") {
            let challenge = format!(r#"Bearer realm="http://{authority}/token",service="fake""#);
            return Reply::new(401).header("WWW-Authenticate", &challenge);
        }
        Reply::new(307).header("Location", &cdn_url)
    });
    let c = client_with(
        &registry,
        &client_options(&[&registry.addr(), &cdn.addr()], None),
    );
    let (r, bytes, _) = download(&c, &d);
    r.unwrap();
    assert!(bytes == data);
    assert_eq!(cdn.requests("/bucket/object?sig=abc").len(), 1);
    assert_eq!(cdn.all_requests().len(), 1);
    assert_eq!(cdn.requests("/")[0].header("authorization"), None);
    assert_eq!(
        registry
            .requests(&blob_path(&d.digest))
            .last()
            .unwrap()
            .header("authorization"),
        Some("Bearer tok123")
    );
}

#[test]
fn redirect_to_plain_http_needs_insecure() {
    let cdn = Server::start(|_, _| Reply::new(200).body(b"x"));
    let cdn_url = format!("http://{}/object", cdn.addr());
    let registry = Server::registry(move |_, _| Reply::new(302).header("Location", &cdn_url));
    let c = client(&registry, None);
    let err = c.fetch_blob_bytes(&desc(b"x")).unwrap_err();
    // What failed, and what to do about it.
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&format!(
            "refusing http://{}/object: not HTTPS (allow plain HTTP to this host with --insecure {})",
            cdn.addr(),
            cdn.addr()
        )),
        "{msg}"
    );
    assert!(cdn.requests("/object").is_empty());
}

#[test]
fn plain_http_is_refused_unless_insecure() {
    // Not listed: the client speaks TLS to the fake HTTP server, which fails.
    let server = Server::registry(|_, _| Reply::new(200).body(MANIFEST));
    let c = client_with(&server, &client_options(&[], None));
    let err = c.fetch_manifest("latest", None).unwrap_err();
    let msg = format!("{err:#}");
    match registry_error(&err) {
        RegistryError::Tls { host, .. } => assert_eq!(*host, server.addr()),
        e => panic!("expected a TLS error, got {e:?} ({msg})"),
    }
    // What failed, and the two ways out.
    assert!(
        msg.contains(&format!("TLS with {} failed", server.addr())),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "trust its CA with --ca FILE, or allow it with --insecure {}",
            server.addr()
        )),
        "{msg}"
    );
    // Never fell back to plain HTTP: no request was ever read.
    assert!(
        server.all_requests().is_empty(),
        "{:?}",
        server.all_requests()
    );
}
