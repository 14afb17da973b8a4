//! Policy parsing, key loading, writing back and scope lookup.

use base64::Engine as _;

use super::*;

const P256: &[u8] = include_bytes!("../testdata/p256.pub.pem");
const OTHER: &[u8] = include_bytes!("../testdata/other.pub.pem");
const D: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn parse(json: &str) -> Result<Policy, PolicyError> {
    Policy::parse(json.as_bytes())
}

fn err(json: &str) -> String {
    parse(json).unwrap_err().to_string()
}

/// A policy using every feature Wyrcan supports.
fn full() -> String {
    format!(
        r#"{{
  "default": [{{"type": "reject"}}],
  "transports": {{
    "docker": {{
      "quay.io/acme": [{{"type": "sigstoreSigned", "keyPath": "/etc/keys/acme.pub"}}],
      "quay.io/acme/os": [{{"type": "sigstoreSigned", "keyPaths": ["/k/old.pub", "/k/new.pub"],
                           "signedIdentity": {{"type": "matchRepository"}}}}],
      "quay.io/acme/os:stable": [{{"type": "insecureAcceptAnything"}}],
      "127.0.0.1:5000": [{{"type": "sigstoreSigned", "keyData": "{}",
                          "signedIdentity": {{"type": "exactRepository", "dockerRepository": "127.0.0.1:5000/os"}}}},
                         {{"type": "insecureAcceptAnything"}}],
      "*.example.com": [{{"type": "sigstoreSigned", "keyPath": "/etc/keys/acme.pub",
                          "signedIdentity": {{"type": "remapIdentity", "prefix": "mirror.example.com/acme", "signedPrefix": "quay.io/acme"}}}}],
      "*.com": [{{"type": "sigstoreSigned", "keyDatas": ["{}", "{}"],
                  "signedIdentity": {{"type": "exactReference", "dockerReference": "quay.io/acme/os:1"}}}}],
      "": [{{"type": "sigstoreSigned", "keyPath": "/k/new.pub", "signedIdentity": {{"type": "matchExact"}}}}]
    }},
    "atomic": {{"registry.access.redhat.com": [{{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/x.gpg"}}]}},
    "docker-daemon": {{"": [{{"type": "insecureAcceptAnything"}}]}}
  }}
}}"#,
        b64(P256),
        b64(P256),
        b64(OTHER)
    )
}

#[test]
fn a_full_policy_parses() {
    let p = parse(&full()).unwrap();
    assert_eq!(p.default, [Requirement::Reject]);
    let scopes: Vec<&str> = p.docker.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        scopes,
        [
            "quay.io/acme",
            "quay.io/acme/os",
            "quay.io/acme/os:stable",
            "127.0.0.1:5000",
            "*.example.com",
            "*.com",
            ""
        ]
    );
    let Requirement::SigstoreSigned(s) = &p.docker[1].1[0] else {
        panic!()
    };
    assert_eq!(
        s.keys,
        [
            Key::Path("/k/old.pub".into()),
            Key::Path("/k/new.pub".into())
        ]
    );
    assert_eq!(s.identity, SignedIdentity::MatchRepository);
    let Requirement::SigstoreSigned(s) = &p.docker[0].1[0] else {
        panic!()
    };
    // The default signedIdentity.
    assert_eq!(s.identity, SignedIdentity::MatchRepoDigestOrExact);
    let Requirement::SigstoreSigned(s) = &p.docker[3].1[0] else {
        panic!()
    };
    assert_eq!(
        s.keys,
        [Key::Loaded {
            origin: KEY_DATA.into(),
            key: PublicKey::from_pem(P256).unwrap()
        }]
    );
    assert_eq!(p.docker[3].1[1], Requirement::InsecureAcceptAnything);
    let Requirement::SigstoreSigned(s) = &p.docker[4].1[0] else {
        panic!()
    };
    assert_eq!(
        s.identity,
        SignedIdentity::RemapIdentity {
            prefix: "mirror.example.com/acme".into(),
            signed_prefix: "quay.io/acme".into()
        }
    );
    let Requirement::SigstoreSigned(s) = &p.docker[5].1[0] else {
        panic!()
    };
    assert_eq!(s.keys.len(), 2);
    assert_eq!(
        s.identity,
        SignedIdentity::ExactReference("quay.io/acme/os:1".into())
    );
}

#[test]
fn the_simplest_policies() {
    let p = parse(r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    assert_eq!(p.default, [Requirement::InsecureAcceptAnything]);
    assert!(p.docker.is_empty());
    // podman's stock /etc/containers/policy.json.
    let stock = r#"{"default":[{"type":"insecureAcceptAnything"}],
        "transports":{"docker-daemon":{"":[{"type":"insecureAcceptAnything"}]}}}"#;
    assert!(parse(stock).unwrap().docker.is_empty());
}

#[test]
fn errors_name_the_location() {
    let cases: Vec<(String, &str)> = vec![
        ("nope".into(), "not valid JSON"),
        ("[]".into(), "(top level): expected an object, found an array"),
        ("{}".into(), "(top level): the \"default\" requirements are missing"),
        (r#"{"default":[]}"#.into(), "default: the list of requirements must not be empty"),
        (r#"{"default":{}}"#.into(), "default: expected an array of requirements, found an object"),
        (r#"{"default":[{"type":"reject"}],"x":1}"#.into(), "(top level): unknown field \"x\""),
        (r#"{"default":[{"type":"reject"}],"default":[]}"#.into(), "(top level): \"default\" appears twice"),
        (r#"{"default":[{}]}"#.into(), "default[0]: the requirement has no \"type\""),
        (r#"{"default":["reject"]}"#.into(), "default[0]: expected an object, found a string"),
        (r#"{"default":[{"type":"reject","keyPath":"/k"}]}"#.into(), "default[0]: unknown field \"keyPath\""),
        (r#"{"default":[{"type":"reject","type":"insecureAcceptAnything"}]}"#.into(), "default[0]: \"type\" appears twice"),
        (r#"{"default":[{"type":"reject"}],"transports":{"docker":{"quay.io/acme":[{"type":"sigstoreSignd"}]}}}"#.into(),
            r#"transports.docker["quay.io/acme"][0]: unknown requirement type "sigstoreSignd""#),
        (r#"{"default":[{"type":"reject"}],"transports":{"docker":{"quay.io/acme":[]}}}"#.into(),
            r#"transports.docker["quay.io/acme"]: the list of requirements must not be empty"#),
        (r#"{"default":[{"type":"reject"}],"transports":{"docker":{"acme":[{"type":"reject"}]}}}"#.into(),
            r#"transports.docker["acme"]: "acme" is not a registry host"#),
        (r#"{"default":[{"type":"reject"}],"transports":{"docker":{"a.io":[{"type":"reject"}],"a.io":[{"type":"reject"}]}}}"#.into(),
            r#"transports.docker: "a.io" appears twice"#),
        (r#"{"default":[{"type":"reject"}],"transports":{"docker":[]}}"#.into(), "transports.docker: expected an object, found an array"),
        (r#"{"default":[{"type":"reject"}],"transports":{"oci":{"":{}}}}"#.into(), r#"transports.oci[""]: expected a non-empty array"#),
        (r#"{"default":[{"type":"sigstoreSigned"}]}"#.into(), "default[0]: sigstoreSigned needs exactly one of keyPath, keyPaths and keyData; none is given"),
        (r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","keyPaths":["/b"]}]}"#.into(), "default[0]: sigstoreSigned needs exactly one of keyPath, keyPaths and keyData; keyPath, keyPaths are given"),
        (r#"{"default":[{"type":"sigstoreSigned","keyPath":""}]}"#.into(), "default[0].keyPath: must not be empty"),
        (r#"{"default":[{"type":"sigstoreSigned","keyPath":1}]}"#.into(), "default[0].keyPath: expected a string, found a number"),
        (r#"{"default":[{"type":"sigstoreSigned","keyPaths":[]}]}"#.into(), "default[0].keyPaths: must not be empty"),
        (r#"{"default":[{"type":"sigstoreSigned","keyPaths":"/a"}]}"#.into(), "default[0].keyPaths: expected an array, found a string"),
        (r#"{"default":[{"type":"sigstoreSigned","keyPaths":["/a",null]}]}"#.into(), "default[0].keyPaths[1]: expected a string, found null"),
        (r#"{"default":[{"type":"sigstoreSigned","keyData":"!!"}]}"#.into(), "default[0].keyData: not base64"),
        (format!(r#"{{"default":[{{"type":"sigstoreSigned","keyData":"{}"}}]}}"#, b64(b"hello")), "default[0].keyData: not PEM"),
        (r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","keyType":"GPGKeys"}]}"#.into(), "default[0]: unknown field \"keyType\""),
        (r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","signedIdentity":{}}]}"#.into(), "default[0].signedIdentity: signedIdentity has no \"type\""),
        (r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","signedIdentity":{"type":"matchExactly"}}]}"#.into(), "default[0].signedIdentity: unknown signedIdentity type \"matchExactly\""),
        (r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","signedIdentity":{"type":"matchExact","x":1}}]}"#.into(), "default[0].signedIdentity: unknown field \"x\""),
        (r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","signedIdentity":{"type":"exactReference"}}]}"#.into(), "default[0].signedIdentity: exactReference needs \"dockerReference\""),
        (r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","signedIdentity":{"type":"exactReference","dockerReference":"quay.io/os"}}]}"#.into(), "default[0].signedIdentity.dockerReference: \"quay.io/os\" has neither a tag nor a digest"),
        (r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","signedIdentity":{"type":"exactReference","dockerReference":"Quay.io/OS:1"}}]}"#.into(), "default[0].signedIdentity.dockerReference: image reference"),
        (r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","signedIdentity":{"type":"exactRepository","dockerRepository":"quay.io/os:1"}}]}"#.into(), "default[0].signedIdentity.dockerRepository: \"quay.io/os:1\" has a tag or digest"),
        (r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","signedIdentity":{"type":"exactRepository","dockerRepository":"quay.io/os","dockerReference":"x"}}]}"#.into(), "default[0].signedIdentity: unknown field \"dockerReference\""),
        (r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","signedIdentity":{"type":"remapIdentity","prefix":"quay.io"}}]}"#.into(), "default[0].signedIdentity: remapIdentity needs \"signedPrefix\""),
        (r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","signedIdentity":{"type":"remapIdentity","prefix":"quay.io","signedPrefix":"acme"}}]}"#.into(), "default[0].signedIdentity.signedPrefix: \"acme\" is not a registry host"),
    ];
    for (input, want) in cases {
        let e = err(&input);
        assert!(e.contains(want), "{input}\n  got: {e}\n want: {want}");
        assert!(!e.ends_with('.'), "{e}");
    }
}

#[test]
fn unsupported_features_are_refused_by_name() {
    let cases = [
        (
            r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k.gpg"}"#,
            "default[0]: requirement type \"signedBy\" (GPG signatures) is not supported by Wyrcan",
        ),
        (
            r#"{"type":"signedBaseLayer","baseLayerIdentity":{"type":"matchExact"}}"#,
            "signedBaseLayer",
        ),
        (
            r#"{"type":"sigstoreSigned","fulcio":{"caPath":"/ca"},"rekorPublicKeyPath":"/r"}"#,
            "default[0].fulcio: keyless signing (fulcio) is not supported by Wyrcan",
        ),
        (
            r#"{"type":"sigstoreSigned","keyPath":"/k","rekorPublicKeyPath":"/r"}"#,
            "default[0].rekorPublicKeyPath: Rekor transparency log verification",
        ),
        (
            r#"{"type":"sigstoreSigned","keyPath":"/k","rekorPublicKeyData":"eA=="}"#,
            "default[0].rekorPublicKeyData",
        ),
        (
            r#"{"type":"sigstoreSigned","pki":{"caRootsPath":"/ca"}}"#,
            "default[0].pki: X.509 certificate verification (pki) is not supported",
        ),
    ];
    for (req, want) in cases {
        let input = format!(r#"{{"default":[{req}]}}"#);
        let e = parse(&input).unwrap_err();
        assert!(matches!(e, PolicyError::Unsupported { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains(want), "{input}\n  got: {e}\n want: {want}");
        assert!(e.contains("sigstoreSigned and a cosign public key"), "{e}");
    }
}

#[test]
fn bounds() {
    let big = vec![b' '; MAX_POLICY + 1];
    assert_eq!(
        Policy::parse(&big),
        Err(PolicyError::TooLarge(MAX_POLICY + 1))
    );
    let scopes: Vec<String> = (0..=MAX_SCOPES)
        .map(|i| format!(r#""r{i}.io":[{{"type":"reject"}}]"#))
        .collect();
    let many = format!(
        r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{{}}}}}}}"#,
        scopes.join(",")
    );
    assert_eq!(parse(&many), Err(PolicyError::TooManyScopes));
    let fits = format!(
        r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{{}}}}}}}"#,
        scopes[1..].join(",")
    );
    assert_eq!(parse(&fits).unwrap().docker.len(), MAX_SCOPES);
}

fn reference(s: &str) -> Reference {
    s.parse().unwrap()
}

#[test]
fn the_most_specific_scope_applies() {
    let p = parse(&full()).unwrap();
    let scope = |r: &str| p.requirements_for(&reference(r)).0.to_string();
    assert_eq!(scope("quay.io/acme/os:stable"), "quay.io/acme/os:stable");
    assert_eq!(scope("quay.io/acme/os:1"), "quay.io/acme/os");
    assert_eq!(scope(&format!("quay.io/acme/os@{D}")), "quay.io/acme/os");
    assert_eq!(scope("quay.io/acme/other"), "quay.io/acme");
    assert_eq!(scope("quay.io/acme/deep/os"), "quay.io/acme");
    // Not at a path-component boundary.
    assert_eq!(scope("quay.io/acmeco/os"), "");
    assert_eq!(scope("127.0.0.1:5000/os"), "127.0.0.1:5000");
    assert_eq!(scope("reg.example.com/os"), "*.example.com");
    assert_eq!(scope("a.b.example.com:5000/os"), "*.example.com");
    // The wildcard is for subdomains only.
    assert_eq!(scope("example.com/os"), "*.com");
    assert_eq!(scope("ghcr.io/x/y"), "");
    let (s, reqs) = p.requirements_for(&reference("quay.io/acme/os:stable"));
    assert_eq!(
        (s, reqs),
        (
            "quay.io/acme/os:stable",
            &[Requirement::InsecureAcceptAnything][..]
        )
    );

    // Without a transport default, the policy default applies.
    let q = parse(r#"{"default":[{"type":"reject"}],"transports":{"docker":{"quay.io":[{"type":"insecureAcceptAnything"}],"docker.io/library":[{"type":"insecureAcceptAnything"}]}}}"#).unwrap();
    assert_eq!(q.requirements_for(&reference("ghcr.io/x")).0, DEFAULT_SCOPE);
    assert_eq!(
        q.requirements_for(&reference("ghcr.io/x")).1,
        [Requirement::Reject]
    );
    assert_eq!(q.requirements_for(&reference("quay.io/x")).0, "quay.io");
    assert_eq!(
        q.requirements_for(&reference("busybox")).0,
        "docker.io/library"
    );
    assert_eq!(
        q.requirements_for(&reference("someone/busybox")).0,
        DEFAULT_SCOPE
    );

    // A digest scope beats a tag scope for a reference with both.
    let r = parse(&format!(r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"quay.io/os:1":[{{"type":"reject"}}],"quay.io/os@{D}":[{{"type":"insecureAcceptAnything"}}]}}}}}}"#)).unwrap();
    assert_eq!(
        r.requirements_for(&reference(&format!("quay.io/os:1@{D}")))
            .0,
        format!("quay.io/os@{D}")
    );
    assert_eq!(
        r.requirements_for(&reference("quay.io/os:1")).0,
        "quay.io/os:1"
    );
    assert_eq!(
        r.requirements_for(&reference("quay.io/os:2")).0,
        DEFAULT_SCOPE
    );
}

#[test]
fn key_paths_and_loading() {
    let mut p = parse(&full()).unwrap();
    assert_eq!(
        p.key_paths(),
        ["/etc/keys/acme.pub", "/k/old.pub", "/k/new.pub"]
    );
    let mut reads = Vec::new();
    p.load_keys(|path| {
        reads.push(path.to_string());
        Ok(if path == "/k/old.pub" { OTHER } else { P256 }.to_vec())
    })
    .unwrap();
    // Each file is read once.
    assert_eq!(reads, ["/etc/keys/acme.pub", "/k/old.pub", "/k/new.pub"]);
    let Requirement::SigstoreSigned(s) = &p.docker[1].1[0] else {
        panic!()
    };
    assert_eq!(
        s.keys,
        [
            Key::Loaded {
                origin: "/k/old.pub".into(),
                key: PublicKey::from_pem(OTHER).unwrap()
            },
            Key::Loaded {
                origin: "/k/new.pub".into(),
                key: PublicKey::from_pem(P256).unwrap()
            }
        ]
    );
    // Loaded keys still report their paths.
    assert_eq!(
        p.key_paths(),
        ["/etc/keys/acme.pub", "/k/old.pub", "/k/new.pub"]
    );

    let mut p = parse(&full()).unwrap();
    let e = p
        .load_keys(|path| match path {
            "/k/old.pub" => Err("No such file or directory (os error 2)".to_string()),
            _ => Ok(P256.to_vec()),
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"rule transports.docker["quay.io/acme/os"]: key /k/old.pub: No such file or directory (os error 2)"#
    );
    let mut p =
        parse(r#"{"default":[{"type":"sigstoreSigned","keyPath":"/etc/cosign.key"}]}"#).unwrap();
    let e = p
        .load_keys(|_| Ok(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n".to_vec()))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("rule default: key /etc/cosign.key: this is a private key"),
        "{e}"
    );
    assert!(e.contains("give the public key (cosign.pub)"), "{e}");
}

#[test]
fn writing_back_rewrites_paths_and_round_trips() {
    let p = parse(&full()).unwrap();
    let out = p.to_json_with_paths(|path| {
        format!(
            "/etc/wyrcan/keys/{}",
            path.rsplit('/').next().unwrap_or(path)
        )
    });
    let back = Policy::parse(&out).unwrap();
    assert_eq!(
        back.key_paths(),
        [
            "/etc/wyrcan/keys/acme.pub",
            "/etc/wyrcan/keys/old.pub",
            "/etc/wyrcan/keys/new.pub"
        ]
    );
    // Everything else is unchanged, in order.
    let unpath = |p: &Policy| {
        let mut p = p.clone();
        p.load_keys(|_| Ok(P256.to_vec())).unwrap();
        for (_, reqs) in std::iter::once((String::new(), &mut p.default))
            .chain(p.docker.iter_mut().map(|(s, r)| (s.clone(), r)))
        {
            for r in reqs.iter_mut() {
                if let Requirement::SigstoreSigned(s) = r {
                    for k in &mut s.keys {
                        if let Key::Loaded { origin, .. } = k {
                            if origin != KEY_DATA {
                                *origin = String::new();
                            }
                        }
                    }
                }
            }
        }
        p
    };
    assert_eq!(unpath(&back), unpath(&p));
    // keyData stays inline, base64 of the PEM, and other transports go.
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(
        text.contains(&format!(r#""keyData": "{}""#, b64(P256))),
        "{text}"
    );
    assert!(
        text.contains(r#""keyPath": "/etc/wyrcan/keys/acme.pub""#),
        "{text}"
    );
    assert!(!text.contains("atomic"), "{text}");
    // Writing what was read back gives the same bytes.
    assert_eq!(back.to_json_with_paths(str::to_string), out);
    // A policy without docker scopes has no transports.
    let plain = parse(r#"{"default":[{"type":"reject"}]}"#).unwrap();
    assert_eq!(
        plain.to_json_with_paths(str::to_string),
        b"{\n  \"default\": [\n    {\n      \"type\": \"reject\"\n    }\n  ]\n}\n"
    );
}

#[test]
fn identity_rules_display_as_in_the_file() {
    assert_eq!(
        SignedIdentity::MatchRepoDigestOrExact.to_string(),
        "matchRepoDigestOrExact"
    );
    assert_eq!(
        SignedIdentity::RemapIdentity {
            prefix: "a.io/x".into(),
            signed_prefix: "b.io/y".into()
        }
        .to_string(),
        r#"remapIdentity "a.io/x" -> "b.io/y""#
    );
    assert_eq!(rule_name(DEFAULT_SCOPE), "default");
    assert_eq!(rule_name(""), r#"transports.docker[""]"#);
    assert_eq!(
        rule_name("quay.io/acme"),
        r#"transports.docker["quay.io/acme"]"#
    );
}

#[test]
fn name_only() {
    assert!(is_name_only("quay.io/os"));
    assert!(is_name_only("localhost:5000/os"));
    assert!(is_name_only("busybox"));
    assert!(!is_name_only("busybox:1"));
    assert!(!is_name_only("localhost:5000/os:1"));
    assert!(!is_name_only(&format!("quay.io/os@{D}")));
}
