//! Policy parsing never panics; whatever parses has a rule for every
//! image, and writes back as a policy that parses to the same rules.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wyrcan_core::reference::Reference;
use wyrcan_core::trust::policy::DEFAULT_SCOPE;
use wyrcan_core::trust::Policy;

const IMAGES: &[&str] = &[
    "quay.io/acme/os:1",
    "127.0.0.1:5000/os@sha256:1111111111111111111111111111111111111111111111111111111111111111",
    "busybox",
    "a.b.example.com:5000/x/y:z",
    "[::1]:5000/os:1",
];

fuzz_target!(|data: &[u8]| {
    let Ok(policy) = Policy::parse(data) else {
        return;
    };
    for image in IMAGES {
        let r: Reference = image.parse().expect("fixed references parse");
        let (scope, reqs) = policy.requirements_for(&r);
        assert!(!reqs.is_empty());
        assert!(scope == DEFAULT_SCOPE || policy.docker.iter().any(|(s, _)| s == scope));
    }
    // Written back unchanged, it parses to the same policy.
    let same =
        Policy::parse(&policy.to_json_with_paths(str::to_string)).expect("a written policy parses");
    assert_eq!(same, policy);
    // With paths moved, it parses too, with the moved paths.
    let moved =
        Policy::parse(&policy.to_json_with_paths(|p| format!("/etc/wyrcan/keys/{}", p.len())))
            .expect("a policy with moved key paths parses");
    assert!(moved.key_paths().len() <= policy.key_paths().len());
    assert!(moved
        .key_paths()
        .iter()
        .all(|p| p.starts_with("/etc/wyrcan/keys/")));
});
