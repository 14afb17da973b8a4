//! containers-policy.json(5): which images may be booted, and whose
//! signatures they need. The file podman, skopeo and CRI-O read, so a
//! fleet's existing policy works unchanged as long as it uses what Wyrcan
//! verifies: `insecureAcceptAnything`, `reject`, and `sigstoreSigned` with
//! cosign public keys.
//!
//! ```json
//! {"default": [{"type": "reject"}],
//!  "transports": {"docker": {
//!    "quay.io/acme": [{"type": "sigstoreSigned", "keyPath": "/etc/keys/acme.pub",
//!                      "signedIdentity": {"type": "matchRepository"}}]}}}
//! ```
//!
//! Parsing is as strict as containers/image's (and stricter where it would
//! be silent): every unknown, duplicated or misspelled field is an error
//! naming its JSON location, and so is every feature Wyrcan does not
//! implement (GPG `signedBy`, keyless Fulcio/Rekor, X.509 `pki`): a policy
//! that says "require X" must never be read as "require less than X".
//! Only the `docker` transport applies to Wyrcan; other transports are
//! checked for shape and otherwise ignored.
//!
//! This module does no I/O: keys named by path are read by the caller
//! through [`Policy::load_keys`].

mod parse;
mod scope;
#[cfg(test)]
mod tests;
mod write;

use std::fmt;

use super::json::{self, Json};
use super::key::PublicKey;
use crate::reference::Reference;
use parse::{invalid, object, requirements};

/// Largest policy file read.
pub const MAX_POLICY: usize = 1024 * 1024;
/// Most scopes a policy may define, over all transports.
pub const MAX_SCOPES: usize = 1000;
/// The origin of a key given inline as `keyData`.
pub const KEY_DATA: &str = "keyData";
/// The scope name [`Policy::requirements_for`] returns for the top-level `default`.
pub const DEFAULT_SCOPE: &str = "default";

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The top-level `default` requirements (never empty).
    pub default: Vec<Requirement>,
    /// `transports.docker`: scope → requirements (never empty), in file order.
    pub docker: Vec<(String, Vec<Requirement>)>,
}

/// One policy requirement. All requirements of a scope must accept an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// Accept the image, signed or not.
    InsecureAcceptAnything,
    /// Refuse the image.
    Reject,
    /// Require a cosign signature by one of the keys.
    SigstoreSigned(SigstoreSigned),
}

/// A `sigstoreSigned` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigstoreSigned {
    /// The keys, any one of which may have signed (key rotation).
    pub keys: Vec<Key>,
    /// Which signed names are acceptable for the image being booted.
    pub identity: SignedIdentity,
}

/// A key of a `sigstoreSigned` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A `keyPath`/`keyPaths` entry not read yet ([`Policy::load_keys`]).
    Path(String),
    /// A key ready to verify with.
    Loaded {
        /// The path it was read from, or [`KEY_DATA`] when it was inline.
        origin: String,
        /// The key.
        key: PublicKey,
    },
}

/// `signedIdentity`: how the name in a signature must relate to the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedIdentity {
    /// A tagged image needs a signature naming the same repository and
    /// tag; an image by digest, one naming the same repository. The default.
    MatchRepoDigestOrExact,
    /// The same repository, whatever the tag.
    MatchRepository,
    /// The same repository and the same tag or digest.
    MatchExact,
    /// The signature must name exactly this reference (with tag or digest).
    ExactReference(String),
    /// The signature must name this repository.
    ExactRepository(String),
    /// An image under `prefix` is signed as the same path under
    /// `signed_prefix` (a mirror of signed images), then matched like
    /// [`SignedIdentity::MatchRepoDigestOrExact`].
    RemapIdentity {
        /// Where the image is pulled from (`host[:port][/namespace…]`).
        prefix: String,
        /// Where it was signed.
        signed_prefix: String,
    },
}

impl fmt::Display for SignedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignedIdentity::MatchRepoDigestOrExact => f.write_str("matchRepoDigestOrExact"),
            SignedIdentity::MatchRepository => f.write_str("matchRepository"),
            SignedIdentity::MatchExact => f.write_str("matchExact"),
            SignedIdentity::ExactReference(r) => write!(f, "exactReference {r:?}"),
            SignedIdentity::ExactRepository(r) => write!(f, "exactRepository {r:?}"),
            SignedIdentity::RemapIdentity {
                prefix,
                signed_prefix,
            } => write!(f, "remapIdentity {prefix:?} -> {signed_prefix:?}"),
        }
    }
}

/// Why a policy cannot be used. Locations are JSON paths into the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Larger than [`MAX_POLICY`].
    #[error("the policy is {0} bytes; the limit is 1 MiB")]
    TooLarge(usize),
    /// More than [`MAX_SCOPES`] scopes.
    #[error("the policy has more than {MAX_SCOPES} scopes")]
    TooManyScopes,
    /// Not JSON.
    #[error("the policy is not valid JSON: {0}")]
    Syntax(String),
    /// Valid JSON, not a valid policy.
    #[error("{at}: {problem}")]
    Invalid {
        /// Where, e.g. `transports.docker["quay.io/acme"][0]`.
        at: String,
        /// What is wrong.
        problem: String,
    },
    /// A policy feature Wyrcan does not implement.
    #[error("{at}: {what} is not supported by Wyrcan; require signatures with sigstoreSigned and a cosign public key (keyPath, keyPaths or keyData)")]
    Unsupported {
        /// Where.
        at: String,
        /// The feature.
        what: String,
    },
    /// A key file could not be read or is not a public key.
    #[error("rule {rule}: key {path}: {problem}")]
    Key {
        /// The rule using it (`default` or `transports.docker["…"]`).
        rule: String,
        /// The path.
        path: String,
        /// What went wrong.
        problem: String,
    },
}

const NO_DEFAULT: &str =
    "the \"default\" requirements are missing (e.g. \"default\": [{\"type\": \"reject\"}])";

/// How a scope is named in messages: `default`, or its place in the file.
pub fn rule_name(scope: &str) -> String {
    if scope == DEFAULT_SCOPE {
        DEFAULT_SCOPE.to_string()
    } else {
        format!("transports.docker[{scope:?}]")
    }
}

impl Policy {
    /// Parse containers-policy.json(5) text.
    pub fn parse(json: &[u8]) -> Result<Policy, PolicyError> {
        if json.len() > MAX_POLICY {
            return Err(PolicyError::TooLarge(json.len()));
        }
        let root = Json::parse(json).map_err(PolicyError::Syntax)?;
        let top = object(&root, "(top level)", Some(&["default", "transports"]))?;
        let default = match json::get(top, "default") {
            Some(v) => requirements(v, "default")?,
            None => return Err(invalid("(top level)", NO_DEFAULT)),
        };
        let mut docker = Vec::new();
        if let Some(t) = json::get(top, "transports") {
            let mut scopes = 0usize;
            for (transport, value) in object(t, "transports", None)? {
                let at = format!("transports.{transport}");
                for (scope, reqs) in object(value, &at, None)? {
                    scopes += 1;
                    if scopes > MAX_SCOPES {
                        return Err(PolicyError::TooManyScopes);
                    }
                    let at = format!("{at}[{scope:?}]");
                    if transport == "docker" {
                        scope::validate(scope).map_err(|p| invalid(&at, &p))?;
                        docker.push((scope.clone(), requirements(reqs, &at)?));
                    } else if !matches!(reqs, Json::Array(r) if !r.is_empty()) {
                        // Not Wyrcan's to judge, but it is not a policy either.
                        return Err(invalid(&at, "expected a non-empty array of requirements"));
                    }
                }
            }
        }
        Ok(Policy { default, docker })
    }

    /// The `keyPath`/`keyPaths` entries, in file order (default first), for
    /// `customize --policy` to embed beside the policy.
    pub fn key_paths(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, reqs) in self.rules() {
            for s in sigstore(reqs) {
                for k in &s.keys {
                    let path = match k {
                        Key::Path(p) => p,
                        Key::Loaded { origin, .. } if origin != KEY_DATA => origin,
                        Key::Loaded { .. } => continue,
                    };
                    if !out.contains(path) {
                        out.push(path.clone());
                    }
                }
            }
        }
        out
    }

    /// Replace each [`Key::Path`] by [`Key::Loaded`], reading files with
    /// `read` (the caller does the I/O; each path is read once). Errors name
    /// the path and the rule.
    pub fn load_keys(
        &mut self,
        mut read: impl FnMut(&str) -> Result<Vec<u8>, String>,
    ) -> Result<(), PolicyError> {
        let mut cache: Vec<(String, PublicKey)> = Vec::new();
        let default = std::iter::once((DEFAULT_SCOPE, &mut self.default));
        let docker = self.docker.iter_mut().map(|(s, r)| (s.as_str(), r));
        for (scope, reqs) in default.chain(docker) {
            for req in reqs.iter_mut() {
                let Requirement::SigstoreSigned(s) = req else {
                    continue;
                };
                for k in &mut s.keys {
                    let Key::Path(path) = k else { continue };
                    let key = match cache.iter().find(|(p, _)| p == path) {
                        Some((_, key)) => key.clone(),
                        None => {
                            let fail = |problem: String| PolicyError::Key {
                                rule: rule_name(scope),
                                path: path.clone(),
                                problem,
                            };
                            let bytes = read(path).map_err(fail)?;
                            let key =
                                PublicKey::from_pem(&bytes).map_err(|e| fail(e.to_string()))?;
                            cache.push((path.clone(), key.clone()));
                            key
                        }
                    };
                    *k = Key::Loaded {
                        origin: path.clone(),
                        key,
                    };
                }
            }
        }
        Ok(())
    }

    /// containers-policy.json text of this policy, with every key path
    /// rewritten through `f` (customize stores keys under /etc/wyrcan/keys/).
    /// `keyData` stays inline. Transports other than `docker` are left out:
    /// Wyrcan ignores them.
    pub fn to_json_with_paths(&self, mut f: impl FnMut(&str) -> String) -> Vec<u8> {
        let reqs = |r: &[Requirement], f: &mut dyn FnMut(&str) -> String| {
            Json::Array(r.iter().map(|r| write::requirement_json(r, f)).collect())
        };
        let mut top = vec![("default".to_string(), reqs(&self.default, &mut f))];
        if !self.docker.is_empty() {
            let scopes = self
                .docker
                .iter()
                .map(|(s, r)| (s.clone(), reqs(r, &mut f)))
                .collect();
            top.push((
                "transports".to_string(),
                Json::Object(vec![("docker".to_string(), Json::Object(scopes))]),
            ));
        }
        Json::Object(top).to_vec_pretty()
    }

    /// The scope that applies to `reference` and its requirements: the most
    /// specific `transports.docker` scope (exact image, repository, longer
    /// namespace, host, longer wildcard, `""`), else `default`
    /// ([`DEFAULT_SCOPE`]).
    pub fn requirements_for(&self, reference: &Reference) -> (&str, &[Requirement]) {
        for candidate in scope::lookup_order(reference) {
            if let Some((s, r)) = self.docker.iter().find(|(s, _)| *s == candidate) {
                return (s, r);
            }
        }
        (DEFAULT_SCOPE, &self.default)
    }

    /// Every rule: `default`, then the docker scopes.
    fn rules(&self) -> impl Iterator<Item = (&str, &[Requirement])> {
        std::iter::once((DEFAULT_SCOPE, self.default.as_slice()))
            .chain(self.docker.iter().map(|(s, r)| (s.as_str(), r.as_slice())))
    }
}

fn sigstore(reqs: &[Requirement]) -> impl Iterator<Item = &SigstoreSigned> {
    reqs.iter().filter_map(|r| match r {
        Requirement::SigstoreSigned(s) => Some(s),
        _ => None,
    })
}

/// Whether a reference string names a repository alone, with neither tag
/// nor digest. [`Reference`] adds `:latest` to such names; identity rules
/// must not (containers/image `reference.IsNameOnly`).
pub(crate) fn is_name_only(s: &str) -> bool {
    let last = s.rsplit('/').next().unwrap_or(s);
    !s.contains('@') && !last.contains(':')
}
