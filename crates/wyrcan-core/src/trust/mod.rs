//! Image trust: whether an image may boot, and a record of what booted.
//!
//! - [`key`]: the public keys signatures are checked with (cosign.pub).
//! - [`payload`]: the cosign "simple signing" payload a signature covers.
//! - [`policy`]: containers-policy.json(5), the rules podman and CRI-O use.
//! - [`verify`]: a policy applied to an image's signatures.
//! - [`tpm`]: TPM 2.0 PCR commands, to measure what was booted.
//!
//! All of it is pure, like the rest of this crate: the registry fetches
//! the signatures, the caller reads key files and talks to /dev/tpmrm0.
//! Signature verification uses ring, already in the build for TLS.

mod der;
mod json;
pub mod key;
pub mod payload;
pub mod policy;
pub mod tpm;
pub mod verify;

pub use der::DerError;
pub use key::{Algorithm, KeyError, PublicKey};
pub use payload::{parse_payload, Payload, PayloadError};
pub use policy::{Key, Policy, PolicyError, Requirement, SignedIdentity, SigstoreSigned};
pub use verify::{evaluate, Candidate, Reason, Rejection, Verdict};

/// What a policy says, one line per rule, keys by fingerprint (for
/// `customize --show` and the boot log; never the key files' contents).
pub fn describe(policy: &Policy) -> Vec<String> {
    let rules = std::iter::once((policy::DEFAULT_SCOPE, &policy.default))
        .chain(policy.docker.iter().map(|(s, r)| (s.as_str(), r)));
    rules
        .map(|(scope, reqs)| {
            let reqs: Vec<String> = reqs.iter().map(describe_requirement).collect();
            format!("{}: {}", policy::rule_name(scope), reqs.join(" and "))
        })
        .collect()
}

fn describe_requirement(r: &Requirement) -> String {
    match r {
        Requirement::InsecureAcceptAnything => "insecureAcceptAnything".into(),
        Requirement::Reject => "reject".into(),
        Requirement::SigstoreSigned(s) => {
            let keys: Vec<String> = s
                .keys
                .iter()
                .map(|k| match k {
                    Key::Path(p) => format!("{p} (not read)"),
                    Key::Loaded { origin, key } => format!("{} {}", key.fingerprint(), origin),
                })
                .collect();
            format!(
                "sigstoreSigned by {} ({}), signedIdentity {}",
                if keys.len() == 1 {
                    "the key"
                } else {
                    "any of the keys"
                },
                keys.join(", "),
                s.identity
            )
        }
    }
}

#[cfg(test)]
mod describe_tests {
    use super::*;

    #[test]
    fn one_line_per_rule() {
        let p = Policy::parse(
            br#"{"default":[{"type":"reject"}],"transports":{"docker":{"reg.lan/os":[{"type":"sigstoreSigned","keyPaths":["/a.pub","/b.pub"],"signedIdentity":{"type":"matchRepository"}}],"reg.lan/open":[{"type":"insecureAcceptAnything"}]}}}"#,
        )
        .unwrap();
        assert_eq!(
            describe(&p),
            [
                "default: reject",
                "transports.docker[\"reg.lan/os\"]: sigstoreSigned by any of the keys (/a.pub (not read), /b.pub (not read)), signedIdentity matchRepository",
                "transports.docker[\"reg.lan/open\"]: insecureAcceptAnything",
            ]
        );
    }
}
