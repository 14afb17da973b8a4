//! Registry credentials and authentication challenges.
//!
//! This module owns two things: finding a user name and password for a
//! registry in the auth files that `docker login` and `podman login` write,
//! and parsing the `WWW-Authenticate` header a registry answers a 401 with.
//! Both parsers are pure functions over `&str`/`&[u8]`; only [`lookup`]
//! touches the environment and the file system.
//!
//! Credential helpers (`credsStore`, `credHelpers`) are never run: they are
//! external programs that do not exist in the boot environment, and running
//! whatever a config file names is not something a bootloader should do.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine as _;
use tracing::debug;

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (for tokens, often a fixed name such as `oauth2accesstoken`).
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl Credentials {
    /// The value of an `Authorization` header for HTTP basic auth.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

// Hand-written so that a `{:?}` in a log line or an error never prints a secret.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why an auth file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    /// The file is not the JSON object we expect.
    #[error("not a valid auth file: {0}")]
    Json(#[from] serde_json::Error),
    /// The entry for the registry has an `auth` field that is not base64 of `user:password`.
    #[error("the \"auth\" field of entry {key:?} is not base64 of USER:PASSWORD")]
    BadAuthField {
        /// The key of the `auths` entry.
        key: String,
    },
}

/// The parts of `config.json` / `auth.json` we read. Unknown fields are
/// ignored: both tools add their own.
#[derive(serde::Deserialize, Default)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

/// The names Docker Hub is known by in auth files: `docker login` writes the
/// historical `https://index.docker.io/v1/`, other tools write the others.
const DOCKER_HUB_ALIASES: &[&str] = &["docker.io", "index.docker.io", "registry-1.docker.io"];

/// The host names an auth-file key must reduce to in order to match `registry`.
fn wanted_hosts(registry: &str) -> Vec<&str> {
    if DOCKER_HUB_ALIASES.contains(&registry) {
        DOCKER_HUB_ALIASES.to_vec()
    } else {
        vec![registry]
    }
}

/// Reduce an auth-file key to the registry host it names, or `None` when it
/// names a single repository or namespace (podman's `quay.io/org` keys):
/// those credentials were meant for that repository only, and sending them
/// to another one would leak them.
fn key_host(key: &str) -> Option<&str> {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    match rest.split_once('/') {
        None => Some(rest),
        // `https://index.docker.io/v1/` and friends name the whole registry.
        Some((host, "" | "v1" | "v1/" | "v2" | "v2/")) => Some(host),
        Some(_) => None,
    }
}

/// Look `registry` up in the contents of one auth file (docker's
/// `config.json` or podman's `auth.json`; both use the same `auths` map).
///
/// Returns `Ok(None)` when the file has no usable entry for the registry,
/// including entries whose secret lives in a credential helper.
pub fn parse_auth_file(
    content: &[u8],
    registry: &str,
) -> Result<Option<Credentials>, AuthFileError> {
    let file: AuthFile = serde_json::from_slice(content)?;
    let wanted = wanted_hosts(registry);

    // An exact key wins over an alias or a decorated key (`https://host/v1/`),
    // so a file with both picks the most specific one, whatever its order.
    let mut matches: Vec<(&String, &AuthEntry)> = file
        .auths
        .iter()
        .filter(|(k, _)| key_host(k).is_some_and(|h| wanted.contains(&h)))
        .collect();
    matches.sort_by_key(|(k, _)| (k.as_str() != registry, k.len()));

    for (key, entry) in matches {
        if let Some(creds) = entry_credentials(key, entry)? {
            return Ok(Some(creds));
        }
    }

    if let Some(helper) = &file.creds_store {
        debug!("auth file names credential store {helper:?}: credential helpers are not run");
    }
    for (key, helper) in &file.cred_helpers {
        if key_host(key).is_some_and(|h| wanted.contains(&h)) {
            debug!("auth file names credential helper {helper:?} for {key}: credential helpers are not run");
        }
    }
    Ok(None)
}

/// The credentials of one `auths` entry; `None` when it holds none we can use.
fn entry_credentials(key: &str, entry: &AuthEntry) -> Result<Option<Credentials>, AuthFileError> {
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let bad = || AuthFileError::BadAuthField {
            key: key.to_string(),
        };
        let auth = auth.trim();
        // Some tools drop the padding; accept both forms.
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(auth))
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        // The password may itself contain ':'; the user name cannot.
        let (user, pass) = raw.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credentials {
            username: user.to_string(),
            password: pass.to_string(),
        }));
    }
    if let (Some(user), Some(pass)) = (&entry.username, &entry.password) {
        if !user.is_empty() {
            return Ok(Some(Credentials {
                username: user.clone(),
                password: pass.clone(),
            }));
        }
    }
    if entry.identity_token.is_some() {
        debug!("auth entry {key:?} holds an identity token, which is not supported: skipped");
    }
    Ok(None)
}

/// The auth files to read, most specific first, from an environment lookup.
fn auth_file_candidates(env: impl Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let env = |k: &str| env(k).filter(|v| !v.is_empty());
    let home = env("HOME").map(PathBuf::from);
    let mut out = Vec::new();
    if let Some(f) = env("REGISTRY_AUTH_FILE") {
        out.push(PathBuf::from(f));
    }
    if let Some(d) = env("XDG_RUNTIME_DIR") {
        out.push(PathBuf::from(d).join("containers/auth.json"));
    }
    if let Some(d) = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")))
    {
        out.push(d.join("containers/auth.json"));
    }
    if let Some(d) = env("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".docker")))
    {
        out.push(d.join("config.json"));
    }
    out
}

/// Look up credentials for a registry host in the usual auth files:
/// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
/// `~/.config/containers/auth.json` (or under `$XDG_CONFIG_HOME`), and
/// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. The first file
/// with an entry for the registry wins.
///
/// `registry` is the registry as written in the image reference
/// (`docker.io`, `ghcr.io`, `localhost:5000`); `docker.io` also matches the
/// keys `https://index.docker.io/v1/`, `index.docker.io` and
/// `registry-1.docker.io`. Missing files are skipped; a file that exists but
/// cannot be read or parsed is an error naming it.
pub fn lookup(registry: &str) -> anyhow::Result<Option<Credentials>> {
    for path in auth_file_candidates(|k| std::env::var(k).ok()) {
        let content = match std::fs::read(&path) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("reading auth file {}", path.display()))
            }
        };
        let found = parse_auth_file(&content, registry)
            .with_context(|| format!("reading auth file {}", path.display()))?;
        if let Some(creds) = found {
            debug!(
                "using credentials for {registry} from {} (user {})",
                path.display(),
                creds.username
            );
            return Ok(Some(creds));
        }
    }
    debug!("no credentials for {registry} in the auth files");
    Ok(None)
}

/// An authentication challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Get a token from `realm` (the flow Docker Hub, GHCR and Quay use).
    Bearer {
        /// The token endpoint URL.
        realm: String,
        /// The `service` to ask the token for.
        service: Option<String>,
        /// The `scope` the registry says the request needs.
        scope: Option<String>,
    },
    /// Send the user name and password with every request.
    Basic,
}

/// Parse a `WWW-Authenticate` header:
/// `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
///
/// The scheme is case-insensitive, parameter values may be quoted (with
/// backslash escapes) or bare tokens. When the header lists several
/// challenges, the first one is returned. `None` for other schemes and for a
/// Bearer challenge without a realm, which cannot be followed.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (&header[..i], &header[i..]),
        None => (header, ""),
    };
    let params = parse_params(rest);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm").filter(|r| !r.is_empty())?,
            service: get("service"),
            scope: get("scope"),
        })
    } else if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else {
        None
    }
}

/// Parse `k=v, k="quoted \" value", …` up to the end or the start of a
/// second challenge (a bare token not followed by `=`).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    // Each pass consumes at least one char or stops, so this ends.
    loop {
        while chars
            .peek()
            .is_some_and(|c| c.is_ascii_whitespace() || *c == ',')
        {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_ascii_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if key.is_empty() || chars.peek() != Some(&'=') {
            // End of input, or a new challenge scheme: stop at the first challenge.
            return out;
        }
        chars.next(); // '='
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => {
                        if let Some(e) = chars.next() {
                            value.push(e);
                        }
                    }
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_ascii_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Option<Credentials> {
        Some(Credentials {
            username: u.into(),
            password: p.into(),
        })
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn auth_field_decodes_and_keeps_colons_in_password() {
        let file = format!(
            r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#,
            b64("bob:pa:ss")
        );
        assert_eq!(
            parse_auth_file(file.as_bytes(), "ghcr.io").unwrap(),
            creds("bob", "pa:ss")
        );
        assert_eq!(parse_auth_file(file.as_bytes(), "quay.io").unwrap(), None);
    }

    #[test]
    fn auth_field_without_padding() {
        let auth = b64("ab:c").trim_end_matches('=').to_string();
        let file = format!(r#"{{"auths":{{"r.example":{{"auth":"{auth}"}}}}}}"#);
        assert_eq!(
            parse_auth_file(file.as_bytes(), "r.example").unwrap(),
            creds("ab", "c")
        );
    }

    #[test]
    fn username_password_fields() {
        let file = br#"{"auths":{"localhost:5000":{"username":"u","password":"p"}}}"#;
        assert_eq!(
            parse_auth_file(file, "localhost:5000").unwrap(),
            creds("u", "p")
        );
        // The port is part of the registry's name.
        assert_eq!(parse_auth_file(file, "localhost").unwrap(), None);
    }

    #[test]
    fn docker_hub_aliases() {
        for key in [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "registry-1.docker.io",
            "docker.io",
        ] {
            let file = format!(r#"{{"auths":{{"{key}":{{"auth":"{}"}}}}}}"#, b64("hub:pw"));
            assert_eq!(
                parse_auth_file(file.as_bytes(), "docker.io").unwrap(),
                creds("hub", "pw"),
                "key {key}"
            );
        }
    }

    #[test]
    fn exact_key_wins_and_scheme_prefix_matches() {
        let file = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"docker.io":{{"auth":"{}"}}}}}}"#,
            b64("old:1"),
            b64("new:2")
        );
        assert_eq!(
            parse_auth_file(file.as_bytes(), "docker.io").unwrap(),
            creds("new", "2")
        );
        let file = format!(
            r#"{{"auths":{{"https://my.reg:443":{{"auth":"{}"}}}}}}"#,
            b64("a:b")
        );
        assert_eq!(
            parse_auth_file(file.as_bytes(), "my.reg:443").unwrap(),
            creds("a", "b")
        );
    }

    #[test]
    fn namespaced_keys_are_not_used_for_the_whole_registry() {
        let file = format!(
            r#"{{"auths":{{"quay.io/someorg":{{"auth":"{}"}}}}}}"#,
            b64("a:b")
        );
        assert_eq!(parse_auth_file(file.as_bytes(), "quay.io").unwrap(), None);
    }

    #[test]
    fn helpers_and_empty_entries_give_none() {
        let file = br#"{"auths":{"docker.io":{}},"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"}}"#;
        assert_eq!(parse_auth_file(file, "docker.io").unwrap(), None);
        assert_eq!(parse_auth_file(file, "gcr.io").unwrap(), None);
        assert_eq!(parse_auth_file(b"{}", "gcr.io").unwrap(), None);
        let file = br#"{"auths":{"x.io":{"auth":"","identitytoken":"tok"}}}"#;
        assert_eq!(parse_auth_file(file, "x.io").unwrap(), None);
    }

    #[test]
    fn malformed_files_and_fields_are_errors() {
        assert!(matches!(
            parse_auth_file(b"not json", "x.io"),
            Err(AuthFileError::Json(_))
        ));
        assert!(matches!(
            parse_auth_file(br#"{"auths":[]}"#, "x.io"),
            Err(AuthFileError::Json(_))
        ));
        let file = br#"{"auths":{"x.io":{"auth":"!!!"}}}"#;
        let err = parse_auth_file(file, "x.io").unwrap_err();
        assert!(err.to_string().contains("x.io"), "{err}");
        let file = format!(r#"{{"auths":{{"x.io":{{"auth":"{}"}}}}}}"#, b64("nocolon"));
        assert!(matches!(
            parse_auth_file(file.as_bytes(), "x.io"),
            Err(AuthFileError::BadAuthField { .. })
        ));
    }

    #[test]
    fn candidates_follow_the_environment() {
        let env = |k: &str| match k {
            "HOME" => Some("/home/u".to_string()),
            "XDG_RUNTIME_DIR" => Some("/run/user/1".to_string()),
            "DOCKER_CONFIG" => Some("/etc/dock".to_string()),
            "REGISTRY_AUTH_FILE" => Some("/a.json".to_string()),
            _ => None,
        };
        let got: Vec<String> = auth_file_candidates(env)
            .into_iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "/a.json",
                "/run/user/1/containers/auth.json",
                "/home/u/.config/containers/auth.json",
                "/etc/dock/config.json"
            ]
        );
        let only_home = |k: &str| (k == "HOME").then(|| "/h".to_string());
        let got: Vec<String> = auth_file_candidates(only_home)
            .into_iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            got,
            ["/h/.config/containers/auth.json", "/h/.docker/config.json"]
        );
        assert!(auth_file_candidates(|_| None).is_empty());
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "secret".into(),
        };
        assert!(!format!("{c:?}").contains("secret"));
        assert_eq!(c.basic_header(), format!("Basic {}", b64("u:secret")));
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into()),
            })
        );
        // Case-insensitive scheme and names, spaces after commas, bare tokens.
        assert_eq!(
            parse_challenge(r#"bearer Realm="https://ghcr.io/token", service=ghcr.io"#),
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into()),
                scope: None,
            })
        );
        // Commas and escaped quotes inside a quoted value.
        assert_eq!(
            parse_challenge(r#"Bearer realm="https://a/t",scope="repository:a:pull,push x\"y""#),
            Some(Challenge::Bearer {
                realm: "https://a/t".into(),
                service: None,
                scope: Some("repository:a:pull,push x\"y".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Basic"), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Bearer"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
        assert_eq!(parse_challenge(r#"Digest realm="x", nonce="y""#), None);
        assert_eq!(parse_challenge(""), None);
        // Only the first of several challenges is returned.
        assert_eq!(
            parse_challenge(r#"Basic realm="a", Bearer realm="https://b""#),
            Some(Challenge::Basic)
        );
    }
}
