//! Container images built in code: tar layers (every entry type, Go-style
//! headers, GNU and PAX long names, hostile raw names), OCI and Docker v2
//! manifests, indexes and manifest lists; pushed over the distribution HTTP
//! API and written as OCI image layouts for umoci.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use tar::{EntryType, Header};
use wyrcan_core::digest::Digest;

use super::registry::Registry;

/// The default mtime of entries (2023-11-14T22:13:20Z).
pub const DEFAULT_MTIME: u64 = 1_700_000_000;

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip (`+gzip` / `.tar.gzip`).
    Gzip,
    /// zstd (`+zstd` / `.tar.zstd`).
    Zstd,
    /// A plain tar.
    None,
}

/// Which manifest family an image or index uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OCI image manifest / OCI image index.
    Oci,
    /// Docker v2 schema 2 manifest / Docker manifest list.
    Docker,
}

/// How names and link targets over 100 bytes are encoded in the tar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongNames {
    /// GNU `L`/`K` extension entries (GNU headers).
    Gnu,
    /// A PAX extended header (`x`) with `path`/`linkpath` (ustar headers).
    Pax,
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file with these contents.
    File(Vec<u8>),
    /// A symbolic link to this target (any length).
    Symlink(String),
    /// A hard link to this path (in this or an earlier layer).
    Hardlink(String),
    /// A character device (major, minor).
    Char(u32, u32),
    /// A block device (major, minor).
    Block(u32, u32),
    /// A named pipe.
    Fifo,
}

/// One tar entry of a layer, with its metadata and how its header is written.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Path inside the image (a leading `/` is dropped unless `raw`).
    pub path: String,
    /// The entry's type and payload.
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`0o7777` mask).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Write only permission bits in the mode field (as Go's archive/tar does);
    /// `None` follows the layer's setting.
    pub go_style: Option<bool>,
    /// How to encode a name or target longer than the header field.
    pub long: LongNames,
    /// Write `path` bytes verbatim into the header name field (no
    /// normalization; must be under 100 bytes): for hostile names like `../x`.
    pub raw: bool,
}

impl Entry {
    fn new(path: &str, kind: Kind, mode: u32) -> Entry {
        Entry {
            path: path.to_string(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: DEFAULT_MTIME,
            go_style: None,
            long: LongNames::Gnu,
            raw: false,
        }
    }

    /// A directory, mode 0755.
    pub fn dir(path: &str) -> Entry {
        Entry::new(path, Kind::Dir, 0o755)
    }

    /// A regular file, mode 0644.
    pub fn file(path: &str, data: impl AsRef<[u8]>) -> Entry {
        Entry::new(path, Kind::File(data.as_ref().to_vec()), 0o644)
    }

    /// A symbolic link, mode 0777.
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry::new(path, Kind::Symlink(target.to_string()), 0o777)
    }

    /// A hard link to `target` (a path in the image), mode 0644.
    pub fn hardlink(path: &str, target: &str) -> Entry {
        Entry::new(path, Kind::Hardlink(target.to_string()), 0o644)
    }

    /// A character device, mode 0666.
    pub fn char_dev(path: &str, major: u32, minor: u32) -> Entry {
        Entry::new(path, Kind::Char(major, minor), 0o666)
    }

    /// A block device, mode 0660.
    pub fn block_dev(path: &str, major: u32, minor: u32) -> Entry {
        Entry::new(path, Kind::Block(major, minor), 0o660)
    }

    /// A fifo, mode 0644.
    pub fn fifo(path: &str) -> Entry {
        Entry::new(path, Kind::Fifo, 0o644)
    }

    /// The whiteout that deletes `path` from lower layers: `dir/.wh.NAME`.
    pub fn whiteout(path: &str) -> Entry {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        let marker = match path.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.wh.{name}"),
            None => format!(".wh.{path}"),
        };
        Entry::file(&marker, b"")
    }

    /// The opaque marker that hides lower-layer contents of `dir`: `dir/.wh..wh..opq`.
    pub fn opaque(dir: &str) -> Entry {
        let dir = dir.trim_start_matches('/').trim_end_matches('/');
        Entry::file(&format!("{dir}/.wh..wh..opq"), b"")
    }

    /// Sets the permission bits (incl. setuid 0o4000, setgid 0o2000, sticky 0o1000).
    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode & 0o7777;
        self
    }

    /// Sets the numeric owner.
    pub fn owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Sets the modification time.
    pub fn mtime(mut self, mtime: u64) -> Entry {
        self.mtime = mtime;
        self
    }

    /// Writes this entry's mode field with permission bits only (Go style).
    pub fn go_style(mut self) -> Entry {
        self.go_style = Some(true);
        self
    }

    /// Encodes a long name or link target with a PAX header instead of GNU.
    pub fn pax(mut self) -> Entry {
        self.long = LongNames::Pax;
        self
    }

    /// Writes the path bytes verbatim (for hostile names such as `../x` or `/x`).
    pub fn raw(mut self) -> Entry {
        self.raw = true;
        self
    }
}

/// One layer: entries in tar order, plus how the blob is encoded.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The entries, written in this order.
    pub entries: Vec<Entry>,
    /// The blob compression.
    pub compression: Compression,
    /// Write Go-style mode fields (permission bits only) for every entry
    /// that does not say otherwise.
    pub go_style: bool,
    /// Use this media type in the manifest instead of the right one.
    pub media_type: Option<String>,
}

impl Layer {
    /// A gzip layer with these entries.
    pub fn new(entries: Vec<Entry>) -> Layer {
        Layer {
            entries,
            compression: Compression::Gzip,
            go_style: false,
            media_type: None,
        }
    }

    /// Sets the compression.
    pub fn compression(mut self, compression: Compression) -> Layer {
        self.compression = compression;
        self
    }

    /// Writes every entry's mode field Go-style (permission bits only).
    pub fn go_style(mut self) -> Layer {
        self.go_style = true;
        self
    }

    /// Announces the layer with this media type in the manifest.
    pub fn media_type(mut self, media_type: &str) -> Layer {
        self.media_type = Some(media_type.to_string());
        self
    }

    /// The uncompressed tar stream of this layer.
    pub fn tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for entry in &self.entries {
            append_entry(&mut builder, entry, self.go_style)
                .unwrap_or_else(|e| panic!("writing tar entry {:?}: {e}", entry.path));
        }
        builder.into_inner().expect("finishing tar")
    }

    /// The layer blob (the tar, compressed as set).
    pub fn blob(&self) -> Vec<u8> {
        compress(&self.tar(), self.compression)
    }

    /// The media type this layer gets in a manifest of `format`.
    pub fn media_type_for(&self, format: Format) -> String {
        if let Some(mt) = &self.media_type {
            return mt.clone();
        }
        layer_media_type(format, self.compression).to_string()
    }
}

/// The standard layer media type for a manifest format and compression.
pub fn layer_media_type(format: Format, compression: Compression) -> &'static str {
    match (format, compression) {
        (Format::Oci, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
        (Format::Oci, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
        (Format::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
        (Format::Docker, Compression::Gzip) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        (Format::Docker, Compression::Zstd) => "application/vnd.docker.image.rootfs.diff.tar.zstd",
        (Format::Docker, Compression::None) => "application/vnd.docker.image.rootfs.diff.tar",
    }
}

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker v2 schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Compresses `data` as a layer blob.
pub fn compress(data: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(data).expect("gzip");
            enc.finish().expect("gzip")
        }
        Compression::Zstd => zstd::encode_all(data, 3).expect("zstd"),
    }
}

fn type_bits(kind: &Kind) -> u32 {
    match kind {
        Kind::Dir => 0o040000,
        Kind::File(_) | Kind::Hardlink(_) => 0o100000,
        Kind::Symlink(_) => 0o120000,
        Kind::Char(..) => 0o020000,
        Kind::Block(..) => 0o060000,
        Kind::Fifo => 0o010000,
    }
}

fn entry_type(kind: &Kind) -> EntryType {
    match kind {
        Kind::Dir => EntryType::Directory,
        Kind::File(_) => EntryType::Regular,
        Kind::Symlink(_) => EntryType::Symlink,
        Kind::Hardlink(_) => EntryType::Link,
        Kind::Char(..) => EntryType::Char,
        Kind::Block(..) => EntryType::Block,
        Kind::Fifo => EntryType::Fifo,
    }
}

/// One PAX record: `"<len> key=value\n"` where len counts the whole record.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let rest = format!(" {key}={value}\n");
    let mut len = rest.len() + 1;
    while format!("{len}{rest}").len() != len {
        len += 1;
    }
    format!("{len}{rest}").into_bytes()
}

fn set_field(field: &mut [u8], value: &[u8]) {
    field.iter_mut().for_each(|b| *b = 0);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

fn append_entry(
    builder: &mut tar::Builder<Vec<u8>>,
    entry: &Entry,
    layer_go_style: bool,
) -> std::io::Result<()> {
    let go_style = entry.go_style.unwrap_or(layer_go_style);
    let mut header = match entry.long {
        LongNames::Gnu => Header::new_gnu(),
        LongNames::Pax => Header::new_ustar(),
    };
    header.set_entry_type(entry_type(&entry.kind));
    let mode = if go_style {
        entry.mode & 0o7777
    } else {
        (entry.mode & 0o7777) | type_bits(&entry.kind)
    };
    header.set_mode(mode);
    header.set_uid(entry.uid);
    header.set_gid(entry.gid);
    header.set_mtime(entry.mtime);
    match entry.kind {
        Kind::Char(major, minor) | Kind::Block(major, minor) => {
            header.set_device_major(major)?;
            header.set_device_minor(minor)?;
        }
        _ => {
            header.set_device_major(0)?;
            header.set_device_minor(0)?;
        }
    }
    let data: &[u8] = match &entry.kind {
        Kind::File(d) => d,
        _ => &[],
    };
    header.set_size(data.len() as u64);
    let link = match &entry.kind {
        Kind::Symlink(t) => Some(t.as_str()),
        Kind::Hardlink(t) if entry.raw => Some(t.as_str()),
        Kind::Hardlink(t) => Some(t.trim_start_matches('/')),
        _ => None,
    };
    let path = if entry.raw {
        entry.path.clone()
    } else if entry.kind == Kind::Dir {
        format!(
            "{}/",
            entry.path.trim_start_matches('/').trim_end_matches('/')
        )
    } else {
        entry.path.trim_start_matches('/').to_string()
    };

    if entry.raw {
        assert!(path.len() < 100, "raw names must fit the header");
        set_field(&mut header.as_old_mut().name, path.as_bytes());
        if let Some(link) = link {
            assert!(link.len() < 100, "raw link targets must fit the header");
            set_field(&mut header.as_old_mut().linkname, link.as_bytes());
        }
        header.set_cksum();
        return builder.append(&header, data);
    }

    match entry.long {
        LongNames::Gnu => match link {
            Some(link) => builder.append_link(&mut header, &path, link),
            None => builder.append_data(&mut header, &path, data),
        },
        LongNames::Pax => {
            let mut records = Vec::new();
            if path.len() >= 100 {
                records.extend(pax_record("path", &path));
            }
            if let Some(link) = link {
                if link.len() >= 100 {
                    records.extend(pax_record("linkpath", link));
                }
            }
            if !records.is_empty() {
                let mut pax = Header::new_ustar();
                pax.set_entry_type(EntryType::XHeader);
                pax.set_mode(0o644);
                pax.set_mtime(entry.mtime);
                pax.set_size(records.len() as u64);
                let base = path.trim_end_matches('/').rsplit('/').next().unwrap_or("x");
                let name = format!("PaxHeaders.0/{}", &base[..base.len().min(80)]);
                set_field(&mut pax.as_old_mut().name, name.as_bytes());
                pax.set_cksum();
                builder.append(&pax, &records[..])?;
            }
            // The ustar fields get a truncated name; readers use the PAX record.
            set_field(
                &mut header.as_old_mut().name,
                &path.as_bytes()[..path.len().min(99)],
            );
            if let Some(link) = link {
                set_field(
                    &mut header.as_old_mut().linkname,
                    &link.as_bytes()[..link.len().min(99)],
                );
            }
            header.set_cksum();
            builder.append(&header, data)
        }
    }
}

/// A blob: bytes, their digest and the media type it is announced with.
#[derive(Clone, Debug)]
pub struct Blob {
    /// `sha256:` of `data`.
    pub digest: Digest,
    /// The media type in the referring descriptor.
    pub media_type: String,
    /// The bytes.
    pub data: Vec<u8>,
}

impl Blob {
    /// Wraps bytes with their digest.
    pub fn new(media_type: &str, data: Vec<u8>) -> Blob {
        Blob {
            digest: Digest::of(&data),
            media_type: media_type.to_string(),
            data,
        }
    }

    /// This blob's descriptor (`mediaType`, `digest`, `size`).
    pub fn descriptor(&self) -> Value {
        json!({
            "mediaType": self.media_type,
            "digest": self.digest.to_string(),
            "size": self.data.len(),
        })
    }
}

/// An image: layers (lowest first), manifest format and platform.
#[derive(Clone, Debug)]
pub struct Image {
    /// Layers, lowest first.
    pub layers: Vec<Layer>,
    /// Manifest family.
    pub format: Format,
    /// Platform OS.
    pub os: String,
    /// Platform architecture.
    pub arch: String,
    /// Platform variant.
    pub variant: Option<String>,
}

/// An image encoded: config, layer blobs and manifest.
#[derive(Clone, Debug)]
pub struct Built {
    /// The config blob.
    pub config: Blob,
    /// The layer blobs, lowest first.
    pub layers: Vec<Blob>,
    /// The manifest (its `media_type` is the manifest's).
    pub manifest: Blob,
}

impl Image {
    /// An OCI image of these layers for linux/amd64.
    pub fn oci(layers: Vec<Layer>) -> Image {
        Image {
            layers,
            format: Format::Oci,
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
        }
    }

    /// A Docker v2 schema 2 image of these layers for linux/amd64.
    pub fn docker(layers: Vec<Layer>) -> Image {
        Image {
            format: Format::Docker,
            ..Image::oci(layers)
        }
    }

    /// Sets the platform.
    pub fn platform(mut self, os: &str, arch: &str, variant: Option<&str>) -> Image {
        self.os = os.into();
        self.arch = arch.into();
        self.variant = variant.map(Into::into);
        self
    }

    /// The platform object of an index entry.
    pub fn platform_json(&self) -> Value {
        let mut p = json!({"os": self.os, "architecture": self.arch});
        if let Some(v) = &self.variant {
            p["variant"] = json!(v);
        }
        p
    }

    /// Encodes the image (deterministic: same image, same bytes).
    pub fn build(&self) -> Built {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        let mut history = vec![json!({
            "created": "2023-11-14T22:13:20Z",
            "created_by": "/bin/sh -c #(nop)  ARG RELEASE",
            "empty_layer": true,
        })];
        for (i, layer) in self.layers.iter().enumerate() {
            let tar = layer.tar();
            diff_ids.push(Digest::of(&tar).to_string());
            let blob = compress(&tar, layer.compression);
            layers.push(Blob::new(&layer.media_type_for(self.format), blob));
            history.push(json!({
                "created": "2023-11-14T22:13:20Z",
                "created_by": format!("/bin/sh -c #(nop) ADD layer{i} /"),
            }));
            if i == 0 {
                history.push(json!({
                    "created": "2023-11-14T22:13:20Z",
                    "created_by": "/bin/sh -c #(nop)  ENV WYRCAN_TEST=1",
                    "empty_layer": true,
                }));
            }
        }
        let mut config = json!({
            "created": "2023-11-14T22:13:20Z",
            "architecture": self.arch,
            "os": self.os,
            "config": {
                "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "WYRCAN_TEST=1"],
                "Cmd": ["/init"],
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        if let Some(v) = &self.variant {
            config["variant"] = json!(v);
        }
        let (config_type, manifest_type) = match self.format {
            Format::Oci => (OCI_CONFIG, OCI_MANIFEST),
            Format::Docker => (DOCKER_CONFIG, DOCKER_MANIFEST),
        };
        let config = Blob::new(config_type, serde_json::to_vec(&config).unwrap());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(manifest_type, serde_json::to_vec_pretty(&manifest).unwrap());
        Built {
            config,
            layers,
            manifest,
        }
    }
}

/// A multi-platform image: an OCI index or a Docker manifest list.
#[derive(Clone, Debug)]
pub struct Index {
    /// The platform images (each image's own platform goes in its entry).
    pub images: Vec<Image>,
    /// OCI index or Docker manifest list.
    pub format: Format,
}

impl Index {
    /// Encodes the index; also returns each image encoded.
    pub fn build(&self) -> (Blob, Vec<Built>) {
        let built: Vec<Built> = self.images.iter().map(Image::build).collect();
        let media_type = match self.format {
            Format::Oci => OCI_INDEX,
            Format::Docker => DOCKER_LIST,
        };
        let manifests: Vec<Value> = self
            .images
            .iter()
            .zip(&built)
            .map(|(image, b)| {
                let mut d = b.manifest.descriptor();
                d["platform"] = image.platform_json();
                d
            })
            .collect();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": manifests,
        });
        (
            Blob::new(media_type, serde_json::to_vec_pretty(&index).unwrap()),
            built,
        )
    }
}

/// Uploads one blob (POST then PUT with `digest=`), unless already present.
pub fn push_blob(registry: &Registry, repo: &str, blob: &Blob) {
    let base = registry.base_url();
    let head = registry
        .authorize(
            registry
                .agent()
                .head(format!("{base}/v2/{repo}/blobs/{}", blob.digest)),
        )
        .call()
        .expect("HEAD blob");
    if head.status().as_u16() == 200 {
        return;
    }
    let mut resp = registry
        .authorize(
            registry
                .agent()
                .post(format!("{base}/v2/{repo}/blobs/uploads/")),
        )
        .send_empty()
        .expect("POST upload");
    let status = resp.status().as_u16();
    assert_eq!(
        status,
        202,
        "starting upload to {repo}: {}",
        resp.body_mut().read_to_string().unwrap_or_default()
    );
    let location = resp
        .headers()
        .get("Location")
        .expect("upload Location")
        .to_str()
        .unwrap()
        .to_string();
    let location = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let url = format!("{location}{sep}digest={}", blob.digest);
    let mut resp = registry
        .authorize(registry.agent().put(&url))
        .header("Content-Type", "application/octet-stream")
        .send(&blob.data[..])
        .expect("PUT blob");
    let status = resp.status().as_u16();
    assert_eq!(
        status,
        201,
        "uploading blob {} to {repo}: {}",
        blob.digest,
        resp.body_mut().read_to_string().unwrap_or_default()
    );
}

/// Uploads a manifest (or index) under `reference` (tag or digest) and
/// returns its digest, checked against the registry's answer.
pub fn push_manifest(registry: &Registry, repo: &str, reference: &str, manifest: &Blob) -> Digest {
    let url = format!("{}/v2/{repo}/manifests/{reference}", registry.base_url());
    let mut resp = registry
        .authorize(registry.agent().put(&url))
        .header("Content-Type", &manifest.media_type)
        .send(&manifest.data[..])
        .expect("PUT manifest");
    let status = resp.status().as_u16();
    let answered = resp
        .headers()
        .get("Docker-Content-Digest")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        status,
        201,
        "pushing manifest {repo}:{reference}: {}",
        resp.body_mut().read_to_string().unwrap_or_default()
    );
    assert_eq!(
        answered.as_deref(),
        Some(manifest.digest.to_string().as_str())
    );
    manifest.digest.clone()
}

/// Pushes an encoded image (blobs, then manifest under `tag`).
pub fn push_built(registry: &Registry, repo: &str, tag: &str, built: &Built) -> Digest {
    push_blob(registry, repo, &built.config);
    for layer in &built.layers {
        push_blob(registry, repo, layer);
    }
    push_manifest(registry, repo, tag, &built.manifest)
}

/// Builds and pushes an image as `repo:tag`; returns the manifest digest.
pub fn push(registry: &Registry, repo: &str, tag: &str, image: &Image) -> Digest {
    push_built(registry, repo, tag, &image.build())
}

/// Builds and pushes an index: every image by digest, then the index as
/// `repo:tag`; returns the index digest.
pub fn push_index(registry: &Registry, repo: &str, tag: &str, index: &Index) -> Digest {
    let (blob, built) = index.build();
    for b in &built {
        push_built(registry, repo, &b.manifest.digest.to_string(), b);
    }
    push_manifest(registry, repo, tag, &blob)
}

fn oci_layer_type(media_type: &str) -> String {
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.v1.tar+gzip".into()
        }
        "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
            "application/vnd.oci.image.layer.v1.tar+zstd".into()
        }
        "application/vnd.docker.image.rootfs.diff.tar" => {
            "application/vnd.oci.image.layer.v1.tar".into()
        }
        other => other.into(),
    }
}

/// Writes `image` as an OCI image layout in `dir` (created), tagged `tag`.
///
/// The config and layer bytes are the pushed ones; a Docker image gets an OCI
/// manifest over them (umoci reads OCI only), and zstd layers are stored as
/// their uncompressed tar (umoci 0.4.7 has no zstd), which unpacks the same.
pub fn write_oci_layout(dir: &Path, tag: &str, image: &Image) {
    let built = image.build();
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let write_blob = |b: &Blob| fs::write(blobs.join(b.digest.hex()), &b.data).unwrap();
    let mut config = built.config.clone();
    config.media_type = OCI_CONFIG.into();
    write_blob(&config);
    let mut layers = Vec::new();
    for (layer, blob) in image.layers.iter().zip(&built.layers) {
        let blob = if layer.compression == Compression::Zstd {
            Blob::new("application/vnd.oci.image.layer.v1.tar", layer.tar())
        } else {
            Blob::new(&oci_layer_type(&blob.media_type), blob.data.clone())
        };
        write_blob(&blob);
        layers.push(blob);
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    let manifest = Blob::new(OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap());
    write_blob(&manifest);
    let mut desc = manifest.descriptor();
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    desc["platform"] = image.platform_json();
    let index = json!({"schemaVersion": 2, "manifests": [desc]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// `n` bytes that do not compress (a fixed xorshift stream seeded by `seed`).
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A small image Wyrcan can convert (a fake kernel, `/init`, a cmdline
/// file); `mark` makes each one's digests its own.
pub fn small_bootable(mark: &str) -> Image {
    Image::oci(vec![Layer::new(vec![
        Entry::dir("boot"),
        Entry::file("boot/vmlinuz-6.1", format!("FAKE-KERNEL {mark}\n")),
        Entry::symlink("boot/wyrcan.kernel", "vmlinuz-6.1"),
        Entry::file("boot/wyrcan.cmdline", "console=ttyS0\n"),
        Entry::dir("etc"),
        Entry::file("init", "#!/bin/sh\n").mode(0o755),
    ])])
}
