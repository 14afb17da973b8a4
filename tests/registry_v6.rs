//! The registry client against a registry reached by an IPv6 address in
//! brackets (`[::1]:PORT/repo:tag`, `--insecure [::1]:PORT`): the reference
//! parses, the URL, the connection and the `Host` header carry the
//! bracketed address. A tiny plain-HTTP server on `[::1]`, nothing else.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::client::client_options;
use wyrcan::registry::Client;
use wyrcan_core::reference::Reference;

const MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;

/// Serves `/v2/` and one manifest on `[::1]:0`; returns the authority and
/// the request lines with their `Host` headers.
fn serve() -> Option<(String, Arc<Mutex<Vec<String>>>)> {
    let listener = TcpListener::bind("[::1]:0").ok()?;
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let mut host = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(h) = line.to_ascii_lowercase().strip_prefix("host:") {
                    host = h.trim().to_string();
                }
            }
            let path = first.split(' ').nth(1).unwrap_or("").to_string();
            log.lock().unwrap().push(format!("{path} host={host}"));
            let (ctype, body): (&str, &[u8]) = if path == "/v2/" {
                ("application/json", b"{}")
            } else if path == "/v2/test/img/manifests/v1" {
                ("application/vnd.oci.image.manifest.v1+json", MANIFEST)
            } else {
                ("text/plain", b"")
            };
            let status = if body.is_empty() {
                "404 Not Found"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
        }
    });
    Some((addr.to_string(), seen))
}

#[test]
fn pulls_a_manifest_from_a_bracketed_ipv6_registry() {
    let Some((authority, seen)) = serve() else {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    };
    assert!(authority.starts_with("[::1]:"), "{authority}");
    let r: Reference = format!("{authority}/test/img:v1").parse().unwrap();
    assert_eq!(r.to_string(), format!("{authority}/test/img:v1"));
    let opts = client_options(&[&authority], None);
    let c = Client::new(&r, &opts).unwrap();
    let m = c.fetch_manifest("v1", None).unwrap();
    assert_eq!(m.body, MANIFEST);
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|s| s == &format!("/v2/test/img/manifests/v1 host={authority}")),
        "{seen:?}"
    );
}
