//! Trust anchors for TLS: the machine's CA store (unless turned off), the
//! `--ca` files, or the bundled Mozilla roots when there is nothing else
//! (a bare boot environment, or a hermetic test).

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

#[cfg(test)]
mod tests {
    use super::*;

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
