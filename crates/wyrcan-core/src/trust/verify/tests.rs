//! Evaluation tests. Payloads are signed here with the test-only P-256
//! key in testdata (ring signs; OpenSSL made the key), so each case can
//! sign exactly the payload it needs.

use base64::Engine as _;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

use super::*;
use crate::trust::key::PublicKey;

const PK8: &[u8] = include_bytes!("../testdata/p256.pk8");
const P256: &[u8] = include_bytes!("../testdata/p256.pub.pem");
const OTHER: &[u8] = include_bytes!("../testdata/other.pub.pem");
const RSA: &[u8] = include_bytes!("../testdata/rsa2048.pub.pem");
const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const E: &str = "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn sign(payload: &[u8]) -> String {
    let rng = ring::rand::SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, PK8, &rng).unwrap();
    b64(pair.sign(&rng, payload).unwrap().as_ref())
}

fn payload(reference: &str, digest: &str) -> Vec<u8> {
    format!(r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#).into_bytes()
}

/// A candidate whose payload names `reference` and `digest`, signed by the test key.
fn signed(reference: &str, digest: &str) -> Candidate {
    let payload = payload(reference, digest);
    Candidate {
        signature_b64: sign(&payload),
        payload,
        source: format!("layer for {reference}"),
    }
}

fn digest(s: &str) -> Digest {
    s.parse().unwrap()
}

fn reference(s: &str) -> Reference {
    s.parse().unwrap()
}

/// A policy whose default is `reqs` (JSON), with `keys` loaded for every path.
fn policy(default: &str) -> Policy {
    let mut p = Policy::parse(format!(r#"{{"default":{default}}}"#).as_bytes()).unwrap();
    p.load_keys(|path| match path {
        "/p256.pub" => Ok(P256.to_vec()),
        "/other.pub" => Ok(OTHER.to_vec()),
        "/rsa.pub" => Ok(RSA.to_vec()),
        _ => Err("no such file".to_string()),
    })
    .unwrap();
    p
}

fn sigstore(key_field: &str, identity: &str) -> String {
    format!(r#"{{"type":"sigstoreSigned",{key_field},"signedIdentity":{{"type":"{identity}"}}}}"#)
}

#[allow(clippy::result_large_err)]
fn eval(p: &Policy, image: &str, d: &str, candidates: &[Candidate]) -> Result<Verdict, Rejection> {
    evaluate(p, &reference(image), &digest(d), candidates)
}

fn fingerprint(pem: &[u8]) -> String {
    PublicKey::from_pem(pem).unwrap().fingerprint()
}

#[test]
fn a_good_signature_is_accepted_and_recorded() {
    let p = policy(&format!(
        "[{}]",
        sigstore(r#""keyPath":"/p256.pub""#, "matchRepoDigestOrExact")
    ));
    let v = eval(
        &p,
        "127.0.0.1:5000/os:1",
        D,
        &[signed("127.0.0.1:5000/os:1", D)],
    )
    .unwrap();
    assert_eq!(
        v,
        Verdict {
            scope: "default".into(),
            requirement: "sigstoreSigned".into(),
            key: Some(fingerprint(P256)),
            key_origin: Some("/p256.pub".into()),
            identity: Some("127.0.0.1:5000/os:1".into()),
            signature: Some("layer for 127.0.0.1:5000/os:1".into()),
        }
    );
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["key_origin"], "/p256.pub");
    // The vector OpenSSL signed verifies the same way (keyData this time).
    let p = policy(&format!(
        "[{}]",
        sigstore(&format!(r#""keyData":"{}""#, b64(P256)), "matchRepository")
    ));
    let c = Candidate {
        payload: include_bytes!("../testdata/payload.json").to_vec(),
        signature_b64: b64(include_bytes!("../testdata/p256.sig")),
        source: "openssl".into(),
    };
    let v = eval(&p, "127.0.0.1:5000/os:1", D, &[c]).unwrap();
    assert_eq!(v.key_origin.as_deref(), Some("keyData"));
    assert_eq!(v.identity.as_deref(), Some("127.0.0.1:5000/os"));
}

#[test]
fn cosign_names_the_repository_only() {
    // cosign writes docker-reference without a tag: fine for an image
    // booted by digest or under matchRepository, refused (with a hint)
    // for a tag under the default rule, as containers/image does.
    let cosign = signed("127.0.0.1:5000/os", D);
    let strict = policy(&format!(
        "[{}]",
        sigstore(r#""keyPath":"/p256.pub""#, "matchRepoDigestOrExact")
    ));
    assert!(eval(
        &strict,
        &format!("127.0.0.1:5000/os@{D}"),
        D,
        std::slice::from_ref(&cosign)
    )
    .is_ok());
    let r = eval(
        &strict,
        "127.0.0.1:5000/os:1",
        D,
        std::slice::from_ref(&cosign),
    )
    .unwrap_err();
    assert_eq!(
        r.reason,
        Reason::IdentityMismatch {
            signed: "127.0.0.1:5000/os".into(),
            rule: "matchRepoDigestOrExact".into()
        }
    );
    let msg = r.to_string();
    assert!(msg.contains("matchRepository"), "{msg}");
    assert!(msg.contains("by digest"), "{msg}");
    let loose = policy(&format!(
        "[{}]",
        sigstore(r#""keyPath":"/p256.pub""#, "matchRepository")
    ));
    assert!(eval(&loose, "127.0.0.1:5000/os:1", D, &[cosign]).is_ok());
}

#[test]
fn insecure_accept_anything_and_reject() {
    let open = policy(r#"[{"type":"insecureAcceptAnything"}]"#);
    let v = eval(&open, "quay.io/os:1", D, &[]).unwrap();
    assert_eq!(v.requirement, "insecureAcceptAnything");
    assert_eq!(v.key, None);
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"{"scope":"default","requirement":"insecureAcceptAnything"}"#
    );
    // With a signature requirement beside it, the signature is recorded.
    let both = policy(&format!(
        r#"[{{"type":"insecureAcceptAnything"}},{}]"#,
        sigstore(r#""keyPath":"/p256.pub""#, "matchRepository")
    ));
    let v = eval(&both, "quay.io/os:1", D, &[signed("quay.io/os", D)]).unwrap();
    assert_eq!(v.requirement, "sigstoreSigned");
    // ...and still required.
    assert_eq!(
        eval(&both, "quay.io/os:1", D, &[]).unwrap_err().reason,
        Reason::NoSignature
    );

    // A reject decides whatever the signatures.
    let closed = policy(&format!(
        r#"[{},{{"type":"reject"}}]"#,
        sigstore(r#""keyPath":"/p256.pub""#, "matchRepository")
    ));
    let r = eval(&closed, "quay.io/os:1", D, &[signed("quay.io/os", D)]).unwrap_err();
    assert_eq!(r.reason, Reason::Rejected);
    assert_eq!(
        r.to_string(),
        r#"rule default: rejected: quay.io/os:1 is refused by a "reject" requirement; to boot it, change the policy"#
    );
    // So does an empty list, which only a hand-built policy has.
    let empty = Policy {
        default: vec![],
        docker: vec![],
    };
    assert_eq!(
        eval(&empty, "quay.io/os:1", D, &[]).unwrap_err().reason,
        Reason::Rejected
    );
}

#[test]
fn every_requirement_must_accept() {
    let p = policy(&format!(
        "[{},{}]",
        sigstore(r#""keyPath":"/p256.pub""#, "matchRepository"),
        sigstore(r#""keyPath":"/other.pub""#, "matchRepository")
    ));
    let r = eval(&p, "quay.io/os:1", D, &[signed("quay.io/os", D)]).unwrap_err();
    assert_eq!(
        r.reason,
        Reason::NoKeyMatched {
            signatures: 1,
            keys: 1
        }
    );
    assert_eq!(r.keys, [fingerprint(OTHER)]);
}

#[test]
fn any_key_of_a_rotation_may_match() {
    let p = policy(&format!(
        "[{}]",
        sigstore(
            r#""keyPaths":["/other.pub","/p256.pub"]"#,
            "matchRepository"
        )
    ));
    let v = eval(&p, "quay.io/os:1", D, &[signed("quay.io/os", D)]).unwrap();
    assert_eq!(v.key_origin.as_deref(), Some("/p256.pub"));
    assert_eq!(v.key, Some(fingerprint(P256)));
}

#[test]
fn no_signature_and_no_key_matched() {
    let p = policy(&format!(
        "[{}]",
        sigstore(r#""keyPaths":["/other.pub","/rsa.pub"]"#, "matchRepository")
    ));
    let r = eval(&p, "127.0.0.1:5000/os:1", D, &[]).unwrap_err();
    assert_eq!(r.reason, Reason::NoSignature);
    assert_eq!(
        r.to_string(),
        format!("rule default: no signature: 127.0.0.1:5000/os:1 ({D}) has no cosign signature; sign it with cosign sign --key <private key> 127.0.0.1:5000/os@{D}, or fix the policy")
    );

    let garbage = Candidate {
        payload: b"x".to_vec(),
        signature_b64: "not base64!".into(),
        source: "s".into(),
    };
    let r = eval(
        &p,
        "127.0.0.1:5000/os:1",
        D,
        &[signed("127.0.0.1:5000/os", D), garbage],
    )
    .unwrap_err();
    assert_eq!(
        r.reason,
        Reason::NoKeyMatched {
            signatures: 2,
            keys: 2
        }
    );
    let msg = r.to_string();
    let short = |pem: &[u8]| format!("{}…", &fingerprint(pem)[..19]);
    assert_eq!(
        msg,
        format!(
            "rule default: no key matched: no signature of {D} (2 found) was made by any of the 2 keys ({}, {}); sign it with cosign sign --key <private key> 127.0.0.1:5000/os@{D} using one of these keys, or add the signer's public key to the policy",
            short(OTHER),
            short(RSA)
        )
    );
}

#[test]
fn the_payload_is_checked_only_after_the_signature() {
    let p = policy(&format!(
        "[{}]",
        sigstore(r#""keyPath":"/p256.pub""#, "matchRepository")
    ));
    // A payload changed after signing is "no key matched", not parsed.
    let mut c = signed("quay.io/os", D);
    c.payload = payload("quay.io/os", E);
    let r = eval(&p, "quay.io/os:1", E, &[c]).unwrap_err();
    assert_eq!(
        r.reason,
        Reason::NoKeyMatched {
            signatures: 1,
            keys: 1
        }
    );
    // Signed garbage: a bad payload.
    let junk = b"{\"critical\":{}}".to_vec();
    let c = Candidate {
        signature_b64: sign(&junk),
        payload: junk,
        source: "s".into(),
    };
    let r = eval(&p, "quay.io/os:1", D, &[c]).unwrap_err();
    assert!(
        matches!(&r.reason, Reason::BadPayload(m) if m.contains("critical.type: missing")),
        "{r:?}"
    );
    assert!(r.to_string().contains("unusable payload"), "{r}");
}

#[test]
fn digest_mismatch() {
    let p = policy(&format!(
        "[{}]",
        sigstore(r#""keyPath":"/p256.pub""#, "matchRepository")
    ));
    let r = eval(&p, "quay.io/os:1", E, &[signed("quay.io/os", D)]).unwrap_err();
    assert_eq!(r.reason, Reason::DigestMismatch { signed: D.into() });
    assert!(
        r.to_string()
            .contains(&format!("is for manifest {D}, not {E}")),
        "{r}"
    );
}

#[test]
fn the_most_advanced_failure_is_reported() {
    let p = policy(&format!(
        "[{}]",
        sigstore(r#""keyPath":"/p256.pub""#, "matchRepoDigestOrExact")
    ));
    let unsigned = Candidate {
        payload: payload("quay.io/os:1", E),
        signature_b64: b64(b"nope"),
        source: "s".into(),
    };
    let junk = Candidate {
        signature_b64: sign(b"[]"),
        payload: b"[]".to_vec(),
        source: "s".into(),
    };
    let other_digest = signed("quay.io/os:1", D);
    let other_tag = signed("quay.io/os:2", E);
    type Expect = fn(&Reason) -> bool;
    let cases: Vec<(Vec<Candidate>, Expect)> = vec![
        (vec![unsigned.clone()], |r| {
            matches!(r, Reason::NoKeyMatched { .. })
        }),
        (vec![unsigned.clone(), junk.clone()], |r| {
            matches!(r, Reason::BadPayload(_))
        }),
        (
            vec![junk.clone(), other_digest.clone(), unsigned.clone()],
            |r| matches!(r, Reason::DigestMismatch { .. }),
        ),
        (
            vec![other_tag.clone(), other_digest.clone(), junk.clone()],
            |r| matches!(r, Reason::IdentityMismatch { .. }),
        ),
        (vec![other_digest.clone(), other_tag.clone()], |r| {
            matches!(r, Reason::IdentityMismatch { .. })
        }),
    ];
    for (candidates, want) in cases {
        let r = eval(&p, "quay.io/os:1", E, &candidates).unwrap_err();
        assert!(want(&r.reason), "{:?}", r.reason);
    }
    // One good signature among bad ones is enough.
    let good = signed("quay.io/os:1", E);
    let v = eval(
        &p,
        "quay.io/os:1",
        E,
        &[unsigned, junk, other_digest, other_tag, good],
    )
    .unwrap();
    assert_eq!(v.identity.as_deref(), Some("quay.io/os:1"));
}

#[test]
fn keys_must_be_loaded() {
    let p =
        Policy::parse(br#"{"default":[{"type":"sigstoreSigned","keyPath":"/k.pub"}]}"#).unwrap();
    let r = eval(&p, "quay.io/os:1", D, &[signed("quay.io/os:1", D)]).unwrap_err();
    assert_eq!(r.reason, Reason::KeyNotLoaded("/k.pub".into()));
    assert!(r.to_string().contains("key /k.pub was not read"), "{r}");
}

#[test]
fn the_rule_of_the_scope_is_named() {
    let mut p = Policy::parse(
        br#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"127.0.0.1:5000/os":[{"type":"sigstoreSigned","keyPaths":["/other.pub","/rsa.pub"]}]}}}"#,
    )
    .unwrap();
    p.load_keys(|path| Ok(if path == "/rsa.pub" { RSA } else { OTHER }.to_vec()))
        .unwrap();
    let r = eval(
        &p,
        "127.0.0.1:5000/os:1",
        D,
        &[signed("127.0.0.1:5000/os:1", D)],
    )
    .unwrap_err();
    assert_eq!(r.scope, "127.0.0.1:5000/os");
    let msg = r.to_string();
    assert!(msg.starts_with(&format!(r#"rule transports.docker["127.0.0.1:5000/os"]: no key matched: no signature of {D} (1 found) was made by any of the 2 keys (sha256:"#)), "{msg}");
    // Other images fall to the default.
    assert_eq!(
        eval(&p, "127.0.0.1:5000/other:1", D, &[]).unwrap().scope,
        "default"
    );
}

#[test]
fn identity_rules() {
    let remap = SignedIdentity::RemapIdentity {
        prefix: "mirror.lan/acme".into(),
        signed_prefix: "quay.io/acme".into(),
    };
    let to_hub = SignedIdentity::RemapIdentity {
        prefix: "mirror.lan".into(),
        signed_prefix: "docker.io".into(),
    };
    let pinned = format!("quay.io/os@{D}");
    let pinned_signed = format!("quay.io/os@{D}");
    let mirror_pinned = format!("mirror.lan/acme/os@{D}");
    use SignedIdentity as S;
    let exact_ref = S::ExactReference("quay.io/os:1".into());
    let exact_repo = S::ExactRepository("quay.io/os".into());
    let cases: Vec<(&SignedIdentity, &str, &str, bool)> = vec![
        (
            &S::MatchRepoDigestOrExact,
            "quay.io/os:1",
            "quay.io/os:1",
            true,
        ),
        (
            &S::MatchRepoDigestOrExact,
            "quay.io/os:1",
            "quay.io/os:2",
            false,
        ),
        (
            &S::MatchRepoDigestOrExact,
            "quay.io/os:1",
            "quay.io/os",
            false,
        ),
        (
            &S::MatchRepoDigestOrExact,
            "quay.io/os",
            "quay.io/os:latest",
            true,
        ),
        (
            &S::MatchRepoDigestOrExact,
            "quay.io/os",
            "quay.io/os",
            false,
        ),
        (
            &S::MatchRepoDigestOrExact,
            "quay.io/os:1",
            "quay.io/other:1",
            false,
        ),
        (
            &S::MatchRepoDigestOrExact,
            &pinned,
            "quay.io/os:anything",
            true,
        ),
        (&S::MatchRepoDigestOrExact, &pinned, "quay.io/os", true),
        (&S::MatchRepoDigestOrExact, &pinned, "quay.io/other", false),
        (
            &S::MatchRepoDigestOrExact,
            "busybox:1",
            "docker.io/library/busybox:1",
            true,
        ),
        (
            &S::MatchRepoDigestOrExact,
            "busybox:1",
            "index.docker.io/library/busybox:1",
            true,
        ),
        (
            &S::MatchRepoDigestOrExact,
            "busybox:1",
            "docker.io/busybox:1",
            true,
        ),
        (&S::MatchRepository, "quay.io/os:1", "quay.io/os", true),
        (&S::MatchRepository, "quay.io/os:1", "quay.io/os:2", true),
        (&S::MatchRepository, "quay.io/os:1", "quay.io/os2", false),
        (&S::MatchRepository, "quay.io/os:1", "ghcr.io/os", false),
        (&S::MatchExact, "quay.io/os:1", "quay.io/os:1", true),
        (&S::MatchExact, "quay.io/os:1", "quay.io/os", false),
        (&S::MatchExact, &pinned, "quay.io/os:1", false),
        (&S::MatchExact, &pinned, &pinned_signed, true),
        (&exact_ref, "ghcr.io/x:9", "quay.io/os:1", true),
        (&exact_ref, "quay.io/os:1", "quay.io/os:2", false),
        (&exact_ref, "quay.io/os:1", "quay.io/os", false),
        (&exact_repo, "ghcr.io/x:9", "quay.io/os:7", true),
        (&exact_repo, "ghcr.io/x:9", "quay.io/os", true),
        (&exact_repo, "quay.io/os:1", "quay.io/other", false),
        (&remap, "mirror.lan/acme/os:1", "quay.io/acme/os:1", true),
        (
            &remap,
            "mirror.lan/acme/os:1",
            "mirror.lan/acme/os:1",
            false,
        ),
        (&remap, "mirror.lan/acme/os:1", "quay.io/acme/os:2", false),
        (&remap, &mirror_pinned, "quay.io/acme/os", true),
        (&remap, "mirror.lan/acme:1", "quay.io/acme:1", true),
        // Not at a path-component boundary: not remapped.
        (
            &remap,
            "mirror.lan/acmeco/os:1",
            "mirror.lan/acmeco/os:1",
            true,
        ),
        (
            &remap,
            "mirror.lan/acmeco/os:1",
            "quay.io/acmeco/os:1",
            false,
        ),
        // Remapped names are not normalized behind the policy's back.
        (
            &to_hub,
            "mirror.lan/busybox:1",
            "docker.io/library/busybox:1",
            false,
        ),
        (
            &to_hub,
            "mirror.lan/library/busybox:1",
            "docker.io/library/busybox:1",
            true,
        ),
        (
            &S::MatchRepository,
            "quay.io/os:1",
            "Not A Reference",
            false,
        ),
    ];
    for (rule, image, signed, want) in cases {
        assert_eq!(
            identity_matches(rule, &reference(image), signed),
            want,
            "{rule}: image {image}, signed {signed}"
        );
    }
}

#[test]
fn messages_start_with_the_rule_and_say_what_to_do() {
    let reasons = [
        Reason::Rejected,
        Reason::NoSignature,
        Reason::NoKeyMatched {
            signatures: 1,
            keys: 1,
        },
        Reason::BadPayload("x".into()),
        Reason::DigestMismatch { signed: E.into() },
        Reason::IdentityMismatch {
            signed: "quay.io/os:2".into(),
            rule: "matchExact".into(),
        },
        Reason::KeyNotLoaded("/k".into()),
    ];
    for reason in reasons {
        let r = Rejection {
            scope: "quay.io".into(),
            reason,
            image: reference("quay.io/os:1"),
            digest: digest(D),
            keys: vec![fingerprint(P256)],
        };
        let msg = r.to_string();
        assert!(
            msg.starts_with(r#"rule transports.docker["quay.io"]: "#),
            "{msg}"
        );
        assert!(!msg.ends_with('.'), "{msg}");
        assert!(
            ["policy", "cosign sign", "load the policy"]
                .iter()
                .any(|w| msg.contains(w)),
            "{msg}"
        );
    }
}
