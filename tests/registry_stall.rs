//! The registry client (`wyrcan::registry::Client`, public API only)
//! against the fake registry of `common/http.rs` dripping its answers: a
//! registry too slow to be of use must end in an error that says so,
//! within the retries, and a blob cut for slowness must resume. The limits
//! are shortened (`PullOptions`) so each test takes a few seconds;
//! assertions are about outcomes, never about timings (the watchdog is only
//! a safety net). Everything listens on 127.0.0.1.

mod common;

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::sync::mpsc;
use std::time::Duration;

use common::client::client_options;
use common::http::{Reply, Request, Server};
use common::image::noise;
use wyrcan::registry::{worth_retrying, Client, PullOptions, RegistryError};
use wyrcan_core::digest::Digest;
use wyrcan_core::manifest::Descriptor;
use wyrcan_core::reference::Reference;

const MANIFEST: &str = "/v2/test/img/manifests/latest";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// No test may run longer: a safety net far above what each needs.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Runs `f` on its own thread; fails the test if it has not finished
/// after `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
}

/// The hermetic test options (plain HTTP to `server`, anonymous, 3
/// attempts 1 ms apart) with short limits: a floor of 1 KiB/s over 0.5 s
/// windows, 2 s deadlines (a blob's grows by 1 s per MiB).
fn opts(server: &Server) -> PullOptions {
    PullOptions {
        min_rate: 1 << 10,
        rate_window: Duration::from_millis(500),
        request_deadline: Duration::from_secs(2),
        blob_deadline: Duration::from_secs(2),
        deadline_rate: 1 << 20,
        ..client_options(&[&server.addr()], None)
    }
}

/// A client for `SERVER/test/img:latest` with these options.
fn client(server: &Server, opts: &PullOptions) -> Client {
    let r: Reference = format!("{}/test/img:latest", server.addr())
        .parse()
        .unwrap();
    Client::new(&r, opts).unwrap()
}

/// Deterministic bytes that do not repeat with a short period.
fn blob(n: usize) -> Vec<u8> {
    noise(n, 0x1234_5678)
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

/// `N` of `Range: bytes=N-`.
fn range_start(req: &Request) -> Option<u64> {
    req.header("range")?
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

/// A 206 answer with `data[start..]` and its `Content-Range`.
fn partial(data: &[u8], start: usize) -> Reply {
    Reply::new(206).body(&data[start..]).header(
        "Content-Range",
        &format!("bytes {start}-{}/{}", data.len() - 1, data.len()),
    )
}

/// Downloads `d` from `server` under the watchdog; the result and the
/// file's bytes.
fn download(server: &Server, o: &PullOptions, d: &Descriptor) -> (anyhow::Result<()>, Vec<u8>) {
    let c = client(server, o);
    let d = d.clone();
    within(WATCHDOG, move || {
        let mut f = tempfile::tempfile().unwrap();
        let res = c.download_blob(&d, &mut f, false, &|_| {});
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut got = Vec::new();
        f.read_to_end(&mut got).unwrap();
        (res, got)
    })
}

/// Fetches the manifest `latest` from `server` under the watchdog; the
/// error it must end in.
fn fetch_manifest_error(server: &Server, o: &PullOptions) -> anyhow::Error {
    let c = client(server, o);
    let e = within(WATCHDOG, move || c.fetch_manifest("latest", None)).unwrap_err();
    eprintln!("{e:#}");
    e
}

/// Checks that `e` is a cut for slowness of `url` (so not worth retrying
/// the whole operation), and returns its text with the whole chain.
fn stalled(e: &anyhow::Error, url: &str) -> String {
    let text = format!("{e:#}");
    match RegistryError::find(e) {
        Some(RegistryError::Stalled { url: u, .. }) => assert_eq!(u, url, "{text}"),
        other => panic!("not a Stalled error: {other:?} in {text}"),
    }
    assert!(!worth_retrying(e), "{text}");
    text
}

#[test]
fn a_dripping_manifest_ends_in_an_error_that_says_what_to_check() {
    let body = vec![b' '; 4 << 10];
    // The body, one byte every 50 ms: 20 B/s.
    let server = Server::registry(move |_, _| {
        Reply::new(200)
            .body(&body)
            .header("Content-Type", OCI_MANIFEST)
            .drip_after(10)
    });
    let url = format!("http://{}{MANIFEST}", server.addr());
    let e = stalled(&fetch_manifest_error(&server, &opts(&server)), &url);
    assert!(
        e.contains(&format!(
            "fetching manifest {}/test/img:latest",
            server.addr()
        )),
        "{e}"
    );
    assert!(e.contains(&url), "{e}");
    assert!(e.contains("slower than the 1.0 KiB/s floor"), "{e}");
    assert!(e.contains("check the network or the registry"), "{e}");
    assert!(e.contains("giving up after 3 attempts"), "{e}");
    assert_eq!(server.requests(MANIFEST).len(), 3);
}

#[test]
fn dripping_headers_are_cut_too() {
    // The status line, the header fields and the body, one byte every 50 ms.
    let server = Server::registry(|_, _| Reply::new(200).body(b"{}").drip_head().drip_after(0));
    let url = format!("http://{}{MANIFEST}", server.addr());
    let e = stalled(&fetch_manifest_error(&server, &opts(&server)), &url);
    assert!(e.contains("sent no complete response headers"), "{e}");
    assert!(e.contains("check the network or the registry"), "{e}");
    assert!(e.contains("giving up after 3 attempts"), "{e}");
    assert_eq!(server.requests(MANIFEST).len(), 3);
}

#[test]
fn a_manifest_above_the_floor_but_past_its_deadline_is_cut() {
    // 1 KiB at once, then a byte every 50 ms: 16 KiB of it would take
    // minutes, the floor is met in the first window only.
    let body = vec![b' '; 16 << 10];
    let server = Server::registry(move |_, _| Reply::new(200).body(&body).drip_after(1 << 10));
    let o = PullOptions {
        // A floor the drip meets, and a window long enough that even a
        // starved server thread sends something in each: only the
        // deadline can end it.
        min_rate: 1,
        rate_window: Duration::from_millis(1500),
        retries: 1,
        ..opts(&server)
    };
    let url = format!("http://{}{MANIFEST}", server.addr());
    let e = stalled(&fetch_manifest_error(&server, &o), &url);
    assert!(
        e.contains("not complete within the 2.0 s deadline of a request"),
        "{e}"
    );
    assert!(e.contains("check the network or the registry"), "{e}");
    assert!(e.contains("giving up after 2 attempts"), "{e}");
    assert_eq!(server.requests(MANIFEST).len(), 2);
}

#[test]
fn a_blob_cut_for_slowness_resumes_with_range_and_succeeds() {
    let data = blob(64 << 10);
    let d = desc(&data);
    let path = format!("/v2/test/img/blobs/{}", d.digest);
    let served = data.clone();
    let server = Server::registry(move |req, _| match range_start(req) {
        // First: 16 KiB at once, then a drip.
        None => Reply::new(200).body(&served).drip_after(16 << 10),
        // Then a good server, from where the client stopped.
        Some(start) => partial(&served, start as usize),
    });
    let (res, got) = download(&server, &opts(&server), &d);
    res.unwrap();
    assert!(got == data, "the file holds the blob");
    let reqs = server.requests(&path);
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].header("range"), None, "{reqs:?}");
    let resumed = range_start(&reqs[1]).expect("the second request resumes");
    assert!(resumed >= 16 << 10, "resumed from {resumed}");
}

#[test]
fn a_blob_that_keeps_dripping_fails_after_the_retries() {
    let data = blob(64 << 10);
    let d = desc(&data);
    let path = format!("/v2/test/img/blobs/{}", d.digest);
    let served = data.clone();
    // Every attempt makes progress (1 KiB at once), then drips: without
    // counting cuts against the retries this would resume 32 times.
    let server = Server::registry(move |req, _| {
        let start = range_start(req).unwrap_or(0) as usize;
        partial(&served, start).drip_after(1 << 10)
    });
    let (res, _) = download(&server, &opts(&server), &d);
    let url = format!("http://{}{path}", server.addr());
    let e = stalled(&res.unwrap_err(), &url);
    eprintln!("{e}");
    assert!(e.contains(&format!("downloading blob {}", d.digest)), "{e}");
    assert!(e.contains("giving up after 3 attempts"), "{e}");
    assert!(e.contains("slower than the 1.0 KiB/s floor"), "{e}");
    assert!(e.contains("check the network or the registry"), "{e}");
    let reqs = server.requests(&path);
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    // Each attempt resumed where the previous one stopped.
    assert!(
        range_start(&reqs[1]) > Some(0) && range_start(&reqs[2]) > range_start(&reqs[1]),
        "{reqs:?}"
    );
}
