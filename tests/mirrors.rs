//! Registry mirrors on the host, against real parts: the origin is one
//! `docker-registry`, the site cache a second one in proxy mode
//! (`proxy.remoteurl`), faults from the lying proxy (`common/proxy.rs`).
//! Content comes from the mirror by digest and is verified; a mirror that
//! is down or lies costs a warning and a fallback; with the origin down, a
//! digest-pinned image (or a tag through a `resolve+` mirror) still pulls.

mod common;

use common::image::{push, small_bootable};
use common::proxy::{Mode, Proxy};
use common::registry::Registry;
use common::{assert_failure, assert_mentions, assert_success, stderr, wyrcan, Outputs};

/// `wyrcan morph REF --insecure ORIGIN --mirror … EXTRA…`.
fn morph(reference: &str, origin: &str, mirrors: &[&str], extra: &[&str]) -> std::process::Output {
    let outputs = Outputs::new();
    let mut args = vec!["morph".to_string(), reference.to_string()];
    args.extend(outputs.args());
    args.extend(["--insecure".into(), origin.to_string()]);
    for m in mirrors {
        args.extend(["--mirror".into(), m.to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = wyrcan(&args);
    if out.status.success() {
        outputs.assert_exactly_outputs();
    } else {
        outputs.assert_nothing_left();
    }
    out
}

/// The origin's blob GETs so far, as its access log shows them.
fn blob_gets(r: &Registry) -> usize {
    r.log()
        .lines()
        .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:"))
        .count()
}

#[test]
fn through_the_site_cache_then_from_the_cache_alone_when_the_origin_is_down() {
    let origin = Registry::start();
    let cache = Registry::start_cache_of(&origin);
    let o = origin.addr();
    let digest = push(&origin, "fleet/os", "v1", &small_bootable("fleet"));
    let by_tag = format!("{o}/fleet/os:v1");
    let pinned = format!("{o}/fleet/os@{digest}");
    let mirror = format!("{o}=http://{}", cache.addr());
    let resolve = format!("{o}=resolve+http://{}", cache.addr());

    let out = morph(&by_tag, &o, &[&mirror], &[]);
    assert_success(&out, "a pull through the cache");
    // The tag was resolved at the origin, the content came from the cache
    // (which fetched it from the origin), with ?ns= naming the registry.
    let log = cache.log();
    assert!(log.contains("/blobs/sha256:"), "{log}");
    assert!(
        log.contains(&format!("ns={o}")),
        "no ?ns= in the cache's log:\n{log}"
    );
    let fetched_by_cache = blob_gets(&origin);
    assert!(fetched_by_cache > 0);

    // A second pull, its tag resolved by the cache too (resolve+): the
    // origin serves no blob, and the cache now knows the tag.
    assert_success(&morph(&by_tag, &o, &[&resolve], &[]), "a warm pull");
    assert_eq!(
        blob_gets(&origin),
        fetched_by_cache,
        "the warm cache asked the origin again"
    );

    drop(origin);
    // Pinned by digest: the cache alone.
    assert_success(
        &morph(&pinned, &o, &[&mirror], &[]),
        "a pinned pull with the origin down",
    );
    // By tag, the mirror may not answer: a clear error naming the origin.
    let err = assert_failure(
        &morph(&by_tag, &o, &[&mirror], &[]),
        "a tag with the origin down",
    );
    assert_mentions(&err, &format!("cannot connect to {o}"), "the origin");
    // A resolve+ mirror may: the site without a route to its origin.
    assert_success(
        &morph(&by_tag, &o, &[&resolve], &[]),
        "a tag through a resolve+ mirror",
    );
}

#[test]
fn a_lying_mirror_and_a_dead_one_are_passed_over_with_a_warning() {
    let origin = Registry::start();
    let o = origin.addr();
    push(&origin, "lies/os", "v1", &small_bootable("lies"));
    let reference = format!("{o}/lies/os:v1");
    let liar = Proxy::start(&o, Mode::CorruptBlob);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mirrors = format!("{o}=http://127.0.0.1:{dead},http://{}", liar.addr());
    let out = morph(&reference, &o, &[&mirrors], &[]);
    assert_success(&out, "a pull past a dead and a lying mirror");
    let log = stderr(&out);
    assert_mentions(
        &log,
        &format!("mirror http://127.0.0.1:{dead}"),
        "the dead mirror",
    );
    assert_mentions(
        &log,
        &format!("mirror http://{}", liar.addr()),
        "the lying mirror",
    );
    assert_mentions(&log, "digest mismatch", "why the liar was passed over");
    assert_mentions(&log, "trying the next endpoint", "the fallback");
    assert!(
        liar.seen().iter().any(|s| s.action == "corrupt"),
        "the liar lied"
    );
}

#[test]
fn a_mirror_under_a_path_prefix_and_a_star_mirror() {
    let origin = Registry::start();
    let o = origin.addr();
    push(&origin, "pre/os", "v1", &small_bootable("prefix"));
    let reference = format!("{o}/pre/os:v1");
    let mirror = Proxy::start(&o, Mode::Prefix("/cache/v2-mirror".into()));
    let out = morph(
        &reference,
        &o,
        &[&format!("*=http://{}/cache/v2-mirror", mirror.addr())],
        &["-v"],
    );
    assert_success(&out, "a prefixed mirror");
    let seen = mirror.seen();
    assert!(
        seen.iter()
            .any(|s| s.path.contains("/blobs/sha256:") && s.status == 200),
        "the blobs came through the prefixed mirror: {seen:?}"
    );
    assert!(
        seen.iter().all(|s| !s.path.contains("/manifests/v1")),
        "the tag went to the origin"
    );
}

#[test]
fn registries_conf_mirrors_are_used_on_hosts() {
    let origin = Registry::start();
    let cache = Registry::start_cache_of(&origin);
    let o = origin.addr();
    push(&origin, "conf/os", "v1", &small_bootable("conf"));
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"{o}\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"{}\"\ninsecure = true\n",
            cache.addr()
        ),
    )
    .unwrap();
    let outputs = Outputs::new();
    let mut args = vec!["morph".to_string(), format!("{o}/conf/os:v1")];
    args.extend(outputs.args());
    args.extend(["--insecure".into(), o.clone(), "-v".into()]);
    let out = common::wyrcan_with_env(&args, &[("CONTAINERS_REGISTRIES_CONF", &conf)]);
    assert_success(&out, "a pull with registries.conf mirrors");
    assert!(
        cache.log().contains("/blobs/sha256:"),
        "the cache served the blobs"
    );
}

#[test]
fn retry_after_is_honoured_on_429() {
    let origin = Registry::start();
    let o = origin.addr();
    push(&origin, "busy/os", "v1", &small_bootable("busy"));
    let busy = Proxy::start(
        &o,
        Mode::Throttle {
            code: 429,
            times: 1,
            secs: 2,
        },
    );
    let reference = format!("{}/busy/os:v1", busy.addr());
    let outputs = Outputs::new();
    let mut args = vec!["morph".to_string(), reference];
    args.extend(outputs.args());
    args.extend(["--insecure".into(), busy.addr()]);
    let out = wyrcan(&args);
    assert_success(&out, "a pull past a 429");
    let log = stderr(&out);
    // The wait is at least the 2 s asked for (backoff alone is 500 ms).
    let line = log
        .lines()
        .find(|l| l.contains("429"))
        .unwrap_or_else(|| panic!("{log}"));
    let waited = line
        .split("retrying in ")
        .nth(1)
        .and_then(|r| r.split(['s', ' ']).next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!((2.0..=2.5).contains(&waited), "{line}");
}

#[test]
fn signatures_come_through_the_mirror_too() {
    use common::cosign::{policy, sign_and_push, Signer};
    let origin = Registry::start();
    let cache = Registry::start_cache_of(&origin);
    let o = origin.addr();
    let digest = push(&origin, "signed/os", "v1", &small_bootable("signed"));
    let by_tag = format!("{o}/signed/os:v1");
    let signer = Signer::ecdsa();
    sign_and_push(&origin, "signed/os", &by_tag, &digest, &signer);
    let dir = tempfile::tempdir().unwrap();
    let p = policy(
        dir.path(),
        "reject",
        &format!("{o}/signed"),
        &[&signer.public],
        None,
    );
    let resolve = format!("{o}=resolve+http://{}", cache.addr());
    let with_policy = ["--policy", p.to_str().unwrap()];
    assert_success(
        &morph(&by_tag, &o, &[&resolve], &with_policy),
        "signed, through the cache",
    );
    assert!(
        cache
            .log()
            .contains(&format!("/manifests/sha256-{}.sig", digest.hex())),
        "the signature tag was asked of the cache"
    );
    // The origin gone: tag, signature and content from the cache alone.
    drop(origin);
    assert_success(
        &morph(&by_tag, &o, &[&resolve], &with_policy),
        "signed, from the cache alone",
    );
}
