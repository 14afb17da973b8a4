//! The client against an in-process HTTP/1.1 server on 127.0.0.1 that
//! drips its answers: a registry too slow to be of use must end in an error
//! that says so, within the retries, and a blob cut for slowness must
//! resume. The limits are shortened (`PullOptions`) so each test takes a
//! few seconds; assertions are about outcomes, never about timings (the
//! watchdog is only a safety net).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wyrcan_core::digest::Digest;
use wyrcan_core::manifest::Descriptor;
use wyrcan_core::reference::Reference;

use super::transport::lock;
use super::{Client, CredentialSource, PullOptions};

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Req {
    path: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `N` of `Range: bytes=N-`.
    fn range_start(&self) -> Option<u64> {
        self.header("range")?
            .strip_prefix("bytes=")?
            .trim_end_matches('-')
            .parse()
            .ok()
    }
}

/// How the server answers one request.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Body bytes sent at once; the rest goes one byte per `drip`.
    fast: usize,
    drip: Duration,
    /// Drip the status line and headers too.
    drip_head: bool,
}

impl Reply {
    fn new(status: u16, body: &[u8]) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_vec(),
            fast: body.len(),
            drip: Duration::from_millis(50),
            drip_head: false,
        }
    }

    fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    /// Send the first `fast` bytes at once, then one byte every 50 ms.
    fn drip_after(mut self, fast: usize) -> Reply {
        self.fast = fast.min(self.body.len());
        self
    }
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

/// No test needs more connections; a runaway client cannot spin forever.
const MAX_CONNECTIONS: usize = 64;
/// No connection is served for longer, whatever the client does.
const MAX_CONNECTION_TIME: Duration = Duration::from_secs(60);

/// The server: one thread per connection, all stopped and joined on drop.
/// `/v2/` answers 200 at once (the client's plain-HTTP probe).
struct DripServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl DripServer {
    fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> DripServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let accept = {
            let (log, stop, conns) = (log.clone(), stop.clone(), conns.clone());
            std::thread::spawn(move || {
                for _ in 0..MAX_CONNECTIONS {
                    let Ok((stream, _)) = listener.accept() else {
                        return;
                    };
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let (log, stop, handler) = (log.clone(), stop.clone(), handler.clone());
                    let t = std::thread::spawn(move || serve(stream, &*handler, &log, &stop));
                    lock(&conns).push(t);
                }
            })
        };
        DripServer {
            addr,
            log,
            stop,
            accept: Some(accept),
            conns,
        }
    }

    fn authority(&self) -> String {
        self.addr.to_string()
    }

    fn requests(&self, prefix: &str) -> Vec<Req> {
        lock(&self.log)
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

impl Drop for DripServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so its thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for t in std::mem::take(&mut *lock(&self.conns)) {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Req>>, stop: &AtomicBool) {
    let started = Instant::now();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = Vec::new();
    for _ in 0..100 {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let req = Req { path, headers };
    lock(log).push(req.clone());
    let reply = if req.path == "/v2/" {
        Reply::new(200, b"{}")
    } else {
        handler(&req)
    };
    let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    let mut out = stream;
    let (fast, slow): (Vec<u8>, Vec<u8>) = if reply.drip_head {
        (Vec::new(), [head.into_bytes(), reply.body].concat())
    } else {
        let mut all = head.into_bytes();
        let cut = all.len() + reply.fast;
        all.extend_from_slice(&reply.body);
        let slow = all.split_off(cut);
        (all, slow)
    };
    if out.write_all(&fast).and_then(|()| out.flush()).is_err() {
        return;
    }
    // Bounded by the body's length, the stop flag and MAX_CONNECTION_TIME;
    // a client that hung up ends it at the next write.
    for b in slow {
        if stop.load(Ordering::SeqCst) || started.elapsed() > MAX_CONNECTION_TIME {
            return;
        }
        std::thread::sleep(reply.drip);
        if out.write_all(&[b]).and_then(|()| out.flush()).is_err() {
            return;
        }
    }
    let _ = out.shutdown(std::net::Shutdown::Both);
}

/// Runs `f` on its own thread; fails the test if it has not finished
/// after `limit` (a safety net far above what the test needs).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
}

const WATCHDOG: Duration = Duration::from_secs(120);

/// Floor 1 KiB/s over 0.5 s windows, 2 s deadlines, 3 attempts.
fn opts(server: &DripServer) -> PullOptions {
    PullOptions {
        insecure: vec![server.authority()],
        system_roots: false,
        credentials: CredentialSource::Anonymous,
        proxy_env: false,
        retries: 2,
        backoff: Duration::from_millis(1),
        min_rate: 1 << 10,
        rate_window: Duration::from_millis(500),
        request_deadline: Duration::from_secs(2),
        blob_deadline: Duration::from_secs(2),
        deadline_rate: 1 << 20,
        ..PullOptions::default()
    }
}

fn client(server: &DripServer, opts: &PullOptions) -> Client {
    let r: Reference = format!("{}/test/img:latest", server.authority())
        .parse()
        .unwrap();
    Client::new(&r, opts).unwrap()
}

/// Deterministic bytes that do not repeat with a short period.
fn blob(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
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

/// Download `d` from `server`; the result and the file's bytes.
fn download(server: &DripServer, o: &PullOptions, d: &Descriptor) -> (anyhow::Result<()>, Vec<u8>) {
    let c = client(server, o);
    let d = d.clone();
    within(WATCHDOG, move || {
        let mut f = tempfile::tempfile().unwrap();
        let res = c.download_blob(&d, &mut f, &|_| {});
        use std::io::{Read as _, Seek as _};
        f.rewind().unwrap();
        let mut got = Vec::new();
        f.read_to_end(&mut got).unwrap();
        (res, got)
    })
}

const MANIFEST: &str = "/v2/test/img/manifests/latest";

fn fetch_manifest(server: &DripServer, o: &PullOptions) -> String {
    let c = client(server, o);
    let e = within(WATCHDOG, move || c.fetch_manifest("latest", None)).unwrap_err();
    eprintln!("{e:#}");
    format!("{e:#}")
}

#[test]
fn a_dripping_manifest_ends_in_an_error_that_says_what_to_check() {
    let body = vec![b' '; 4 << 10];
    // The body, one byte every 50 ms: 20 B/s.
    let server = DripServer::start(move |_| {
        Reply::new(200, &body)
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .drip_after(10)
    });
    let e = fetch_manifest(&server, &opts(&server));
    let url = format!("http://{}{MANIFEST}", server.authority());
    assert!(
        e.contains(&format!(
            "fetching manifest {}/test/img:latest",
            server.authority()
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
    let server = DripServer::start(|_| {
        let mut r = Reply::new(200, b"{}");
        r.drip_head = true;
        r
    });
    let e = fetch_manifest(&server, &opts(&server));
    assert!(e.contains("sent no complete response headers"), "{e}");
    assert!(e.contains("check the network or the registry"), "{e}");
    assert_eq!(server.requests(MANIFEST).len(), 3);
}

#[test]
fn a_manifest_above_the_floor_but_past_its_deadline_is_cut() {
    // 1 KiB at once, then a byte every 50 ms: 16 KiB of it would take
    // minutes, the floor is met in the first window only.
    let body = vec![b' '; 16 << 10];
    let server = DripServer::start(move |_| Reply::new(200, &body).drip_after(1 << 10));
    let o = PullOptions {
        // A floor the drip meets, and a window long enough that even a
        // starved server thread sends something in each: only the
        // deadline can end it.
        min_rate: 1,
        rate_window: Duration::from_millis(1500),
        retries: 1,
        ..opts(&server)
    };
    let e = fetch_manifest(&server, &o);
    assert!(
        e.contains("not complete within the 2.0 s deadline of a request"),
        "{e}"
    );
    assert!(e.contains("check the network or the registry"), "{e}");
    assert!(e.contains("giving up after 2 attempts"), "{e}");
}

#[test]
fn a_blob_cut_for_slowness_resumes_with_range_and_succeeds() {
    let data = blob(64 << 10);
    let d = desc(&data);
    let path = format!("/v2/test/img/blobs/{}", d.digest);
    let served = data.clone();
    let server = DripServer::start(move |req| match req.range_start() {
        // First: 16 KiB at once, then a drip.
        None => Reply::new(200, &served).drip_after(16 << 10),
        // Then a good server, from where the client stopped.
        Some(start) => {
            let start = start as usize;
            Reply::new(206, &served[start..]).header(
                "Content-Range",
                &format!("bytes {start}-{}/{}", served.len() - 1, served.len()),
            )
        }
    });
    let (res, got) = download(&server, &opts(&server), &d);
    res.unwrap();
    assert!(got == data, "the file holds the blob");
    let reqs = server.requests(&path);
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let resumed = reqs[1].range_start().expect("the second request resumes");
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
    let server = DripServer::start(move |req| {
        let start = req.range_start().unwrap_or(0) as usize;
        Reply::new(206, &served[start..])
            .header(
                "Content-Range",
                &format!("bytes {start}-{}/{}", served.len() - 1, served.len()),
            )
            .drip_after(1 << 10)
    });
    let (res, _) = download(&server, &opts(&server), &d);
    let e = format!("{:#}", res.unwrap_err());
    eprintln!("{e}");
    assert!(e.contains(&format!("downloading blob {}", d.digest)), "{e}");
    assert!(e.contains("giving up after 3 attempts"), "{e}");
    assert!(e.contains("slower than the 1.0 KiB/s floor"), "{e}");
    assert!(e.contains("check the network or the registry"), "{e}");
    let reqs = server.requests(&path);
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    // Each attempt resumed where the previous one stopped.
    assert!(reqs[1].range_start() > Some(0) && reqs[2].range_start() > reqs[1].range_start());
}
