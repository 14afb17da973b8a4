//! A cosign payload never panics the parser (nor does a signature
//! manifest or referrers index), and a signature candidate
//! built from the input never panics evaluation: the first line is the
//! base64 signature, the rest the payload (seeds hold payloads signed by
//! the test key, so mutations start from accepted signatures).
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wyrcan_core::digest::Digest;
use wyrcan_core::reference::Reference;
use wyrcan_core::trust::{evaluate, parse_payload, Candidate, Policy};

const KEY: &[u8] = include_bytes!("../../crates/wyrcan-core/src/trust/testdata/p256.pub.pem");
const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

const POLICY: &str = r#"{
  "default": [{"type": "sigstoreSigned", "keyPath": "/k", "signedIdentity": {"type": "matchRepository"}}],
  "transports": {"docker": {
    "127.0.0.1:5000/os": [{"type": "sigstoreSigned", "keyPath": "/k"}],
    "127.0.0.1:5000/exact": [{"type": "sigstoreSigned", "keyPath": "/k", "signedIdentity": {"type": "matchExact"}}],
    "mirror.lan": [{"type": "sigstoreSigned", "keyPath": "/k",
      "signedIdentity": {"type": "remapIdentity", "prefix": "mirror.lan", "signedPrefix": "127.0.0.1:5000"}}]
  }}
}"#;

fn fixed() -> &'static (Policy, Digest, Vec<Reference>) {
    static FIXED: OnceLock<(Policy, Digest, Vec<Reference>)> = OnceLock::new();
    FIXED.get_or_init(|| {
        let mut policy = Policy::parse(POLICY.as_bytes()).expect("the fixed policy parses");
        policy
            .load_keys(|_| Ok(KEY.to_vec()))
            .expect("the test key loads");
        let images = [
            "127.0.0.1:5000/os:1".to_string(),
            format!("127.0.0.1:5000/os@{DIGEST}"),
            format!("127.0.0.1:5000/exact@{DIGEST}"),
            "mirror.lan/os:1".to_string(),
            "ghcr.io/other:1".to_string(),
        ];
        let images = images
            .iter()
            .map(|s| s.parse().expect("fixed references parse"))
            .collect();
        (policy, DIGEST.parse().expect("fixed digest parses"), images)
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_payload(data);
    // The same bytes as a signature manifest or a referrers index.
    let _ = wyrcan_core::signatures::sig_layers(data);
    let _ = wyrcan_core::signatures::sig_referrers(data);
    let (policy, digest, images) = fixed();
    let (signature, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let candidate = Candidate {
        payload: payload.to_vec(),
        signature_b64: String::from_utf8_lossy(signature).into_owned(),
        source: "fuzz".to_string(),
    };
    for image in images {
        match evaluate(policy, image, digest, std::slice::from_ref(&candidate)) {
            Ok(v) => assert_eq!(v.requirement, "sigstoreSigned"),
            Err(r) => {
                let _ = r.to_string();
            }
        }
    }
});
