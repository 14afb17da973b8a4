//! Limits and output permissions, end to end against the real
//! `docker-registry`: a manifest over the layer limit is refused before any
//! blob is requested, by every pulling command; `unpack` creates DIR 0700
//! for the caller whatever the image's root says; `morph` outputs are 0600.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use common::image::{noise, push, Entry, Image, Layer};
use common::registry::{self, Registry};
use common::{assert_failure, assert_mentions, assert_success, morph, reference, wyrcan, Outputs};

/// A bootable layer: `/init`, a kernel and its `boot/wyrcan.kernel` link,
/// a cmdline file and a 0600 `/etc/shadow`.
fn base(tag: &str) -> Layer {
    let mut kernel = format!("FAKE-KERNEL {tag}\n").into_bytes();
    kernel.extend(noise(1500, 3));
    Layer::new(vec![
        Entry::dir("boot"),
        Entry::file("boot/vmlinuz-6.1", kernel),
        Entry::symlink("boot/wyrcan.kernel", "vmlinuz-6.1"),
        Entry::file("boot/wyrcan.cmdline", "console=ttyS0\n"),
        Entry::dir("etc"),
        Entry::file("etc/shadow", "root:*:19000:0:99999:7:::\n").mode(0o600),
        Entry::file("init", "#!/bin/sh\n").mode(0o755),
    ])
}

fn unpack(reg: &Registry, repo: &str, dir: &Path) -> std::process::Output {
    wyrcan(&[
        "unpack".to_string(),
        reference(&reg.addr(), repo, "t"),
        dir.display().to_string(),
        "--insecure".into(),
        reg.addr(),
    ])
}

/// The registry's access log lines that fetched a blob of `repo`.
fn blob_gets(reg: &Registry, repo: &str) -> Vec<String> {
    let needle = format!("\"GET /v2/{repo}/blobs/");
    reg.log()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_manifest_over_the_layer_limit_is_refused_before_any_blob_request() {
    let reg = registry::shared();
    let repo = "limits/many-layers";
    // 1000 layers, all the same tiny blob: one upload, a manifest listing
    // it 1000 times (the count is what is checked, not the bytes).
    let layer = Layer::new(vec![Entry::file("f", "x")]);
    push(reg, repo, "t", &Image::oci(vec![layer; 1000]));
    let r = reference(&reg.addr(), repo, "t");
    let image = format!("{}/{repo}:t", reg.addr());

    let out = Outputs::new();
    let err = assert_failure(&morph(&reg.addr(), &r, &out, &[]), "morph of 1000 layers");
    assert_mentions(&err, &format!("{image} has 1000 layers"), "morph error");
    assert_mentions(&err, "at most 999 are supported", "morph error");
    assert_mentions(&err, "fewer layers", "morph error");
    out.assert_nothing_left();

    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("rootfs");
    let err = assert_failure(&unpack(reg, repo, &dir), "unpack of 1000 layers");
    assert_mentions(&err, &format!("{image} has 1000 layers"), "unpack error");
    assert!(!dir.exists(), "unpack left {}", dir.display());

    // The access log is there (the manifest was fetched), and it holds no blob GET.
    let manifest_gets = format!("\"GET /v2/{repo}/manifests/t ");
    assert!(
        reg.log().contains(&manifest_gets),
        "no access line for the manifest in the registry log:\n{}",
        reg.log()
    );
    let gets = blob_gets(reg, repo);
    assert!(
        gets.is_empty(),
        "blobs (config or layers) were requested before the refusal:\n{}",
        gets.join("\n")
    );
}

#[test]
fn unpack_creates_dir_0700_for_the_caller_whatever_the_image_root_says() {
    let reg = registry::shared();
    let repo = "limits/wide-root";
    let image = Image::oci(vec![
        Layer::new(vec![
            Entry::dir(".").mode(0o7777).owner(1234, 1234),
            Entry::dir("sub").mode(0o750).owner(1234, 1234),
            Entry::file("sub/f", "x").mode(0o640),
        ]),
        base("wide-root"),
    ]);
    push(reg, repo, "t", &image);
    let parent = tempfile::tempdir().unwrap();
    let caller = fs::metadata(parent.path()).unwrap();
    for existed in [false, true] {
        let dir = parent.path().join(format!("rootfs-{existed}"));
        if existed {
            fs::create_dir(&dir).unwrap();
            fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        assert_success(&unpack(reg, repo, &dir), "unpack");
        let m = fs::metadata(&dir).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o700, "DIR mode (existed: {existed})");
        assert_eq!(
            (m.uid(), m.gid()),
            (caller.uid(), caller.gid()),
            "DIR owner (existed: {existed})"
        );
        // The image's metadata still reaches what is inside.
        let sub = fs::metadata(dir.join("sub")).unwrap();
        assert_eq!(sub.mode() & 0o7777, 0o750);
        if caller.uid() == 0 {
            assert_eq!((sub.uid(), sub.gid()), (1234, 1234));
        }
        let shadow = fs::metadata(dir.join("etc/shadow")).unwrap();
        assert_eq!(shadow.mode() & 0o7777, 0o600);
    }
}

#[test]
fn morph_outputs_are_0600() {
    let reg = registry::shared();
    let repo = "limits/modes";
    push(reg, repo, "t", &Image::oci(vec![base("modes")]));
    let out = Outputs::new();
    let r = reference(&reg.addr(), repo, "t");
    // An existing world-readable output is replaced, not reused.
    fs::write(out.initrd(), "old").unwrap();
    fs::set_permissions(
        out.initrd(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    assert_success(&morph(&reg.addr(), &r, &out, &[]), "morph");
    out.assert_exactly_outputs();
    for p in [out.kernel(), out.initrd(), out.cmdline()] {
        let mode = fs::metadata(&p).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
}
