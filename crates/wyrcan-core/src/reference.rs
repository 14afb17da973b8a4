//! Docker-style image references (`[host[:port]/]path[:tag][@sha256:…]`).
//!
//! Parsing follows docker/distribution's `reference.ParseNormalizedNamed`
//! (regexp.go, normalize.go) so that every name `docker pull` accepts means
//! the same image here, then applies Docker's defaults: no host means
//! `docker.io`, a single path component on `docker.io` lives under
//! `library/`, and neither tag nor digest means `:latest`.
//!
//! The grammar is checked by hand rather than with a regex engine: it is small,
//! this crate stays dependency-light, and each failure can say which part of
//! the reference is wrong.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Registry used when a reference names no host.
const DEFAULT_REGISTRY: &str = "docker.io";
/// Docker Hub's old name; references that use it mean [`DEFAULT_REGISTRY`].
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// Where Docker Hub's registry API actually answers.
const DEFAULT_API_HOST: &str = "registry-1.docker.io";
/// Namespace of Docker Hub's official images.
const OFFICIAL_PREFIX: &str = "library/";
/// Tag used when neither a tag nor a digest is given.
const DEFAULT_TAG: &str = "latest";
/// docker/distribution's `NameTotalLengthMax`, counted on `host/path`.
const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// Longest tag the tag grammar `[\w][\w.-]{0,127}` allows.
const TAG_LENGTH_MAX: usize = 128;

/// What a well-formed reference looks like, shown in every error.
const EXPECTED: &str =
    "expected [host[:port]/]path[:tag][@sha256:<64 hex>], e.g. docker.io/library/busybox:latest";

/// A parsed, normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Nothing to parse.
    #[error("image reference is empty ({EXPECTED})")]
    Empty,
    /// A bare 64-hex-digit string, which Docker reserves for image IDs.
    #[error(
        "image reference {0:?} is a 64-hex-digit image id, not a repository name (pin an image with name@sha256:<hex>)"
    )]
    HexIdentifier(String),
    /// Uppercase letters in the repository path.
    #[error(
        "image reference {reference:?}: repository name must be lowercase (got {repository:?})"
    )]
    Uppercase {
        /// The reference as given.
        reference: String,
        /// The offending repository path.
        repository: String,
    },
    /// The registry part is not a host name, IPv4 or bracketed IPv6 address with an optional port.
    #[error(
        "image reference {reference:?}: {host:?} is not a valid registry host[:port] (host names use letters, digits, '-' and '.'; IPv6 goes in brackets, e.g. [::1]:5000)"
    )]
    InvalidHost {
        /// The reference as given.
        reference: String,
        /// The registry part.
        host: String,
    },
    /// A path component breaks the `[a-z0-9]+` with `.`, `_`, `__` or `-` separators rule.
    #[error("image reference {reference:?}: {}", path_problem(component))]
    InvalidPath {
        /// The reference as given.
        reference: String,
        /// The offending component (may be empty, e.g. for `a//b`).
        component: String,
    },
    /// The tag breaks `[\w][\w.-]{0,127}`.
    #[error(
        "image reference {reference:?}: tag {tag:?} is invalid (a tag is 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-')"
    )]
    InvalidTag {
        /// The reference as given.
        reference: String,
        /// The offending tag.
        tag: String,
    },
    /// The part after `@` is not a digest we can verify.
    #[error("image reference {reference:?}: {source}")]
    InvalidDigest {
        /// The reference as given.
        reference: String,
        /// Why the digest was refused.
        source: DigestError,
    },
    /// `host/path` is longer than the 255 characters registries accept.
    #[error("image reference {reference:?}: repository name {name:?} is {len} characters long, the limit is 255")]
    NameTooLong {
        /// The reference as given.
        reference: String,
        /// The normalized `host/path`.
        name: String,
        /// Its length.
        len: usize,
    },
}

fn path_problem(component: &str) -> String {
    if component.is_empty() {
        format!(
            "the path has an empty component (a '//', or nothing before ':' or '@'; {EXPECTED})"
        )
    } else {
        format!(
            "path component {component:?} is invalid (use lowercase letters and digits, separated by '.', '_', '__' or dashes; {EXPECTED})"
        )
    }
}

impl Reference {
    /// The registry host, with a port when one was given; `docker.io` when no host was given.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag: as given, `latest` when neither tag nor digest was given, `None` when only a digest was.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest that pins the image, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry's manifest endpoint for: the digest when pinned, else the tag.
    ///
    /// The digest wins over a tag because it is what gets verified; a tag next
    /// to it is only a label for humans.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            // Parsing always sets one of the two; keep the API total anyway.
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The `host[:port]` that serves the registry API: `registry-1.docker.io` for `docker.io`, else [`Self::registry`].
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DEFAULT_API_HOST
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::HexIdentifier(s.to_string()));
        }

        let (registry, remainder) = split_registry(s);
        let remainder: &str = &remainder;

        // Name and tag never contain '@', so the first one starts the digest.
        let (name_tag, digest) = match remainder.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (remainder, None),
        };
        // The path never contains ':', so the first one starts the tag.
        let (path, tag) = match name_tag.split_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (name_tag, None),
        };
        let reference = || s.to_string();

        // An empty component (`a//b`, `Host//r`) is named before case is
        // judged: `Bad//Ref` is wrong for its `//`, whatever its letters.
        if path.split('/').any(str::is_empty) {
            return Err(ReferenceError::InvalidPath {
                reference: reference(),
                component: String::new(),
            });
        }
        // Checked before the grammar, as upstream does, so `Foo` gets the
        // helpful message rather than "invalid path component".
        if path.to_lowercase() != path {
            return Err(ReferenceError::Uppercase {
                reference: reference(),
                repository: path.to_string(),
            });
        }
        if !is_domain_and_port(registry) {
            return Err(ReferenceError::InvalidHost {
                reference: reference(),
                host: registry.to_string(),
            });
        }
        if let Some(bad) = path.split('/').find(|c| !is_path_component(c)) {
            return Err(ReferenceError::InvalidPath {
                reference: reference(),
                component: bad.to_string(),
            });
        }
        if let Some(t) = tag {
            if !is_tag(t) {
                return Err(ReferenceError::InvalidTag {
                    reference: reference(),
                    tag: t.to_string(),
                });
            }
        }
        let name_len = registry.len() + 1 + path.len();
        if name_len > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong {
                reference: reference(),
                name: format!("{registry}/{path}"),
                len: name_len,
            });
        }
        let digest = digest.map(Digest::from_str).transpose().map_err(|source| {
            ReferenceError::InvalidDigest {
                reference: reference(),
                source,
            }
        })?;
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };

        Ok(Reference {
            registry: registry.to_string(),
            repository: path.to_string(),
            tag,
            digest,
        })
    }
}

/// Splits off the registry like upstream's `splitDockerDomain`, returning
/// the registry and the rest (`path[:tag][@digest]`) with Docker Hub's
/// `library/` prefix added where it applies.
fn split_registry(s: &str) -> (&str, Cow<'_, str>) {
    let (registry, remainder) = match s.split_once('/') {
        // Upstream also treats a first component with uppercase letters as a
        // host: path components cannot contain them, host names can.
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, s),
    };
    let registry = if registry == LEGACY_DEFAULT_REGISTRY {
        DEFAULT_REGISTRY
    } else {
        registry
    };
    if registry == DEFAULT_REGISTRY && !remainder.contains('/') {
        (registry, format!("{OFFICIAL_PREFIX}{remainder}").into())
    } else {
        (registry, remainder.into())
    }
}

/// `host` (DNS-ish name, IPv4, or `[ipv6]`) followed by an optional `:port`.
pub(crate) fn is_domain_and_port(s: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = s.strip_prefix('[') {
        // Only hex digits and ':' inside the brackets: zone ids (`%eth0`) and
        // IPv4-mapped forms are deliberately refused upstream.
        let Some((inner, after)) = rest.split_once(']') else {
            return false;
        };
        let ok = !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        (ok, after)
    } else {
        let (host, port) = s.split_at(s.find(':').unwrap_or(s.len()));
        (host.split('.').all(is_domain_component), port)
    };
    host_ok
        && (port.is_empty()
            || port
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
}

/// `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
pub(crate) fn is_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        }
        _ => false,
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`.
pub(crate) fn is_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    // Every run of non-alphanumerics sits between two alphanumeric runs (the
    // ends were checked above) and must be one allowed separator.
    b.split(|&x| alnum(x))
        .filter(|sep| !sep.is_empty())
        .all(|sep| matches!(sep, b"." | b"_" | b"__") || sep.iter().all(|&x| x == b'-'))
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(t: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= TAG_LENGTH_MAX
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const FF: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    const DB: &str = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";

    fn parse(s: &str) -> Result<Reference, ReferenceError> {
        s.parse()
    }

    /// (input, registry, repository, tag, digest)
    type Valid = (
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    );

    /// The issue's examples plus docker/distribution's `TestReferenceParse`
    /// vectors, with the answers `ParseNormalizedNamed` gives (upstream tests
    /// them through the non-normalizing `Parse`, hence `docker.io/library/`
    /// where a first component is no host).
    const VALID: &[Valid] = &[
        ("busybox", "docker.io", "library/busybox", Some("latest"), None),
        ("library/busybox:1.36", "docker.io", "library/busybox", Some("1.36"), None),
        ("docker.io/x/y", "docker.io", "x/y", Some("latest"), None),
        ("localhost:5000/a/b:t", "localhost:5000", "a/b", Some("t"), None),
        ("localhost/a", "localhost", "a", Some("latest"), None),
        ("127.0.0.1:5000/a", "127.0.0.1:5000", "a", Some("latest"), None),
        ("ghcr.io/o/r@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "ghcr.io", "o/r", None, Some(FF)),
        ("name:tag@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "docker.io", "library/name", Some("tag"), Some(FF)),
        // TestReferenceParse
        ("test_com", "docker.io", "library/test_com", Some("latest"), None),
        ("test.com:tag", "docker.io", "library/test.com", Some("tag"), None),
        ("test.com:5000", "docker.io", "library/test.com", Some("5000"), None),
        ("test.com/repo:tag", "test.com", "repo", Some("tag"), None),
        ("test:5000/repo", "test:5000", "repo", Some("latest"), None),
        ("test:5000/repo:tag", "test:5000", "repo", Some("tag"), None),
        ("test:5000/repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "test:5000", "repo", None, Some(FF)),
        ("test:5000/repo:tag@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "test:5000", "repo", Some("tag"), Some(FF)),
        ("lowercase:Uppercase", "docker.io", "library/lowercase", Some("Uppercase"), None),
        ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux", Some("latest"), None),
        ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux", Some("some-long-tag"), None),
        ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "test.example.com/my-app", Some("test.example.com"), None),
        ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", Some("xn--n3h.com"), None),
        ("foo_bar.com:8080", "docker.io", "library/foo_bar.com", Some("8080"), None),
        ("foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", Some("8080"), None),
        ("192.168.1.1", "docker.io", "library/192.168.1.1", Some("latest"), None),
        ("192.168.1.1:tag", "docker.io", "library/192.168.1.1", Some("tag"), None),
        ("192.168.1.1:5000", "docker.io", "library/192.168.1.1", Some("5000"), None),
        ("192.168.1.1/repo", "192.168.1.1", "repo", Some("latest"), None),
        ("192.168.1.1:5000/repo", "192.168.1.1:5000", "repo", Some("latest"), None),
        ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", Some("5050"), None),
        ("[2001:db8::1]/repo", "[2001:db8::1]", "repo", Some("latest"), None),
        ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", Some("tag"), None),
        ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "repo", Some("latest"), None),
        ("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000", "repo", Some("tag"), None),
        ("[2001:db8::1]:5000/repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "[2001:db8::1]:5000", "repo", None, Some(FF)),
        ("[2001:db8::1]:5000/repo:tag@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "[2001:db8::1]:5000", "repo", Some("tag"), Some(FF)),
        ("[2001:db8::]:5000/repo", "[2001:db8::]:5000", "repo", Some("latest"), None),
        ("[::1]:5000/repo", "[::1]:5000", "repo", Some("latest"), None),
        // TestNormalizedSplitHostname
        ("test.com/foo", "test.com", "foo", Some("latest"), None),
        ("test_com/foo", "docker.io", "test_com/foo", Some("latest"), None),
        ("docker/migrator", "docker.io", "docker/migrator", Some("latest"), None),
        ("test.com:8080/foo", "test.com:8080", "foo", Some("latest"), None),
        ("test-com:8080/foo", "test-com:8080", "foo", Some("latest"), None),
        ("foo", "docker.io", "library/foo", Some("latest"), None),
        ("xn--n3h.com/foo", "xn--n3h.com", "foo", Some("latest"), None),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo", Some("latest"), None),
        ("docker.io/foo", "docker.io", "library/foo", Some("latest"), None),
        ("docker.io/library/foo", "docker.io", "library/foo", Some("latest"), None),
        ("docker.io/library/foo/bar", "docker.io", "library/foo/bar", Some("latest"), None),
        // TestParseAnyReference (the named ones)
        ("redis", "docker.io", "library/redis", Some("latest"), None),
        ("redis:latest", "docker.io", "library/redis", Some("latest"), None),
        ("redis@sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c", "docker.io", "library/redis", None, Some(DB)),
        ("dmcgowan/myapp@sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c", "docker.io", "dmcgowan/myapp", None, Some(DB)),
        ("dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9", "docker.io", "library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9", Some("latest"), None),
        ("dbcc1", "docker.io", "library/dbcc1", Some("latest"), None),
        // Upstream's FIXME: a first component with uppercase is taken as a host.
        ("Uppercase/lowercase:tag", "Uppercase", "lowercase", Some("tag"), None),
    ];

    #[test]
    fn valid_references() {
        for &(input, registry, repository, tag, digest) in VALID {
            let r = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(r.registry(), registry, "{input:?}");
            assert_eq!(r.repository(), repository, "{input:?}");
            assert_eq!(r.tag(), tag, "{input:?}");
            assert_eq!(
                r.digest().map(|d| d.to_string()).as_deref(),
                digest,
                "{input:?}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for &(input, ..) in VALID {
            let r = parse(input).unwrap();
            let shown = r.to_string();
            assert_eq!(parse(&shown).as_ref(), Ok(&r), "{input:?} -> {shown:?}");
            assert_eq!(parse(&shown).unwrap().to_string(), shown, "{input:?}");
        }
    }

    #[test]
    fn display_is_fully_normalized() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/debian", "docker.io/library/debian:latest"),
            (
                "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa",
                "docker.io/library/busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa",
            ),
            (
                "host:5000/a/b:t@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "host:5000/a/b:t@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            ),
            (
                "ghcr.io/o/r@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "ghcr.io/o/r@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).unwrap().to_string(), want, "{input:?}");
        }
    }

    /// docker/distribution `TestParseRepositoryInfo`: the familiar, full and
    /// ambiguous spellings of one repository all normalize alike.
    #[test]
    fn repository_info_spellings_agree() {
        let cases: &[(&[&str], &str, &str)] = &[
            (
                &["fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar"],
                "docker.io",
                "fooo/bar",
            ),
            (
                &["ubuntu", "docker.io/library/ubuntu", "library/ubuntu"],
                "docker.io",
                "library/ubuntu",
            ),
            (
                &["nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu"],
                "docker.io",
                "nonlibrary/ubuntu",
            ),
            (
                &["other/library", "docker.io/other/library"],
                "docker.io",
                "other/library",
            ),
            (
                &["127.0.0.1:8000/private/moonbase"],
                "127.0.0.1:8000",
                "private/moonbase",
            ),
            (
                &["127.0.0.1:8000/privatebase"],
                "127.0.0.1:8000",
                "privatebase",
            ),
            (
                &["example.com/private/moonbase"],
                "example.com",
                "private/moonbase",
            ),
            (&["example.com/privatebase"], "example.com", "privatebase"),
            (
                &["example.com:8000/private/moonbase"],
                "example.com:8000",
                "private/moonbase",
            ),
            (
                &["example.com:8000/privatebasee"],
                "example.com:8000",
                "privatebasee",
            ),
            (
                &[
                    "ubuntu-12.04-base",
                    "docker.io/library/ubuntu-12.04-base",
                    "index.docker.io/library/ubuntu-12.04-base",
                ],
                "docker.io",
                "library/ubuntu-12.04-base",
            ),
            (
                &["foo", "docker.io/library/foo", "docker.io/foo"],
                "docker.io",
                "library/foo",
            ),
            (
                &["library/foo/bar", "docker.io/library/foo/bar"],
                "docker.io",
                "library/foo/bar",
            ),
            (
                &["store/foo/bar", "docker.io/store/foo/bar"],
                "docker.io",
                "store/foo/bar",
            ),
        ];
        for (inputs, registry, repository) in cases {
            for input in *inputs {
                let r = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
                assert_eq!(
                    (r.registry(), r.repository()),
                    (*registry, *repository),
                    "{input:?}"
                );
            }
        }
    }

    /// docker/distribution `TestValidateReferenceName` and `TestValidateRemoteName`.
    #[test]
    fn upstream_name_validation() {
        let valid = [
            "docker/docker",
            "library/debian",
            "debian",
            "docker.io/docker/docker",
            "docker.io/library/debian",
            "docker.io/debian",
            "index.docker.io/docker/docker",
            "index.docker.io/library/debian",
            "index.docker.io/debian",
            "127.0.0.1:5000/docker/docker",
            "127.0.0.1:5000/library/debian",
            "127.0.0.1:5000/debian",
            "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "docker-rules/docker",
            "docker---rules/docker",
            "doc/docker",
            "d/docker",
            "jess/t",
            "dock__er/docker",
        ];
        for input in valid {
            assert!(
                parse(input).is_ok(),
                "{input:?} should be valid: {:?}",
                parse(input)
            );
        }
        let long_namespace = format!(
            "{}/docker",
            "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_".repeat(4)
        );
        let invalid = [
            "https://github.com/docker/docker",
            "docker/Docker",
            "-docker",
            "-docker/docker",
            "-docker.io/docker/docker",
            "docker///docker",
            "docker.io/docker/Docker",
            "docker.io/docker///docker",
            "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "docker-/docker",
            "-docker-/docker",
            "____/____",
            "_docker/_docker",
            "dock..er/docker",
            "dock_.er/docker",
            "dock-.er/docker",
            "docker/",
            &long_namespace,
            // Valid in older upstream tests; the current grammar refuses zone ids.
            "[fc00::1%eth0]:5000/docker/docker",
        ];
        for input in invalid {
            assert!(
                parse(input).is_err(),
                "{input:?} should be invalid: {:?}",
                parse(input)
            );
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let s = |x: &str| x.to_string();
        let too_long = format!("{}a:tag", "a/".repeat(128));
        // Upstream's "fits exactly" vector is 255 characters before
        // normalization; the docker.io/ prefix puts it over the limit.
        let just_over = format!("{}a:tag-puts-this-over-max", "a/".repeat(127));
        let cases: Vec<(&str, ReferenceError)> = vec![
            ("", ReferenceError::Empty),
            (
                "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
                ReferenceError::HexIdentifier(s(
                    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
                )),
            ),
            (
                "Uppercase:tag",
                ReferenceError::Uppercase {
                    reference: s("Uppercase:tag"),
                    repository: s("library/Uppercase"),
                },
            ),
            (
                "test:5000/Uppercase/lowercase:tag",
                ReferenceError::Uppercase {
                    reference: s("test:5000/Uppercase/lowercase:tag"),
                    repository: s("Uppercase/lowercase"),
                },
            ),
            (
                ":justtag",
                ReferenceError::InvalidPath {
                    reference: s(":justtag"),
                    component: s(""),
                },
            ),
            (
                "@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                ReferenceError::InvalidPath {
                    reference: s(
                        "@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                    ),
                    component: s(""),
                },
            ),
            (
                "aa/asdf$$^/aa",
                ReferenceError::InvalidPath {
                    reference: s("aa/asdf$$^/aa"),
                    component: s("asdf$$^"),
                },
            ),
            (
                "[2001:db8::1]",
                ReferenceError::InvalidPath {
                    reference: s("[2001:db8::1]"),
                    component: s("[2001"),
                },
            ),
            (
                "[fe80::1%eth0]:5000/repo",
                ReferenceError::InvalidHost {
                    reference: s("[fe80::1%eth0]:5000/repo"),
                    host: s("[fe80::1%eth0]:5000"),
                },
            ),
            (
                "[fe80::1%@invalidzone]:5000/repo",
                ReferenceError::InvalidHost {
                    reference: s("[fe80::1%@invalidzone]:5000/repo"),
                    host: s("[fe80::1%@invalidzone]:5000"),
                },
            ),
            (
                "host:/repo",
                ReferenceError::InvalidHost {
                    reference: s("host:/repo"),
                    host: s("host:"),
                },
            ),
            (
                "host:x/repo",
                ReferenceError::InvalidHost {
                    reference: s("host:x/repo"),
                    host: s("host:x"),
                },
            ),
            (
                "a:b:c",
                ReferenceError::InvalidTag {
                    reference: s("a:b:c"),
                    tag: s("b:c"),
                },
            ),
            (
                "a:-x",
                ReferenceError::InvalidTag {
                    reference: s("a:-x"),
                    tag: s("-x"),
                },
            ),
            (
                "a:",
                ReferenceError::InvalidTag {
                    reference: s("a:"),
                    tag: s(""),
                },
            ),
            (
                &too_long,
                ReferenceError::NameTooLong {
                    reference: too_long.clone(),
                    name: format!("docker.io/{}a", "a/".repeat(128)),
                    len: 267,
                },
            ),
            (
                &just_over,
                ReferenceError::NameTooLong {
                    reference: just_over.clone(),
                    name: format!("docker.io/{}a", "a/".repeat(127)),
                    len: 265,
                },
            ),
        ];
        for (input, want) in &cases {
            assert_eq!(parse(input).as_ref(), Err(want), "{input:?}");
        }

        let digest_errors = [
            "repo@sha256:ffffffffffffffffffffffffffffffffff",
            "validname@invaliddigest:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "xn--7o8h.com/myimage:xn--7o8h.com@sha512:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "repo@",
            "repo@sha256:FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
        ];
        for input in digest_errors {
            assert!(
                matches!(parse(input), Err(ReferenceError::InvalidDigest { .. })),
                "{input:?}: {:?}",
                parse(input)
            );
        }
    }

    #[test]
    fn error_messages_are_lowercase_and_show_the_form() {
        let inputs = [
            "",
            "Foo:1",
            ":x",
            "a:-x",
            "[fe80::1%eth0]:5000/r",
            "r@sha512:00",
            "docker///docker",
        ];
        for input in inputs {
            let msg = parse(input).unwrap_err().to_string();
            assert!(msg.starts_with(char::is_lowercase), "{msg}");
            assert!(!msg.ends_with('.'), "{msg}");
        }
        assert!(parse("")
            .unwrap_err()
            .to_string()
            .contains("[host[:port]/]path[:tag][@sha256:"));
        assert!(parse("Foo:1")
            .unwrap_err()
            .to_string()
            .contains("must be lowercase"));
        assert!(parse("docker///docker")
            .unwrap_err()
            .to_string()
            .contains("[host[:port]/]path"));
        // The `//` is the fault, not the capital letters around it.
        let msg = parse("Bad//Ref").unwrap_err().to_string();
        assert!(msg.contains("empty component"), "{msg}");
        assert!(!msg.contains("lowercase"), "{msg}");
    }

    #[test]
    fn name_length_limit_counts_host_and_path() {
        let exact = format!("a.io/{}aa", "a/".repeat(124));
        assert_eq!(exact.len(), 255);
        assert!(parse(&exact).is_ok());
        let over = format!("a.io/{}aaa", "a/".repeat(124));
        assert!(matches!(
            parse(&over),
            Err(ReferenceError::NameTooLong { len: 256, .. })
        ));
    }

    #[test]
    fn tag_length_limit() {
        let ok = format!("a:{}", "t".repeat(128));
        let bad = format!("a:{}", "t".repeat(129));
        assert_eq!(parse(&ok).unwrap().tag().map(str::len), Some(128));
        assert!(matches!(
            parse(&bad),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert_eq!(parse("a:_x.Y-z").unwrap().tag(), Some("_x.Y-z"));
    }

    #[test]
    fn api_host_and_manifest_ref() {
        let hub = parse("busybox").unwrap();
        assert_eq!(hub.api_host(), "registry-1.docker.io");
        assert_eq!(hub.manifest_ref(), "latest");
        let local = parse("localhost:5000/a/b:t").unwrap();
        assert_eq!(local.api_host(), "localhost:5000");
        assert_eq!(local.manifest_ref(), "t");
        let pinned = parse(&format!("ghcr.io/o/r:v1@{FF}")).unwrap();
        assert_eq!(pinned.api_host(), "ghcr.io");
        assert_eq!(pinned.manifest_ref(), FF);
        assert_eq!(parse("[::1]:5000/repo").unwrap().api_host(), "[::1]:5000");
    }
}
