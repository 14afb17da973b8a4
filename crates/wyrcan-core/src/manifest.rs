//! OCI and Docker v2 manifests, image indexes and image configs: media types,
//! the serde model, which parser a registry answer needs, which entry of an
//! index fits a platform, and how a layer is compressed.
//!
//! Small hand-written serde structs rather than the full OCI model: Wyrcan
//! reads only what it needs to pick, fetch and verify layers, and ignores
//! unknown fields so new registry features do not break booting.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Media types Wyrcan recognizes.
pub mod media_type {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index (multi-platform).
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// Docker image manifest, schema 2.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list (multi-platform), schema 2.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker schema 1 manifest (unsupported; recognized to say so).
    pub const DOCKER_SCHEMA1_MANIFEST: &str =
        "application/vnd.docker.distribution.manifest.v1+json";
    /// Signed Docker schema 1 manifest (unsupported; recognized to say so).
    pub const DOCKER_SCHEMA1_SIGNED_MANIFEST: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// OCI layer, uncompressed tar.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// OCI layer, gzip-compressed tar.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// OCI layer, zstd-compressed tar.
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// OCI non-distributable layer, uncompressed tar.
    pub const OCI_LAYER_NONDISTRIBUTABLE_TAR: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar";
    /// OCI non-distributable layer, gzip-compressed tar.
    pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    /// OCI non-distributable layer, zstd-compressed tar.
    pub const OCI_LAYER_NONDISTRIBUTABLE_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
    /// Docker layer, uncompressed tar (written by some tools, e.g. `docker save` conversions).
    pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// Docker layer, gzip-compressed tar: what `docker push` produces.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker layer, zstd-compressed tar (BuildKit with `compression=zstd` and Docker media types).
    pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
    /// Docker foreign layer (e.g. Windows base layers), gzip-compressed tar.
    pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
}

/// `Accept` header for manifest requests, listing every manifest and index type.
///
/// Registries answer with the schema they think the client understands: the
/// reference registry returns 404 for an OCI manifest not listed here, and
/// Docker Hub downgrades to schema 1 when nothing is listed.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Annotation BuildKit puts on attestation entries of an index.
const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";
/// Value of [`REFERENCE_TYPE_ANNOTATION`] marking an attestation, not an image.
const ATTESTATION_MANIFEST: &str = "attestation-manifest";

/// Why a manifest, index or config cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The JSON does not fit the expected document.
    #[error("{what} could not be parsed: {message}")]
    Json {
        /// Which document: "image manifest", "image index", "image config", "manifest".
        what: &'static str,
        /// serde_json's explanation, with line and column.
        message: String,
    },
    /// Docker schema 1, which has no content-addressed config.
    #[error(
        "schema 1 manifests are not supported, re-push the image with a current docker/podman"
    )]
    Schema1,
    /// A `schemaVersion` other than 2.
    #[error("manifest schemaVersion {0} is not supported (expected 2)")]
    UnsupportedSchemaVersion(u64),
    /// The body says it is something other than an image manifest or index.
    #[error(
        "unsupported manifest media type {media_type:?} (expected an OCI or Docker v2 image manifest or index; is this an artifact rather than a container image?)"
    )]
    UnsupportedMediaType {
        /// The media type the body or the registry declared.
        media_type: String,
    },
    /// Neither media type nor shape tells what the document is.
    #[error("manifest has neither \"layers\" nor \"manifests\" and no known mediaType, so it is not a container image")]
    UnknownShape,
    /// No entry of the index fits the wanted platform.
    #[error(
        "the image has no manifest for platform {wanted} (available: {}); pass --platform os/arch[/variant] to choose one",
        if .available.is_empty() { "none".to_string() } else { .available.join(", ") }
    )]
    NoPlatform {
        /// The platform asked for, as `os/arch[/variant]`.
        wanted: String,
        /// Every image platform the index offers, as `os/arch[/variant]`.
        available: Vec<String>,
    },
    /// A layer in a format Wyrcan cannot unpack.
    #[error(
        "unsupported layer media type {media_type:?} (wyrcan unpacks tar layers that are uncompressed, gzip or zstd; rebuild or re-push the image with docker, podman or buildah)"
    )]
    UnsupportedLayer {
        /// The layer's media type.
        media_type: String,
    },
}

/// Why a string is not a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("platform {0:?} is not of the form os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8")]
pub struct PlatformError(pub String);

/// A content descriptor: what a manifest or index says about a blob it points to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The blob's media type (empty when a registry left it out).
    #[serde(default)]
    pub media_type: String,
    /// The blob's digest; its bytes are verified against it.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// For index entries: the platform the manifest is built for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Other places the blob may be fetched from (foreign layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An operating system, CPU architecture and optional variant, in OCI/Go naming (`linux/arm64/v8`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// CPU architecture in Go's naming, e.g. `amd64`, `arm64`.
    #[serde(default)]
    pub architecture: String,
    /// CPU variant, e.g. `v7` for `arm`, `v8` for `arm64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the machine this code runs on: `linux` and the compile-time architecture in Go's naming.
    pub fn current() -> Platform {
        let (architecture, variant) = go_arch(std::env::consts::ARCH);
        Platform {
            os: "linux".to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// The variant to compare with: images often omit the one their architecture implies.
    fn effective_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            (_, Some(v)) => Some(v),
            ("arm64", None) => Some("v8"),
            ("arm", None) => Some("v7"),
            (_, None) => None,
        }
    }

    /// BuildKit stores provenance and SBOMs as index entries for `unknown/unknown`.
    fn is_unknown(&self) -> bool {
        self.os == "unknown" && self.architecture == "unknown"
    }
}

/// Maps Rust's `std::env::consts::ARCH` to Go's `GOARCH` and variant, which registries use.
fn go_arch(rust_arch: &str) -> (&str, Option<&'static str>) {
    match rust_arch {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" if cfg!(target_feature = "v7") => ("arm", Some("v7")),
        "arm" if cfg!(target_feature = "v6") => ("arm", Some("v6")),
        "arm" => ("arm", Some("v5")),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
        "mips" if cfg!(target_endian = "little") => ("mipsle", None),
        "loongarch64" => ("loong64", None),
        // riscv64, s390x, mips64, mips: Rust and Go agree.
        other => (other, None),
    }
}

/// Accepts the architecture spellings people type (`x86_64`, `aarch64`, `armhf`) for Go's names.
fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let (arch, implied) = match arch {
        "x86_64" | "x86-64" => ("amd64", None),
        "aarch64" => ("arm64", None),
        "i386" | "i686" => ("386", None),
        "armhf" => ("arm", Some("v7")),
        "armel" => ("arm", Some("v6")),
        other => (other, None),
    };
    let variant = variant.or(implied).map(|v| {
        // `linux/arm/7` and `linux/arm/v7` mean the same to Docker.
        if v.bytes().all(|b| b.is_ascii_digit()) {
            format!("v{v}")
        } else {
            v.to_string()
        }
    });
    (arch.to_string(), variant)
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        let (os, arch, variant) = match parts[..] {
            [os, arch] => (os, arch, None),
            [os, arch, variant] => (os, arch, Some(variant)),
            _ => return Err(PlatformError(s.to_string())),
        };
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if !ok(os) || !ok(arch) || !variant.is_none_or(ok) {
            return Err(PlatformError(s.to_string()));
        }
        let (architecture, variant) = normalize_arch(arch, variant);
        Ok(Platform {
            os: os.to_string(),
            architecture,
            variant,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A single-platform image: its config and its layers, bottom first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// The declared media type (optional in OCI, always set by Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config blob.
    pub config: Descriptor,
    /// The layer blobs, applied in order.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// A multi-platform image: one manifest per platform (OCI index or Docker manifest list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// The declared media type (optional in OCI, always set by Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The per-platform manifests (and possibly attestations).
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// What a registry's manifest endpoint returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manifest {
    /// A single-platform image.
    Image(ImageManifest),
    /// A multi-platform index; pick an entry with [`select_platform`].
    Index(ImageIndex),
}

/// Just enough of any manifest-like document to decide what it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u64>,
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
    layers: Option<serde::de::IgnoredAny>,
    fs_layers: Option<serde::de::IgnoredAny>,
}

/// What a document is, from its media type.
enum Kind {
    Image,
    Index,
    Schema1,
    Other,
}

fn kind_of(media_type: &str) -> Kind {
    match media_type {
        media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST => Kind::Image,
        media_type::OCI_INDEX | media_type::DOCKER_MANIFEST_LIST => Kind::Index,
        media_type::DOCKER_SCHEMA1_MANIFEST | media_type::DOCKER_SCHEMA1_SIGNED_MANIFEST => {
            Kind::Schema1
        }
        _ => Kind::Other,
    }
}

fn json_error(what: &'static str) -> impl FnOnce(serde_json::Error) -> ManifestError {
    move |e| ManifestError::Json {
        what,
        message: e.to_string(),
    }
}

/// Parses a manifest endpoint's answer into an image manifest or an index.
///
/// The body's own `mediaType` decides; without one, the `Content-Type` header
/// (parameters ignored); when that is missing or generic, the shape
/// (`manifests` means index, `layers` means image).
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Manifest, ManifestError> {
    let probe: Probe = serde_json::from_slice(body).map_err(json_error("manifest"))?;
    let header = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|c| !c.is_empty());

    if probe.schema_version == Some(1) || probe.fs_layers.is_some() {
        return Err(ManifestError::Schema1);
    }
    if let Some(v) = probe.schema_version.filter(|&v| v != 2) {
        return Err(ManifestError::UnsupportedSchemaVersion(v));
    }

    let kind = match (&probe.media_type, &header) {
        (Some(m), _) => match kind_of(m) {
            Kind::Other => {
                return Err(ManifestError::UnsupportedMediaType {
                    media_type: m.clone(),
                })
            }
            k => k,
        },
        // Registries and proxies sometimes send application/json or
        // octet-stream; only a specific header is worth trusting.
        (None, Some(h)) => kind_of(h),
        (None, None) => Kind::Other,
    };
    let kind = match kind {
        Kind::Other if probe.manifests.is_some() => Kind::Index,
        Kind::Other if probe.layers.is_some() => Kind::Image,
        Kind::Other => return Err(ManifestError::UnknownShape),
        k => k,
    };
    match kind {
        Kind::Image => serde_json::from_slice(body)
            .map(Manifest::Image)
            .map_err(json_error("image manifest")),
        Kind::Index => serde_json::from_slice(body)
            .map(Manifest::Index)
            .map_err(json_error("image index")),
        Kind::Schema1 => Err(ManifestError::Schema1),
        Kind::Other => Err(ManifestError::UnknownShape),
    }
}

/// Whether an index entry is an attestation (provenance, SBOM) rather than an image.
fn is_attestation(d: &Descriptor) -> bool {
    d.annotations
        .get(REFERENCE_TYPE_ANNOTATION)
        .map(String::as_str)
        == Some(ATTESTATION_MANIFEST)
        || d.platform.as_ref().is_some_and(Platform::is_unknown)
}

/// Orders variants so `v5 < v6 < v7 < v8 < v10`; unparsable ones sort last, by name.
fn variant_rank(v: &str) -> (u64, &str) {
    let n = v
        .strip_prefix('v')
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    (n, v)
}

/// Picks the index entry for `want`.
///
/// OS and architecture must match exactly. With a wanted variant, the entry's
/// variant must equal it (an `arm64` entry without one counts as `v8`, an
/// `arm` one as `v7`). Without a wanted variant, an entry without a variant
/// wins, else the lowest variant, being the most widely runnable. Attestation
/// entries are never chosen. Ties go to the first entry in the index.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    want: &Platform,
) -> Result<&'a Descriptor, ManifestError> {
    let (want_arch, want_variant) = normalize_arch(&want.architecture, want.variant.as_deref());
    let want = Platform {
        os: want.os.clone(),
        architecture: want_arch,
        variant: want_variant,
    };
    let images = || index.manifests.iter().filter(|d| !is_attestation(d));

    let candidates = images().filter_map(|d| {
        let p = d.platform.as_ref()?;
        let (arch, variant) = normalize_arch(&p.architecture, p.variant.as_deref());
        let p = Platform {
            os: p.os.clone(),
            architecture: arch,
            variant,
        };
        if p.os != want.os || p.architecture != want.architecture {
            return None;
        }
        match want.variant {
            Some(_) if p.effective_variant() != want.effective_variant() => None,
            Some(_) => Some((d, None)),
            None => Some((d, p.variant)),
        }
    });
    // min_by returns the first of equal elements, so index order breaks ties.
    let best = candidates.min_by(|(_, a), (_, b)| match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(a), Some(b)) => variant_rank(a).cmp(&variant_rank(b)),
    });
    best.map(|(d, _)| d)
        .ok_or_else(|| ManifestError::NoPlatform {
            wanted: want.to_string(),
            available: images()
                .map(|d| {
                    d.platform
                        .as_ref()
                        .map_or_else(|| "unknown".to_string(), Platform::to_string)
                })
                .collect(),
        })
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Zstandard (RFC 8878).
    Zstd,
}

/// The compression of a layer, from its media type; anything that is not a tar layer is an error.
pub fn layer_compression(media_type: &str) -> Result<Compression, ManifestError> {
    use media_type::*;
    match media_type {
        OCI_LAYER_TAR | OCI_LAYER_NONDISTRIBUTABLE_TAR | DOCKER_LAYER_TAR => Ok(Compression::None),
        OCI_LAYER_GZIP
        | OCI_LAYER_NONDISTRIBUTABLE_GZIP
        | DOCKER_LAYER_GZIP
        | DOCKER_FOREIGN_LAYER_GZIP => Ok(Compression::Gzip),
        OCI_LAYER_ZSTD | OCI_LAYER_NONDISTRIBUTABLE_ZSTD | DOCKER_LAYER_ZSTD => {
            Ok(Compression::Zstd)
        }
        _ => Err(ManifestError::UnsupportedLayer {
            media_type: media_type.to_string(),
        }),
    }
}

/// The parts of an image config Wyrcan checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// The image's OS, e.g. `linux`.
    pub os: Option<String>,
    /// The image's architecture, e.g. `amd64`.
    pub architecture: Option<String>,
    /// The image's CPU variant, e.g. `v8`.
    pub variant: Option<String>,
    /// Digests of the uncompressed layers (`rootfs.diff_ids`), bottom first.
    pub diff_ids: Vec<Digest>,
    /// Number of `history` entries, including those with `empty_layer` set (which made no layer).
    pub history_len: usize,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    rootfs: Option<RawRootfs>,
    #[serde(default)]
    history: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(default)]
    diff_ids: Vec<Digest>,
}

/// Parses an image config blob (OCI or Docker), tolerating missing fields.
pub fn parse_config(body: &[u8]) -> Result<ImageConfig, ManifestError> {
    let raw: RawConfig = serde_json::from_slice(body).map_err(json_error("image config"))?;
    Ok(ImageConfig {
        os: raw.os,
        architecture: raw.architecture,
        variant: raw.variant,
        diff_ids: raw.rootfs.map(|r| r.diff_ids).unwrap_or_default(),
        history_len: raw.history.map_or(0, |h| h.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "sha256:b79606fb3afea5bd1609ed40b622142f1c98125abcfe89a76a661b0e8e343910";
    const LAYER1: &str = "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2";
    const LAYER2: &str = "sha256:95cf1a2e1698fe3ca1fcc3f653119146b271d0b62e487ec264441e886a11bd06";
    const AMD64: &str = "sha256:5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51";
    const ARM64: &str = "sha256:f69162950f235e3cdbbad33f1f912d1a504be90d8a37d002c735d6f3e3882265";
    const ARMV7: &str = "sha256:5ba6c8710dd1369ce61603ab9b7a81b25f92d4a9f74956ab72a7ea75884f07ee";
    const ATT: &str = "sha256:f745a15153c4dacf0ea4bbf57265e73283941f8335939b33c693975315cf5916";

    /// What `docker push` of busybox produces.
    const DOCKER_V2: &str = r#"{
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1457,
            "digest": "sha256:b79606fb3afea5bd1609ed40b622142f1c98125abcfe89a76a661b0e8e343910"
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 2591575,
                "digest": "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2"
            }
        ]
    }"#;

    /// What buildah/podman push: OCI, with annotations, here without a mediaType field.
    const OCI_NO_MEDIA_TYPE: &str = r#"{
        "schemaVersion": 2,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:b79606fb3afea5bd1609ed40b622142f1c98125abcfe89a76a661b0e8e343910",
            "size": 2290
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2",
                "size": 29123456
            },
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                "digest": "sha256:95cf1a2e1698fe3ca1fcc3f653119146b271d0b62e487ec264441e886a11bd06",
                "size": 1024,
                "annotations": { "org.opencontainers.image.title": "extra" }
            }
        ],
        "annotations": { "org.opencontainers.image.base.name": "docker.io/library/debian:12" }
    }"#;

    /// A BuildKit multi-platform push with provenance attestations.
    const INDEX: &str = r#"{
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51",
                "size": 1069,
                "platform": { "architecture": "amd64", "os": "linux" }
            },
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:f69162950f235e3cdbbad33f1f912d1a504be90d8a37d002c735d6f3e3882265",
                "size": 1069,
                "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" }
            },
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:5ba6c8710dd1369ce61603ab9b7a81b25f92d4a9f74956ab72a7ea75884f07ee",
                "size": 1069,
                "platform": { "architecture": "arm", "os": "linux", "variant": "v7" }
            },
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:f745a15153c4dacf0ea4bbf57265e73283941f8335939b33c693975315cf5916",
                "size": 566,
                "annotations": {
                    "vnd.docker.reference.digest": "sha256:5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51",
                    "vnd.docker.reference.type": "attestation-manifest"
                },
                "platform": { "architecture": "unknown", "os": "unknown" }
            }
        ]
    }"#;

    /// Docker schema 1, as old registries still serve it.
    const SCHEMA1: &str = r#"{
        "schemaVersion": 1,
        "name": "library/busybox",
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [
            { "blobSum": "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2" }
        ],
        "history": [ { "v1Compatibility": "{\"id\":\"x\"}" } ],
        "signatures": []
    }"#;

    fn d(s: &str) -> Digest {
        s.parse().unwrap()
    }

    fn index() -> ImageIndex {
        match parse(None, INDEX.as_bytes()).unwrap() {
            Manifest::Index(i) => i,
            other => panic!("not an index: {other:?}"),
        }
    }

    fn platform(s: &str) -> Platform {
        s.parse().unwrap()
    }

    fn entry(os: &str, arch: &str, variant: Option<&str>, digest: &str) -> Descriptor {
        Descriptor {
            media_type: media_type::OCI_MANIFEST.to_string(),
            digest: d(digest),
            size: 1,
            platform: Some(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: variant.map(str::to_string),
            }),
            urls: vec![],
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn docker_v2_manifest() {
        let Manifest::Image(m) =
            parse(Some(media_type::DOCKER_MANIFEST), DOCKER_V2.as_bytes()).unwrap()
        else {
            panic!("expected an image manifest");
        };
        assert_eq!(m.media_type.as_deref(), Some(media_type::DOCKER_MANIFEST));
        assert_eq!(m.config.digest, d(CONFIG));
        assert_eq!(m.config.media_type, media_type::DOCKER_CONFIG);
        assert_eq!(m.config.size, 1457);
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.layers[0].digest, d(LAYER1));
        assert_eq!(
            layer_compression(&m.layers[0].media_type),
            Ok(Compression::Gzip)
        );
    }

    #[test]
    fn oci_manifest_decided_by_shape_or_header() {
        for ct in [
            None,
            Some("application/json"),
            Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
        ] {
            let Manifest::Image(m) = parse(ct, OCI_NO_MEDIA_TYPE.as_bytes()).unwrap() else {
                panic!("{ct:?}: expected an image manifest");
            };
            assert_eq!(m.media_type, None);
            assert_eq!(m.config.media_type, media_type::OCI_CONFIG);
            assert_eq!(m.layers[1].digest, d(LAYER2));
            assert_eq!(
                m.layers[1].annotations["org.opencontainers.image.title"],
                "extra"
            );
            assert_eq!(
                layer_compression(&m.layers[1].media_type),
                Ok(Compression::Zstd)
            );
        }
    }

    #[test]
    fn body_media_type_beats_header() {
        // A proxy that rewrote Content-Type must not turn an index into a manifest.
        assert!(matches!(
            parse(Some(media_type::DOCKER_MANIFEST), INDEX.as_bytes()),
            Ok(Manifest::Index(_))
        ));
    }

    #[test]
    fn header_decides_without_body_media_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{AMD64}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            media_type::DOCKER_MANIFEST
        );
        assert!(matches!(
            parse(Some(media_type::DOCKER_MANIFEST_LIST), body.as_bytes()),
            Ok(Manifest::Index(_))
        ));
        // The header says image but the body lacks a config: a clear parse error.
        let err = parse(Some(media_type::OCI_MANIFEST), body.as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                ManifestError::Json {
                    what: "image manifest",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("config"), "{err}");
    }

    #[test]
    fn schema1_is_refused_clearly() {
        let want = ManifestError::Schema1;
        assert_eq!(parse(None, SCHEMA1.as_bytes()), Err(want.clone()));
        assert_eq!(
            parse(
                Some(media_type::DOCKER_SCHEMA1_SIGNED_MANIFEST),
                SCHEMA1.as_bytes()
            ),
            Err(want.clone())
        );
        assert_eq!(
            parse(
                Some(media_type::DOCKER_SCHEMA1_SIGNED_MANIFEST),
                br#"{"layers":[]}"#
            ),
            Err(want.clone())
        );
        assert_eq!(
            want.to_string(),
            "schema 1 manifests are not supported, re-push the image with a current docker/podman"
        );
    }

    #[test]
    fn other_documents_are_refused() {
        let artifact =
            br#"{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","blobs":[]}"#;
        assert_eq!(
            parse(None, artifact),
            Err(ManifestError::UnsupportedMediaType {
                media_type: "application/vnd.oci.artifact.manifest.v1+json".to_string()
            })
        );
        assert_eq!(
            parse(Some("application/json"), b"{}"),
            Err(ManifestError::UnknownShape)
        );
        assert_eq!(
            parse(None, br#"{"schemaVersion":3,"layers":[]}"#),
            Err(ManifestError::UnsupportedSchemaVersion(3))
        );
        assert!(matches!(
            parse(None, b"<html>404</html>"),
            Err(ManifestError::Json {
                what: "manifest",
                ..
            })
        ));
        let bad_digest = DOCKER_V2.replace(CONFIG, "sha256:1234");
        assert!(matches!(
            parse(None, bad_digest.as_bytes()),
            Err(ManifestError::Json { .. })
        ));
    }

    #[test]
    fn index_parses_with_platforms() {
        let i = index();
        assert_eq!(i.media_type.as_deref(), Some(media_type::OCI_INDEX));
        assert_eq!(i.manifests.len(), 4);
        assert_eq!(
            i.manifests[1].platform.as_ref().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert!(is_attestation(&i.manifests[3]));
        assert!(!is_attestation(&i.manifests[0]));
    }

    #[test]
    fn select_platform_table() {
        let i = index();
        let cases = [
            ("linux/amd64", AMD64),
            ("linux/x86_64", AMD64),
            ("linux/arm64", ARM64),
            ("linux/arm64/v8", ARM64),
            ("linux/aarch64", ARM64),
            ("linux/arm/v7", ARMV7),
            ("linux/arm", ARMV7),
            ("linux/armhf", ARMV7),
        ];
        for (want, digest) in cases {
            let got =
                select_platform(&i, &platform(want)).unwrap_or_else(|e| panic!("{want}: {e}"));
            assert_eq!(got.digest, d(digest), "{want}");
        }
    }

    #[test]
    fn arm64_without_variant_counts_as_v8() {
        let i = ImageIndex {
            media_type: None,
            manifests: vec![
                entry("linux", "amd64", None, AMD64),
                entry("linux", "arm64", None, ARM64),
            ],
        };
        assert_eq!(
            select_platform(&i, &platform("linux/arm64/v8"))
                .unwrap()
                .digest,
            d(ARM64)
        );
        let e = select_platform(&i, &platform("linux/arm64/v9"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no manifest for platform linux/arm64/v9"), "{e}");
    }

    #[test]
    fn no_wanted_variant_prefers_none_then_lowest() {
        let i = ImageIndex {
            media_type: None,
            manifests: vec![
                entry("linux", "arm", Some("v7"), ARMV7),
                entry("linux", "arm", Some("v6"), ARM64),
                entry("linux", "arm", Some("v10"), AMD64),
            ],
        };
        assert_eq!(
            select_platform(&i, &platform("linux/arm")).unwrap().digest,
            d(ARM64)
        );
        let with_plain = ImageIndex {
            media_type: None,
            manifests: vec![
                entry("linux", "arm64", Some("v8"), ARM64),
                entry("linux", "arm64", None, AMD64),
            ],
        };
        assert_eq!(
            select_platform(
                &with_plain,
                &Platform {
                    os: "linux".into(),
                    architecture: "arm64".into(),
                    variant: None
                }
            )
            .unwrap()
            .digest,
            d(AMD64)
        );
    }

    #[test]
    fn attestations_are_never_selected() {
        let i = index();
        let unknown = Platform {
            os: "unknown".into(),
            architecture: "unknown".into(),
            variant: None,
        };
        let err = select_platform(&i, &unknown).unwrap_err();
        let ManifestError::NoPlatform { available, .. } = &err else {
            panic!("{err}")
        };
        assert!(
            !available.iter().any(|a| a.contains("unknown")),
            "{available:?}"
        );

        // Tagged only by annotation, with a real-looking platform.
        let mut att = entry("linux", "amd64", None, ATT);
        att.annotations.insert(
            REFERENCE_TYPE_ANNOTATION.into(),
            ATTESTATION_MANIFEST.into(),
        );
        let i = ImageIndex {
            media_type: None,
            manifests: vec![att, entry("linux", "amd64", None, AMD64)],
        };
        assert_eq!(
            select_platform(&i, &platform("linux/amd64"))
                .unwrap()
                .digest,
            d(AMD64)
        );
    }

    #[test]
    fn no_platform_lists_what_exists() {
        let err = select_platform(&index(), &platform("linux/ppc64le")).unwrap_err();
        assert_eq!(
            err,
            ManifestError::NoPlatform {
                wanted: "linux/ppc64le".into(),
                available: vec![
                    "linux/amd64".into(),
                    "linux/arm64/v8".into(),
                    "linux/arm/v7".into()
                ],
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("linux/ppc64le"), "{msg}");
        assert!(
            msg.contains("linux/amd64, linux/arm64/v8, linux/arm/v7"),
            "{msg}"
        );
        assert!(msg.contains("--platform"), "{msg}");
        let e = select_platform(&index(), &platform("windows/amd64"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no manifest for platform windows/amd64"), "{e}");
        let empty = ImageIndex {
            media_type: None,
            manifests: vec![],
        };
        assert!(select_platform(&empty, &platform("linux/amd64"))
            .unwrap_err()
            .to_string()
            .contains("(available: none)"));
    }

    #[test]
    fn platform_parse_and_display() {
        let cases = [
            ("linux/amd64", "linux/amd64"),
            ("linux/arm64/v8", "linux/arm64/v8"),
            ("Linux/AMD64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/i386", "linux/386"),
        ];
        for (input, shown) in cases {
            let p = platform(input);
            assert_eq!(p.to_string(), shown, "{input}");
            assert_eq!(platform(shown), p, "{input}");
        }
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux/amd 64",
        ] {
            assert_eq!(
                bad.parse::<Platform>(),
                Err(PlatformError(bad.to_string())),
                "{bad:?}"
            );
        }
        let msg = PlatformError("x".into()).to_string();
        assert!(msg.contains("os/arch[/variant]"), "{msg}");
    }

    #[test]
    fn current_platform_is_linux_in_go_naming() {
        let p = Platform::current();
        assert_eq!(p.os, "linux");
        assert!(
            !["x86_64", "aarch64", "x86"].contains(&p.architecture.as_str()),
            "{p}"
        );
        assert_eq!(go_arch("x86_64"), ("amd64", None));
        assert_eq!(go_arch("aarch64"), ("arm64", Some("v8")));
        assert_eq!(go_arch("riscv64"), ("riscv64", None));
        assert_eq!(go_arch("s390x"), ("s390x", None));
        assert_eq!(go_arch("loongarch64"), ("loong64", None));
    }

    #[test]
    fn platform_serde_uses_oci_names() {
        let p: Platform = serde_json::from_str(
            r#"{"architecture":"arm","os":"linux","variant":"v7","os.version":"x"}"#,
        )
        .unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        let json = serde_json::to_string(&platform("linux/amd64")).unwrap();
        assert_eq!(json, r#"{"os":"linux","architecture":"amd64"}"#);
    }

    #[test]
    fn descriptor_serde_round_trip() {
        let Manifest::Image(m) = parse(None, OCI_NO_MEDIA_TYPE.as_bytes()).unwrap() else {
            panic!()
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(
            json.contains(r#""mediaType":"application/vnd.oci.image.layer.v1.tar+gzip""#),
            "{json}"
        );
        assert!(!json.contains("urls"), "{json}");
        let back: ImageManifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn layer_compression_table() {
        use media_type::*;
        let cases = [
            (OCI_LAYER_TAR, Compression::None),
            (OCI_LAYER_GZIP, Compression::Gzip),
            (OCI_LAYER_ZSTD, Compression::Zstd),
            (OCI_LAYER_NONDISTRIBUTABLE_TAR, Compression::None),
            (OCI_LAYER_NONDISTRIBUTABLE_GZIP, Compression::Gzip),
            (OCI_LAYER_NONDISTRIBUTABLE_ZSTD, Compression::Zstd),
            (DOCKER_LAYER_TAR, Compression::None),
            (DOCKER_LAYER_GZIP, Compression::Gzip),
            (DOCKER_LAYER_ZSTD, Compression::Zstd),
            (DOCKER_FOREIGN_LAYER_GZIP, Compression::Gzip),
        ];
        for (mt, want) in cases {
            assert_eq!(layer_compression(mt), Ok(want), "{mt}");
        }
        for bad in [
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
            "application/octet-stream",
            "",
        ] {
            let err = layer_compression(bad).unwrap_err();
            assert_eq!(
                err,
                ManifestError::UnsupportedLayer {
                    media_type: bad.to_string()
                }
            );
            assert!(err.to_string().contains("gzip or zstd"), "{err}");
        }
    }

    #[test]
    fn accept_header_lists_every_manifest_type() {
        use media_type::*;
        for mt in [
            OCI_MANIFEST,
            OCI_INDEX,
            DOCKER_MANIFEST,
            DOCKER_MANIFEST_LIST,
        ] {
            assert!(
                MANIFEST_ACCEPT.split(", ").any(|a| a == mt),
                "{mt} missing from {MANIFEST_ACCEPT}"
            );
        }
        assert_eq!(MANIFEST_ACCEPT.split(", ").count(), 4);
    }

    #[test]
    fn config_docker_and_oci() {
        // Docker config as `docker build` writes it, with an empty_layer history entry.
        let docker = r#"{
            "architecture": "arm64",
            "variant": "v8",
            "os": "linux",
            "config": { "Env": ["PATH=/usr/bin"], "Cmd": ["sh"] },
            "created": "2024-01-01T00:00:00Z",
            "rootfs": {
                "type": "layers",
                "diff_ids": [
                    "sha256:0697c0f434f8672811eb1b52d443d0d4cb616fa58e4d10b25e91471b7f45a665",
                    "sha256:a9485d17c39b521f9de31b558df98f81dd72a9c7498f57f27b74356ea150fbd9"
                ]
            },
            "history": [
                { "created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs.tar /" },
                { "created": "2024-01-01T00:00:00Z", "created_by": "CMD [\"sh\"]", "empty_layer": true },
                { "created_by": "RUN true" }
            ]
        }"#;
        let c = parse_config(docker.as_bytes()).unwrap();
        assert_eq!(c.os.as_deref(), Some("linux"));
        assert_eq!(c.architecture.as_deref(), Some("arm64"));
        assert_eq!(c.variant.as_deref(), Some("v8"));
        assert_eq!(
            c.diff_ids,
            vec![
                d("sha256:0697c0f434f8672811eb1b52d443d0d4cb616fa58e4d10b25e91471b7f45a665"),
                d("sha256:a9485d17c39b521f9de31b558df98f81dd72a9c7498f57f27b74356ea150fbd9")
            ]
        );
        assert_eq!(c.history_len, 3);

        // Minimal OCI config: everything optional may be missing.
        assert_eq!(parse_config(b"{}").unwrap(), ImageConfig::default());
        let c = parse_config(br#"{"rootfs":{"type":"layers"},"history":[]}"#).unwrap();
        assert!(c.diff_ids.is_empty());

        let err = parse_config(br#"{"rootfs":{"diff_ids":["md5:00"]}}"#).unwrap_err();
        assert!(
            matches!(
                err,
                ManifestError::Json {
                    what: "image config",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("image config could not be parsed"),
            "{err}"
        );
    }
}
