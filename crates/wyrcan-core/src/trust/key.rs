//! Public keys that image signatures are checked against: the
//! SubjectPublicKeyInfo PEM that `cosign generate-key-pair` writes to
//! `cosign.pub` (and `openssl pkey -pubout` writes for any key).
//!
//! The SPKI is split by hand (`trust/der.rs`) because ring verifies with
//! the key inside it but does not parse it; the supported algorithms are
//! the ones cosign makes or accepts from KMS: ECDSA on P-256 and P-384,
//! RSA of 2048 to 8192 bits. Verification takes the DER (ASN.1) signature
//! cosign stores, over the exact payload bytes.

use std::fmt;

use base64::Engine as _;
use ring::signature::{self as sig, UnparsedPublicKey};

use super::der::{self, DerError, Reader};
use crate::digest::Digest;

/// Largest key file read: an RSA-8192 public key PEM is under 1.5 KiB.
const MAX_PEM: usize = 64 * 1024;

/// id-ecPublicKey, 1.2.840.10045.2.1.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 (P-256), 1.2.840.10045.3.1.7.
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// secp384r1 (P-384), 1.3.132.0.34.
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
/// rsaEncryption, 1.2.840.113549.1.1.1.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Names of algorithms and curves we recognize but do not verify, so an
/// error can say more than a number.
const KNOWN_OIDS: &[(&str, &str)] = &[
    ("1.3.101.112", "Ed25519"),
    ("1.3.101.113", "Ed448"),
    ("1.3.101.110", "X25519"),
    ("1.2.840.113549.1.1.10", "RSASSA-PSS with parameters"),
    ("1.2.840.10040.4.1", "DSA"),
    ("1.3.132.0.35", "secp521r1 (P-521)"),
    ("1.3.132.0.10", "secp256k1"),
];

/// PEM labels of private keys: what `cosign generate-key-pair` writes to
/// cosign.key (older versions said COSIGN), and OpenSSL's forms.
const PRIVATE_LABELS: &[&str] = &[
    "PRIVATE KEY",
    "EC PRIVATE KEY",
    "RSA PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

/// A signature algorithm Wyrcan verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256 (what `cosign generate-key-pair` makes).
    EcdsaP256Sha256,
    /// ECDSA on P-384 with SHA-384; SHA-256 is accepted too, since cosign
    /// and containers/image hash with SHA-256 whatever the curve.
    EcdsaP384Sha384,
    /// RSA, PKCS#1 v1.5 or PSS padding, SHA-256, 2048 to 8192 bits.
    Rsa,
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::EcdsaP256Sha256 => "ECDSA P-256",
            Algorithm::EcdsaP384Sha384 => "ECDSA P-384",
            Algorithm::Rsa => "RSA",
        })
    }
}

/// A public key that signatures can be verified with.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: Algorithm,
    /// The whole SubjectPublicKeyInfo DER: what the fingerprint covers.
    spki: Vec<u8>,
    /// What ring takes: the uncompressed EC point or the RSAPublicKey DER.
    key: Vec<u8>,
}

/// Why bytes are not a public key Wyrcan can use. Each message says what
/// to give instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Too large to be a public key.
    #[error(
        "{0} bytes is too large for a public key file (a PEM public key is at most a few KiB)"
    )]
    TooLarge(usize),
    /// No PEM block at all.
    #[error("not PEM: expected a -----BEGIN PUBLIC KEY----- block as cosign generate-key-pair writes to cosign.pub (a DER key converts with openssl pkey -pubin -inform DER -in KEY -out cosign.pub)")]
    NotPem,
    /// A private key was given.
    #[error("this is a private key (PEM {0:?}); give the public key (cosign.pub)")]
    PrivateKey(String),
    /// A certificate was given.
    #[error("this is a certificate; give its public key: openssl x509 -pubkey -noout -in CERT > cosign.pub")]
    Certificate,
    /// A PKCS#1 `RSA PUBLIC KEY` block.
    #[error("this is a PKCS#1 RSA PUBLIC KEY; convert it to a PUBLIC KEY: openssl rsa -RSAPublicKey_in -in KEY -pubout -out cosign.pub")]
    Pkcs1Rsa,
    /// Some other PEM block.
    #[error("the PEM block is {0:?}, not a PUBLIC KEY (give the public key, as in cosign.pub)")]
    OtherLabel(String),
    /// A BEGIN line without its END line.
    #[error("the PEM block {0:?} has no -----END {0}----- line")]
    Unterminated(String),
    /// More than one PEM block.
    #[error("the file holds {0} PEM blocks; give exactly one public key per file")]
    MultipleBlocks(usize),
    /// The base64 between the lines is broken.
    #[error("the PEM block's base64 is invalid: {0}")]
    Base64(String),
    /// The DER is not a SubjectPublicKeyInfo.
    #[error("not a valid public key (SubjectPublicKeyInfo): {0}")]
    Der(#[from] DerError),
    /// A key algorithm Wyrcan does not verify.
    #[error("key algorithm {0} is not supported: Wyrcan verifies ECDSA P-256 and P-384 and RSA 2048 to 8192 bit keys (cosign generate-key-pair makes P-256)")]
    UnsupportedAlgorithm(String),
    /// An EC curve Wyrcan does not verify.
    #[error("EC curve {0} is not supported: Wyrcan verifies P-256 (prime256v1) and P-384 (secp384r1) keys")]
    UnsupportedCurve(String),
    /// An EC point in a form ring cannot use.
    #[error("the {curve} public key is not an uncompressed point ({len} bytes; compressed points are not supported, re-export with openssl pkey -pubin -in KEY -pubout -ec_conv_form uncompressed)")]
    BadPoint {
        /// The curve.
        curve: &'static str,
        /// Length of the key bytes found.
        len: usize,
    },
    /// An RSA key of the wrong size.
    #[error("the RSA key has {0} bits; 2048 to 8192 are supported")]
    RsaSize(usize),
}

impl PublicKey {
    /// One PEM block `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo),
    /// as `cosign generate-key-pair` writes cosign.pub. Text around the
    /// block is allowed (RFC 7468 §2); a second block is not, so a file
    /// cannot name one key and carry another.
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, KeyError> {
        if pem.len() > MAX_PEM {
            return Err(KeyError::TooLarge(pem.len()));
        }
        let text = std::str::from_utf8(pem).map_err(|_| KeyError::NotPem)?;
        let blocks = pem_blocks(text)?;
        let (label, body) = match blocks.as_slice() {
            [] => return Err(KeyError::NotPem),
            [one] => one,
            [first, ..] => {
                // A private key is the worse mistake; say that first.
                if PRIVATE_LABELS.contains(&first.0) {
                    return Err(KeyError::PrivateKey(first.0.to_string()));
                }
                return Err(KeyError::MultipleBlocks(blocks.len()));
            }
        };
        match *label {
            "PUBLIC KEY" => {}
            l if PRIVATE_LABELS.contains(&l) => return Err(KeyError::PrivateKey(l.to_string())),
            "CERTIFICATE" | "TRUSTED CERTIFICATE" => return Err(KeyError::Certificate),
            "RSA PUBLIC KEY" => return Err(KeyError::Pkcs1Rsa),
            l => return Err(KeyError::OtherLabel(l.to_string())),
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| KeyError::Base64(e.to_string()))?;
        PublicKey::from_spki_der(&der)
    }

    /// A DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        if der.len() > MAX_PEM {
            return Err(KeyError::TooLarge(der.len()));
        }
        let mut outer = Reader::new(der);
        let mut spki = outer.sequence()?;
        outer.finish()?;
        let mut alg = spki.sequence()?;
        let oid = alg.oid()?;
        let (algorithm, key) = if oid == OID_EC_PUBLIC_KEY {
            // Only a named curve; explicit curve parameters are a SEQUENCE
            // and fail here as "unexpected tag", which is what they are.
            let curve = alg.oid()?;
            alg.finish()?;
            let key = spki.bit_string()?;
            let (algorithm, name, len) = if curve == OID_P256 {
                (Algorithm::EcdsaP256Sha256, "P-256", 65)
            } else if curve == OID_P384 {
                (Algorithm::EcdsaP384Sha384, "P-384", 97)
            } else {
                return Err(KeyError::UnsupportedCurve(name_oid(curve)));
            };
            if key.len() != len || key.first() != Some(&0x04) {
                return Err(KeyError::BadPoint {
                    curve: name,
                    len: key.len(),
                });
            }
            (algorithm, key)
        } else if oid == OID_RSA {
            // The parameters are NULL; some encoders leave them out.
            if !alg.is_empty() {
                alg.null()?;
            }
            alg.finish()?;
            let key = spki.bit_string()?;
            let bits = rsa_modulus_bits(key)?;
            if !(2048..=8192).contains(&bits) {
                return Err(KeyError::RsaSize(bits));
            }
            (Algorithm::Rsa, key)
        } else {
            return Err(KeyError::UnsupportedAlgorithm(name_oid(oid)));
        };
        spki.finish()?;
        Ok(PublicKey {
            algorithm,
            spki: der.to_vec(),
            key: key.to_vec(),
        })
    }

    /// The signature algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// `sha256:<hex of sha256 over the SPKI DER>`: what booted.json and
    /// messages name a key by. The same key gives the same fingerprint
    /// whatever file or PEM wrapping it came in.
    pub fn fingerprint(&self) -> String {
        Digest::of(&self.spki).to_string()
    }

    /// The key as a `PUBLIC KEY` PEM block (64-column base64, final newline).
    pub fn to_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.spki);
        let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            // base64 output is ASCII, so every chunk is valid UTF-8.
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END PUBLIC KEY-----\n");
        out
    }

    /// Whether `signature` (DER/ASN.1 for ECDSA, raw for RSA) over exactly
    /// `message` was made by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let check = |alg: &'static dyn sig::VerificationAlgorithm| {
            UnparsedPublicKey::new(alg, &self.key)
                .verify(message, signature)
                .is_ok()
        };
        match self.algorithm {
            Algorithm::EcdsaP256Sha256 => check(&sig::ECDSA_P256_SHA256_ASN1),
            Algorithm::EcdsaP384Sha384 => {
                check(&sig::ECDSA_P384_SHA384_ASN1) || check(&sig::ECDSA_P384_SHA256_ASN1)
            }
            Algorithm::Rsa => {
                check(&sig::RSA_PKCS1_2048_8192_SHA256) || check(&sig::RSA_PSS_2048_8192_SHA256)
            }
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.algorithm, self.fingerprint())
    }
}

/// The PEM blocks of `text` as (label, base64 body without whitespace).
fn pem_blocks(text: &str) -> Result<Vec<(&str, String)>, KeyError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut ended = false;
        for line in lines.by_ref() {
            if line == end {
                ended = true;
                break;
            }
            body.extend(line.chars().filter(|c| !c.is_ascii_whitespace()));
        }
        if !ended {
            return Err(KeyError::Unterminated(label.to_string()));
        }
        blocks.push((label, body));
    }
    Ok(blocks)
}

/// Bit length of the modulus of an RSAPublicKey DER; also checks the
/// exponent is there.
fn rsa_modulus_bits(der: &[u8]) -> Result<usize, DerError> {
    let mut outer = Reader::new(der);
    let mut seq = outer.sequence()?;
    outer.finish()?;
    let n = seq.integer()?;
    seq.integer()?;
    seq.finish()?;
    // A positive INTEGER may carry one leading zero byte.
    let n = match n {
        [0, rest @ ..] => rest,
        n => n,
    };
    Ok(match n.first() {
        Some(&top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    })
}

/// `1.2.3 (Name)` when we know the OID's name.
fn name_oid(oid: &[u8]) -> String {
    let dotted = der::oid_to_string(oid);
    match KNOWN_OIDS.iter().find(|(o, _)| *o == dotted) {
        Some((_, name)) => format!("{dotted} ({name})"),
        None => dotted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &[u8] = include_bytes!("testdata/payload.json");
    const P256: &[u8] = include_bytes!("testdata/p256.pub.pem");
    const P256_DER: &[u8] = include_bytes!("testdata/p256.pub.der");
    const P256_SIG: &[u8] = include_bytes!("testdata/p256.sig");
    const OTHER: &[u8] = include_bytes!("testdata/other.pub.pem");
    const P384: &[u8] = include_bytes!("testdata/p384.pub.pem");
    const P384_SIG: &[u8] = include_bytes!("testdata/p384.sig");
    const P384_SHA256_SIG: &[u8] = include_bytes!("testdata/p384-sha256.sig");
    const RSA: &[u8] = include_bytes!("testdata/rsa2048.pub.pem");
    const RSA_SIG: &[u8] = include_bytes!("testdata/rsa2048.sig");
    const RSA_PSS_SIG: &[u8] = include_bytes!("testdata/rsa2048-pss.sig");
    const RSA1024: &[u8] = include_bytes!("testdata/rsa1024.pub.pem");
    const ED25519: &[u8] = include_bytes!("testdata/ed25519.pub.pem");

    fn key(pem: &[u8]) -> PublicKey {
        PublicKey::from_pem(pem).unwrap()
    }

    fn flipped(data: &[u8], byte: usize) -> Vec<u8> {
        let mut v = data.to_vec();
        v[byte] ^= 0x01;
        v
    }

    #[test]
    fn good_signatures_verify() {
        type Case<'a> = (&'a [u8], Algorithm, &'a [&'a [u8]]);
        let cases: &[Case] = &[
            (P256, Algorithm::EcdsaP256Sha256, &[P256_SIG]),
            (
                P384,
                Algorithm::EcdsaP384Sha384,
                &[P384_SIG, P384_SHA256_SIG],
            ),
            (RSA, Algorithm::Rsa, &[RSA_SIG, RSA_PSS_SIG]),
        ];
        for (pem, alg, sigs) in cases {
            let k = key(pem);
            assert_eq!(k.algorithm(), *alg);
            for s in *sigs {
                assert!(k.verify(PAYLOAD, s), "{alg}");
            }
        }
    }

    #[test]
    fn flipped_bits_and_wrong_keys_fail() {
        let all: &[(&[u8], &[u8])] = &[
            (P256, P256_SIG),
            (P384, P384_SIG),
            (RSA, RSA_SIG),
            (RSA, RSA_PSS_SIG),
        ];
        for (pem, s) in all {
            let k = key(pem);
            assert!(!k.verify(&flipped(PAYLOAD, 10), s));
            assert!(!k.verify(&PAYLOAD[..PAYLOAD.len() - 1], s));
            assert!(!k.verify(PAYLOAD, &flipped(s, s.len() / 2)));
            assert!(!k.verify(PAYLOAD, &flipped(s, s.len() - 1)));
            assert!(!k.verify(PAYLOAD, &[]));
            // Every other key refuses this signature.
            for (other, _) in all.iter().filter(|(o, _)| o != pem) {
                assert!(!key(other).verify(PAYLOAD, s));
            }
            assert!(!key(OTHER).verify(PAYLOAD, s));
        }
    }

    #[test]
    fn pem_and_der_give_the_same_key_and_fingerprint() {
        let a = key(P256);
        let b = PublicKey::from_spki_der(P256_DER).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.spki_der(), P256_DER);
        assert_eq!(a.fingerprint(), Digest::of(P256_DER).to_string());
        assert!(a.fingerprint().starts_with("sha256:"));
        assert_ne!(a.fingerprint(), key(OTHER).fingerprint());
        // to_pem round-trips, and is what OpenSSL wrote.
        assert_eq!(key(a.to_pem().as_bytes()), a);
        assert_eq!(a.to_pem().as_bytes(), P256);
        assert_eq!(key(RSA).to_pem().as_bytes(), RSA);
        assert!(format!("{a:?}").contains("ECDSA P-256 sha256:"));
    }

    #[test]
    fn text_around_the_block_and_crlf_are_fine() {
        let mut pem = b"# cosign.pub for the fleet\r\n".to_vec();
        pem.extend(String::from_utf8_lossy(P256).replace('\n', "\r\n").bytes());
        pem.extend(b"trailing comment\n");
        assert_eq!(key(&pem), key(P256));
    }

    fn err(pem: &[u8]) -> KeyError {
        PublicKey::from_pem(pem).unwrap_err()
    }

    #[test]
    fn errors_say_what_to_give_instead() {
        for label in [
            "PRIVATE KEY",
            "EC PRIVATE KEY",
            "ENCRYPTED SIGSTORE PRIVATE KEY",
            "ENCRYPTED COSIGN PRIVATE KEY",
        ] {
            let pem = format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n");
            let e = err(pem.as_bytes());
            assert_eq!(e, KeyError::PrivateKey(label.to_string()));
            assert!(
                e.to_string().contains("give the public key (cosign.pub)"),
                "{e}"
            );
        }
        // A key file with the private key first and the public one after.
        let both = format!(
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n{}",
            String::from_utf8_lossy(P256)
        );
        assert!(matches!(err(both.as_bytes()), KeyError::PrivateKey(_)));
        let two = [P256, OTHER].concat();
        assert_eq!(err(&two), KeyError::MultipleBlocks(2));

        assert_eq!(err(b"hello"), KeyError::NotPem);
        assert_eq!(err(P256_DER), KeyError::NotPem);
        assert!(err(b"").to_string().contains("BEGIN PUBLIC KEY"));
        assert_eq!(
            err(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            KeyError::Certificate
        );
        assert_eq!(
            err(b"-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n"),
            KeyError::Pkcs1Rsa
        );
        assert_eq!(
            err(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nx\n-----END PGP PUBLIC KEY BLOCK-----"),
            KeyError::OtherLabel("PGP PUBLIC KEY BLOCK".into())
        );
        assert_eq!(
            err(b"-----BEGIN PUBLIC KEY-----\nAAAA\n"),
            KeyError::Unterminated("PUBLIC KEY".into())
        );
        assert!(matches!(
            err(b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n"),
            KeyError::Base64(_)
        ));
        assert!(matches!(
            err(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
            KeyError::Der(_)
        ));
        assert_eq!(
            err(&vec![b'a'; MAX_PEM + 1]),
            KeyError::TooLarge(MAX_PEM + 1)
        );

        let e = err(ED25519);
        assert_eq!(
            e,
            KeyError::UnsupportedAlgorithm("1.3.101.112 (Ed25519)".into())
        );
        assert!(e.to_string().contains("Ed25519"), "{e}");
        assert_eq!(err(RSA1024), KeyError::RsaSize(1024));
    }

    /// Hand-built SPKIs around the parts that must be checked.
    #[test]
    fn spki_shapes() {
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            if content.len() < 0x80 {
                v.push(content.len() as u8);
            } else {
                v.extend([0x82, (content.len() >> 8) as u8, content.len() as u8]);
            }
            v.extend(content);
            v
        }
        fn spki(alg: &[&[u8]], key: &[u8]) -> Vec<u8> {
            let alg: Vec<u8> = alg.concat();
            let mut bits = vec![0];
            bits.extend(key);
            tlv(0x30, &[tlv(0x30, &alg), tlv(0x03, &bits)].concat())
        }
        let ec = tlv(0x06, OID_EC_PUBLIC_KEY);
        let p256 = tlv(0x06, OID_P256);
        let mut point = vec![0x04];
        point.extend([1u8; 64]);
        // Well-formed (the point need not be on the curve to parse).
        let good = spki(&[&ec, &p256], &point);
        assert!(PublicKey::from_spki_der(&good).is_ok());
        // Trailing bytes, inside and outside.
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            PublicKey::from_spki_der(&trailing),
            Err(KeyError::Der(DerError::Trailing(1)))
        );
        // Compressed point.
        let compressed = spki(&[&ec, &p256], &[&[0x02][..], &[1u8; 32]].concat());
        assert_eq!(
            PublicKey::from_spki_der(&compressed),
            Err(KeyError::BadPoint {
                curve: "P-256",
                len: 33
            })
        );
        // Unknown curve, named.
        let k1 = tlv(0x06, &[0x2b, 0x81, 0x04, 0x00, 0x0a]);
        assert_eq!(
            PublicKey::from_spki_der(&spki(&[&ec, &k1], &point)),
            Err(KeyError::UnsupportedCurve(
                "1.3.132.0.10 (secp256k1)".into()
            ))
        );
        // Explicit curve parameters.
        let explicit = tlv(0x30, &[]);
        assert!(matches!(
            PublicKey::from_spki_der(&spki(&[&ec, &explicit], &point)),
            Err(KeyError::Der(DerError::UnexpectedTag { .. }))
        ));
        // RSA without the NULL parameters, and with a 4096-bit modulus.
        let mut n = vec![0];
        n.extend([0xffu8; 512]);
        let rsa_key = tlv(0x30, &[tlv(0x02, &n), tlv(0x02, &[1, 0, 1])].concat());
        let rsa = tlv(0x06, OID_RSA);
        let k = PublicKey::from_spki_der(&spki(&[&rsa], &rsa_key)).unwrap();
        assert_eq!(k.algorithm(), Algorithm::Rsa);
        let with_null = spki(&[&rsa, &tlv(0x05, &[])], &rsa_key);
        assert!(PublicKey::from_spki_der(&with_null).is_ok());
        let mut huge = vec![0];
        huge.extend([0xffu8; 1025]);
        let huge_key = tlv(0x30, &[tlv(0x02, &huge), tlv(0x02, &[3])].concat());
        assert_eq!(
            PublicKey::from_spki_der(&spki(&[&rsa], &huge_key)),
            Err(KeyError::RsaSize(8200))
        );
        // An unknown algorithm, by number.
        let unknown = tlv(0x06, &[0x2a, 0x03]);
        assert_eq!(
            PublicKey::from_spki_der(&spki(&[&unknown], &point)),
            Err(KeyError::UnsupportedAlgorithm("1.2.3".into()))
        );
    }

    #[test]
    fn truncations_never_panic() {
        for end in 0..P256_DER.len() {
            assert!(PublicKey::from_spki_der(&P256_DER[..end]).is_err());
        }
        let rsa = key(RSA);
        let der = rsa.spki_der();
        for end in 0..der.len() {
            assert!(PublicKey::from_spki_der(&der[..end]).is_err());
        }
    }
}
