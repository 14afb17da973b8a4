//! `transports.docker` scopes: which strings are scopes, and in what order
//! an image's scopes are looked up (containers/image
//! `docker/policyconfiguration/naming.go`).
//!
//! An image `reg.example.com:5000/ns/os:1` is looked up as, in order:
//! `reg.example.com:5000/ns/os:1`, `reg.example.com:5000/ns/os`,
//! `reg.example.com:5000/ns`, `reg.example.com:5000`, `*.example.com`,
//! `*.com`, then the transport's `""` scope; the policy's `default` comes
//! after all of them. Names are compared after normalization
//! (`busybox` is `docker.io/library/busybox`), so a scope that is not
//! written in normalized form would never match: it is refused when the
//! policy is read instead.

use crate::reference::{self, Reference};

/// Why `scope` can never match, or `Ok`.
pub(crate) fn validate(scope: &str) -> Result<(), String> {
    if scope.is_empty() {
        return Ok(());
    }
    if scope.starts_with('*') {
        let domain = scope.strip_prefix("*.").unwrap_or_default();
        return if !domain.is_empty() && domain.split('.').all(reference::is_domain_component) {
            Ok(())
        } else {
            Err("a wildcard scope is *.DOMAIN, e.g. *.example.com (no port, no path; it matches subdomains of DOMAIN, not DOMAIN itself)".to_string())
        };
    }
    let (host, path) = match scope.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (scope, None),
    };
    check_host(host)?;
    let Some(path) = path else {
        return Ok(());
    };
    if path.contains([':', '@']) {
        // A tag or a digest: one exact image.
        let r: Reference = scope.parse().map_err(|e| format!("{e}"))?;
        if r.tag().is_some() && r.digest().is_some() {
            return Err("a scope names a tag or a digest, not both".to_string());
        }
        let canonical = r.to_string();
        if canonical != scope {
            return Err(format!(
                "images are matched by their normalized name; write {canonical:?}"
            ));
        }
        return Ok(());
    }
    check_path(path)
}

/// A remapIdentity `prefix` or `signedPrefix`: `host[:port]` or
/// `host[:port]/namespace[/…]`, written normalized.
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), String> {
    let (host, path) = match prefix.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (prefix, None),
    };
    check_host(host)?;
    match path {
        Some(p) => check_path(p),
        None => Ok(()),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if host == "index.docker.io" {
        return Err("Docker Hub is docker.io in normalized names; write docker.io".to_string());
    }
    // What a reference reads as its registry (reference.rs split_registry):
    // a first component without '.', ':' or capitals is a Docker Hub
    // namespace, so as a scope it would never match.
    let hostlike = host.contains(['.', ':'])
        || host == "localhost"
        || host.to_lowercase() != host
        || host.starts_with('[');
    if !hostlike || !reference::is_domain_and_port(host) {
        return Err(format!(
            "{host:?} is not a registry host[:port] (a host has a '.' or a ':port', or is localhost; Docker Hub images are under docker.io/, e.g. docker.io/library/busybox)"
        ));
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), String> {
    match path.split('/').find(|c| !reference::is_path_component(c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "path component {c:?} is invalid (lowercase letters and digits, separated by '.', '_', '__' or '-')"
        )),
    }
}

/// The scopes that could apply to `r`, most specific first, ending with
/// the transport default `""`.
pub(crate) fn lookup_order(r: &Reference) -> Vec<String> {
    let name = format!("{}/{}", r.registry(), r.repository());
    let mut out = Vec::new();
    if let Some(d) = r.digest() {
        out.push(format!("{name}@{d}"));
    }
    if let Some(t) = r.tag() {
        out.push(format!("{name}:{t}"));
    }
    // The repository, its parent namespaces, then the host.
    let mut n = name.as_str();
    loop {
        out.push(n.to_string());
        match n.rfind('/') {
            Some(i) => n = &n[..i],
            None => break,
        }
    }
    // Wildcards cover the host without its port; IPv6 literals have no
    // subdomains.
    if !r.registry().starts_with('[') {
        let mut host = r.registry().split(':').next().unwrap_or_default();
        while let Some(i) = host.find('.') {
            host = &host[i + 1..];
            out.push(format!("*.{host}"));
        }
    }
    out.push(String::new());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn valid_scopes() {
        for s in [
            "",
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000/os",
            "quay.io",
            "quay.io/acme",
            "quay.io/acme/os",
            "quay.io/acme/os:1.2",
            &format!("quay.io/acme/os@{D}"),
            "docker.io/library/busybox:latest",
            "docker.io/someone",
            "*.example.com",
            "*.com",
            "Reg.Lan/os",
        ] {
            assert_eq!(validate(s), Ok(()), "{s:?}");
        }
    }

    #[test]
    fn invalid_scopes_say_why() {
        let cases = [
            ("*", "wildcard"),
            ("*.", "wildcard"),
            ("*.example.com:5000", "wildcard"),
            ("*.example.com/ns", "wildcard"),
            ("*example.com", "wildcard"),
            ("a.*.com", "not a registry host"),
            ("busybox", "not a registry host"),
            ("default", "not a registry host"),
            ("acme/os", "not a registry host"),
            ("index.docker.io/library/busybox", "write docker.io"),
            ("quay.io/", "path component \"\""),
            ("quay.io//os", "path component \"\""),
            ("quay.io/Acme", "path component \"Acme\""),
            ("quay.io/acme/os:", "tag"),
            ("quay.io/acme/os:1@sha256:22", "digest"),
            (&format!("quay.io/acme/os:1@{D}"), "not both"),
            (
                "docker.io/busybox:1",
                "write \"docker.io/library/busybox:1\"",
            ),
            ("host:x", "not a registry host"),
        ];
        for (s, want) in cases {
            let e = validate(s).unwrap_err();
            assert!(e.contains(want), "{s:?}: {e}");
        }
    }

    #[test]
    fn prefixes() {
        for p in [
            "quay.io",
            "quay.io/acme",
            "localhost:5000/a/b",
            "docker.io/library",
        ] {
            assert_eq!(validate_prefix(p), Ok(()), "{p}");
        }
        for p in ["", "acme", "quay.io/acme:1", "quay.io/acme/", "*.quay.io"] {
            assert!(validate_prefix(p).is_err(), "{p}");
        }
    }

    #[test]
    fn lookup_goes_from_specific_to_general() {
        let r: Reference = "reg.example.com:5000/ns/os:1".parse().unwrap();
        assert_eq!(
            lookup_order(&r),
            [
                "reg.example.com:5000/ns/os:1",
                "reg.example.com:5000/ns/os",
                "reg.example.com:5000/ns",
                "reg.example.com:5000",
                "*.example.com",
                "*.com",
                "",
            ]
        );
        let r: Reference = format!("busybox@{D}").parse().unwrap();
        assert_eq!(
            lookup_order(&r),
            [
                format!("docker.io/library/busybox@{D}").as_str(),
                "docker.io/library/busybox",
                "docker.io/library",
                "docker.io",
                "*.io",
                "",
            ]
        );
        let r: Reference = "[::1]:5000/os".parse().unwrap();
        assert_eq!(
            lookup_order(&r),
            ["[::1]:5000/os:latest", "[::1]:5000/os", "[::1]:5000", ""]
        );
        let r: Reference = format!("localhost/os:2@{D}").parse().unwrap();
        assert_eq!(
            lookup_order(&r)[..3],
            [
                format!("localhost/os@{D}"),
                "localhost/os:2".to_string(),
                "localhost/os".to_string()
            ]
        );
        // Every string in a lookup order is itself a valid scope.
        for s in lookup_order(&r) {
            assert_eq!(validate(&s), Ok(()), "{s}");
        }
    }
}
