//! Name resolution of the registry client (`wyrcan::registry::DnsMode`)
//! against a DNS server that answers one address family and refuses or
//! fails the other, as data-centre resolvers do (dnsmasq without
//! `--local=/domain/` refuses AAAA for a name it only knows as A). musl's
//! resolver fails the whole lookup then; Wyrcan's own asks each family
//! separately and uses whichever answers.
//!
//! The DNS server is a fake on 127.0.0.1 (UDP, a free port, given to the
//! client as `DnsMode::Servers`); the registry is the in-process fake of
//! `common/http.rs`, addressed as `registry.test:PORT`, a name only the
//! fake DNS server knows. Public API only; every wait is bounded.

mod common;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::client::client_options;
use common::connect_proxy::ConnectProxy;
use common::http::{Reply, Server};
use wyrcan::registry::{Client, DnsMode, FetchedManifest, ProxyUrl, PullOptions, RegistryError};
use wyrcan_core::reference::Reference;

const MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const NAME: &str = "registry.test";
/// The longest any test here may take to get its answer: a resolver that
/// waits for a timeout somewhere (2 s a try) would show.
const BOUND: Duration = Duration::from_secs(15);

/// Record types on the wire.
const A: u16 = 1;
const AAAA: u16 = 28;
/// Response codes.
const SERVFAIL: u8 = 2;
const NXDOMAIN: u8 = 3;
const REFUSED: u8 = 5;

/// What the fake server answers to `(name, type)`: addresses (none: no
/// records) or a response code.
type Policy = dyn Fn(&str, u16) -> Result<Vec<IpAddr>, u8> + Send + Sync;

/// A DNS server on a free 127.0.0.1 UDP port, answering by a [`Policy`];
/// logs every question. Stopped on drop.
struct FakeDns {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<(String, u16)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDns {
    fn start(
        policy: impl Fn(&str, u16) -> Result<Vec<IpAddr>, u8> + Send + Sync + 'static,
    ) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 (udp)");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let policy: Box<Policy> = Box::new(policy);
        let thread = {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::SeqCst) {
                    let (n, from) = match socket.recv_from(&mut buf) {
                        Ok(got) => got,
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) =>
                        {
                            continue
                        }
                        Err(_) => continue,
                    };
                    if let Some((name, qtype, out)) = respond(&buf[..n], &*policy) {
                        log.lock().unwrap().push((name, qtype));
                        let _ = socket.send_to(&out, from);
                    }
                }
            })
        };
        FakeDns {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// Every question so far, in arrival order.
    fn questions(&self) -> Vec<(String, u16)> {
        self.log.lock().unwrap().clone()
    }

    /// This server alone, for the client.
    fn mode(&self) -> DnsMode {
        DnsMode::Servers(vec![self.addr])
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The name in a query's question (uncompressed labels from byte 12) and
/// the end of it.
fn question_name(q: &[u8]) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    let mut pos = 12;
    loop {
        let len = usize::from(*q.get(pos)?);
        if len == 0 {
            return Some((labels.join("."), pos + 1));
        }
        let label = q.get(pos + 1..pos + 1 + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += 1 + len;
    }
}

/// The response to the query `q`: its header and question, then the
/// answer the policy gives (each address a record whose owner points to
/// the question's name).
fn respond(q: &[u8], policy: &Policy) -> Option<(String, u16, Vec<u8>)> {
    let (name, end) = question_name(q)?;
    let fixed = q.get(end..end + 4)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let mut m = q[..end + 4].to_vec();
    // QR, RD copied, RA; no other section than the question yet.
    m[2] = 0x80 | (q[2] & 0x01);
    m[6..12].fill(0);
    match policy(&name, qtype) {
        Ok(addrs) => {
            m[3] = 0x80;
            for ip in addrs {
                let data = match ip {
                    IpAddr::V4(a) => a.octets().to_vec(),
                    IpAddr::V6(a) => a.octets().to_vec(),
                };
                m[7] += 1;
                m.extend_from_slice(&[0xc0, 12]);
                m.extend_from_slice(&qtype.to_be_bytes());
                m.extend_from_slice(&[0, 1, 0, 0, 0, 60, 0, data.len() as u8]);
                m.extend_from_slice(&data);
            }
        }
        Err(rcode) => m[3] = 0x80 | rcode,
    }
    Some((name, qtype, m))
}

fn loopback() -> Vec<IpAddr> {
    vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
}

/// `registry.test`'s A is 127.0.0.1, its AAAA gets `aaaa`; any other name
/// does not exist.
fn a_only(aaaa: u8) -> impl Fn(&str, u16) -> Result<Vec<IpAddr>, u8> + Send + Sync + 'static {
    move |name, qtype| match (name, qtype) {
        (NAME, A) => Ok(loopback()),
        (NAME, _) => Err(aaaa),
        _ => Err(NXDOMAIN),
    }
}

/// A fake registry serving one manifest.
fn registry() -> Server {
    Server::registry(|req, _| {
        if req.path.starts_with("/v2/test/img/manifests/") {
            Reply::new(200)
                .header("Content-Type", OCI_MANIFEST)
                .body(MANIFEST)
        } else {
            Reply::new(404)
        }
    })
}

fn port(server: &Server) -> u16 {
    server.addr().rsplit_once(':').unwrap().1.parse().unwrap()
}

/// Options for `HOST:PORT` of `server` (plain HTTP allowed there), asking `dns`.
fn options(host: &str, server: &Server, dns: DnsMode) -> PullOptions {
    let authority = format!("{host}:{}", port(server));
    PullOptions {
        dns,
        retries: 0,
        ..client_options(&[&authority], None)
    }
}

/// `HOST:PORT/test/img:latest`'s manifest, with `opts`, in bounded time.
fn fetch(host: &str, server: &Server, opts: &PullOptions) -> anyhow::Result<FetchedManifest> {
    let r: Reference = format!("{host}:{}/test/img:latest", port(server))
        .parse()
        .unwrap();
    let start = Instant::now();
    let got = Client::new(&r, opts).and_then(|c| c.fetch_manifest("latest", None));
    assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
    got
}

#[test]
fn an_aaaa_refused_or_failed_does_not_fail_the_lookup() {
    for (rcode, what) in [(REFUSED, "REFUSED"), (SERVFAIL, "SERVFAIL")] {
        let dns = FakeDns::start(a_only(rcode));
        let reg = registry();
        let m = fetch(NAME, &reg, &options(NAME, &reg, dns.mode()))
            .unwrap_or_else(|e| panic!("AAAA {what}: {e:#}"));
        assert_eq!(m.body, MANIFEST);
        let q = dns.questions();
        // Both families were asked, separately, and only for the name.
        assert!(q.contains(&(NAME.to_string(), A)), "{q:?}");
        assert!(q.contains(&(NAME.to_string(), AAAA)), "{q:?}");
        assert!(q.iter().all(|(n, _)| n == NAME), "{q:?}");
        assert!(!reg.requests("/v2/test/img/manifests/").is_empty());
    }
}

#[test]
fn a_failing_server_passes_both_families_to_the_next() {
    // A NODATA AAAA (the usual answer for an IPv4-only name) beside a
    // SERVFAIL A from the first server: the second server's A counts.
    let failing = FakeDns::start(|_, _| Err(SERVFAIL));
    let good = FakeDns::start(|name, qtype| match (name, qtype) {
        (NAME, A) => Ok(loopback()),
        (NAME, _) => Ok(Vec::new()),
        _ => Err(NXDOMAIN),
    });
    let reg = registry();
    let dns = DnsMode::Servers(vec![failing.addr, good.addr]);
    let m = fetch(NAME, &reg, &options(NAME, &reg, dns)).unwrap();
    assert_eq!(m.body, MANIFEST);
    assert!(good.questions().contains(&(NAME.to_string(), A)));
}

#[test]
fn both_families_refused_is_an_error_that_names_both_answers() {
    let dns = FakeDns::start(|_, _| Err(REFUSED));
    let reg = registry();
    let err = fetch(NAME, &reg, &options(NAME, &reg, dns.mode())).unwrap_err();
    let server = dns.addr;
    let want = format!("{NAME}: A: REFUSED from {server}; AAAA: REFUSED from {server}");
    match RegistryError::find(&err) {
        Some(RegistryError::Resolve { host, detail, .. }) => {
            assert_eq!(host, NAME);
            assert_eq!(detail, &want);
        }
        other => panic!("not a Resolve error: {other:?} in {err:#}"),
    }
    let shown = format!("{err:#}");
    assert!(
        shown.contains(&format!("cannot resolve {NAME} ({want})")),
        "{shown}"
    );
    // A refusal is an answer: not worth trying the whole pull again.
    assert!(!wyrcan::registry::worth_retrying(&err), "{shown}");
    assert!(reg.all_requests().is_empty());

    // NXDOMAIN for one family and REFUSED for the other: both named.
    let dns = FakeDns::start(|_, qtype| Err(if qtype == A { NXDOMAIN } else { REFUSED }));
    let err = fetch(NAME, &reg, &options(NAME, &reg, dns.mode())).unwrap_err();
    let shown = format!("{err:#}");
    let server = dns.addr;
    assert!(
        shown.contains(&format!(
            "{NAME}: A: NXDOMAIN from {server}; AAAA: REFUSED from {server}"
        )),
        "{shown}"
    );
}

#[test]
fn etc_hosts_and_localhost_come_before_dns() {
    // A server that refuses everything is never asked for localhost.
    let dns = FakeDns::start(|_, _| Err(REFUSED));
    let reg = registry();
    for mode in [dns.mode(), DnsMode::Own] {
        let m = fetch("localhost", &reg, &options("localhost", &reg, mode.clone()))
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
        assert_eq!(m.body, MANIFEST);
    }
    assert!(dns.questions().is_empty(), "{:?}", dns.questions());
    // The system's resolver, as on hosts.
    let m = fetch(
        "localhost",
        &reg,
        &options("localhost", &reg, DnsMode::System),
    )
    .unwrap();
    assert_eq!(m.body, MANIFEST);
}

#[test]
fn the_proxy_name_goes_through_the_same_resolver() {
    // The proxy is `proxy.test`, a name only the fake DNS server knows
    // (A only, AAAA refused); it resolves `registry.test` itself.
    let dns = FakeDns::start(|name, qtype| match (name, qtype) {
        ("proxy.test", A) => Ok(loopback()),
        ("proxy.test", _) => Err(REFUSED),
        _ => Err(NXDOMAIN),
    });
    let proxy = ConnectProxy::start(&[NAME]);
    let proxy_port = proxy.addr().rsplit_once(':').unwrap().1.to_string();
    let proxy_url = ProxyUrl::parse(&format!("http://proxy.test:{proxy_port}")).unwrap();
    let reg = registry();

    // Plain HTTP: absolute-form requests to the proxy.
    let opts = PullOptions {
        proxy: Some(proxy_url.clone()),
        ..options(NAME, &reg, dns.mode())
    };
    let m = fetch(NAME, &reg, &opts).unwrap();
    assert_eq!(m.body, MANIFEST);
    let target = format!("http://{NAME}:{}/v2/test/img/manifests/latest", port(&reg));
    assert!(
        proxy
            .seen()
            .iter()
            .any(|s| s.method == "GET" && s.target == target),
        "{:?}",
        proxy.seen()
    );

    // HTTPS: ureq's CONNECT tunnel. The registry speaks plain HTTP, so
    // TLS fails — after the tunnel to it was up.
    let opts = PullOptions {
        proxy: Some(proxy_url),
        ..client_options(&[], None)
    };
    let opts = PullOptions {
        dns: dns.mode(),
        retries: 0,
        ..opts
    };
    let err = fetch(NAME, &reg, &opts).unwrap_err();
    assert!(
        matches!(RegistryError::find(&err), Some(RegistryError::Tls { .. })),
        "{err:#}"
    );
    let tunnel = format!("{NAME}:{}", port(&reg));
    assert!(
        proxy
            .seen()
            .iter()
            .any(|s| s.method == "CONNECT" && s.target == tunnel && s.status == 200),
        "{:?}",
        proxy.seen()
    );
    // The registry's name was never looked up here: the proxy resolves it.
    let q = dns.questions();
    assert!(q.iter().all(|(n, _)| n == "proxy.test"), "{q:?}");

    // A proxy name that does not resolve is named, with both answers.
    let refusing = FakeDns::start(|_, _| Err(REFUSED));
    let opts = PullOptions {
        dns: refusing.mode(),
        ..opts
    };
    let err = fetch(NAME, &reg, &opts).unwrap_err();
    let shown = format!("{err:#}");
    let server = refusing.addr;
    assert!(
        matches!(
            RegistryError::find(&err),
            Some(RegistryError::ProxyConnect { .. })
        ) && shown.contains(&format!(
            "its host name does not resolve: proxy.test: A: REFUSED from {server}; AAAA: REFUSED from {server}"
        )),
        "{shown}"
    );
}
