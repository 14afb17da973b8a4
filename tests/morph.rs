//! `wyrcan morph` and `wyrcan unpack` against the real `docker-registry`:
//! every image is built here, pushed over HTTP, morphed by the real binary,
//! and its initrd compared with umoci's rootfs of the same image (minus the
//! kernel file). See `common/` for the harness.

mod common;

use std::fs;

use common::image::{
    noise, push, push_index, Compression, Entry, Format, Image, Index, Layer, DEFAULT_MTIME,
};
use common::oracle::{
    check_order, compare, cpio_list, extract_initrd, initrd_compression, snapshot, umoci_rootfs,
    FileKind, InitrdCompression,
};
use common::registry::{self, Registry};
use common::{
    assert_failure, assert_mentions, assert_success, check_initrd, check_squashfs_initrd, list_dir,
    morph, reference, wyrcan, Outputs,
};

// ---------------------------------------------------------------- fixtures

/// Fake kernel bytes, distinct per `tag`.
fn kernel(tag: &str) -> Vec<u8> {
    let mut v = format!("FAKE-KERNEL {tag}\n").into_bytes();
    v.extend(noise(1500, tag.len() as u64 + 7));
    v
}

/// The kernel path most fixtures use (target of `boot/wyrcan.kernel`).
const KPATH: &str = "boot/vmlinuz-6.1";

/// A bootable base layer: `/init`, `/boot/vmlinuz-6.1` and then (after its
/// target in the tar) `/boot/wyrcan.kernel -> vmlinuz-6.1`, a cmdline file.
fn base(kernel_tag: &str) -> Layer {
    Layer::new(vec![
        Entry::dir("boot"),
        Entry::file(KPATH, kernel(kernel_tag)).mtime(1_690_000_000),
        Entry::symlink("boot/wyrcan.kernel", "vmlinuz-6.1"),
        Entry::file("boot/wyrcan.cmdline", "console=ttyS0 quiet\n"),
        Entry::dir("etc"),
        Entry::file("etc/os-release", "ID=wyrcan-test\n"),
        Entry::dir("usr"),
        Entry::dir("usr/bin"),
        Entry::file("usr/bin/true", "#!/bin/sh\nexit 0\n").mode(0o755),
        Entry::file("init", "#!/bin/sh\nexec /usr/bin/true\n").mode(0o755),
    ])
}

/// Whiteouts, opaque directories, a deleted directory with children, a
/// deleted-then-recreated path, an empty layer (all under `wh/`).
fn whiteout_layers() -> Vec<Layer> {
    vec![
        Layer::new(vec![
            Entry::dir("wh"),
            Entry::file("wh/keep", "keep"),
            Entry::file("wh/remove-me", "bye"),
            Entry::file("wh/recreate", "old file"),
            Entry::dir("wh/tree"),
            Entry::dir("wh/tree/a"),
            Entry::dir("wh/tree/a/b"),
            Entry::file("wh/tree/a/b/deep", "deep"),
            Entry::file("wh/tree/top", "top"),
            Entry::symlink("wh/tree/link", "top"),
            Entry::dir("wh/opq"),
            Entry::file("wh/opq/old1", "old1"),
            Entry::dir("wh/opq/old-dir"),
            Entry::file("wh/opq/old-dir/old2", "old2"),
            Entry::dir("wh/opq-late"),
            Entry::file("wh/opq-late/old", "old"),
            Entry::dir("wh/sub"),
            Entry::file("wh/sub/.wh-not-a-whiteout", "looks like one, is not"),
        ]),
        Layer::new(vec![
            Entry::whiteout("wh/remove-me"),
            Entry::whiteout("wh/tree"),
            Entry::whiteout("wh/recreate"),
            Entry::whiteout("wh/never-existed"),
            // Opaque marker first, then new content.
            Entry::dir("wh/opq").mode(0o750),
            Entry::opaque("wh/opq"),
            Entry::file("wh/opq/new", "new"),
            // New content first, then the opaque marker: still only hides
            // lower layers.
            Entry::dir("wh/opq-late"),
            Entry::file("wh/opq-late/new", "new"),
            Entry::opaque("wh/opq-late"),
        ]),
        Layer::new(vec![]),
        Layer::new(vec![
            Entry::dir("wh/recreate"),
            Entry::file("wh/recreate/now-a-dir", "dir now"),
            Entry::dir("wh/tree"),
            Entry::file("wh/tree/fresh", "fresh"),
        ]),
    ]
}

/// Paths whose type changes between layers (under `tc/`).
fn type_change_layers() -> Vec<Layer> {
    vec![
        Layer::new(vec![
            Entry::dir("tc"),
            Entry::file("tc/file-to-dir", "file"),
            Entry::dir("tc/dir-to-symlink"),
            Entry::dir("tc/dir-to-symlink/sub"),
            Entry::file("tc/dir-to-symlink/sub/child", "child"),
            Entry::symlink("tc/symlink-to-file", "file-to-dir"),
            Entry::dir("tc/dir-to-file"),
            Entry::file("tc/dir-to-file/x", "x"),
            Entry::fifo("tc/fifo-to-dir"),
            Entry::file("tc/file-to-symlink", "f"),
            Entry::dir("tc/target"),
        ]),
        Layer::new(vec![
            Entry::dir("tc/file-to-dir"),
            Entry::file("tc/file-to-dir/inside", "inside"),
            Entry::symlink("tc/dir-to-symlink", "target"),
            Entry::file("tc/symlink-to-file", "now a file"),
            Entry::file("tc/dir-to-file", "now a file"),
            Entry::dir("tc/fifo-to-dir"),
            Entry::symlink("tc/file-to-symlink", "/etc/os-release"),
        ]),
    ]
}

/// Hardlinks within and across layers, a link whose target is replaced
/// later, links that outlive a deleted first name (under `hl/`). Link
/// headers carry their target's metadata, as docker and buildkit write them.
fn hardlink_layers() -> Vec<Layer> {
    vec![
        Layer::new(vec![
            Entry::dir("hl"),
            Entry::file("hl/busybox", noise(700, 1)).mode(0o4755),
            Entry::hardlink("hl/sh", "hl/busybox").mode(0o4755),
            Entry::hardlink("hl/ls", "hl/busybox").mode(0o4755),
            Entry::file("hl/orig", "original contents"),
            Entry::file("hl/first-name", "outlives its first name"),
            Entry::hardlink("hl/second-name", "hl/first-name"),
        ]),
        Layer::new(vec![
            Entry::dir("hl/more"),
            Entry::hardlink("hl/more/cat", "hl/busybox").mode(0o4755),
            Entry::hardlink("hl/link-to-orig", "hl/orig"),
        ]),
        Layer::new(vec![
            Entry::file("hl/orig", "replaced contents"),
            Entry::whiteout("hl/first-name"),
        ]),
    ]
}

/// Devices, fifos, special permission bits, numeric owners, long symlink
/// targets, odd mtimes (under `sp/`).
fn special_layers() -> Vec<Layer> {
    let long_target = format!("{}/end", "a-long-directory-name".repeat(8));
    let longer_target = format!("/{}", "x".repeat(300));
    vec![Layer::new(vec![
        Entry::dir("sp"),
        Entry::dir("sp/dev"),
        Entry::char_dev("sp/dev/null", 1, 3).mode(0o666),
        Entry::char_dev("sp/dev/tty", 5, 0).mode(0o666).owner(0, 5),
        Entry::char_dev("sp/dev/fuse", 10, 229),
        Entry::block_dev("sp/dev/nvme0n1p9", 259, 70_000).owner(0, 6),
        Entry::block_dev("sp/dev/sda", 8, 0),
        Entry::fifo("sp/fifo").mode(0o600).owner(1000, 1000),
        Entry::file("sp/setuid", "su").mode(0o4755),
        Entry::file("sp/setgid", "wall").mode(0o2755).owner(0, 5),
        Entry::file("sp/all-bits", "odd").mode(0o7777),
        Entry::file("sp/no-perms", "none").mode(0o000),
        Entry::file("sp/read-only", "ro")
            .mode(0o400)
            .owner(1000, 1000),
        Entry::dir("sp/sticky").mode(0o1777),
        Entry::dir("sp/setgid-dir").mode(0o2775).owner(0, 50),
        Entry::dir("sp/private").mode(0o700).owner(1000, 1000),
        Entry::file("sp/private/secret", "s")
            .mode(0o600)
            .owner(1000, 1000),
        Entry::file("sp/nobody", "n").owner(65534, 65534),
        Entry::file("sp/big-ids", "b").owner(200_000, 300_000),
        Entry::file("sp/empty", ""),
        Entry::file("sp/old", "old").mtime(1),
        Entry::file("sp/future", "future").mtime(4_000_000_000),
        Entry::symlink("sp/long-link", &long_target).owner(1000, 1000),
        Entry::symlink("sp/longer-link-pax", &longer_target).pax(),
        Entry::symlink("sp/dangling", "does/not/exist"),
    ])]
}

/// A layer written as Go's archive/tar does: mode fields with permission
/// bits only (the type is in the typeflag), under `go/`.
fn go_style_layers() -> Vec<Layer> {
    vec![Layer::new(vec![
        Entry::dir("go"),
        Entry::dir("go/dir").mode(0o750),
        Entry::file("go/dir/file", "go file"),
        Entry::file("go/exe", "go exe").mode(0o4711),
        Entry::symlink("go/link", "dir/file"),
        Entry::hardlink("go/hard", "go/dir/file"),
        Entry::char_dev("go/null", 1, 3),
        Entry::block_dev("go/loop0", 7, 0),
        Entry::fifo("go/pipe"),
        Entry::dir("go/sticky").mode(0o1777),
    ])
    .go_style()]
}

/// Long paths via GNU long names and via PAX, long link targets both ways,
/// long hardlink targets (under `ln/`).
fn long_name_layers() -> Vec<Layer> {
    let d1 = format!("ln/{}", "gnu-directory-component-".repeat(3));
    let d2 = format!("{d1}/{}", "second-level-directory-".repeat(3));
    let gnu_file = format!("{d2}/file-with-a-long-name-{}", "g".repeat(100));
    let p1 = format!("ln/{}", "pax-directory-component-".repeat(4));
    let p2 = format!("{p1}/{}", "second-pax-level-".repeat(4));
    let pax_file = format!("{p2}/pax-file-{}", "p".repeat(120));
    vec![
        Layer::new(vec![
            Entry::dir("ln"),
            Entry::dir(&d1),
            Entry::dir(&d2).owner(7, 7),
            Entry::file(&gnu_file, "gnu long name").mode(0o640),
            Entry::dir(&p1).pax(),
            Entry::dir(&p2).pax().mode(0o711),
            Entry::file(&pax_file, "pax long name").pax().owner(1, 2),
            Entry::symlink("ln/to-gnu", &gnu_file),
            Entry::symlink(&format!("{p2}/to-pax-long"), &pax_file).pax(),
            Entry::hardlink("ln/hard-to-gnu", &gnu_file).mode(0o640),
            Entry::hardlink(
                &format!("{d2}/hard-gnu-long-both-{}", "h".repeat(90)),
                &gnu_file,
            )
            .mode(0o640),
        ]),
        Layer::new(vec![
            Entry::hardlink("ln/hard-to-pax", &pax_file)
                .pax()
                .owner(1, 2),
            Entry::whiteout(&format!("{d2}/hard-gnu-long-both-{}", "h".repeat(90))),
        ]),
    ]
}

/// Every flattening case's layers, in order: whiteouts, type changes,
/// hard links, devices, Go-style headers, long names.
fn every_case() -> Vec<Vec<Layer>> {
    vec![
        whiteout_layers(),
        type_change_layers(),
        hardlink_layers(),
        special_layers(),
        go_style_layers(),
        long_name_layers(),
    ]
}

fn oci(mut layers: Vec<Layer>, extra: Vec<Vec<Layer>>) -> Image {
    for e in extra {
        layers.extend(e);
    }
    Image::oci(layers)
}

/// Pushes `image` as `repo:tag`, morphs it and runs the full oracle.
fn morph_and_check(reg: &Registry, repo: &str, image: &Image, kernel_path: &str, kbytes: &[u8]) {
    push(reg, repo, "t", image);
    let out = Outputs::new();
    let res = morph(&reg.addr(), &reference(&reg.addr(), repo, "t"), &out, &[]);
    assert_success(&res, repo);
    out.assert_exactly_outputs();
    check_initrd(image, &out, kernel_path, kbytes);
}

// ------------------------------------------------------- harness self-tests

#[test]
fn harness_umoci_sees_pushed_image() {
    let reg = registry::shared();
    let image = Image::oci(vec![
        Layer::new(vec![
            Entry::dir("etc"),
            Entry::file("etc/a", "a"),
            Entry::file("etc/gone", "x"),
            Entry::char_dev("null", 1, 3),
        ]),
        Layer::new(vec![
            Entry::whiteout("etc/gone"),
            Entry::hardlink("etc/b", "etc/a"),
        ]),
    ]);
    let digest = push(reg, "harness/self", "v1", &image);
    assert_eq!(digest, image.build().manifest.digest);
    // The registry serves it back (OCI manifests need the Accept header).
    let mut resp = reg
        .agent()
        .get(format!("{}/v2/harness/self/manifests/v1", reg.base_url()))
        .header("Accept", common::image::OCI_MANIFEST)
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.body_mut().read_to_vec().unwrap();
    assert_eq!(body, image.build().manifest.data);

    let snap = snapshot(umoci_rootfs(&image).path());
    assert_eq!(snap["etc/a"].sha256, snap["etc/b"].sha256);
    assert!(!snap.contains_key("etc/gone"));
    assert!(!snap.contains_key("etc/.wh.gone"));
    assert_eq!(snap["null"].rdev, Some((1, 3)));
    assert_eq!(snap["null"].kind, FileKind::Char);
    assert_eq!(snap["etc/b"].link_group.as_deref(), Some("etc/a"));
}

#[test]
fn harness_fixtures_unpack_in_umoci() {
    // Every fixture flattens in umoci as the tests assume.
    let image = oci(vec![base("h")], every_case());
    let s = snapshot(umoci_rootfs(&image).path());
    for gone in [
        "wh/remove-me",
        "wh/tree/a",
        "wh/tree/top",
        "wh/opq/old1",
        "wh/opq/old-dir",
        "wh/opq-late/old",
        "wh/.wh.never-existed",
        "hl/first-name",
    ] {
        assert!(!s.contains_key(gone), "{gone} should be gone");
    }
    for kept in [
        "wh/keep",
        "wh/opq/new",
        "wh/opq-late/new",
        "wh/recreate/now-a-dir",
        "wh/tree/fresh",
        "wh/sub/.wh-not-a-whiteout",
        "hl/second-name",
    ] {
        assert!(s.contains_key(kept), "{kept} should exist");
    }
    assert_eq!(s["tc/file-to-dir"].kind, FileKind::Dir);
    assert_eq!(s["tc/dir-to-symlink"].kind, FileKind::Symlink);
    assert_eq!(s["tc/dir-to-file"].kind, FileKind::File);
    assert_eq!(s["tc/fifo-to-dir"].kind, FileKind::Dir);
    assert!(!s.contains_key("tc/dir-to-symlink/sub"));
    assert_eq!(s["hl/sh"].link_group.as_deref(), Some("hl/busybox"));
    assert_eq!(s["hl/more/cat"].link_group.as_deref(), Some("hl/busybox"));
    assert_ne!(s["hl/orig"].sha256, s["hl/link-to-orig"].sha256);
    assert_eq!(s["sp/dev/nvme0n1p9"].rdev, Some((259, 70_000)));
    assert_eq!(s["sp/all-bits"].perm, 0o7777);
    assert_eq!(s["sp/sticky"].perm, 0o1777);
    assert_eq!(s["sp/big-ids"].uid, 200_000);
    assert_eq!(s["sp/longer-link-pax"].target.as_ref().unwrap().len(), 301);
    assert_eq!(s["go/null"].kind, FileKind::Char);
    assert_eq!(s["go/exe"].perm, 0o4711);
    assert_eq!(s["go/hard"].link_group.as_deref(), Some("go/dir/file"));
    assert!(s.keys().any(|k| k.len() > 200 && k.starts_with("ln/pax")));
    assert_eq!(s[KPATH].mtime, Some(1_690_000_000));
    assert_eq!(s["wh/keep"].mtime, Some(DEFAULT_MTIME as i64));
}

#[test]
fn harness_cpio_oracle_round_trip() {
    // GNU cpio's own newc archive of umoci's rootfs reads back equal, in
    // each compression: the oracle itself is sound.
    let image = oci(vec![base("rt")], vec![hardlink_layers(), special_layers()]);
    let rootfs = umoci_rootfs(&image);
    let cpio = std::process::Command::new("sh")
        .arg("-c")
        .arg("find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet")
        .current_dir(rootfs.path())
        .output()
        .unwrap();
    assert!(cpio.status.success());
    let dir = tempfile::tempdir().unwrap();
    let mut expected = snapshot(rootfs.path());
    common::oracle::forget_symlink_mtimes(&mut expected);
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let path = dir.path().join(format!("{c:?}"));
        fs::write(&path, common::image::compress(&cpio.stdout, c)).unwrap();
        let list = cpio_list(&path);
        check_order(&list).unwrap();
        let mut actual = snapshot(extract_initrd(&path).path());
        common::oracle::forget_symlink_mtimes(&mut actual);
        compare(&expected, &actual, &[]).unwrap();
        // ...and it does see differences.
        let mut broken = actual.clone();
        broken.remove("hl/busybox");
        let e = compare(&expected, &broken, &[]).unwrap_err();
        assert!(e.contains("missing \"hl/busybox\""), "{e}");
        assert!(e.contains("link_group"), "{e}");
        let mut broken = actual.clone();
        broken.get_mut("sp/setuid").unwrap().perm = 0o755;
        let e = compare(&expected, &broken, &[]).unwrap_err();
        assert!(
            e.starts_with("1 difference(s)")
                && e.contains("differs \"sp/setuid\": perm: expected 4755, got 0755"),
            "{e}"
        );
        compare(&expected, &broken, &["sp/setuid"]).unwrap();
    }
}

// ------------------------------------------------------ --root squashfs

/// A static executable to stand in for the stage 2 on a host test (the
/// real one is the static wyrcan of the boot environment).
const STAGE2: &str = "/bin/busybox";

/// What the stage 2 needs from `/lib/modules/6.1`: here all built in, so
/// no module file goes into the initrd.
fn builtin_modules_layer() -> Layer {
    Layer::new(vec![
        Entry::dir("lib"),
        Entry::dir("lib/modules"),
        Entry::dir("lib/modules/6.1"),
        Entry::file("lib/modules/6.1/modules.dep", ""),
        Entry::file(
            "lib/modules/6.1/modules.builtin",
            "kernel/drivers/block/loop.ko\nkernel/fs/squashfs/squashfs.ko\nkernel/fs/overlayfs/overlay.ko\n",
        ),
    ])
}

fn morph_squashfs(reg: &Registry, repo: &str, image: &Image) -> Outputs {
    push(reg, repo, "t", image);
    let out = Outputs::new();
    let res = morph(
        &reg.addr(),
        &reference(&reg.addr(), repo, "t"),
        &out,
        &["--root", "squashfs", "--stage2", STAGE2],
    );
    assert_success(&res, repo);
    out.assert_exactly_outputs();
    out
}

#[test]
fn squashfs_root_matches_the_oracle() {
    // Every flattening case at once: whiteouts, type changes, hard links,
    // devices, Go-style headers, long names.
    // Big files go through the compression pool: compressible, holed with
    // a zero block, and incompressible, each with a tail.
    let text: Vec<u8> = b"squashfs pool block\n"
        .iter()
        .copied()
        .cycle()
        .take(1_100_000)
        .collect();
    let mut holed = vec![0u8; 131_072];
    holed.extend(&text[..131_072 + 300]);
    let big = Layer::new(vec![
        Entry::dir("big"),
        Entry::file("big/text", text.clone()),
        Entry::file("big/holed", holed),
        Entry::file("big/noise", noise(700_001, 9)),
    ]);
    let image = oci(vec![base("sq"), builtin_modules_layer(), big], every_case());
    let out = morph_squashfs(registry::shared(), "morph/squashfs", &image);
    check_squashfs_initrd(&image, &out, KPATH, &kernel("sq"), STAGE2.as_ref(), &[]);
    let words = out.cmdline_words();
    assert!(
        !words.iter().any(|w| w.starts_with("rdinit=")),
        "the stage 2 is /init and starts the image's init itself: {words:?}"
    );
}

#[test]
fn squashfs_root_carries_the_images_modules_in_dependency_order() {
    // modules.dep says squashfs needs a (fake) decompressor module first;
    // the module bytes are read back out of the finished squashfs, one of
    // them big enough to span blocks and a fragment.
    let big = noise(300_000, 5);
    let image = Image::oci(vec![
        base("mods"),
        Layer::new(vec![
            Entry::dir("usr"),
            Entry::dir("usr/lib"),
            Entry::dir("usr/lib/modules"),
            Entry::dir("usr/lib/modules/6.1"),
            Entry::dir("usr/lib/modules/6.1/kernel"),
            Entry::file("usr/lib/modules/6.1/kernel/loop.ko", "LOOP"),
            Entry::file("usr/lib/modules/6.1/kernel/squashfs.ko", big.clone()),
            Entry::file("usr/lib/modules/6.1/kernel/zstd_dec.ko.xz", "ZSTD"),
            Entry::file("usr/lib/modules/6.1/kernel/overlay.ko", "OVERLAY"),
            Entry::file(
                "usr/lib/modules/6.1/modules.dep",
                "kernel/loop.ko:\nkernel/squashfs.ko: kernel/zstd_dec.ko.xz\nkernel/zstd_dec.ko.xz:\nkernel/overlay.ko:\n",
            ),
            // Merged /usr: /lib/modules is reached through a symlink.
            Entry::symlink("lib", "usr/lib"),
        ]),
    ]);
    let out = morph_squashfs(registry::shared(), "morph/squashfs-mods", &image);
    let modules = [
        "/wyrcan/modules/loop.ko",
        "/wyrcan/modules/zstd_dec.ko.xz",
        "/wyrcan/modules/squashfs.ko",
        "/wyrcan/modules/overlay.ko",
    ];
    check_squashfs_initrd(
        &image,
        &out,
        KPATH,
        &kernel("mods"),
        STAGE2.as_ref(),
        &modules,
    );
    let parts = common::oracle::squash_initrd(&out.initrd());
    assert!(parts.files["wyrcan/modules/squashfs.ko"] == big);
    assert_eq!(parts.files["wyrcan/modules/overlay.ko"], b"OVERLAY");
}

#[test]
fn squashfs_root_without_modules_or_a_static_stage2_is_refused_clearly() {
    let reg = registry::shared();
    let image = Image::oci(vec![base("nomods")]);
    push(reg, "morph/squashfs-nomods", "t", &image);
    let r = reference(&reg.addr(), "morph/squashfs-nomods", "t");
    let out = Outputs::new();
    let res = morph(
        &reg.addr(),
        &r,
        &out,
        &["--root", "squashfs", "--stage2", STAGE2],
    );
    let err = assert_failure(&res, "no modules");
    assert_mentions(&err, "modules.dep", "no modules");
    assert_mentions(&err, "wyrcan.root=cpio", "no modules");
    out.assert_nothing_left();
    // A dynamically linked stage 2 would find no C library at boot.
    let res = morph(
        &reg.addr(),
        &r,
        &out,
        &["--root", "squashfs", "--stage2", "/bin/ls"],
    );
    let err = assert_failure(&res, "dynamic stage 2");
    assert_mentions(&err, "dynamically linked", "dynamic stage 2");
    out.assert_nothing_left();
    let res = morph(&reg.addr(), &r, &out, &["--root", "auto"]);
    let err = assert_failure(&res, "auto on morph");
    assert_mentions(&err, "kexec", "auto on morph");
}

// ------------------------------------------------------ flattening + oracle

#[test]
fn multi_layer_kitchen_sink() {
    let image = oci(vec![base("ks")], every_case());
    morph_and_check(
        registry::shared(),
        "morph/kitchen-sink",
        &image,
        KPATH,
        &kernel("ks"),
    );
}

#[test]
fn whiteouts_opaque_dirs_and_deleted_trees() {
    let image = oci(vec![base("wh")], vec![whiteout_layers()]);
    morph_and_check(
        registry::shared(),
        "morph/whiteouts",
        &image,
        KPATH,
        &kernel("wh"),
    );
}

#[test]
fn type_changes_between_layers() {
    let image = oci(vec![base("tc")], vec![type_change_layers()]);
    morph_and_check(
        registry::shared(),
        "morph/type-changes",
        &image,
        KPATH,
        &kernel("tc"),
    );
}

#[test]
fn hardlinks_within_and_across_layers() {
    let image = oci(vec![base("hl")], vec![hardlink_layers()]);
    morph_and_check(
        registry::shared(),
        "morph/hardlinks",
        &image,
        KPATH,
        &kernel("hl"),
    );
}

#[test]
fn hardlink_header_metadata_is_ignored() {
    // A hard link is link(2): the inode keeps its target's mode, owner and
    // mtime whatever the link's own header says (tar, umoci, docker).
    let image = Image::oci(vec![
        base("hlmeta"),
        Layer::new(vec![
            Entry::dir("hm"),
            Entry::file("hm/target", "t")
                .mode(0o755)
                .owner(10, 20)
                .mtime(1_600_000_000),
            Entry::hardlink("hm/same-layer", "hm/target")
                .mode(0o4777)
                .owner(0, 0),
        ]),
        Layer::new(vec![Entry::hardlink("hm/next-layer", "hm/target")
            .mode(0o600)
            .owner(30, 40)
            .mtime(1_000)]),
    ]);
    morph_and_check(
        registry::shared(),
        "morph/hardlink-meta",
        &image,
        KPATH,
        &kernel("hlmeta"),
    );
}

#[test]
fn devices_fifos_modes_owners_long_symlinks() {
    let image = oci(vec![base("sp")], vec![special_layers()]);
    morph_and_check(
        registry::shared(),
        "morph/special",
        &image,
        KPATH,
        &kernel("sp"),
    );
}

#[test]
fn go_style_headers_without_type_bits() {
    // The base layer is Go-style too: the kernel and its symlink included.
    let image = oci(vec![base("go").go_style()], vec![go_style_layers()]);
    morph_and_check(
        registry::shared(),
        "morph/go-style",
        &image,
        KPATH,
        &kernel("go"),
    );
}

#[test]
fn gnu_and_pax_long_names() {
    let image = oci(vec![base("ln")], vec![long_name_layers()]);
    morph_and_check(
        registry::shared(),
        "morph/long-names",
        &image,
        KPATH,
        &kernel("ln"),
    );
}

#[test]
fn implicit_parent_directories() {
    // Layers need not list parent directories; the initrd must (the kernel
    // creates nothing in a directory that does not exist yet).
    let image = Image::oci(vec![
        base("ip"),
        Layer::new(vec![
            Entry::file("ip/a/b/c/file", "deep"),
            Entry::symlink("ip/x/y/link", "../../a"),
        ]),
    ]);
    morph_and_check(
        registry::shared(),
        "morph/implicit-parents",
        &image,
        KPATH,
        &kernel("ip"),
    );
}

#[test]
fn kernel_symlink_before_its_target() {
    let image = Image::oci(vec![Layer::new(vec![
        Entry::dir("boot"),
        Entry::symlink("boot/wyrcan.kernel", "vmlinuz-6.1"),
        Entry::file("init", "init").mode(0o755),
        Entry::file(KPATH, kernel("before")),
    ])]);
    morph_and_check(
        registry::shared(),
        "morph/kernel-link-first",
        &image,
        KPATH,
        &kernel("before"),
    );
}

#[test]
fn kernel_replaced_and_linked_in_upper_layers() {
    // Old kernel in layer 1, replaced in layer 2, symlink only in layer 3.
    let image = Image::oci(vec![
        Layer::new(vec![
            Entry::dir("boot"),
            Entry::file(KPATH, kernel("old")),
            Entry::file("init", "init").mode(0o755),
        ]),
        Layer::new(vec![Entry::file(KPATH, kernel("new"))]),
        Layer::new(vec![Entry::symlink("boot/wyrcan.kernel", "vmlinuz-6.1")]),
    ]);
    morph_and_check(
        registry::shared(),
        "morph/kernel-upper",
        &image,
        KPATH,
        &kernel("new"),
    );
}

#[test]
fn kernel_as_regular_wyrcan_kernel_file() {
    let image = Image::oci(vec![Layer::new(vec![
        Entry::dir("boot"),
        Entry::file("boot/wyrcan.kernel", kernel("regular")),
        Entry::file("boot/vmlinuz-other", "not the kernel"),
        Entry::file("init", "init").mode(0o755),
    ])]);
    morph_and_check(
        registry::shared(),
        "morph/kernel-regular",
        &image,
        "boot/wyrcan.kernel",
        &kernel("regular"),
    );
}

// ------------------------------------------------- layer and manifest kinds

#[test]
fn zstd_layers() {
    let mut layers = vec![base("zstd").compression(Compression::Zstd)];
    layers.extend(
        whiteout_layers()
            .into_iter()
            .map(|l| l.compression(Compression::Zstd)),
    );
    layers.push(
        Layer::new(vec![Entry::file("etc/zstd", noise(3000, 3))]).compression(Compression::Zstd),
    );
    let image = Image::oci(layers);
    morph_and_check(
        registry::shared(),
        "morph/zstd",
        &image,
        KPATH,
        &kernel("zstd"),
    );
}

#[test]
fn uncompressed_layers() {
    let mut layers = vec![base("plain").compression(Compression::None)];
    layers.extend(
        hardlink_layers()
            .into_iter()
            .map(|l| l.compression(Compression::None)),
    );
    morph_and_check(
        registry::shared(),
        "morph/uncompressed",
        &Image::oci(layers),
        KPATH,
        &kernel("plain"),
    );
}

#[test]
fn mixed_compressions_in_one_image() {
    let image = Image::oci(vec![
        base("mixed"),
        Layer::new(vec![Entry::file("etc/z", "zstd")]).compression(Compression::Zstd),
        Layer::new(vec![Entry::file("etc/n", "none")]).compression(Compression::None),
        Layer::new(vec![Entry::whiteout("etc/z")]).compression(Compression::Gzip),
    ]);
    morph_and_check(
        registry::shared(),
        "morph/mixed",
        &image,
        KPATH,
        &kernel("mixed"),
    );
}

/// Files bigger than a frame (streamed through zstd's multithreaded
/// encoder or one gzip member while their thread holds the output), a
/// hardlink pair among them, and thousands of small files cut into many
/// frames that the compressor threads append in any order: the same tree
/// with each compression.
#[test]
fn big_files_and_many_frames_in_every_compression() {
    let mut files = vec![
        Entry::dir("big"),
        Entry::file("big/noise", noise(20 << 20, 21)),
        Entry::file("big/text", "wyrcan frames\n".repeat(800_000)),
        Entry::hardlink("big/text-link", "big/text"),
        Entry::dir("small"),
    ];
    for i in 0..3000 {
        files.push(Entry::file(
            &format!("small/f{i}"),
            noise(1500 + i % 700, i as u64),
        ));
    }
    let image = Image::oci(vec![
        base("frames"),
        Layer::new(files),
        Layer::new(vec![Entry::whiteout("small/f7")]),
    ]);
    let reg = registry::shared();
    push(reg, "morph/frames", "t", &image);
    for comp in ["zstd", "gzip", "none"] {
        let out = Outputs::new();
        let res = morph(
            &reg.addr(),
            &reference(&reg.addr(), "morph/frames", "t"),
            &out,
            &["--compression", comp],
        );
        assert_success(&res, comp);
        out.assert_exactly_outputs();
        check_initrd(&image, &out, KPATH, &kernel("frames"));
    }
}

#[test]
fn docker_v2_manifest() {
    let mut layers = vec![base("docker")];
    layers.extend(whiteout_layers());
    layers.push(Layer::new(vec![Entry::file("etc/plain", "p")]).compression(Compression::None));
    let image = Image::docker(layers);
    assert_eq!(image.format, Format::Docker);
    morph_and_check(
        registry::shared(),
        "morph/docker-v2",
        &image,
        KPATH,
        &kernel("docker"),
    );
}

#[test]
fn oci_manifest() {
    let image = Image::oci(vec![
        base("oci"),
        Layer::new(vec![Entry::file("etc/oci", "o")]),
    ]);
    morph_and_check(
        registry::shared(),
        "morph/oci",
        &image,
        KPATH,
        &kernel("oci"),
    );
}

// ------------------------------------------------------------ multi-arch

fn arch_image(arch: &str, variant: Option<&str>) -> Image {
    Image::oci(vec![
        base(arch),
        Layer::new(vec![
            Entry::file("etc/arch", arch),
            Entry::dir(&format!("only-{arch}")),
        ]),
    ])
    .platform("linux", arch, variant)
}

fn push_multi_arch(reg: &Registry, repo: &str, format: Format) -> (Image, Image) {
    let mut amd = arch_image("amd64", None);
    let mut arm = arch_image("arm64", Some("v8"));
    amd.format = format;
    arm.format = format;
    push_index(
        reg,
        repo,
        "t",
        &Index {
            images: vec![amd.clone(), arm.clone()],
            format,
        },
    );
    (amd, arm)
}

#[test]
fn multi_arch_index_picks_host_platform_by_default() {
    // amd64 and arm64, plus the host's own platform on any other host: the
    // default pick is checked on every host.
    let host = wyrcan_core::manifest::Platform::current();
    let reg = registry::shared();
    let mut images = vec![arch_image("amd64", None), arch_image("arm64", Some("v8"))];
    if !images.iter().any(|i| i.arch == host.architecture) {
        images.push(arch_image(&host.architecture, host.variant.as_deref()));
    }
    push_index(
        reg,
        "morph/multi-default",
        "t",
        &Index {
            images: images.clone(),
            format: Format::Oci,
        },
    );
    let out = Outputs::new();
    let res = morph(
        &reg.addr(),
        &reference(&reg.addr(), "morph/multi-default", "t"),
        &out,
        &[],
    );
    assert_success(&res, "multi-arch default");
    let image = images.iter().find(|i| i.arch == host.architecture).unwrap();
    check_initrd(image, &out, KPATH, &kernel(&host.architecture));
}

#[test]
fn multi_arch_index_platform_arm64() {
    let reg = registry::shared();
    let (_, arm) = push_multi_arch(reg, "morph/multi-arm64", Format::Oci);
    for platform in ["linux/arm64", "linux/arm64/v8"] {
        let out = Outputs::new();
        let r = reference(&reg.addr(), "morph/multi-arm64", "t");
        let res = morph(&reg.addr(), &r, &out, &["--platform", platform]);
        assert_success(&res, platform);
        check_initrd(&arm, &out, KPATH, &kernel("arm64"));
    }
}

#[test]
fn multi_arch_index_platform_amd64() {
    let reg = registry::shared();
    let (amd, _) = push_multi_arch(reg, "morph/multi-amd64", Format::Oci);
    let out = Outputs::new();
    let r = reference(&reg.addr(), "morph/multi-amd64", "t");
    let res = morph(&reg.addr(), &r, &out, &["--platform", "linux/amd64"]);
    assert_success(&res, "linux/amd64");
    check_initrd(&amd, &out, KPATH, &kernel("amd64"));
}

#[test]
fn docker_manifest_list_platform_arm64() {
    let reg = registry::shared();
    let (amd, arm) = push_multi_arch(reg, "morph/list-arm64", Format::Docker);
    let r = reference(&reg.addr(), "morph/list-arm64", "t");
    let out = Outputs::new();
    let res = morph(&reg.addr(), &r, &out, &["--platform", "linux/arm64"]);
    assert_success(&res, "docker list linux/arm64");
    check_initrd(&arm, &out, KPATH, &kernel("arm64"));
    let out = Outputs::new();
    let res = morph(&reg.addr(), &r, &out, &["--platform", "linux/amd64"]);
    assert_success(&res, "docker list linux/amd64");
    check_initrd(&amd, &out, KPATH, &kernel("amd64"));
}

#[test]
fn multi_arch_unknown_platform_lists_platforms() {
    let reg = registry::shared();
    push_multi_arch(reg, "morph/multi-unknown", Format::Oci);
    let out = Outputs::new();
    let r = reference(&reg.addr(), "morph/multi-unknown", "t");
    let res = morph(&reg.addr(), &r, &out, &["--platform", "linux/riscv64"]);
    let err = assert_failure(&res, "unknown platform");
    assert_mentions(&err, "linux/amd64", "platform error");
    assert_mentions(&err, "linux/arm64", "platform error");
    out.assert_nothing_left();
}

// ------------------------------------------------------- kernel discovery

/// Directory entries for every ancestor of `path` not in `have`.
fn parents(path: &str, have: &mut Vec<String>) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut prefix = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        prefix = if prefix.is_empty() {
            part.to_string()
        } else {
            format!("{prefix}/{part}")
        };
        if !have.contains(&prefix) {
            have.push(prefix.clone());
            out.push(Entry::dir(&prefix));
        }
    }
    out
}

fn fallback_image(kernel_path: &str, extra: Vec<Entry>) -> Image {
    let mut have = vec!["boot".to_string()];
    let mut entries = vec![
        Entry::file("init", "init").mode(0o755),
        Entry::dir("boot"),
        Entry::file("boot/config-6.1", "CONFIG_X=y"),
    ];
    entries.extend(parents(kernel_path, &mut have));
    entries.push(Entry::file(kernel_path, kernel(kernel_path)));
    for e in extra {
        if e.kind == common::image::Kind::Dir || e.path.contains('/') {
            entries.extend(parents(&e.path, &mut have));
        }
        entries.push(e);
    }
    Image::oci(vec![Layer::new(entries)])
}

#[test]
fn kernel_fallback_boot_vmlinuz() {
    // /boot/vmlinuz wins over a versioned one.
    let image = fallback_image(
        "boot/vmlinuz",
        vec![Entry::file("boot/vmlinuz-6.1.0-9-amd64", "other")],
    );
    let k = kernel("boot/vmlinuz");
    morph_and_check(
        registry::shared(),
        "morph/fallback-vmlinuz",
        &image,
        "boot/vmlinuz",
        &k,
    );
}

#[test]
fn kernel_fallback_single_versioned_vmlinuz() {
    let p = "boot/vmlinuz-6.1.0-9-amd64";
    let image = fallback_image(p, vec![Entry::symlink("vmlinuz", p)]);
    morph_and_check(
        registry::shared(),
        "morph/fallback-versioned",
        &image,
        p,
        &kernel(p),
    );
}

#[test]
fn kernel_fallback_usr_lib_modules() {
    let p = "usr/lib/modules/6.5.6-300.fc39.x86_64/vmlinuz";
    let image = fallback_image(
        p,
        vec![Entry::file(
            "usr/lib/modules/6.5.6-300.fc39.x86_64/modules.dep",
            "",
        )],
    );
    morph_and_check(
        registry::shared(),
        "morph/fallback-usr-lib",
        &image,
        p,
        &kernel(p),
    );
}

#[test]
fn kernel_fallback_lib_modules() {
    let p = "lib/modules/6.6.1-arch1-1/vmlinuz";
    let image = fallback_image(p, vec![]);
    morph_and_check(
        registry::shared(),
        "morph/fallback-lib",
        &image,
        p,
        &kernel(p),
    );
}

#[test]
fn kernel_fallback_usrmerge_lib_symlink_is_one_kernel() {
    // Fedora/Arch: /lib -> usr/lib, so /lib/modules/*/vmlinuz and
    // /usr/lib/modules/*/vmlinuz are the same file, not two candidates.
    let p = "usr/lib/modules/6.5.6-300.fc39.x86_64/vmlinuz";
    let image = fallback_image(p, vec![Entry::symlink("lib", "usr/lib")]);
    morph_and_check(
        registry::shared(),
        "morph/fallback-usrmerge",
        &image,
        p,
        &kernel(p),
    );
}

#[test]
fn no_kernel_is_a_clear_error_and_leaves_nothing() {
    let reg = registry::shared();
    let image = Image::oci(vec![Layer::new(vec![
        Entry::file("init", "init").mode(0o755),
        Entry::dir("boot"),
        Entry::file("boot/config-6.1", "CONFIG_X=y"),
    ])]);
    push(reg, "morph/no-kernel", "t", &image);
    let out = Outputs::new();
    let r = reference(&reg.addr(), "morph/no-kernel", "t");
    let err = assert_failure(&morph(&reg.addr(), &r, &out, &[]), "no kernel");
    assert_mentions(
        &err,
        "wyrcan.kernel",
        "no-kernel error explains the convention",
    );
    assert_mentions(&err, "morph/no-kernel", "no-kernel error names the image");
    out.assert_nothing_left();
}

#[test]
fn two_kernels_without_wyrcan_kernel_lists_both() {
    let reg = registry::shared();
    let image = Image::oci(vec![Layer::new(vec![
        Entry::file("init", "init").mode(0o755),
        Entry::dir("boot"),
        Entry::file("boot/vmlinuz-6.1.0-9-amd64", "k1"),
        Entry::file("boot/vmlinuz-6.1.0-10-amd64", "k2"),
    ])]);
    push(reg, "morph/two-kernels", "t", &image);
    let out = Outputs::new();
    let r = reference(&reg.addr(), "morph/two-kernels", "t");
    let err = assert_failure(&morph(&reg.addr(), &r, &out, &[]), "two kernels");
    assert_mentions(&err, "vmlinuz-6.1.0-9-amd64", "ambiguous kernel error");
    assert_mentions(&err, "vmlinuz-6.1.0-10-amd64", "ambiguous kernel error");
    assert_mentions(
        &err,
        "wyrcan.kernel",
        "ambiguous kernel error says how to choose",
    );
    out.assert_nothing_left();
}

#[test]
fn kernel_symlink_never_reads_outside_the_image() {
    // A kernel symlink climbing out of the image must not reach the host.
    let reg = registry::shared();
    let image = Image::oci(vec![Layer::new(vec![
        Entry::file("init", "init").mode(0o755),
        Entry::dir("boot"),
        Entry::symlink(
            "boot/wyrcan.kernel",
            "../../../../../../../../etc/os-release",
        ),
        Entry::dir("etc"),
        Entry::file("etc/os-release", "IMAGE-OS-RELEASE\n"),
    ])]);
    push(reg, "morph/kernel-escape", "t", &image);
    let out = Outputs::new();
    let r = reference(&reg.addr(), "morph/kernel-escape", "t");
    let res = morph(&reg.addr(), &r, &out, &[]);
    if res.status.success() {
        assert_eq!(fs::read(out.kernel()).unwrap(), b"IMAGE-OS-RELEASE\n");
    } else {
        out.assert_nothing_left();
    }
}

// ------------------------------------------------------------ references

#[test]
fn pinned_digest_pull() {
    let reg = registry::shared();
    let image = Image::oci(vec![base("pinned")]);
    let digest = push(reg, "morph/pinned", "t", &image);
    for r in [
        format!("{}/morph/pinned@{digest}", reg.addr()),
        format!("{}/morph/pinned:t@{digest}", reg.addr()),
    ] {
        let out = Outputs::new();
        assert_success(&morph(&reg.addr(), &r, &out, &[]), &r);
        check_initrd(&image, &out, KPATH, &kernel("pinned"));
    }
}

#[test]
fn pinned_digest_wins_over_tag() {
    let reg = registry::shared();
    let a = Image::oci(vec![base("pin-a")]);
    let b = Image::oci(vec![base("pin-b")]);
    let da = push(reg, "morph/pin-tag", "a", &a);
    push(reg, "morph/pin-tag", "b", &b);
    let out = Outputs::new();
    let r = format!("{}/morph/pin-tag:b@{da}", reg.addr());
    assert_success(&morph(&reg.addr(), &r, &out, &[]), &r);
    check_initrd(&a, &out, KPATH, &kernel("pin-a"));
}

#[test]
fn localhost_reference() {
    let reg = registry::shared();
    let image = Image::oci(vec![base("localhost")]);
    push(reg, "morph/localhost", "t", &image);
    let host = reg.addr().replace("127.0.0.1", "localhost");
    let out = Outputs::new();
    let r = reference(&host, "morph/localhost", "t");
    assert_success(&morph(&host, &r, &out, &[]), &r);
    check_initrd(&image, &out, KPATH, &kernel("localhost"));
}

#[test]
fn wrong_pinned_digest_fails() {
    let reg = registry::shared();
    push(
        reg,
        "morph/pin-wrong",
        "t",
        &Image::oci(vec![base("pin-wrong")]),
    );
    let wrong = wyrcan_core::digest::Digest::of(b"not this manifest");
    let out = Outputs::new();
    let r = format!("{}/morph/pin-wrong:t@{wrong}", reg.addr());
    let err = assert_failure(&morph(&reg.addr(), &r, &out, &[]), "wrong digest");
    assert_mentions(
        &err,
        &wrong.hex()[..12],
        "wrong-digest error names the digest",
    );
    out.assert_nothing_left();
}

// ---------------------------------------------------------------- cmdline

fn cmdline_case(repo: &str, entries: Vec<Entry>) -> Vec<String> {
    let reg = registry::shared();
    let mut all = vec![
        Entry::dir("boot"),
        Entry::file(KPATH, kernel(repo)),
        Entry::symlink("boot/wyrcan.kernel", "vmlinuz-6.1"),
    ];
    all.extend(entries);
    let image = Image::oci(vec![Layer::new(all)]);
    push(reg, repo, "t", &image);
    let out = Outputs::new();
    let res = morph(&reg.addr(), &reference(&reg.addr(), repo, "t"), &out, &[]);
    assert_success(&res, repo);
    check_initrd(&image, &out, KPATH, &kernel(repo));
    out.cmdline_words()
}

#[test]
fn cmdline_from_image_with_init() {
    let words = cmdline_case(
        "morph/cmdline-init",
        vec![
            Entry::file(
                "boot/wyrcan.cmdline",
                "console=ttyS0  quiet log_buf_len=1M\n",
            ),
            Entry::dir("lib"),
            Entry::dir("lib/systemd"),
            Entry::file("lib/systemd/systemd", "systemd").mode(0o755),
            Entry::symlink("init", "lib/systemd/systemd"),
        ],
    );
    assert_eq!(words, ["console=ttyS0", "quiet", "log_buf_len=1M"]);
}

#[test]
fn cmdline_adds_rdinit_without_init() {
    let words = cmdline_case(
        "morph/cmdline-rdinit",
        vec![
            Entry::file("boot/wyrcan.cmdline", "console=ttyS0 quiet"),
            Entry::dir("lib"),
            Entry::dir("lib/systemd"),
            Entry::file("lib/systemd/systemd", "systemd").mode(0o755),
            Entry::dir("sbin"),
            Entry::symlink("sbin/init", "../lib/systemd/systemd"),
        ],
    );
    assert_eq!(
        words.iter().filter(|w| *w == "rdinit=/sbin/init").count(),
        1,
        "cmdline {words:?}"
    );
    let image_words: Vec<_> = words.iter().filter(|w| *w != "rdinit=/sbin/init").collect();
    assert_eq!(image_words, ["console=ttyS0", "quiet"], "cmdline {words:?}");
}

#[test]
fn cmdline_empty_without_cmdline_file() {
    let words = cmdline_case(
        "morph/cmdline-none",
        vec![Entry::file("init", "init").mode(0o755)],
    );
    assert!(words.is_empty(), "cmdline {words:?}");
}

#[test]
fn cmdline_rdinit_only_without_cmdline_file() {
    let words = cmdline_case(
        "morph/cmdline-only-rdinit",
        vec![
            Entry::dir("sbin"),
            Entry::file("sbin/init", "init").mode(0o755),
        ],
    );
    assert_eq!(words, ["rdinit=/sbin/init"]);
}

// ------------------------------------------------------------ compression

fn compression_case(flag: &str, want: InitrdCompression) {
    let reg = registry::shared();
    let repo = format!("morph/compression-{flag}");
    let image = oci(vec![base(flag)], vec![hardlink_layers(), special_layers()]);
    push(reg, &repo, "t", &image);
    let out = Outputs::new();
    let r = reference(&reg.addr(), &repo, "t");
    assert_success(
        &morph(&reg.addr(), &r, &out, &["--compression", flag]),
        flag,
    );
    let data = fs::read(out.initrd()).unwrap();
    assert_eq!(initrd_compression(&data), want, "--compression {flag}");
    check_initrd(&image, &out, KPATH, &kernel(flag));
}

#[test]
fn compression_zstd() {
    compression_case("zstd", InitrdCompression::Zstd);
}

#[test]
fn compression_gzip() {
    compression_case("gzip", InitrdCompression::Gzip);
}

#[test]
fn compression_none() {
    compression_case("none", InitrdCompression::None);
}

#[test]
fn no_cmdline_flag_writes_kernel_and_initrd_only() {
    let reg = registry::shared();
    let image = Image::oci(vec![base("nocmd")]);
    push(reg, "morph/no-cmdline", "t", &image);
    let out = Outputs::new();
    let args = [
        "morph".to_string(),
        reference(&reg.addr(), "morph/no-cmdline", "t"),
        "--kernel".into(),
        out.kernel().display().to_string(),
        "--initrd".into(),
        out.initrd().display().to_string(),
        "--insecure".into(),
        reg.addr(),
    ];
    assert_success(&wyrcan(&args), "morph without --cmdline");
    assert_eq!(list_dir(out.dir()), ["initrd", "kernel"]);
    check_initrd(&image, &out, KPATH, &kernel("nocmd"));
}

#[test]
fn quiet_prints_nothing() {
    let reg = registry::shared();
    let image = Image::oci(vec![base("quiet")]);
    push(reg, "morph/quiet", "t", &image);
    let out = Outputs::new();
    let r = reference(&reg.addr(), "morph/quiet", "t");
    let res = morph(&reg.addr(), &r, &out, &["-q"]);
    assert_success(&res, "-q");
    assert!(
        res.stdout.is_empty(),
        "stdout with -q: {:?}",
        String::from_utf8_lossy(&res.stdout)
    );
    assert!(
        res.stderr.is_empty(),
        "stderr with -q: {:?}",
        common::stderr(&res)
    );
}

// ------------------------------------------------------------------ unpack

fn unpack(reg: &Registry, repo: &str, dir: &std::path::Path) -> std::process::Output {
    let args = [
        "unpack".to_string(),
        reference(&reg.addr(), repo, "t"),
        dir.display().to_string(),
        "--insecure".into(),
        reg.addr(),
    ];
    wyrcan(&args)
}

#[test]
fn unpack_equals_umoci_rootfs() {
    let reg = registry::shared();
    let image = oci(vec![base("unpack")], every_case());
    push(reg, "morph/unpack", "t", &image);
    let dir = tempfile::tempdir().unwrap();
    assert_success(&unpack(reg, "morph/unpack", dir.path()), "unpack");
    let expected = snapshot(umoci_rootfs(&image).path());
    let actual = snapshot(dir.path());
    // The whole tree, kernel included, symlink mtimes included.
    if let Err(e) = compare(&expected, &actual, &[]) {
        panic!("unpacked tree differs from umoci's rootfs:\n{e}");
    }
}

#[test]
fn unpack_refuses_non_empty_dir() {
    let reg = registry::shared();
    push(
        reg,
        "morph/unpack-busy",
        "t",
        &Image::oci(vec![base("busy")]),
    );
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("precious"), "keep me").unwrap();
    let err = assert_failure(
        &unpack(reg, "morph/unpack-busy", dir.path()),
        "non-empty dir",
    );
    assert_mentions(
        &err,
        &dir.path().display().to_string(),
        "non-empty dir error names it",
    );
    assert_eq!(list_dir(dir.path()), ["precious"]);
    assert_eq!(
        fs::read_to_string(dir.path().join("precious")).unwrap(),
        "keep me"
    );
}

/// A fresh `outer/{root,outside}` with `outside/secret`; `root` is the unpack dir.
struct Hostile {
    outer: tempfile::TempDir,
}

impl Hostile {
    fn new() -> Hostile {
        let outer = tempfile::tempdir().unwrap();
        fs::create_dir(outer.path().join("root")).unwrap();
        fs::create_dir(outer.path().join("outside")).unwrap();
        fs::write(outer.path().join("outside/secret"), "host secret").unwrap();
        let h = Hostile { outer };
        assert!(h.abs().len() < 80, "temp path too long for raw tar names");
        h
    }

    fn root(&self) -> std::path::PathBuf {
        self.outer.path().join("root")
    }

    /// The absolute path of `outside`.
    fn abs(&self) -> String {
        self.outer.path().join("outside").display().to_string()
    }

    /// Nothing was written, linked or changed outside `root`.
    fn assert_untouched(&self) {
        let outside = self.outer.path().join("outside");
        assert_eq!(list_dir(self.outer.path()), ["outside", "root"]);
        assert_eq!(
            list_dir(&outside),
            ["secret"],
            "files written outside the unpack dir"
        );
        assert_eq!(
            fs::read_to_string(outside.join("secret")).unwrap(),
            "host secret"
        );
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(
            fs::metadata(outside.join("secret")).unwrap().nlink(),
            1,
            "a host file got hardlinked into the unpacked tree"
        );
    }
}

#[test]
fn unpack_never_writes_through_symlinks_or_dotdot() {
    let reg = registry::shared();
    let h = Hostile::new();
    let abs = h.abs();
    let image = Image::oci(vec![
        Layer::new(vec![
            Entry::file("init", "init").mode(0o755),
            Entry::symlink("abs-link", &abs),
            Entry::symlink("rel-link", "../outside"),
            Entry::file("../outside/dotdot", "x").raw(),
            Entry::file("a/../../outside/dotdot2", "x").raw(),
            Entry::file(&format!("{abs}/absolute"), "x").raw(),
            Entry::symlink(&format!("{abs}/abs-symlink"), "x").raw(),
        ]),
        Layer::new(vec![
            Entry::file("abs-link/through-abs", "x"),
            Entry::file("rel-link/through-rel", "x"),
            Entry::file("abs-link/secret", "overwritten"),
            Entry::dir("rel-link/new-dir"),
        ]),
    ]);
    push(reg, "morph/unpack-hostile", "t", &image);
    let _ = unpack(reg, "morph/unpack-hostile", &h.root());
    h.assert_untouched();
}

#[test]
fn unpack_never_hardlinks_host_files() {
    let reg = registry::shared();
    let h = Hostile::new();
    let abs = h.abs();
    for (i, link) in [format!("{abs}/secret"), "../outside/secret".to_string()]
        .iter()
        .enumerate()
    {
        let image = Image::oci(vec![Layer::new(vec![
            Entry::file("init", "init").mode(0o755),
            Entry::hardlink("hard", link).raw(),
        ])]);
        let repo = format!("morph/unpack-hostile-link{i}");
        push(reg, &repo, "t", &image);
        let _ = unpack(reg, &repo, &h.root());
        h.assert_untouched();
        for e in list_dir(&h.root()) {
            let p = h.root().join(e);
            if p.is_dir() {
                fs::remove_dir_all(p).unwrap();
            } else {
                fs::remove_file(p).unwrap();
            }
        }
    }
}

#[test]
fn morph_hostile_names_stay_inside() {
    let reg = registry::shared();
    let image = Image::oci(vec![
        base("hostile"),
        Layer::new(vec![
            Entry::file("../escape", "x").raw(),
            Entry::file("/absolute", "x").raw(),
            Entry::file("a/../../escape2", "x").raw(),
            Entry::symlink("up", "../../../../tmp"),
        ]),
        Layer::new(vec![Entry::file("up/through", "x")]),
    ]);
    push(reg, "morph/hostile", "t", &image);
    let out = Outputs::new();
    let r = reference(&reg.addr(), "morph/hostile", "t");
    let res = morph(&reg.addr(), &r, &out, &[]);
    if res.status.success() {
        // check_order rejects absolute names and `..` components.
        if let Err(e) = check_order(&cpio_list(&out.initrd())) {
            panic!("hostile names reached the initrd:\n{e}");
        }
    } else {
        out.assert_nothing_left();
    }
}

#[test]
fn morph_hostile_hardlink_targets_stay_inside() {
    let reg = registry::shared();
    let image = Image::oci(vec![
        base("hostile-link"),
        Layer::new(vec![
            Entry::dir("etc"),
            Entry::file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
            Entry::hardlink("hard-up", "../etc/passwd").raw(),
            Entry::hardlink("hard-abs", "/etc/passwd").raw(),
        ]),
    ]);
    push(reg, "morph/hostile-link", "t", &image);
    let out = Outputs::new();
    let r = reference(&reg.addr(), "morph/hostile-link", "t");
    let res = morph(&reg.addr(), &r, &out, &[]);
    if res.status.success() {
        if let Err(e) = check_order(&cpio_list(&out.initrd())) {
            panic!("hostile names reached the initrd:\n{e}");
        }
        let tree = extract_initrd(&out.initrd());
        let snap = snapshot(tree.path());
        for p in ["hard-up", "hard-abs"] {
            if let Some(n) = snap.get(p) {
                assert_eq!(
                    n.sha256, snap["etc/passwd"].sha256,
                    "{p} links inside the image"
                );
            }
        }
    } else {
        out.assert_nothing_left();
    }
}

// ------------------------------------------------------------ booted.json

/// `/etc/wyrcan/booted.json` from an initrd: every compressed frame
/// decompressed (zstd/gzip/plain), then the entry found by name.
fn booted_json(initrd: &std::path::Path) -> serde_json::Value {
    let raw = std::fs::read(initrd).unwrap();
    let plain = if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::decode_all(&raw[..]).unwrap()
    } else if raw.starts_with(&[0x1f, 0x8b]) {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&raw[..]), &mut v)
            .unwrap();
        v
    } else {
        raw
    };
    let name = b"etc/wyrcan/booted.json\0";
    let pos = plain
        .windows(name.len())
        .rposition(|w| w == name)
        .expect("no etc/wyrcan/booted.json in the initrd");
    let hdr = &plain[pos - 110..pos];
    assert_eq!(&hdr[..6], b"070701");
    let hex = |r: std::ops::Range<usize>| {
        usize::from_str_radix(std::str::from_utf8(&hdr[r]).unwrap(), 16).unwrap()
    };
    let (size, namesize) = (hex(54..62), hex(94..102));
    let data = (pos - 110 + 110 + namesize + 3) & !3;
    serde_json::from_slice(&plain[data..data + size]).unwrap()
}

#[test]
fn the_initrd_records_what_it_was_built_from() {
    let reg = registry::shared();
    let image = oci(vec![base("booted")], vec![]);
    let digest = push(reg, "booted", "t", &image);
    for compression in ["zstd", "gzip", "none"] {
        let out = Outputs::new();
        let given = reference(&reg.addr(), "booted", "t");
        let res = morph(&reg.addr(), &given, &out, &["--compression", compression]);
        assert_success(&res, compression);
        let b = booted_json(&out.initrd());
        assert_eq!(b["version"], 1);
        assert_eq!(b["reference"], given.as_str());
        assert_eq!(b["registry"], reg.addr().as_str());
        assert_eq!(b["repository"], "booted");
        assert_eq!(b["manifest_digest"], digest.to_string().as_str());
        assert_eq!(b["platform"], "linux/amd64");
        assert_eq!(b["kernel"]["path"], format!("/{KPATH}").as_str());
        let ksha =
            wyrcan_core::digest::Digest::of(&std::fs::read(out.kernel()).unwrap()).to_string();
        assert_eq!(b["kernel"]["sha256"], ksha.trim_start_matches("sha256:"));
        let cmdline = std::fs::read_to_string(out.cmdline()).unwrap();
        assert_eq!(b["cmdline"], cmdline.trim());
        assert_eq!(b["wyrcan_version"], env!("CARGO_PKG_VERSION"));
        let time = b["time"].as_str().unwrap();
        assert!(time.len() == 20 && time.ends_with('Z'), "{time}");
        // The image's own tree is unchanged in the first archive.
        check_initrd(&image, &out, KPATH, &kernel("booted"));
    }
}
