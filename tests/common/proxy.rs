//! A small lying HTTP proxy on 127.0.0.1 in front of a registry, for faults
//! a real registry does not produce: cut connections, corrupted blobs,
//! error statuses, substituted manifests. One request per client connection (it answers with
//! `Connection: close`); at most [`MAX_CONNECTIONS`] connections; stopped on drop.

use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use wyrcan_core::digest::Digest;

/// The most connections a proxy serves in its life.
pub const MAX_CONNECTIONS: usize = 400;
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_RESPONSE: usize = 256 << 20;

/// What the proxy does to blob requests (`/v2/<name>/blobs/<digest>`).
#[derive(Clone, Debug)]
pub enum Mode {
    /// Forward everything unchanged.
    PassThrough,
    /// The first GET of a blob gets its headers and `after_bytes` bytes of
    /// body, then the socket closes; later requests pass (a client that
    /// resumes with `Range` succeeds).
    CutBlobOnce {
        /// Body bytes sent before the cut.
        after_bytes: usize,
    },
    /// Flip one byte in the body of every blob GET: a digest mismatch every time.
    CorruptBlob,
    /// Answer the first `times` blob requests with `code` and an empty body.
    Status {
        /// HTTP status code, e.g. 503.
        code: u16,
        /// How many blob requests get it.
        times: usize,
    },
    /// Answer every manifest GET (`/v2/<name>/manifests/<ref>`) with this
    /// body instead, and claim `digest` in `Docker-Content-Digest` (a
    /// registry that lies consistently).
    ReplaceManifest {
        /// The substitute manifest bytes.
        body: Vec<u8>,
        /// The digest the proxy claims for them.
        digest: Digest,
    },
}

/// One request the proxy saw, and what it did.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Request method.
    pub method: String,
    /// Request target (path and query).
    pub path: String,
    /// The `Range` header, if sent.
    pub range: Option<String>,
    /// What happened: `pass`, `cut`, `corrupt`, `status` or `replace`.
    pub action: &'static str,
    /// Status sent to the client (0 when the upstream could not be reached).
    pub status: u16,
}

struct State {
    mode: Mode,
    only: Option<String>,
    fired: usize,
    seen: Vec<Seen>,
}

/// A running proxy.
pub struct Proxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<State>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy to `upstream` (`127.0.0.1:PORT`) applying `mode` to every blob.
    pub fn start(upstream: &str, mode: Mode) -> Proxy {
        Proxy::launch(upstream, mode, None)
    }

    /// A proxy applying `mode` only to the blob (or manifest) with this digest.
    pub fn start_only(upstream: &str, mode: Mode, blob: &Digest) -> Proxy {
        Proxy::launch(upstream, mode, Some(blob.hex().to_string()))
    }

    /// A proxy applying `mode` only to request paths containing `needle`
    /// (e.g. a tag).
    pub fn start_matching(upstream: &str, mode: Mode, needle: &str) -> Proxy {
        Proxy::launch(upstream, mode, Some(needle.to_string()))
    }

    fn launch(upstream: &str, mode: Mode, only: Option<String>) -> Proxy {
        let upstream: SocketAddr = upstream.parse().expect("upstream 127.0.0.1:PORT");
        assert!(
            upstream.ip().is_loopback(),
            "the proxy only talks to loopback"
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State {
            mode,
            only,
            fired: 0,
            seen: Vec::new(),
        }));
        let thread = {
            let stop = stop.clone();
            let state = state.clone();
            std::thread::spawn(move || {
                let mut workers = Vec::new();
                for _ in 0..MAX_CONNECTIONS {
                    let Ok((client, _)) = listener.accept() else {
                        break;
                    };
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let state = state.clone();
                    workers.push(std::thread::spawn(move || {
                        let _ = serve(client, upstream, &state);
                    }));
                }
                for w in workers {
                    let _ = w.join();
                }
            })
        };
        Proxy {
            addr,
            stop,
            state,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Every request seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn is_blob(path: &str) -> bool {
    path.starts_with("/v2/") && path.contains("/blobs/sha256:") && !path.contains("/uploads")
}

fn is_manifest(path: &str) -> bool {
    path.starts_with("/v2/") && path.contains("/manifests/")
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn reason(code: u16) -> &'static str {
    match code {
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        404 => "Not Found",
        _ => "Error",
    }
}

fn serve(client: TcpStream, upstream: SocketAddr, state: &Mutex<State>) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = String::new();
    for _ in 0..200 {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut parts = head.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let body_len: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; body_len.min(MAX_RESPONSE)];
    reader.read_exact(&mut body)?;
    let range = header(&head, "range").map(str::to_string);

    let action = {
        let mut st = state.lock().unwrap();
        let matches = st.only.as_ref().is_none_or(|d| path.contains(d.as_str()));
        let targeted = is_blob(&path) && matches;
        let get = method == "GET";
        let action = match st.mode.clone() {
            Mode::Status { code, times } if targeted && st.fired < times => {
                st.fired += 1;
                Some(("status", code))
            }
            Mode::CutBlobOnce { .. } if targeted && get && st.fired == 0 => {
                st.fired += 1;
                Some(("cut", 0))
            }
            Mode::CorruptBlob if targeted && get => Some(("corrupt", 0)),
            Mode::ReplaceManifest { .. } if is_manifest(&path) && matches && get => {
                Some(("replace", 0))
            }
            _ => None,
        };
        if let Some(("status", code)) = action {
            st.seen.push(Seen {
                method: method.clone(),
                path: path.clone(),
                range: range.clone(),
                action: "status",
                status: code,
            });
        }
        action
    };
    let mut client_w = client;
    if let Some(("status", code)) = action {
        write!(
            client_w,
            "HTTP/1.1 {code} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            reason(code)
        )?;
        client_w.flush()?;
        let _ = client_w.shutdown(Shutdown::Both);
        return Ok(());
    }

    // Forward with one request per upstream connection.
    let mut up = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))?;
    up.set_read_timeout(Some(IO_TIMEOUT))?;
    up.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut out = String::new();
    for (i, line) in head.lines().enumerate() {
        let lower = line.to_ascii_lowercase();
        if i > 0
            && (lower.starts_with("connection:")
                || lower.starts_with("keep-alive:")
                || lower.starts_with("proxy-"))
        {
            continue;
        }
        out.push_str(line.trim_end_matches('\r'));
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    up.write_all(out.as_bytes())?;
    up.write_all(&body)?;
    up.flush()?;
    let mut response = Vec::new();
    (&mut up)
        .take(MAX_RESPONSE as u64)
        .read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(response.len());
    let (resp_head, resp_body) = response.split_at(split);
    let resp_head = String::from_utf8_lossy(resp_head).into_owned();
    let status: u16 = resp_head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut resp_body = resp_body.to_vec();
    // Only a successful body is cut or corrupted.
    let ok = status == 200 || status == 206;
    let action_name = match action {
        Some(("cut", _)) if ok && resp_body.len() > 1 => "cut",
        Some(("corrupt", _)) if ok && !resp_body.is_empty() => "corrupt",
        Some(("replace", _)) if ok => "replace",
        _ => "pass",
    };
    if action_name == "replace" {
        if let Mode::ReplaceManifest { body, .. } = &state.lock().unwrap().mode {
            resp_body = body.clone();
        }
    }
    if action_name != "cut" && matches!(action, Some(("cut", _))) {
        // Nothing to cut in this answer: cut a later GET instead.
        state.lock().unwrap().fired = 0;
    }
    state.lock().unwrap().seen.push(Seen {
        method,
        path,
        range,
        action: action_name,
        status,
    });
    // Responses to the client always close the connection.
    let mut new_head = String::new();
    for line in resp_head.trim_end().lines() {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("keep-alive:") {
            continue;
        }
        if action_name == "replace"
            && (lower.starts_with("content-length:")
                || lower.starts_with("transfer-encoding:")
                || lower.starts_with("docker-content-digest:"))
        {
            continue;
        }
        new_head.push_str(line.trim_end_matches('\r'));
        new_head.push_str("\r\n");
    }
    if action_name == "replace" {
        if let Mode::ReplaceManifest { digest, .. } = &state.lock().unwrap().mode {
            new_head.push_str(&format!(
                "Content-Length: {}\r\nDocker-Content-Digest: {digest}\r\n",
                resp_body.len()
            ));
        }
    }
    new_head.push_str("Connection: close\r\n\r\n");
    client_w.write_all(new_head.as_bytes())?;
    match action_name {
        "cut" => {
            let after_bytes = match state.lock().unwrap().mode {
                Mode::CutBlobOnce { after_bytes } => after_bytes,
                _ => 0,
            };
            let n = after_bytes.min(resp_body.len() - 1);
            client_w.write_all(&resp_body[..n])?;
        }
        "corrupt" => {
            let i = resp_body.len() / 2;
            resp_body[i] ^= 0xff;
            client_w.write_all(&resp_body)?;
        }
        _ => client_w.write_all(&resp_body)?,
    }
    client_w.flush()?;
    let _ = client_w.shutdown(Shutdown::Both);
    Ok(())
}
