//! The one place the tests build `wyrcan::registry::ClientOptions`: when the
//! options type changes, only this helper needs fixing.

use std::time::Duration;

use wyrcan::auth::Credentials;
use wyrcan::registry::ClientOptions;

/// Options for a [`wyrcan::registry::Client`] in a test: plain HTTP and
/// unverified TLS allowed for the `insecure` hosts (`HOST[:PORT]`), these
/// credentials instead of the auth files (`None`: the auth files are read),
/// no extra CA files, and quick retries: 2 retries (3 attempts) 1 ms apart.
pub fn client_options(insecure: &[&str], creds: Option<Credentials>) -> ClientOptions {
    ClientOptions {
        insecure: insecure.iter().map(|s| s.to_string()).collect(),
        ca_files: Vec::new(),
        credentials: creds,
        retries: 2,
        backoff: Duration::from_millis(1),
    }
}

/// `Credentials` for `user` and `pass`.
pub fn creds(user: &str, pass: &str) -> Credentials {
    Credentials {
        username: user.into(),
        password: pass.into(),
    }
}
