//! Registry mirrors, with containerd's `hosts.toml` semantics: a mirror
//! serves content **by digest**; tag lookups go to the upstream unless the
//! mirror is marked `resolve+` (a site whose upstream is unreachable).
//! Mirrors are tried in order, the upstream last. Nothing from a mirror is
//! trusted beyond its digest: a mirror that lies or is stale only makes the
//! client fall back to the next endpoint.
//!
//! Written `REGISTRY=URL[,URL…]` (`wyrcan.mirror=`, `--mirror`,
//! `customize --mirror`): `REGISTRY` is `host[:port]` or `*` (any
//! registry); each `URL` is `http(s)://host[:port][/path-prefix]`,
//! optionally prefixed `resolve+`. On hosts, the mirrors of
//! `containers-registries.conf(5)` are read too ([`from_registries_conf`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The mirrors of one registry (or of every registry: `*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirror {
    /// `host[:port]` as references name it (`docker.io`), or `*`.
    pub registry: String,
    /// In the order they are tried.
    pub endpoints: Vec<Endpoint>,
}

/// One mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `http` or `https`: written by the operator, so plain HTTP to this
    /// host needs no `--insecure` (the digests are verified all the same).
    pub scheme: String,
    /// `host[:port]`.
    pub host: String,
    /// Path before `/v2/`, empty or starting with `/` (no trailing `/`).
    pub prefix: String,
    /// May answer tag lookups (`resolve+`).
    pub resolve: bool,
}

impl Endpoint {
    /// `scheme://host[/prefix]`: what `/v2/…` is appended to.
    pub fn base(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.prefix)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.resolve {
            f.write_str("resolve+")?;
        }
        f.write_str(&self.base())
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let eps: Vec<String> = self.endpoints.iter().map(|e| e.to_string()).collect();
        write!(f, "{}={}", self.registry, eps.join(","))
    }
}

/// Why a mirror setting cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    /// Not `REGISTRY=URL`.
    #[error("expected REGISTRY=URL[,URL…], e.g. docker.io=http://cache.lan:5000")]
    Shape,
    /// The registry part.
    #[error("{0:?} is not a registry: expected host[:port] or *")]
    Registry(String),
    /// A URL.
    #[error("{url:?}: {problem}")]
    Url {
        /// The URL as written.
        url: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// registries.conf.
    #[error("registries.conf: {0}")]
    Conf(String),
}

/// Most mirrors of one registry: more is a typo, not a site.
pub const MAX_ENDPOINTS: usize = 16;

/// Parse `REGISTRY=URL[,URL…]`.
pub fn parse(s: &str) -> Result<Mirror, MirrorError> {
    let (registry, urls) = s.split_once('=').ok_or(MirrorError::Shape)?;
    let registry = registry.trim().to_ascii_lowercase();
    if registry != "*" && !is_host_port(&registry) {
        return Err(MirrorError::Registry(registry));
    }
    let endpoints = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(parse_url)
        .collect::<Result<Vec<_>, _>>()?;
    if endpoints.is_empty() {
        return Err(MirrorError::Shape);
    }
    if endpoints.len() > MAX_ENDPOINTS {
        return Err(MirrorError::Url {
            url: urls.to_string(),
            problem: "more than 16 mirrors",
        });
    }
    Ok(Mirror {
        registry,
        endpoints,
    })
}

fn parse_url(url: &str) -> Result<Endpoint, MirrorError> {
    let bad = |problem| MirrorError::Url {
        url: url.to_string(),
        problem,
    };
    let (resolve, rest) = match url.strip_prefix("resolve+") {
        Some(r) => (true, r),
        None => (false, url),
    };
    let (scheme, rest) = rest
        .split_once("://")
        .ok_or_else(|| bad("expected http://host[:port][/prefix] or https://…"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(bad("only http:// and https:// mirrors"));
    }
    if rest.contains(['?', '#', '@']) {
        return Err(bad("no query, fragment or credentials in a mirror URL (credentials go in the auth file, by host)"));
    }
    let (host, prefix) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = host.to_ascii_lowercase();
    if !is_host_port(&host) {
        return Err(bad("the host is not host[:port]"));
    }
    let prefix = prefix.trim_end_matches('/');
    // containerd accepts a prefix ending in /v2 and appends the rest itself.
    let prefix = prefix.strip_suffix("/v2").unwrap_or(prefix);
    if prefix
        .split('/')
        .skip(1)
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(bad("the path prefix has an empty, . or .. component"));
    }
    Ok(Endpoint {
        scheme,
        host,
        prefix: prefix.to_string(),
        resolve,
    })
}

/// `host`, `host:port`, `[v6]:port`: letters, digits, `.-_`, one port.
fn is_host_port(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    // `port` keeps its colon, so "host:" (an empty port) is refused.
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) if h.parse::<std::net::Ipv6Addr>().is_ok() => (None, p),
            _ => return false,
        }
    } else {
        match s.rfind(':') {
            Some(i) => (Some(&s[..i]), &s[i..]),
            None => (Some(s), ""),
        }
    };
    let port_ok = match port.strip_prefix(':') {
        Some(p) => p.parse::<u16>().is_ok_and(|n| n > 0),
        None => port.is_empty(),
    };
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    });
    port_ok && host_ok
}

/// The endpoints to try for `registry` (as a reference names it), in
/// order: the mirrors given for it, or else those given for `*`.
pub fn endpoints_for<'a>(mirrors: &'a [Mirror], registry: &str) -> Vec<&'a Endpoint> {
    let registry = registry.to_ascii_lowercase();
    let exact: Vec<&Endpoint> = mirrors
        .iter()
        .filter(|m| m.registry == registry)
        .flat_map(|m| &m.endpoints)
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    mirrors
        .iter()
        .filter(|m| m.registry == "*")
        .flat_map(|m| &m.endpoints)
        .collect()
}

#[derive(Deserialize)]
struct Conf {
    #[serde(default)]
    registry: Vec<ConfRegistry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ConfRegistry {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    mirror: Vec<ConfMirror>,
    #[serde(default)]
    mirror_by_digest_only: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ConfMirror {
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    pull_from_mirror: Option<String>,
}

/// The mirrors of a `containers-registries.conf(5)` (version 2, TOML):
/// each `[[registry]]` whose `prefix` (or `location`) is a whole registry
/// and that has `[[registry.mirror]]` entries. A mirror's `location` has no
/// scheme there: `insecure = true` makes it `http://`. Tag lookups go to a
/// mirror (`resolve`) unless it is `pull-from-mirror = "digest-only"` or the
/// registry is `mirror-by-digest-only` — the file's own default is "all",
/// and every byte is verified by digest either way. Prefixes narrower than a
/// registry (`docker.io/library`) are skipped: Wyrcan mirrors whole registries.
pub fn from_registries_conf(text: &str) -> Result<Vec<Mirror>, MirrorError> {
    let conf: Conf =
        toml::from_str(text).map_err(|e| MirrorError::Conf(e.message().to_string()))?;
    let mut out = Vec::new();
    for r in conf.registry {
        if r.mirror.is_empty() {
            continue;
        }
        let Some(registry) = r.prefix.or(r.location) else {
            continue;
        };
        let registry = registry.to_ascii_lowercase();
        if registry.contains('/') || !(registry == "*" || is_host_port(&registry)) {
            continue;
        }
        let mut endpoints = Vec::new();
        for m in r.mirror.iter().take(MAX_ENDPOINTS) {
            let scheme = if m.insecure { "http" } else { "https" };
            let digest_only =
                r.mirror_by_digest_only || m.pull_from_mirror.as_deref() == Some("digest-only");
            let url = format!("{scheme}://{}", m.location);
            let mut e = parse_url(&url)?;
            e.resolve = !digest_only;
            endpoints.push(e);
        }
        out.push(Mirror {
            registry,
            endpoints,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_containerd_and_the_issue_name() {
        let m = parse("docker.io=http://cache.lan:5000,resolve+https://m2.lan/v2-cache/").unwrap();
        assert_eq!(m.registry, "docker.io");
        assert_eq!(m.endpoints.len(), 2);
        assert_eq!(m.endpoints[0].base(), "http://cache.lan:5000");
        assert!(!m.endpoints[0].resolve);
        assert_eq!(m.endpoints[1].base(), "https://m2.lan/v2-cache");
        assert!(m.endpoints[1].resolve);
        assert_eq!(
            m.to_string(),
            "docker.io=http://cache.lan:5000,resolve+https://m2.lan/v2-cache"
        );
        let m = parse("*=https://Mirror.LAN/prefix/v2").unwrap();
        assert_eq!(
            (m.registry.as_str(), m.endpoints[0].base()),
            ("*", "https://mirror.lan/prefix".into())
        );
        let m = parse("10.0.2.100:5000=http://[fd00::1]:5000").unwrap();
        assert_eq!(m.endpoints[0].host, "[fd00::1]:5000");
    }

    #[test]
    fn refuses_what_would_surprise() {
        for bad in [
            "docker.io",
            "docker.io=",
            "=http://x",
            "a/b=http://x",
            "docker.io=ftp://x",
            "docker.io=cache.lan:5000",
            "docker.io=http://u:p@cache.lan",
            "docker.io=http://cache.lan?x=1",
            "docker.io=http://cache.lan/../x",
            "docker.io=http://cache lan",
            "docker.io=http://cache.lan:99999",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let many = vec!["http://m"; 17].join(",");
        assert!(parse(&format!("x.io={many}")).is_err());
    }

    #[test]
    fn exact_registry_first_then_star() {
        let ms = vec![
            parse("*=http://any").unwrap(),
            parse("quay.io=http://q1,http://q2").unwrap(),
        ];
        let hosts = |r| {
            endpoints_for(&ms, r)
                .iter()
                .map(|e| e.host.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(hosts("quay.io"), ["q1", "q2"]);
        assert_eq!(hosts("QUAY.IO"), ["q1", "q2"]);
        assert_eq!(hosts("ghcr.io"), ["any"]);
        assert!(endpoints_for(&ms[1..], "ghcr.io").is_empty());
    }

    #[test]
    fn registries_conf_mirrors() {
        let conf = r#"
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "docker.io"
location = "registry-1.docker.io"
[[registry.mirror]]
location = "cache.lan:5000"
insecure = true
[[registry.mirror]]
location = "mirror.lan/dockerhub"
pull-from-mirror = "digest-only"

[[registry]]
location = "quay.io"
mirror-by-digest-only = true
[[registry.mirror]]
location = "q.lan"

[[registry]]
prefix = "docker.io/library"
[[registry.mirror]]
location = "narrow.lan"

[[registry]]
location = "ghcr.io"
"#;
        let ms = from_registries_conf(conf).unwrap();
        assert_eq!(ms.len(), 2, "{ms:?}");
        assert_eq!(
            ms[0].to_string(),
            "docker.io=resolve+http://cache.lan:5000,https://mirror.lan/dockerhub"
        );
        assert_eq!(ms[1].to_string(), "quay.io=https://q.lan");
        assert!(from_registries_conf("[[registry]\n").is_err());
        assert!(from_registries_conf("").unwrap().is_empty());
    }
}
