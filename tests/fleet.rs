//! A rack rebooting at once, under QEMU: the origin is one
//! `docker-registry`, the site cache a second one in proxy mode. The
//! guests can reach only the cache (QEMU forwards 10.0.2.100:5000 to it);
//! the origin's name in the image reference (10.0.2.101:5000) leads
//! nowhere from inside, so every byte a guest gets came through the cache.
//! Three VMs boot the same image at once; the origin's access log says
//! what it served. Then the origin stops, and a VM boots the same image
//! pinned by digest from the cache alone.

mod common;

use std::time::{Duration, Instant};

use common::image::push;
use common::registry::Registry;
use vmharness::{bootable, wyrcan_vm, BOOT, GUEST_REGISTRY};

mod vmharness;

/// The origin as the guests' references name it: nothing answers there.
const ORIGIN: &str = "10.0.2.101:5000";

/// Blob GETs in a registry's access log.
fn blob_gets(r: &Registry) -> usize {
    r.log()
        .lines()
        .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:"))
        .count()
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn three_machines_boot_through_the_cache_then_one_with_the_origin_down() {
    let origin = Registry::start();
    let cache = Registry::start_cache_of(&origin);
    let image = bootable("fleet");
    let blobs = image.build().layers.len() + 1;
    let digest = push(&origin, "fleet/os", "v1", &image);
    let mirror = format!("wyrcan.mirror={ORIGIN}=resolve+http://{GUEST_REGISTRY}");
    let cmdline = format!("wyrcan.img={ORIGIN}/fleet/os:v1 {mirror} wyrcan.arg=quiet");

    let started = Instant::now();
    let mut vms: Vec<_> = (0..3)
        .map(|i| wyrcan_vm(&format!("fleet-{i}"), &cache, &cmdline))
        .collect();
    for vm in &mut vms {
        vm.wait_for("Wyrcan", BOOT);
    }
    for vm in &mut vms {
        vm.container_on_its_kernel("fleet");
    }
    let served = blob_gets(&origin);
    eprintln!(
        "fleet: 3 machines booted in {:.1} s; the origin served {served} blob GETs for {blobs} blobs \
         (docker-registry 2.8's proxy fetches a cold blob twice: to store it and to stream it)",
        started.elapsed().as_secs_f64()
    );
    assert!(
        served > 0,
        "the image came from somewhere else than the origin"
    );
    assert!(
        served <= 2 * blobs,
        "3 machines cost the origin more than one image: {served} blob GETs for {blobs} blobs"
    );
    for vm in &vms {
        let log = vm.log();
        assert!(
            log.contains("trying mirror resolve+http://10.0.2.100:5000"),
            "{log}"
        );
    }
    drop(vms);

    // The origin gone: the image pinned by digest, from the cache alone.
    drop(origin);
    let pinned = format!(
        "wyrcan.img={ORIGIN}/fleet/os@{digest} wyrcan.mirror={ORIGIN}=http://{GUEST_REGISTRY} wyrcan.arg=quiet"
    );
    let mut vm = wyrcan_vm("fleet-pinned", &cache, &pinned);
    vm.wait_for("Wyrcan", BOOT);
    vm.container_on_its_kernel("fleet");
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}
