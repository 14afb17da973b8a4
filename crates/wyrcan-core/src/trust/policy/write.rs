//! Writing a policy back as containers-policy.json(5), for `customize
//! --policy` to embed with its keys moved.

use base64::Engine as _;

use super::{Key, Requirement, SignedIdentity, KEY_DATA};
use crate::trust::json::Json;

pub(super) fn requirement_json(r: &Requirement, f: &mut dyn FnMut(&str) -> String) -> Json {
    let ty = |t: &str| ("type".to_string(), Json::String(t.to_string()));
    match r {
        Requirement::InsecureAcceptAnything => Json::Object(vec![ty("insecureAcceptAnything")]),
        Requirement::Reject => Json::Object(vec![ty("reject")]),
        Requirement::SigstoreSigned(s) => {
            let mut fields = vec![ty("sigstoreSigned")];
            let inline = !s.keys.is_empty()
                && s.keys
                    .iter()
                    .all(|k| matches!(k, Key::Loaded { origin, .. } if origin == KEY_DATA));
            let values: Vec<Json> = if inline {
                s.keys
                    .iter()
                    .filter_map(|k| match k {
                        Key::Loaded { key, .. } => Some(Json::String(
                            base64::engine::general_purpose::STANDARD.encode(key.to_pem()),
                        )),
                        Key::Path(_) => None,
                    })
                    .collect()
            } else {
                // A hand-built mix of inline and path keys cannot be written
                // as one requirement: the inline keys are left out, which
                // only ever narrows what is trusted.
                s.keys
                    .iter()
                    .filter_map(|k| match k {
                        Key::Path(p) => Some(p),
                        Key::Loaded { origin, .. } if origin != KEY_DATA => Some(origin),
                        Key::Loaded { .. } => None,
                    })
                    .map(|p| Json::String(f(p)))
                    .collect()
            };
            let (one, many) = if inline {
                ("keyData", "keyDatas")
            } else {
                ("keyPath", "keyPaths")
            };
            match <[Json; 1]>::try_from(values) {
                Ok([v]) => fields.push((one.to_string(), v)),
                Err(values) => fields.push((many.to_string(), Json::Array(values))),
            }
            fields.push(("signedIdentity".to_string(), identity_json(&s.identity)));
            Json::Object(fields)
        }
    }
}

fn identity_json(i: &SignedIdentity) -> Json {
    let s = |k: &str, v: &str| (k.to_string(), Json::String(v.to_string()));
    Json::Object(match i {
        SignedIdentity::MatchRepoDigestOrExact => vec![s("type", "matchRepoDigestOrExact")],
        SignedIdentity::MatchRepository => vec![s("type", "matchRepository")],
        SignedIdentity::MatchExact => vec![s("type", "matchExact")],
        SignedIdentity::ExactReference(r) => {
            vec![s("type", "exactReference"), s("dockerReference", r)]
        }
        SignedIdentity::ExactRepository(r) => {
            vec![s("type", "exactRepository"), s("dockerRepository", r)]
        }
        SignedIdentity::RemapIdentity {
            prefix,
            signed_prefix,
        } => vec![
            s("type", "remapIdentity"),
            s("prefix", prefix),
            s("signedPrefix", signed_prefix),
        ],
    })
}
