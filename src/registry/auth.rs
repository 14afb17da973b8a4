//! Registry credentials and authentication challenges.
//!
//! This module owns two things: finding the credentials for a registry in
//! the auth files that `docker login` and `podman login` write (or in the
//! credential helper such a file names), and parsing the `WWW-Authenticate`
//! header a registry answers a 401 with. The parsers are pure functions
//! over `&str`/`&[u8]`; only [`lookup`] and [`lookup_file`] touch the
//! environment, the file system and (through `helper`) other programs.
//!
//! Two ways to look: [`lookup`] is the host's, like docker and podman
//! (several files, credential helpers run); [`lookup_file`] reads one file
//! given on purpose (`--creds-file`, the boot environment's
//! `/etc/wyrcan/auth.json`) and never runs a helper: credentials come from
//! that file only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use tracing::{debug, warn};

use super::helper::{self, Helper};

/// The user name that marks an identity token, as credential helpers
/// answer it (`{"Username":"<token>","Secret":TOKEN}`).
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// A user name and password for one registry, or an identity token.
///
/// An identity token (the `identitytoken` of an auth file, or a helper's
/// answer with the user name [`IDENTITY_TOKEN_USER`]) is an OAuth2 refresh
/// token: it is traded for an access token at the registry's token server
/// (`POST`, `grant_type=refresh_token`), the way Docker uses it. It is kept
/// as the password under the user name [`IDENTITY_TOKEN_USER`].
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (for tokens, often a fixed name such as `oauth2accesstoken`).
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl Credentials {
    /// Credentials that are an identity token (an OAuth2 refresh token).
    pub fn identity_token(token: impl Into<String>) -> Credentials {
        Credentials {
            username: IDENTITY_TOKEN_USER.to_string(),
            password: token.into(),
        }
    }

    /// The identity token, when these credentials are one.
    pub fn refresh_token(&self) -> Option<&str> {
        (self.username == IDENTITY_TOKEN_USER).then_some(self.password.as_str())
    }

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
        if self.refresh_token().is_some() {
            return f
                .debug_struct("Credentials")
                .field("identity_token", &"<redacted>")
                .finish();
        }
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why an auth file could not be used. The messages never quote the file:
/// it holds secrets.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    /// The file is not the JSON object we expect: where (not serde's
    /// message, which would quote the file; nor the error as a source).
    #[error("not a valid auth file ({0})")]
    Json(String),
    /// The entry for the registry has an `auth` field that is not base64 of `user:password`.
    #[error("the \"auth\" field of entry {key:?} is not base64 of USER:PASSWORD")]
    BadAuthField {
        /// The key of the `auths` entry.
        key: String,
    },
}

impl From<serde_json::Error> for AuthFileError {
    fn from(e: serde_json::Error) -> Self {
        AuthFileError::Json(json_problem(&e))
    }
}

/// Where a JSON document went wrong, without serde's own message: that
/// quotes the offending value, which may be a secret.
pub(super) fn json_problem(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "unexpected JSON structure",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
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

/// What `docker login` keeps Docker Hub's credentials under, in a helper
/// as in `auths`.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

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

/// What one auth file says about a registry.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// Credentials written in the file.
    Credentials(Credentials),
    /// A credential helper keeps them.
    Helper(Helper),
    /// Nothing for this registry.
    Nothing,
}

/// Look `registry` up in the contents of one auth file (docker's
/// `config.json` or podman's `auth.json`; both use the same `auths` map).
///
/// The order: a `credHelpers` entry for the registry, then the credentials
/// of an `auths` entry (a `{}` entry is only docker's marker for a login
/// kept in a helper), then the `credsStore` that serves every registry.
pub fn parse_auth_file(content: &[u8], registry: &str) -> Result<Found, AuthFileError> {
    let file: AuthFile = serde_json::from_slice(content)?;
    let wanted = wanted_hosts(registry);
    let matching = |k: &String| key_host(k).is_some_and(|h| wanted.contains(&h));
    // What the helper is asked for: the key `docker login` stored.
    let server = if DOCKER_HUB_ALIASES.contains(&registry) {
        DOCKER_HUB_SERVER
    } else {
        registry
    };

    // An exact key wins over an alias or a decorated key, whatever the order.
    let by_specificity = |k: &String| (k.as_str() != registry, k.len());
    let mut helpers: Vec<(&String, &String)> = file
        .cred_helpers
        .iter()
        .filter(|(k, name)| matching(k) && !name.is_empty())
        .collect();
    helpers.sort_by_key(|(k, _)| by_specificity(k));
    if let Some((_, name)) = helpers.first() {
        return Ok(Found::Helper(Helper::new(name, "credHelpers", server)));
    }

    let mut matches: Vec<(&String, &AuthEntry)> =
        file.auths.iter().filter(|(k, _)| matching(k)).collect();
    matches.sort_by_key(|(k, _)| by_specificity(k));
    for (key, entry) in matches {
        if let Some(creds) = entry_credentials(key, entry)? {
            return Ok(Found::Credentials(creds));
        }
    }

    match file.creds_store.as_deref() {
        Some(name) if !name.is_empty() => {
            Ok(Found::Helper(Helper::new(name, "credsStore", server)))
        }
        _ => Ok(Found::Nothing),
    }
}

/// The credentials of one `auths` entry; `None` when it holds none we can
/// use. An identity token wins over a user name and password (Azure's
/// `az acr login` writes both, the password empty).
fn entry_credentials(key: &str, entry: &AuthEntry) -> Result<Option<Credentials>, AuthFileError> {
    if let Some(token) = entry.identity_token.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials::identity_token(token)));
    }
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

/// What a lookup found: credentials or none, and a note for the message
/// of a refused pull (where the credentials came from, or why there are
/// none). Neither holds a secret in its `Debug` or in the note.
#[derive(Debug, Default)]
pub struct Lookup {
    /// The credentials to use, if any.
    pub credentials: Option<Credentials>,
    /// Where they came from, or why there are none, for messages.
    pub note: Option<String>,
}

/// Read one auth file; `None` when it does not exist.
fn read_file(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading auth file {}", path.display())),
    }
}

/// Look up credentials for a registry the way docker and podman do on a
/// host: in `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
/// `~/.config/containers/auth.json` (or under `$XDG_CONFIG_HOME`), and
/// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. The first file
/// that knows the registry wins; a credential helper it names
/// (`credHelpers`, `credsStore`) is run (`docker-credential-NAME get`).
///
/// `registry` is the registry as written in the image reference
/// (`docker.io`, `ghcr.io`, `localhost:5000`); `docker.io` also matches the
/// keys `https://index.docker.io/v1/`, `index.docker.io` and
/// `registry-1.docker.io`. Missing files are skipped. A file that cannot
/// be read or parsed is skipped with a warning (a pull that needs no
/// credentials must not fail for it; the note says it). A helper that fails,
/// hangs or is missing from `PATH` is an error naming it, as in docker.
pub fn lookup(registry: &str) -> anyhow::Result<Lookup> {
    let paths = auth_file_candidates(|k| std::env::var(k).ok());
    lookup_in(&paths, registry, &|h: &Helper| {
        helper::run(&h.program()?, &h.server, helper::TIMEOUT)
    })
}

/// [`lookup`] over these files, with `run` standing in for running a helper.
fn lookup_in(
    paths: &[PathBuf],
    registry: &str,
    run: &dyn Fn(&Helper) -> Result<Option<Credentials>, helper::HelperError>,
) -> anyhow::Result<Lookup> {
    let mut note = None;
    for path in paths {
        let found = match read_file(path).and_then(|content| match content {
            None => Ok(None),
            Some(c) => parse_auth_file(&c, registry)
                .map(Some)
                .with_context(|| format!("reading auth file {}", path.display())),
        }) {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(e) => {
                warn!("ignoring the auth file: {e:#}");
                note.get_or_insert(format!("{e:#}"));
                continue;
            }
        };
        match found {
            Found::Credentials(creds) => {
                debug!(
                    "using credentials for {registry} from {} ({})",
                    path.display(),
                    describe(&creds)
                );
                return Ok(Lookup {
                    credentials: Some(creds),
                    note: Some(format!("the credentials sent came from {}", path.display())),
                });
            }
            Found::Helper(h) => {
                let who = h.describe(path);
                match run(&h).map_err(|e| e.named(&who))? {
                    Some(creds) => {
                        debug!(
                            "using credentials for {registry} from {who} ({})",
                            describe(&creds)
                        );
                        return Ok(Lookup {
                            credentials: Some(creds),
                            note: Some(format!("the credentials sent came from {who}")),
                        });
                    }
                    None => {
                        debug!("{who} has no credentials for {registry}");
                        note.get_or_insert(format!("{who} has no credentials for {registry}"));
                    }
                }
            }
            Found::Nothing => {}
        }
    }
    if note.is_none() {
        debug!("no credentials for {registry} in the auth files");
    }
    Ok(Lookup {
        credentials: None,
        note,
    })
}

/// Look up credentials for a registry in this one file only: the
/// `--creds-file` JSON, or the boot environment's `/etc/wyrcan/auth.json`.
/// A missing file means anonymous; a file that cannot be read or parsed is
/// an error naming it. A credential helper the file names is not run
/// (credentials come from this file only): a warning says so, and so does
/// the note.
pub fn lookup_file(path: &Path, registry: &str) -> anyhow::Result<Lookup> {
    let Some(content) = read_file(path)? else {
        debug!("no auth file {}: pulling anonymously", path.display());
        return Ok(Lookup {
            credentials: None,
            note: Some(format!("there is no auth file {}", path.display())),
        });
    };
    let found = parse_auth_file(&content, registry)
        .with_context(|| format!("reading auth file {}", path.display()))?;
    Ok(match found {
        Found::Credentials(creds) => {
            debug!(
                "using credentials for {registry} from {} ({})",
                path.display(),
                describe(&creds)
            );
            Lookup {
                credentials: Some(creds),
                note: Some(format!("the credentials sent came from {}", path.display())),
            }
        }
        Found::Helper(h) => {
            let text = format!(
                "{} for {registry} is not run (a single auth file is read, no program): \
                 put the credentials for {registry} in the file itself",
                h.describe(path)
            );
            warn!("{text}");
            Lookup {
                credentials: None,
                note: Some(text),
            }
        }
        Found::Nothing => {
            debug!("no credentials for {registry} in {}", path.display());
            Lookup {
                credentials: None,
                note: Some(format!(
                    "{} holds no credentials for {registry}",
                    path.display()
                )),
            }
        }
    })
}

/// What kind of credentials these are, for log lines (never the secret).
fn describe(creds: &Credentials) -> String {
    match creds.refresh_token() {
        Some(_) => "an identity token".to_string(),
        None => format!("user {}", creds.username),
    }
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

    fn creds(u: &str, p: &str) -> Found {
        Found::Credentials(Credentials {
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
        assert_eq!(
            parse_auth_file(file.as_bytes(), "quay.io").unwrap(),
            Found::Nothing
        );
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
        assert_eq!(parse_auth_file(file, "localhost").unwrap(), Found::Nothing);
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
        assert_eq!(
            parse_auth_file(file.as_bytes(), "quay.io").unwrap(),
            Found::Nothing
        );
    }

    #[test]
    fn empty_entries_give_nothing() {
        assert_eq!(parse_auth_file(b"{}", "gcr.io").unwrap(), Found::Nothing);
        let file = br#"{"auths":{"x.io":{},"y.io":{"auth":"","username":"","password":"p"}}}"#;
        assert_eq!(parse_auth_file(file, "x.io").unwrap(), Found::Nothing);
        assert_eq!(parse_auth_file(file, "y.io").unwrap(), Found::Nothing);
    }

    #[test]
    fn identity_tokens() {
        // Azure's `az acr login`: an empty password beside the token; the token wins.
        let file = format!(
            r#"{{"auths":{{"x.io":{{"auth":"{}","identitytoken":"rt-1"}}}}}}"#,
            b64("00000000-0000-0000-0000-000000000000:")
        );
        let Found::Credentials(c) = parse_auth_file(file.as_bytes(), "x.io").unwrap() else {
            panic!("no credentials")
        };
        assert_eq!(c.refresh_token(), Some("rt-1"));
        let file = br#"{"auths":{"x.io":{"auth":"","identitytoken":"rt-2"}}}"#;
        let Found::Credentials(c) = parse_auth_file(file, "x.io").unwrap() else {
            panic!("no credentials")
        };
        assert_eq!(c.refresh_token(), Some("rt-2"));
        assert_eq!(Credentials::identity_token("t").refresh_token(), Some("t"));
        assert_eq!(
            Credentials {
                username: "u".into(),
                password: "p".into()
            }
            .refresh_token(),
            None
        );
    }

    #[test]
    fn which_helper_for_which_registry() {
        let helper =
            |name: &str, field, server: &str| Found::Helper(Helper::new(name, field, server));
        let file = format!(
            r#"{{"auths":{{"docker.io":{{}},"inline.io":{{"auth":"{}"}},"both.io":{{"auth":"{}"}}}},
                "credsStore":"desktop",
                "credHelpers":{{"gcr.io":"gcloud","both.io":"pass","https://index.docker.io/v1/":"hub","q.io/org":"org"}}}}"#,
            b64("a:b"),
            b64("c:d")
        );
        let f = file.as_bytes();
        // credHelpers for the registry first, even over an inline entry.
        assert_eq!(
            parse_auth_file(f, "gcr.io").unwrap(),
            helper("gcloud", "credHelpers", "gcr.io")
        );
        assert_eq!(
            parse_auth_file(f, "both.io").unwrap(),
            helper("pass", "credHelpers", "both.io")
        );
        // Docker Hub: any alias key; the helper is asked for docker's server name.
        assert_eq!(
            parse_auth_file(f, "docker.io").unwrap(),
            helper("hub", "credHelpers", "https://index.docker.io/v1/")
        );
        // Then inline credentials, then the store for everything else.
        assert_eq!(parse_auth_file(f, "inline.io").unwrap(), creds("a", "b"));
        assert_eq!(
            parse_auth_file(f, "other.io:5000").unwrap(),
            helper("desktop", "credsStore", "other.io:5000")
        );
        // A namespaced key is not the registry's helper.
        assert_eq!(
            parse_auth_file(f, "q.io").unwrap(),
            helper("desktop", "credsStore", "q.io")
        );
        // An empty store or helper name means none.
        let file = br#"{"credsStore":"","credHelpers":{"x.io":""}}"#;
        assert_eq!(parse_auth_file(file, "x.io").unwrap(), Found::Nothing);
    }

    /// Writes `content` as `name` in `dir`.
    fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn host_lookup_order_helpers_and_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let broken = write(d, "broken.json", r#"{"auths":{"r.io":"c2VjcmV0"}}"#);
        let helped = write(d, "helped.json", r#"{"credHelpers":{"r.io":"t"}}"#);
        let inline = write(
            d,
            "inline.json",
            &format!(r#"{{"auths":{{"r.io":{{"auth":"{}"}}}}}}"#, b64("u:p")),
        );
        let missing = d.join("missing.json");
        let answer = |a: Option<Credentials>| {
            move |h: &Helper| -> Result<_, helper::HelperError> {
                assert_eq!((h.name.as_str(), h.server.as_str()), ("t", "r.io"));
                Ok(a.clone())
            }
        };
        let given = Credentials {
            username: "hu".into(),
            password: "hp".into(),
        };

        // A broken file is skipped, and said in the note; the helper answers.
        let l = lookup_in(
            &[
                missing.clone(),
                broken.clone(),
                helped.clone(),
                inline.clone(),
            ],
            "r.io",
            &answer(Some(given.clone())),
        )
        .unwrap();
        assert_eq!(l.credentials, Some(given));
        let note = l.note.unwrap();
        assert!(
            note.contains("docker-credential-t (credHelpers in") && note.contains("helped.json"),
            "{note}"
        );

        // A helper without credentials: on to the next file.
        let l = lookup_in(&[helped.clone(), inline.clone()], "r.io", &answer(None)).unwrap();
        assert_eq!(l.credentials.unwrap().username, "u");
        let l = lookup_in(&[broken.clone(), helped.clone()], "r.io", &answer(None)).unwrap();
        assert_eq!(l.credentials, None);
        let note = l.note.unwrap();
        // The broken file's problem, never its content.
        assert!(
            note.contains("broken.json") && !note.contains("c2VjcmV0"),
            "{note}"
        );

        // A failing helper is an error naming it and the file.
        let failing = |_: &Helper| -> Result<Option<Credentials>, helper::HelperError> {
            Err(helper::HelperError {
                who: "x".into(),
                failure: helper::Failure::Missing,
            })
        };
        let err = lookup_in(std::slice::from_ref(&helped), "r.io", &failing).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("the credential helper docker-credential-t (credHelpers in")
                && text.contains("not on PATH"),
            "{text}"
        );
        assert!(lookup_in(&[missing], "r.io", &failing)
            .unwrap()
            .credentials
            .is_none());
    }

    #[test]
    fn single_file_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let l = lookup_file(&d.join("auth.json"), "r.io").unwrap();
        assert!(l.credentials.is_none());
        assert!(l.note.unwrap().contains("there is no auth file"));

        let f = write(
            d,
            "a.json",
            r#"{"auths":{"r.io":{"username":"u","password":"p"}}}"#,
        );
        assert_eq!(
            lookup_file(&f, "r.io")
                .unwrap()
                .credentials
                .unwrap()
                .password,
            "p"
        );
        let l = lookup_file(&f, "other.io").unwrap();
        assert!(l.credentials.is_none());
        assert!(l
            .note
            .unwrap()
            .contains("holds no credentials for other.io"));

        // A helper is named, not run.
        let f = write(
            d,
            "h.json",
            r#"{"credHelpers":{"r.io":"definitely-not-run"}}"#,
        );
        let l = lookup_file(&f, "r.io").unwrap();
        assert!(l.credentials.is_none());
        let note = l.note.unwrap();
        assert!(
            note.contains("docker-credential-definitely-not-run") && note.contains("is not run"),
            "{note}"
        );

        // Unreadable or malformed: an error naming the file, not quoting it.
        let f = write(d, "bad.json", r#"{"auths":{"r.io":{"auth":12345}}}"#);
        let err = format!("{:#}", lookup_file(&f, "r.io").unwrap_err());
        assert!(err.contains("bad.json") && !err.contains("12345"), "{err}");
        let err = format!("{:#}", lookup_file(d, "r.io").unwrap_err());
        assert!(
            err.contains(&format!("reading auth file {}", d.display())),
            "{err}"
        );
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
        let t = Credentials::identity_token("refresh-secret");
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("refresh-secret") && shown.contains("identity_token"),
            "{shown}"
        );
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
