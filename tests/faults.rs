//! Bad input and network faults: corrupted and cut blobs and error statuses
//! (through the lying proxy in `common/proxy.rs`), missing images, a TLS
//! registry with basic auth, unknown media types. Each run ends in success
//! after retries or in a clear error with no output left behind.

mod common;

use std::fs;
use std::sync::OnceLock;

use base64::Engine as _;
use common::image::{noise, push, push_built, push_index, Entry, Format, Image, Index, Layer};
use common::proxy::{Mode, Proxy};
use common::registry::{self, Registry};
use common::{
    assert_failure, assert_mentions, assert_success, check_initrd, final_error, morph, reference,
    wyrcan, wyrcan_with_env, Outputs,
};

const KPATH: &str = "boot/vmlinuz-6.1";

fn kernel(tag: &str) -> Vec<u8> {
    let mut v = format!("FAKE-KERNEL {tag}\n").into_bytes();
    v.extend(noise(1500, 11));
    v
}

/// A small bootable image whose second layer is ~64 KiB of noise (room to
/// cut a download in the middle).
fn image(tag: &str) -> Image {
    Image::oci(vec![
        Layer::new(vec![
            Entry::dir("boot"),
            Entry::file(KPATH, kernel(tag)),
            Entry::symlink("boot/wyrcan.kernel", "vmlinuz-6.1"),
            Entry::file("init", "#!/bin/sh\n").mode(0o755),
        ]),
        Layer::new(vec![
            Entry::dir("data"),
            Entry::file("data/noise", noise(64 * 1024, 5)),
            Entry::file("data/tag", tag),
        ]),
    ])
}

/// The second (big) layer's digest.
fn big_layer(image: &Image) -> wyrcan_core::digest::Digest {
    image.build().layers[1].digest.clone()
}

// ------------------------------------------------------- harness self-tests

#[test]
fn harness_proxy_lies_as_told() {
    let reg = registry::shared();
    let img = image("proxy-self");
    let built = img.build();
    push_built(reg, "faults/proxy-self", "t", &built);
    let blob = &built.layers[1];
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .new_agent();
    let get = |proxy: &Proxy, range: Option<&str>| {
        let url = format!(
            "http://{}/v2/faults/proxy-self/blobs/{}",
            proxy.addr(),
            blob.digest
        );
        let mut req = agent.get(&url);
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        let mut resp = req.call().expect("GET through the proxy");
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_vec())
    };

    let proxy = Proxy::start(&reg.addr(), Mode::PassThrough);
    let (status, body) = get(&proxy, None);
    assert_eq!(status, 200);
    assert_eq!(body.unwrap(), blob.data);

    let proxy = Proxy::start(&reg.addr(), Mode::CutBlobOnce { after_bytes: 1000 });
    let (status, body) = get(&proxy, None);
    assert_eq!(status, 200);
    // A cut body fails to read: the connection ended before the
    // announced length.
    match body {
        Err(ureq::Error::Io(e)) => assert_eq!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof,
            "a cut body must end early: {e}"
        ),
        Err(e) => panic!("a cut body must end early, not fail with: {e}"),
        Ok(b) => panic!("a cut body read in full ({} bytes)", b.len()),
    }
    let (status, body) = get(&proxy, Some("bytes=1000-"));
    assert_eq!(status, 206, "the registry serves ranges");
    assert_eq!(body.unwrap(), blob.data[1000..]);
    let seen = proxy.seen();
    assert_eq!(seen[0].action, "cut");
    assert_eq!(seen[1].range.as_deref(), Some("bytes=1000-"));

    let proxy = Proxy::start_only(&reg.addr(), Mode::CorruptBlob, &blob.digest);
    for _ in 0..2 {
        let (status, body) = get(&proxy, None);
        assert_eq!(status, 200);
        let body = body.unwrap();
        assert_eq!(body.len(), blob.data.len());
        assert_ne!(body, blob.data);
    }

    let proxy = Proxy::start(
        &reg.addr(),
        Mode::Status {
            code: 503,
            times: 2,
        },
    );
    assert_eq!(get(&proxy, None).0, 503);
    assert_eq!(get(&proxy, None).0, 503);
    let (status, body) = get(&proxy, None);
    assert_eq!(status, 200);
    assert_eq!(body.unwrap(), blob.data);
}

#[test]
fn harness_tls_registry_requires_auth() {
    let reg = tls_registry();
    let url = format!("{}/v2/", reg.base_url());
    let resp = reg.agent().get(&url).call().unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = reg.authorize(reg.agent().get(&url)).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(reg.ca_path().unwrap().exists());
}

// ------------------------------------------------------------------- blobs

fn through_proxy(repo: &str, img: &Image, proxy: &Proxy) -> (std::process::Output, Outputs) {
    push(registry::shared(), repo, "t", img);
    let out = Outputs::new();
    let res = morph(
        &proxy.addr(),
        &reference(&proxy.addr(), repo, "t"),
        &out,
        &[],
    );
    (res, out)
}

#[test]
fn corrupt_layer_blob_fails_naming_the_layer() {
    let img = image("corrupt-layer");
    let layer = big_layer(&img);
    let proxy = Proxy::start_only(&registry::shared().addr(), Mode::CorruptBlob, &layer);
    let (res, out) = through_proxy("faults/corrupt-layer", &img, &proxy);
    let err = assert_failure(&res, "corrupt layer");
    assert_mentions(&err, &layer.hex()[..12], "digest mismatch names the layer");
    out.assert_nothing_left();
}

/// A layer whose first download is corrupt is downloaded again; the index
/// built while the bad bytes arrived is thrown away with its share of
/// `--max-entries` (exactly the image's 7 entries here), and the result is
/// exactly the image.
#[test]
fn corrupt_layer_once_starts_over_and_discards_its_index() {
    let img = image("corrupt-once");
    let layer = big_layer(&img);
    let proxy = Proxy::start_only(&registry::shared().addr(), Mode::CorruptBlobOnce, &layer);
    push(registry::shared(), "faults/corrupt-once", "t", &img);
    let out = Outputs::new();
    let res = morph(
        &proxy.addr(),
        &reference(&proxy.addr(), "faults/corrupt-once", "t"),
        &out,
        &["--max-entries", "7"],
    );
    assert_success(&res, "corrupt once");
    out.assert_exactly_outputs();
    check_initrd(&img, &out, KPATH, &kernel("corrupt-once"));
    let seen = proxy.seen();
    assert!(
        seen.iter().any(|s| s.action == "corrupt"),
        "the proxy never corrupted the layer: {seen:?}"
    );
}

#[test]
fn corrupt_every_blob_fails() {
    let img = image("corrupt-all");
    let config = img.build().config.digest;
    let proxy = Proxy::start(&registry::shared().addr(), Mode::CorruptBlob);
    let (res, out) = through_proxy("faults/corrupt-all", &img, &proxy);
    let err = assert_failure(&res, "every blob corrupt");
    // The first blob fetched, the config, never verifies: the error names
    // it, says the bytes did not match, and that the retries are spent.
    let err = final_error(&err);
    assert_mentions(
        err,
        &format!("fetching the config {config} of"),
        "names the blob",
    );
    assert_mentions(err, "giving up after", "says the retries are spent");
    assert_mentions(
        err,
        &format!("digest mismatch: expected {config}, got sha256:"),
        "says what was wrong",
    );
    out.assert_nothing_left();
}

#[test]
fn corrupt_config_blob_fails_naming_it() {
    let img = image("corrupt-config");
    let config = img.build().config.digest;
    let proxy = Proxy::start_only(&registry::shared().addr(), Mode::CorruptBlob, &config);
    let (res, out) = through_proxy("faults/corrupt-config", &img, &proxy);
    let err = assert_failure(&res, "corrupt config");
    assert_mentions(
        &err,
        &config.hex()[..12],
        "digest mismatch names the config",
    );
    out.assert_nothing_left();
}

/// A layer download cut mid-body resumes where it stopped (a `Range`
/// request) and the result is exactly the image.
#[test]
fn connection_cut_mid_layer_resumes_with_range() {
    let img = image("cut");
    let layer = big_layer(&img);
    let proxy = Proxy::start_only(
        &registry::shared().addr(),
        Mode::CutBlobOnce {
            after_bytes: 20_000,
        },
        &layer,
    );
    let (res, out) = through_proxy("faults/cut", &img, &proxy);
    assert_success(&res, "cut mid-blob");
    out.assert_exactly_outputs();
    check_initrd(&img, &out, KPATH, &kernel("cut"));
    let seen = proxy.seen();
    let cut = seen
        .iter()
        .position(|s| s.action == "cut")
        .unwrap_or_else(|| panic!("the proxy never cut the layer download: {seen:?}"));
    let resumed = seen[cut + 1..]
        .iter()
        .filter(|s| s.method == "GET" && s.path.contains(layer.hex()))
        .any(|s| {
            s.range
                .as_deref()
                .is_some_and(|r| r.starts_with("bytes=") && !r.starts_with("bytes=0-"))
        });
    assert!(
        resumed,
        "after the cut the layer was fetched again without a resuming Range header: {:?}",
        &seen[cut..]
    );
}

/// The image config (read into memory, not streamed to a file like a
/// layer) cut mid-body: fetched again, and the result is exactly the image.
#[test]
fn connection_cut_mid_config_is_fetched_again() {
    let img = image("cut-config");
    let config = img.build().config.digest;
    let proxy = Proxy::start_only(
        &registry::shared().addr(),
        Mode::CutBlobOnce { after_bytes: 100 },
        &config,
    );
    let (res, out) = through_proxy("faults/cut-config", &img, &proxy);
    assert_success(&res, "cut mid-config");
    out.assert_exactly_outputs();
    check_initrd(&img, &out, KPATH, &kernel("cut-config"));
    let seen = proxy.seen();
    let cut = seen
        .iter()
        .position(|s| s.action == "cut")
        .unwrap_or_else(|| panic!("the proxy never cut the config download: {seen:?}"));
    assert!(
        seen[cut].path.contains(config.hex()),
        "the cut was not the config: {:?}",
        seen[cut]
    );
    let again = seen[cut + 1..].iter().any(|s| {
        s.method == "GET" && s.path.contains(config.hex()) && matches!(s.status, 200 | 206)
    });
    assert!(
        again,
        "the config was not fetched again after the cut: {:?}",
        &seen[cut..]
    );
}

#[test]
fn status_503_a_few_times_then_success() {
    let img = image("503");
    let proxy = Proxy::start(
        &registry::shared().addr(),
        Mode::Status {
            code: 503,
            times: 3,
        },
    );
    let (res, out) = through_proxy("faults/503", &img, &proxy);
    assert_success(&res, "503 x3");
    check_initrd(&img, &out, KPATH, &kernel("503"));
    assert_eq!(
        proxy.seen().iter().filter(|s| s.action == "status").count(),
        3
    );
}

#[test]
fn status_429_then_success() {
    let img = image("429");
    let proxy = Proxy::start(
        &registry::shared().addr(),
        Mode::Status {
            code: 429,
            times: 2,
        },
    );
    let (res, out) = through_proxy("faults/429", &img, &proxy);
    assert_success(&res, "429 x2");
    check_initrd(&img, &out, KPATH, &kernel("429"));
}

#[test]
fn status_503_forever_fails_cleanly() {
    let img = image("503-forever");
    let proxy = Proxy::start(
        &registry::shared().addr(),
        Mode::Status {
            code: 503,
            times: usize::MAX,
        },
    );
    let (res, out) = through_proxy("faults/503-forever", &img, &proxy);
    let err = assert_failure(&res, "503 forever");
    assert_mentions(&err, "503", "persistent 503 error names the status");
    out.assert_nothing_left();
}

// -------------------------------------------------------------- manifests

#[test]
fn substituted_pinned_manifest_fails() {
    // A registry that serves another (valid) manifest for a pinned digest,
    // and claims the pinned digest for it.
    let reg = registry::shared();
    let a = image("pin-a");
    let b = image("pin-b").build();
    let da = push(reg, "faults/pin-substituted", "a", &a);
    push_built(reg, "faults/pin-substituted", "b", &b);
    let proxy = Proxy::start(
        &reg.addr(),
        Mode::ReplaceManifest {
            body: b.manifest.data.clone(),
            digest: da.clone(),
        },
    );
    let out = Outputs::new();
    let r = format!("{}/faults/pin-substituted@{da}", proxy.addr());
    let err = assert_failure(&morph(&proxy.addr(), &r, &out, &[]), "substituted manifest");
    assert_mentions(
        &err,
        &da.hex()[..12],
        "manifest mismatch names the pinned digest",
    );
    out.assert_nothing_left();
    assert!(proxy.seen().iter().any(|s| s.action == "replace"));
}

#[test]
fn substituted_index_child_manifest_fails() {
    // The index is honest; the platform manifest it points to is not.
    let reg = registry::shared();
    let amd = image("child-amd64");
    let arm = image("child-arm64").platform("linux", "arm64", Some("v8"));
    let index = Index {
        images: vec![amd.clone(), arm.clone()],
        format: Format::Oci,
    };
    push_index(reg, "faults/child-substituted", "t", &index);
    let amd_digest = amd.build().manifest.digest;
    let proxy = Proxy::start_only(
        &reg.addr(),
        Mode::ReplaceManifest {
            body: arm.build().manifest.data,
            digest: amd_digest.clone(),
        },
        &amd_digest,
    );
    let out = Outputs::new();
    let r = reference(&proxy.addr(), "faults/child-substituted", "t");
    let res = morph(&proxy.addr(), &r, &out, &["--platform", "linux/amd64"]);
    let err = assert_failure(&res, "substituted platform manifest");
    assert_mentions(
        &err,
        &amd_digest.hex()[..12],
        "mismatch names the platform manifest",
    );
    out.assert_nothing_left();
    assert!(proxy.seen().iter().any(|s| s.action == "replace"));
}

// ------------------------------------------------------- missing / unknown

#[test]
fn missing_image_is_a_clear_error() {
    let reg = registry::shared();
    let out = Outputs::new();
    let r = reference(&reg.addr(), "faults/does-not-exist", "nope");
    let err = assert_failure(&morph(&reg.addr(), &r, &out, &[]), "missing repo");
    assert_mentions(&err, "faults/does-not-exist", "404 error names the image");
    out.assert_nothing_left();
}

#[test]
fn missing_tag_is_a_clear_error() {
    let reg = registry::shared();
    push(reg, "faults/missing-tag", "exists", &image("missing-tag"));
    let out = Outputs::new();
    let r = reference(&reg.addr(), "faults/missing-tag", "absent");
    let err = assert_failure(&morph(&reg.addr(), &r, &out, &[]), "missing tag");
    assert_mentions(&err, "absent", "404 error names the tag");
    out.assert_nothing_left();
}

#[test]
fn unknown_layer_media_type_is_named() {
    let reg = registry::shared();
    let media_type = "application/vnd.example.layer.v1.tar+lz4";
    let mut img = image("unknown-mt");
    img.layers[1] = img.layers[1].clone().media_type(media_type);
    push(reg, "faults/unknown-media-type", "t", &img);
    let out = Outputs::new();
    let r = reference(&reg.addr(), "faults/unknown-media-type", "t");
    let err = assert_failure(&morph(&reg.addr(), &r, &out, &[]), "unknown media type");
    assert_mentions(&err, media_type, "media type error names it");
    out.assert_nothing_left();
}

#[test]
fn plain_http_needs_insecure() {
    let reg = registry::shared();
    push(reg, "faults/needs-insecure", "t", &image("needs-insecure"));
    let out = Outputs::new();
    let mut args = vec![
        "morph".to_string(),
        reference(&reg.addr(), "faults/needs-insecure", "t"),
    ];
    args.extend(out.args());
    let err = assert_failure(&wyrcan(&args), "plain HTTP without --insecure");
    // The client spoke TLS to a plain-HTTP registry: what failed, and the
    // switch that allows it.
    let addr = reg.addr();
    let err = final_error(&err);
    assert_mentions(err, &format!("TLS with {addr} failed"), "what failed");
    assert_mentions(
        err,
        &format!("allow it with --insecure {addr}"),
        "what to do",
    );
    out.assert_nothing_left();
}

// --------------------------------------------------------- TLS + basic auth

const USER: &str = "wyrcan";
const PASS: &str = "s3cret:pass";

fn tls_registry() -> &'static Registry {
    static TLS: OnceLock<Registry> = OnceLock::new();
    TLS.get_or_init(|| Registry::start_tls_basic(USER, PASS))
}

fn tls_args(repo: &str, out: &Outputs, extra: &[&str]) -> Vec<String> {
    let reg = tls_registry();
    let mut args = vec!["morph".to_string(), reference(&reg.addr(), repo, "t")];
    args.extend(out.args());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn ca() -> String {
    tls_registry().ca_path().unwrap().display().to_string()
}

#[test]
fn tls_basic_auth_with_creds_flag() {
    let img = image("tls-flag");
    push(tls_registry(), "faults/tls-flag", "t", &img);
    let out = Outputs::new();
    let creds = format!("{USER}:{PASS}");
    let args = tls_args("faults/tls-flag", &out, &["--ca", &ca(), "--creds", &creds]);
    assert_success(&wyrcan(&args), "TLS + --creds");
    check_initrd(&img, &out, KPATH, &kernel("tls-flag"));
}

fn auth_json() -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    format!(
        r#"{{"auths": {{"{}": {{"auth": "{token}"}}}}}}"#,
        tls_registry().addr()
    )
}

#[test]
fn tls_basic_auth_with_docker_config() {
    let img = image("tls-docker-config");
    push(tls_registry(), "faults/tls-docker-config", "t", &img);
    let config = tempfile::tempdir().unwrap();
    fs::write(config.path().join("config.json"), auth_json()).unwrap();
    let out = Outputs::new();
    let args = tls_args("faults/tls-docker-config", &out, &["--ca", &ca()]);
    let res = wyrcan_with_env(&args, &[("DOCKER_CONFIG", config.path())]);
    assert_success(&res, "TLS + DOCKER_CONFIG");
    check_initrd(&img, &out, KPATH, &kernel("tls-docker-config"));
}

#[test]
fn tls_basic_auth_with_registry_auth_file() {
    let img = image("tls-auth-file");
    push(tls_registry(), "faults/tls-auth-file", "t", &img);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.json");
    fs::write(&file, auth_json()).unwrap();
    let out = Outputs::new();
    let args = tls_args("faults/tls-auth-file", &out, &["--ca", &ca()]);
    let res = wyrcan_with_env(&args, &[("REGISTRY_AUTH_FILE", &file)]);
    assert_success(&res, "TLS + REGISTRY_AUTH_FILE");
    check_initrd(&img, &out, KPATH, &kernel("tls-auth-file"));
}

#[test]
fn tls_wrong_creds_is_a_clear_401() {
    push(tls_registry(), "faults/tls-wrong", "t", &image("tls-wrong"));
    let out = Outputs::new();
    let args = tls_args(
        "faults/tls-wrong",
        &out,
        &["--ca", &ca(), "--creds", "wyrcan:wrong"],
    );
    let err = assert_failure(&wyrcan(&args), "wrong creds");
    assert_mentions(
        final_error(&err),
        &format!(
            "registry {} refused access to faults/tls-wrong (401): check the credentials \
             (--creds USER:PASS or docker/podman login)",
            tls_registry().addr()
        ),
        "wrong-creds error says who refused what, and what to do",
    );
    out.assert_nothing_left();
}

#[test]
fn tls_no_creds_is_a_clear_401() {
    push(tls_registry(), "faults/tls-anon", "t", &image("tls-anon"));
    let out = Outputs::new();
    let args = tls_args("faults/tls-anon", &out, &["--ca", &ca()]);
    let err = assert_failure(&wyrcan(&args), "no creds");
    assert_mentions(
        final_error(&err),
        &format!(
            "registry {} refused access to faults/tls-anon (401): check the credentials \
             (--creds USER:PASS or docker/podman login)",
            tls_registry().addr()
        ),
        "no-creds error says who refused what, and what to do",
    );
    out.assert_nothing_left();
}

#[test]
fn tls_without_ca_is_a_tls_error() {
    push(tls_registry(), "faults/tls-no-ca", "t", &image("tls-no-ca"));
    let out = Outputs::new();
    let creds = format!("{USER}:{PASS}");
    let args = tls_args("faults/tls-no-ca", &out, &["--creds", &creds]);
    let err = assert_failure(&wyrcan(&args), "no --ca");
    let addr = tls_registry().addr();
    let err = final_error(&err);
    assert_mentions(
        err,
        &format!("TLS with {addr} failed"),
        "an untrusted certificate is a TLS error",
    );
    assert_mentions(err, "UnknownIssuer", "says why TLS failed");
    assert_mentions(
        err,
        &format!("trust its CA with --ca FILE, or allow it with --insecure {addr}"),
        "says what to do",
    );
    out.assert_nothing_left();
}

#[test]
fn tls_insecure_skips_verification() {
    let img = image("tls-insecure");
    push(tls_registry(), "faults/tls-insecure", "t", &img);
    let out = Outputs::new();
    let creds = format!("{USER}:{PASS}");
    let addr = tls_registry().addr();
    let args = tls_args(
        "faults/tls-insecure",
        &out,
        &["--insecure", &addr, "--creds", &creds],
    );
    assert_success(&wyrcan(&args), "TLS + --insecure, no --ca");
    check_initrd(&img, &out, KPATH, &kernel("tls-insecure"));
}

#[test]
fn tls_unpack_with_creds() {
    let img = image("tls-unpack");
    push(tls_registry(), "faults/tls-unpack", "t", &img);
    let dir = tempfile::tempdir().unwrap();
    let creds = format!("{USER}:{PASS}");
    let args = [
        "unpack".to_string(),
        reference(&tls_registry().addr(), "faults/tls-unpack", "t"),
        dir.path().display().to_string(),
        "--ca".into(),
        ca(),
        "--creds".into(),
        creds,
    ];
    assert_success(&wyrcan(&args), "unpack over TLS");
    let expected = common::oracle::snapshot(common::oracle::umoci_rootfs(&img).path());
    let actual = common::oracle::snapshot(dir.path());
    common::oracle::compare(&expected, &actual, &[]).unwrap();
}
