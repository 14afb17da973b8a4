//! Trust anchors for TLS: the machine's CA store (unless turned off), the
//! `--ca` files, or the bundled Mozilla roots when there is nothing else
//! (a bare boot environment, or a hermetic test). And the one TLS failure
//! that is about this machine rather than the registry: a clock outside the
//! certificate's validity ([`CertTime`]).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tracing::{debug, info, warn};
use ureq::tls::{Certificate, PemItem, RootCerts};

/// Trust anchors: the system's roots (when `use_system`) plus the `--ca` files. Without any
/// system roots (a bare boot environment) and no `--ca`, the bundled
/// Mozilla roots.
pub(super) fn root_certs(ca_files: &[PathBuf], use_system: bool) -> anyhow::Result<RootCerts> {
    let mut extra = Vec::new();
    for path in ca_files {
        extra.extend(read_ca_file(path)?);
    }
    let system = if use_system {
        rustls_native_certs::load_native_certs()
    } else {
        rustls_native_certs::CertificateResult::default()
    };
    for e in &system.errors {
        debug!("loading system CA roots: {e}");
    }
    if system.certs.is_empty() && extra.is_empty() {
        info!("no system CA roots found: using the bundled roots");
        return Ok(RootCerts::WebPki);
    }
    if system.certs.is_empty() && use_system {
        warn!("no system CA roots found: trusting only the --ca files");
    }
    let mut certs: Vec<Certificate<'static>> = system
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    certs.extend(extra);
    Ok(RootCerts::new_with_certs(&certs))
}

/// The certificates of a PEM file; an error when it holds none.
pub(super) fn read_ca_file(path: &Path) -> anyhow::Result<Vec<Certificate<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("reading CA file {}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let PemItem::Certificate(c) =
            item.with_context(|| format!("parsing CA file {}", path.display()))?
        {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        anyhow::bail!("CA file {} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// A certificate refused only for its validity period, with the times
/// (UNIX seconds): most often this machine's clock is wrong (a board whose
/// clock starts in 1970 or 2000 until NTP sets it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertTime {
    /// The clock says a time before the certificate's `notBefore`.
    NotYetValid {
        /// The certificate's `notBefore`, when TLS said it.
        not_before: Option<u64>,
        /// What this machine's clock said.
        now: u64,
    },
    /// The clock says a time after the certificate's `notAfter`.
    Expired {
        /// The certificate's `notAfter`, when TLS said it.
        not_after: Option<u64>,
        /// What this machine's clock said.
        now: u64,
    },
}

impl CertTime {
    /// The message of a TLS failure with `host` for this reason.
    pub fn message(&self, host: &str) -> String {
        match self {
            CertTime::NotYetValid { not_before, now } => format!(
                "the certificate of {host} is not valid {} but this machine's clock says {}: \
                 set the clock (or wait for NTP), then retry",
                not_before.map_or("yet".to_string(), |t| format!("until {}", utc(t))),
                utc(*now)
            ),
            CertTime::Expired { not_after, now } => format!(
                "the certificate of {host} {} but this machine's clock says {}: if the clock \
                 is wrong, set it (or wait for NTP), then retry; if not, the registry must \
                 renew its certificate",
                not_after.map_or("has expired".to_string(), |t| format!(
                    "is not valid after {}",
                    utc(t)
                )),
                utc(*now)
            ),
        }
    }
}

/// Whether TLS refused the server's certificate for its validity period.
/// rustls reports a handshake failure as an `io::Error` of kind
/// `InvalidData` around its own error (ureq passes it on as
/// `ureq::Error::Io`), or as `ureq::Error::Rustls`.
pub(super) fn cert_time(e: &ureq::Error) -> Option<CertTime> {
    let err: &rustls::Error = match e {
        ureq::Error::Rustls(r) => r,
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref()?,
        _ => return None,
    };
    let rustls::Error::InvalidCertificate(cert) = err else {
        return None;
    };
    let clock = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    use rustls::CertificateError as C;
    Some(match cert {
        C::NotValidYetContext { time, not_before } => CertTime::NotYetValid {
            not_before: Some(not_before.as_secs()),
            now: time.as_secs(),
        },
        C::NotValidYet => CertTime::NotYetValid {
            not_before: None,
            now: clock(),
        },
        C::ExpiredContext { time, not_after } => CertTime::Expired {
            not_after: Some(not_after.as_secs()),
            now: time.as_secs(),
        },
        C::Expired => CertTime::Expired {
            not_after: None,
            now: clock(),
        },
        _ => return None,
    })
}

/// `YYYY-MM-DD hh:mm:ss UTC` for UNIX seconds (proleptic Gregorian).
pub(super) fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rest = secs % 86_400;
    // Howard Hinnant's civil_from_days, shifted to start years in March.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(7_258_118_400), "2200-01-01 00:00:00 UTC");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
    }

    #[test]
    fn clock_errors_are_recognized() {
        use rustls::pki_types::UnixTime;
        use std::time::Duration;
        let t = |s| UnixTime::since_unix_epoch(Duration::from_secs(s));
        let wrap = |c: rustls::CertificateError| {
            ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(c),
            ))
        };
        let e = wrap(rustls::CertificateError::NotValidYetContext {
            time: t(0),
            not_before: t(1_700_000_000),
        });
        let got = cert_time(&e).unwrap();
        assert_eq!(
            got.message("r.io:443"),
            "the certificate of r.io:443 is not valid until 2023-11-14 22:13:20 UTC but this \
             machine's clock says 1970-01-01 00:00:00 UTC: set the clock (or wait for NTP), then retry"
        );
        let e = ureq::Error::Rustls(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ExpiredContext {
                time: t(1_700_000_000),
                not_after: t(0),
            },
        ));
        let text = cert_time(&e).unwrap().message("r.io");
        assert!(text.starts_with("the certificate of r.io is not valid after 1970-01-01 00:00:00 UTC but this machine's clock says 2023-11-14"), "{text}");
        assert!(matches!(
            cert_time(&wrap(rustls::CertificateError::NotValidYet)),
            Some(CertTime::NotYetValid {
                not_before: None,
                ..
            })
        ));
        assert!(matches!(
            cert_time(&wrap(rustls::CertificateError::Expired)),
            Some(CertTime::Expired {
                not_after: None,
                ..
            })
        ));
        assert_eq!(
            cert_time(&wrap(rustls::CertificateError::UnknownIssuer)),
            None
        );
        assert_eq!(cert_time(&ureq::Error::ConnectionFailed), None);
        let other = ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, "x"));
        assert_eq!(cert_time(&other), None);
    }

    #[test]
    fn ca_files() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["reg.lan".to_string()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, cert.cert.pem()).unwrap();
        assert_eq!(read_ca_file(&good).unwrap().len(), 1);
        root_certs(std::slice::from_ref(&good), false).unwrap();

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let err = read_ca_file(&empty).unwrap_err();
        assert!(
            format!("{err:#}").contains("holds no PEM certificate"),
            "{err:#}"
        );
        let missing = dir.path().join("missing.pem");
        assert!(format!("{:#}", read_ca_file(&missing).unwrap_err()).contains("missing.pem"));
    }
}
