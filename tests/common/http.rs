//! The one HTTP/1.1 parser and in-process server of the tests.
//!
//! [`read_request`] parses a request (the fake registries and the lying
//! proxy use it), [`read_response`] an upstream answer (the proxy). A
//! [`Server`] listens on 127.0.0.1 only, answers one request per connection
//! (`Connection: close`) from a handler closure — or 400 to bytes that are
//! not HTTP, like a real server —, logs every request, serves
//! at most [`MAX_CONNECTIONS`] connections in its life, and is stopped on
//! drop (also when the test panics). A [`Reply`] may be cut short
//! ([`Reply::cut_at`]) or sent slowly, a byte at a time
//! ([`Reply::drip_after`], [`Reply::drip_head`]): a registry that drips.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The most connections a server accepts in its life: no test needs more,
/// and it stops a runaway client from looping forever.
pub const MAX_CONNECTIONS: usize = 400;
/// Read and write timeout of every connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The most header lines read from a request or response head.
const MAX_HEADER_LINES: usize = 200;
/// The largest request body accepted.
pub const MAX_REQUEST_BODY: usize = 64 << 20;
/// The default pause before each dripped byte ([`Reply::drip_every`]).
pub const DRIP: Duration = Duration::from_millis(50);
/// The longest an answer drips: then the connection is closed, whatever is
/// left unsent (a bound far above what any test waits for).
pub const MAX_DRIP_TIME: Duration = Duration::from_secs(60);

/// A request as the server read it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The request target as sent: path and query (`/v2/x/blobs/sha256:…`).
    pub path: String,
    /// `HTTP/1.1` (or whatever the client wrote).
    pub version: String,
    /// The header fields, in order, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (by `Content-Length`; chunked request bodies are refused).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The request head as it goes on the wire, without the header fields
    /// `drop` selects (names compared lowercased), plus `extra` lines
    /// (`Name: value`), ending in the blank line.
    pub fn head(&self, drop: impl Fn(&str) -> bool, extra: &[&str]) -> String {
        let mut out = format!("{} {} {}\r\n", self.method, self.path, self.version);
        for (k, v) in &self.headers {
            if !drop(&k.to_ascii_lowercase()) {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        for line in extra {
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out
    }
}

/// The first value of header `name` in `headers` (ASCII case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A start line and the header fields after it.
type Head = (String, Vec<(String, String)>);

/// Reads a head: the start line, then header lines up to the blank line
/// (at most [`MAX_HEADER_LINES`]). `None` when the peer closed before
/// sending anything.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut start = String::new();
    if reader.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    for _ in 0..MAX_HEADER_LINES {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("connection closed inside the head".into()));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Ok(Some((start.trim_end().to_string(), headers)));
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("malformed header line {line:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Err(invalid(format!(
        "more than {MAX_HEADER_LINES} header lines"
    )))
}

/// Reads one request (head and `Content-Length` body of at most
/// `max_body` bytes). `Ok(None)` when the client closed without a request.
pub fn read_request(reader: &mut impl BufRead, max_body: usize) -> io::Result<Option<Request>> {
    // A method starts with a capital letter; anything else (a TLS
    // ClientHello starts with 0x16) is refused at once rather than waited
    // on for a line end that may never come.
    match reader.fill_buf()?.first() {
        None => return Ok(None),
        Some(b) if !b.is_ascii_uppercase() => {
            return Err(invalid(format!(
                "not an HTTP request (first byte {b:#04x})"
            )))
        }
        Some(_) => {}
    }
    let Some((start, headers)) = read_head(reader)? else {
        return Ok(None);
    };
    let mut parts = start.split_whitespace();
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(format!("malformed request line {start:?}")));
    };
    if header(&headers, "transfer-encoding").is_some() {
        return Err(invalid("chunked request bodies are not supported".into()));
    }
    let len: usize = match header(&headers, "content-length") {
        Some(v) => v
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {v:?}")))?,
        None => 0,
    };
    if len > max_body {
        return Err(invalid(format!(
            "request body of {len} bytes, over {max_body}"
        )));
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        version: version.to_string(),
        headers,
        body,
    }))
}

/// A response read to the end of the connection (the request asked for
/// `Connection: close`).
#[derive(Clone, Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header fields, in order.
    pub headers: Vec<(String, String)>,
    /// Everything after the head, as received (not de-chunked).
    pub body: Vec<u8>,
}

/// Reads a whole response from a connection the server closes; at most
/// `max` bytes of body.
pub fn read_response(reader: &mut impl BufRead, max: u64) -> io::Result<Response> {
    let (start, headers) =
        read_head(reader)?.ok_or_else(|| invalid("no response before the close".into()))?;
    let status = start
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("malformed status line {start:?}")))?;
    let mut body = Vec::new();
    reader.take(max).read_to_end(&mut body)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The reason phrase of a status code.
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// What a handler answers.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Header fields sent as they are. `Connection` and `Keep-Alive` are
    /// dropped (every answer closes); `Content-Length` is added unless one
    /// (or `Transfer-Encoding`) is here.
    pub headers: Vec<(String, String)>,
    /// The body bytes sent.
    pub body: Vec<u8>,
    /// `Content-Length` to announce instead of `body.len()`.
    pub announce: Option<u64>,
    /// How many body bytes go at once; the rest goes one byte per `drip`.
    /// `None`: the whole body at once.
    pub fast: Option<usize>,
    /// The pause before each dripped byte ([`DRIP`] unless told).
    pub drip: Duration,
    /// Whether the status line and header fields drip too, one byte per
    /// `drip`, before the body (which then goes as `fast` says).
    pub drip_head: bool,
}

impl Reply {
    /// An empty answer with this status.
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            announce: None,
            fast: None,
            drip: DRIP,
            drip_head: false,
        }
    }

    /// With this body.
    pub fn body(mut self, body: &[u8]) -> Reply {
        self.body = body.to_vec();
        self
    }

    /// With one more header field.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sends `body[..n]` while announcing all of it, then hangs up (a
    /// connection cut mid-body).
    pub fn cut_at(mut self, n: usize) -> Reply {
        self.announce = Some(self.body.len() as u64);
        self.body.truncate(n);
        self
    }

    /// Sends the first `fast` bytes of the body at once (right after the
    /// head; the whole body when it is shorter), then the rest one byte per
    /// [`Reply::drip_every`] interval ([`DRIP`] by default): a server that
    /// drips. With [`Reply::cut_at`], `fast` counts the bytes sent, and the
    /// hang-up comes after the last dripped one.
    pub fn drip_after(mut self, fast: usize) -> Reply {
        self.fast = Some(fast);
        self
    }

    /// Drips the status line and header fields too, one byte per interval;
    /// the body then follows as [`Reply::drip_after`] says (at once without
    /// it).
    pub fn drip_head(mut self) -> Reply {
        self.drip_head = true;
        self
    }

    /// The pause before each dripped byte.
    pub fn drip_every(mut self, interval: Duration) -> Reply {
        self.drip = interval;
        self
    }

    /// Writes the answer and closes the connection (a dripping answer is
    /// bounded as in [`Reply::write_until`], with no stop flag).
    pub fn write_to(&self, stream: &mut TcpStream) -> io::Result<()> {
        self.write_until(stream, &AtomicBool::new(false))
    }

    /// Writes the answer and closes the connection. A dripping answer is
    /// bounded: it ends early (closing the connection) when a write fails
    /// (the client hung up), when `stop` is set, or after
    /// [`MAX_DRIP_TIME`].
    pub fn write_until(&self, stream: &mut TcpStream, stop: &AtomicBool) -> io::Result<()> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        let mut has_length = false;
        for (k, v) in &self.headers {
            let lower = k.to_ascii_lowercase();
            if lower == "connection" || lower == "keep-alive" {
                continue;
            }
            has_length |= lower == "content-length" || lower == "transfer-encoding";
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !has_length {
            let len = self.announce.unwrap_or(self.body.len() as u64);
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        head.push_str("Connection: close\r\n\r\n");
        let fast = self.fast.unwrap_or(self.body.len()).min(self.body.len());
        let (body_now, body_slow) = self.body.split_at(fast);
        let started = Instant::now();
        let sent = if self.drip_head {
            drip(stream, head.as_bytes(), self.drip, started, stop)?
        } else {
            stream.write_all(head.as_bytes())?;
            true
        };
        if sent {
            stream.write_all(body_now)?;
            stream.flush()?;
            drip(stream, body_slow, self.drip, started, stop)?;
        }
        stream.flush()?;
        let _ = stream.shutdown(Shutdown::Both);
        Ok(())
    }
}

/// Writes `bytes` one at a time, pausing `interval` before each. Bounded by
/// their number, and cut short — `Ok(false)` — when `stop` is set or
/// [`MAX_DRIP_TIME`] has passed since `started`; a client that hung up
/// ends it with the error of the next write.
fn drip(
    stream: &mut TcpStream,
    bytes: &[u8],
    interval: Duration,
    started: Instant,
    stop: &AtomicBool,
) -> io::Result<bool> {
    for b in bytes {
        if stop.load(Ordering::SeqCst) || started.elapsed() > MAX_DRIP_TIME {
            return Ok(false);
        }
        std::thread::sleep(interval);
        stream.write_all(std::slice::from_ref(b))?;
        stream.flush()?;
    }
    Ok(true)
}

/// A handler: the request and the server's own `127.0.0.1:PORT` (for URLs
/// that point back at it) in, the answer out.
pub type Handler = dyn Fn(&Request, &str) -> Reply + Send + Sync;

/// A running server.
pub struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A handler that panicked (a failing assertion) must not hide the log.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Server {
    /// Starts a server on a free 127.0.0.1 port; every connection gets one
    /// request, answered by `handler` on a thread of its own. Dropping the
    /// server ends the answers still dripping.
    pub fn start(handler: impl Fn(&Request, &str) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let authority = addr.to_string();
                let mut workers = Vec::new();
                for _ in 0..MAX_CONNECTIONS {
                    let Ok((stream, _)) = listener.accept() else {
                        break;
                    };
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let (handler, log, authority, stop) = (
                        handler.clone(),
                        log.clone(),
                        authority.clone(),
                        stop.clone(),
                    );
                    workers.push(std::thread::spawn(move || {
                        let _ = serve(stream, &authority, &*handler, &log, &stop);
                    }));
                }
                for w in workers {
                    let _ = w.join();
                }
            })
        };
        Server {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// A fake registry: `GET /v2/` (the client's probe for plain HTTP)
    /// always answers 200 `{}`, everything else goes to `handler`.
    pub fn registry(handler: impl Fn(&Request, &str) -> Reply + Send + Sync + 'static) -> Server {
        Server::start(move |req, authority| {
            if req.path == "/v2/" {
                Reply::new(200).body(b"{}")
            } else {
                handler(req, authority)
            }
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Every request so far, in arrival order.
    pub fn all_requests(&self) -> Vec<Request> {
        lock(&self.log).clone()
    }

    /// The requests whose target starts with `prefix`, in arrival order.
    pub fn requests(&self, prefix: &str) -> Vec<Request> {
        lock(&self.log)
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    authority: &str,
    handler: &Handler,
    log: &Mutex<Vec<Request>>,
    stop: &AtomicBool,
) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let req = match read_request(&mut reader, MAX_REQUEST_BODY) {
        Ok(Some(req)) => req,
        Ok(None) => return Ok(()),
        // What a real HTTP server answers to bytes that are not HTTP (a TLS
        // handshake, say); the request is not logged.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Reply::new(400)
                .header("Content-Type", "text/plain")
                .body(format!("400 Bad Request: {e}\n").as_bytes())
                .write_to(&mut out);
        }
        Err(e) => return Err(e),
    };
    lock(log).push(req.clone());
    handler(&req, authority).write_until(&mut out, stop)
}
