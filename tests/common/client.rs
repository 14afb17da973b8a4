//! The one place the tests build `wyrcan::registry::PullOptions` for the
//! registry client: when the options type changes, only this helper needs
//! fixing.

use std::time::Duration;

use wyrcan::registry::{CredentialSource, Credentials, PullOptions};

/// Options for a [`wyrcan::registry::Client`] in a test: plain HTTP and
/// unverified TLS allowed for the `insecure` hosts (`HOST[:PORT]`), these
/// credentials or none (never the host's auth files), no CA store of the
/// host (hermetic: the bundled roots only), no proxy variables of the
/// test's environment, and quick retries: 2 retries
/// (3 attempts) 1 ms apart.
pub fn client_options(insecure: &[&str], creds: Option<Credentials>) -> PullOptions {
    PullOptions {
        insecure: insecure.iter().map(|s| s.to_string()).collect(),
        ca_files: Vec::new(),
        system_roots: false,
        credentials: match creds {
            Some(c) => CredentialSource::Given(c),
            None => CredentialSource::Anonymous,
        },
        proxy_env: false,
        retries: 2,
        backoff: Duration::from_millis(1),
        ..PullOptions::default()
    }
}

/// `Credentials` for `user` and `pass`.
pub fn creds(user: &str, pass: &str) -> Credentials {
    Credentials {
        username: user.into(),
        password: pass.into(),
    }
}
