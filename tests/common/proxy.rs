//! A small lying HTTP proxy on 127.0.0.1 in front of a registry, for faults
//! a real registry does not produce: cut connections, corrupted blobs,
//! error statuses, substituted manifests. It is a [`Server`] of
//! `common/http.rs` (one request per client connection, answered with
//! `Connection: close`; at most [`http::MAX_CONNECTIONS`] connections;
//! stopped on drop) whose handler forwards each request upstream on a
//! connection of its own.

use std::io::{self, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wyrcan_core::digest::Digest;

use super::http::{self, Reply, Request, Server};

/// The largest upstream answer forwarded.
const MAX_RESPONSE: u64 = 256 << 20;

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
    /// Flip one byte in the body of the first blob GET only: the client
    /// starts over and then gets the right bytes.
    CorruptBlobOnce,
    /// Answer the first `times` blob requests with `code` and an empty body.
    Status {
        /// HTTP status code, e.g. 503.
        code: u16,
        /// How many blob requests get it.
        times: usize,
    },
    /// Answer the first `times` blob requests with `code` and
    /// `Retry-After: secs` (a registry shedding load).
    Throttle {
        /// 429 or 503.
        code: u16,
        /// How many blob requests get it.
        times: usize,
        /// The `Retry-After` value, in seconds.
        secs: u64,
    },
    /// Serve under a path prefix (a mirror at `http://host/PREFIX`): the
    /// prefix is stripped before forwarding; requests without it get 404.
    Prefix(String),
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
    /// Status sent to the client (0 when the upstream could not be reached;
    /// the client then got 502).
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
    server: Server,
    state: Arc<Mutex<State>>,
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
        let state = Arc::new(Mutex::new(State {
            mode,
            only,
            fired: 0,
            seen: Vec::new(),
        }));
        let server = {
            let state = state.clone();
            Server::start(move |req, _| handle(req, upstream, &state))
        };
        Proxy { server, state }
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn addr(&self) -> String {
        self.server.addr()
    }

    /// Every request seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state).seen.clone()
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn is_blob(path: &str) -> bool {
    path.starts_with("/v2/") && path.contains("/blobs/sha256:") && !path.contains("/uploads")
}

fn is_manifest(path: &str) -> bool {
    path.starts_with("/v2/") && path.contains("/manifests/")
}

/// What to do to one request, decided before it is forwarded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Status(u16),
    Cut,
    Corrupt,
    Replace,
}

fn handle(req: &Request, upstream: SocketAddr, state: &Mutex<State>) -> Reply {
    let prefix = match &lock(state).mode {
        Mode::Prefix(p) => Some(p.clone()),
        _ => None,
    };
    let stripped;
    let req = match prefix {
        Some(p) => match req.path.strip_prefix(&p) {
            Some(rest) if rest.starts_with('/') => {
                stripped = Request {
                    path: rest.to_string(),
                    ..req.clone()
                };
                &stripped
            }
            _ => return Reply::new(404),
        },
        None => req,
    };
    let range = req.header("range").map(str::to_string);
    let seen = |action: &'static str, status: u16| Seen {
        method: req.method.clone(),
        path: req.path.clone(),
        range: range.clone(),
        action,
        status,
    };
    let action = {
        let mut st = lock(state);
        let path = &req.path;
        let matches = st.only.as_ref().is_none_or(|d| path.contains(d.as_str()));
        let targeted = is_blob(path) && matches;
        let get = req.method == "GET";
        let action = match st.mode.clone() {
            Mode::Status { code, times } | Mode::Throttle { code, times, .. }
                if targeted && st.fired < times =>
            {
                st.fired += 1;
                Some(Action::Status(code))
            }
            Mode::CutBlobOnce { .. } if targeted && get && st.fired == 0 => {
                st.fired += 1;
                Some(Action::Cut)
            }
            Mode::CorruptBlob if targeted && get => Some(Action::Corrupt),
            Mode::CorruptBlobOnce if targeted && get && st.fired == 0 => {
                st.fired += 1;
                Some(Action::Corrupt)
            }
            Mode::ReplaceManifest { .. } if is_manifest(path) && matches && get => {
                Some(Action::Replace)
            }
            _ => None,
        };
        if let Some(Action::Status(code)) = action {
            st.seen.push(seen("status", code));
            if let Mode::Throttle { secs, .. } = st.mode {
                return Reply::new(code).header("Retry-After", &secs.to_string());
            }
            return Reply::new(code);
        }
        action
    };

    let resp = match forward(req, upstream) {
        Ok(r) => r,
        Err(_) => {
            if action == Some(Action::Cut) {
                lock(state).fired = 0;
            }
            lock(state).seen.push(seen("pass", 0));
            return Reply::new(502);
        }
    };
    let mut body = resp.body;
    // Only a successful body is cut or corrupted.
    let ok = resp.status == 200 || resp.status == 206;
    let action_name = match action {
        Some(Action::Cut) if ok && body.len() > 1 => "cut",
        Some(Action::Corrupt) if ok && !body.is_empty() => "corrupt",
        Some(Action::Replace) if ok => "replace",
        _ => "pass",
    };
    let mut st = lock(state);
    if action == Some(Action::Cut) && action_name != "cut" {
        // Nothing to cut in this answer: cut a later GET instead.
        st.fired = 0;
    }
    st.seen.push(seen(action_name, resp.status));
    let mut reply = Reply::new(resp.status);
    reply.headers = resp.headers;
    match (action_name, &st.mode) {
        ("replace", Mode::ReplaceManifest { body: fake, digest }) => {
            reply.headers.retain(|(k, _)| {
                let k = k.to_ascii_lowercase();
                k != "content-length" && k != "transfer-encoding" && k != "docker-content-digest"
            });
            reply
                .headers
                .push(("Docker-Content-Digest".into(), digest.to_string()));
            body = fake.clone();
        }
        ("cut", Mode::CutBlobOnce { after_bytes }) => {
            // The upstream's Content-Length still announces the whole body.
            body.truncate((*after_bytes).min(body.len() - 1));
        }
        ("corrupt", _) => {
            let i = body.len() / 2;
            body[i] ^= 0xff;
        }
        _ => {}
    }
    reply.body = body;
    reply
}

/// Sends `req` upstream on a fresh connection and reads the whole answer.
fn forward(req: &Request, upstream: SocketAddr) -> io::Result<http::Response> {
    let mut up = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))?;
    up.set_read_timeout(Some(http::IO_TIMEOUT))?;
    up.set_write_timeout(Some(http::IO_TIMEOUT))?;
    let head = req.head(
        |k| k == "connection" || k == "keep-alive" || k.starts_with("proxy-"),
        &["Connection: close"],
    );
    up.write_all(head.as_bytes())?;
    up.write_all(&req.body)?;
    up.flush()?;
    http::read_response(&mut BufReader::new(up), MAX_RESPONSE)
}
