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
