//! A forward HTTP proxy on 127.0.0.1, the kind a site puts between its
//! machines and registries: `CONNECT host:port` tunnels (HTTPS) and
//! absolute-form requests (`GET http://host:port/path`, plain HTTP)
//! forwarded upstream, optional HTTP Basic proxy auth (407 without it), a
//! log of every request.
//!
//! Like a real proxy it resolves the names it is asked for, here from a
//! list the test gives (`registry.test`): each maps to 127.0.0.1, with the
//! port of the request. Any other target but a loopback address is refused
//! with 502: the proxy never looks a name up and connects to loopback only,
//! so a registry addressed as `registry.test:PORT` is reachable through it
//! and nowhere else.
//!
//! Requests are parsed by `common::http::read_request`; one request per
//! client connection (answers say `Connection: close`; a tunnel carries
//! whatever the client sends until either side closes). At most
//! [`http::MAX_CONNECTIONS`] connections in its life, every socket with
//! [`http::IO_TIMEOUT`]; stopped on drop (also when the test panics), open
//! tunnels cut.

use std::io::{self, BufReader, Write as _};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;

use super::http::{self, Reply, Request};

/// The largest upstream answer to an absolute-form request forwarded.
const MAX_RESPONSE: u64 = 256 << 20;

/// One request the proxy saw, and its answer.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `CONNECT`, `GET`, …
    pub method: String,
    /// The request target as sent: `host:port` for `CONNECT`,
    /// `http://host:port/path` in absolute form.
    pub target: String,
    /// The `Proxy-Authorization` header, if sent.
    pub proxy_authorization: Option<String>,
    /// The `Host` header, if sent.
    pub host: Option<String>,
    /// What the proxy answered: 200 (tunnel up, or the upstream's status),
    /// 400, 407 or 502.
    pub status: u16,
}

struct Shared {
    names: Vec<String>,
    /// `Basic base64(user:pass)`, when auth is required.
    auth: Option<String>,
    log: Mutex<Vec<Seen>>,
    /// Every socket of the connections, to cut them on drop.
    sockets: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

/// A running proxy.
pub struct ConnectProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ConnectProxy {
    /// A proxy without auth that resolves `names` to 127.0.0.1.
    pub fn start(names: &[&str]) -> ConnectProxy {
        ConnectProxy::launch(names, None)
    }

    /// A proxy that requires `Proxy-Authorization: Basic` for `user`/`pass`.
    pub fn with_auth(names: &[&str], user: &str, pass: &str) -> ConnectProxy {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        ConnectProxy::launch(names, Some(format!("Basic {token}")))
    }

    fn launch(names: &[&str], auth: Option<String>) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        let shared = Arc::new(Shared {
            names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
            auth,
            log: Mutex::new(Vec::new()),
            sockets: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut workers = Vec::new();
                for _ in 0..http::MAX_CONNECTIONS {
                    let Ok((stream, _)) = listener.accept() else {
                        break;
                    };
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(s) = stream.try_clone() {
                        lock(&shared.sockets).push(s);
                    }
                    let shared = shared.clone();
                    workers.push(std::thread::spawn(move || {
                        let _ = serve(stream, &shared);
                    }));
                }
                for w in workers {
                    let _ = w.join();
                }
            })
        };
        ConnectProxy {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://USER:PASS@127.0.0.1:PORT` (user and password as given:
    /// percent-encode them first if they need it).
    pub fn url_with(&self, user: &str, pass: &str) -> String {
        format!("http://{user}:{pass}@{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.log).clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Cut open tunnels and waiting reads, then wake the accept.
        for s in lock(&self.shared.sockets).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where `authority` (`host:port`) goes: 127.0.0.1 for a listed name, a
/// loopback address as is; `None` for anything else.
fn resolve(shared: &Shared, authority: &str, default_port: u16) -> Option<SocketAddr> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (host, p.parse().ok()?),
            None => (host, default_port),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (authority, default_port),
        }
    };
    let ip = if shared.names.iter().any(|n| n.eq_ignore_ascii_case(host)) {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse::<IpAddr>().ok().filter(IpAddr::is_loopback)?
    };
    Some(SocketAddr::new(ip, port))
}

fn connect(shared: &Shared, to: SocketAddr) -> io::Result<TcpStream> {
    assert!(
        to.ip().is_loopback(),
        "the test proxy only reaches loopback"
    );
    let up = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
    up.set_read_timeout(Some(http::IO_TIMEOUT))?;
    up.set_write_timeout(Some(http::IO_TIMEOUT))?;
    if let Ok(s) = up.try_clone() {
        lock(&shared.sockets).push(s);
    }
    Ok(up)
}

fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(http::IO_TIMEOUT))?;
    stream.set_write_timeout(Some(http::IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let req = match http::read_request(&mut reader, http::MAX_REQUEST_BODY) {
        Ok(Some(req)) => req,
        Ok(None) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Reply::new(400).write_to(&mut out);
        }
        Err(e) => return Err(e),
    };
    let log = |status: u16| {
        lock(&shared.log).push(Seen {
            method: req.method.clone(),
            target: req.path.clone(),
            proxy_authorization: req.header("proxy-authorization").map(str::to_string),
            host: req.header("host").map(str::to_string),
            status,
        })
    };
    if let Some(want) = &shared.auth {
        if req.header("proxy-authorization") != Some(want.as_str()) {
            log(407);
            return Reply::new(407)
                .header("Proxy-Authenticate", "Basic realm=\"wyrcan-test-proxy\"")
                .write_to(&mut out);
        }
    }
    if req.method == "CONNECT" {
        let Some(to) = resolve(shared, &req.path, 443) else {
            log(502);
            return Reply::new(502).write_to(&mut out);
        };
        let up = match connect(shared, to) {
            Ok(up) => up,
            Err(_) => {
                log(502);
                return Reply::new(502).write_to(&mut out);
            }
        };
        log(200);
        out.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        return tunnel(reader, out, up);
    }
    let Some(rest) = req.path.strip_prefix("http://") else {
        // Origin-form (`GET /v2/`) is for servers, not proxies.
        log(400);
        return Reply::new(400)
            .body(b"this is a proxy: absolute-form or CONNECT only\n")
            .write_to(&mut out);
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let answer = resolve(shared, authority, 80)
        .ok_or_else(|| io::Error::other("not a known host"))
        .and_then(|to| forward(shared, &req, path, to));
    match answer {
        Ok(resp) => {
            log(resp.status);
            let mut reply = Reply::new(resp.status);
            reply.headers = resp.headers;
            reply.body = resp.body;
            reply.write_to(&mut out)
        }
        Err(_) => {
            log(502);
            Reply::new(502).write_to(&mut out)
        }
    }
}

/// Sends `req` to `to` in origin form (`path`), without the proxy's own
/// headers, and reads the whole answer.
fn forward(
    shared: &Shared,
    req: &Request,
    path: &str,
    to: SocketAddr,
) -> io::Result<http::Response> {
    let mut up = connect(shared, to)?;
    let origin_form = Request {
        path: path.to_string(),
        ..req.clone()
    };
    let head = origin_form.head(
        |k| k == "connection" || k == "keep-alive" || k.starts_with("proxy-"),
        &["Connection: close"],
    );
    up.write_all(head.as_bytes())?;
    up.write_all(&req.body)?;
    up.flush()?;
    http::read_response(&mut BufReader::new(up), MAX_RESPONSE)
}

/// Copies bytes both ways until each side has closed its half (or a read
/// times out).
fn tunnel(
    mut from_client: BufReader<TcpStream>,
    to_client: TcpStream,
    up: TcpStream,
) -> io::Result<()> {
    let mut up_read = up.try_clone()?;
    let mut to_client_w = to_client;
    let down = std::thread::spawn(move || {
        let _ = io::copy(&mut up_read, &mut to_client_w);
        let _ = to_client_w.shutdown(Shutdown::Write);
    });
    let mut up_write = up;
    // The BufReader hands over what it buffered first.
    let _ = io::copy(&mut from_client, &mut up_write);
    let _ = up_write.shutdown(Shutdown::Write);
    let _ = down.join();
    Ok(())
}
