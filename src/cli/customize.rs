//! `wyrcan customize`: the site's settings (default image, credentials,
//! CAs, proxy, network) baked into the boot media, so nothing secret has to
//! ride on the kernel cmdline. The archive is `core::site`'s newc cpio of
//! `/etc/wyrcan/`, gzip-compressed: a compressed member may start at any
//! offset of an initrd (an uncompressed one must start 4-byte aligned), so
//! `cat wyrcan.initrd site.img` works whatever the first file's size.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use flate2::read::GzDecoder;
use wyrcan_core::ipconfig;
use wyrcan_core::reference::Reference;
use wyrcan_core::site::{self, Contents, SiteConfig};

use crate::convert::Staged;

/// `wyrcan customize`.
#[derive(Debug, Args)]
pub struct CustomizeArgs {
    /// Print what a customized initrd or archive holds (secrets masked).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["initrd", "output"])]
    pub show: Option<PathBuf>,
    /// Write this initrd followed by the site archive (wyrcan.initrd).
    #[arg(long, value_name = "FILE")]
    pub initrd: Option<PathBuf>,
    /// Where to write (the customized initrd, or the archive alone).
    #[arg(short, long, value_name = "FILE", required_unless_present = "show")]
    pub output: Option<PathBuf>,
    /// Default image (wyrcan.img on the cmdline still wins).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Default arguments for the image's kernel (as wyrcan.arg; repeatable).
    #[arg(long = "arg", value_name = "ARGS")]
    pub args: Vec<String>,
    /// Registry allowed over plain HTTP or unverified TLS (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
    /// Registry credentials: a containers-auth.json(5) or ~/.docker/config.json
    /// file (`auths` entries with `auth`, `username`/`password` or `identitytoken`).
    #[arg(long, value_name = "FILE")]
    pub auth: Option<PathBuf>,
    /// PEM CA bundle trusted beside the bundled roots (repeatable).
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// HTTP proxy for the registries: http://[USER:PASS@]HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Hosts reached without the proxy (comma-separated, as NO_PROXY).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub no_proxy: Vec<String>,
    /// Network configuration (as ip= on the cmdline; repeatable).
    #[arg(long, value_name = "ip=VALUE")]
    pub ip: Vec<String>,
    /// DNS server (as nameserver=; repeatable).
    #[arg(long, value_name = "ADDR")]
    pub nameserver: Vec<String>,
}

/// Run `wyrcan customize`.
pub fn run(a: CustomizeArgs) -> Result<()> {
    if let Some(file) = &a.show {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let mut out = std::io::stdout().lock();
        return show(&bytes, file, &mut out);
    }
    let output = a
        .output
        .clone()
        .ok_or_else(|| anyhow!("-o FILE is required"))?;
    let contents = contents(&a)?;
    let archive = compressed(&contents)?;
    let mut staged = Staged::new();
    let out = staged.add(&output)?;
    if let Some(initrd) = &a.initrd {
        let base =
            std::fs::read(initrd).with_context(|| format!("reading {}", initrd.display()))?;
        if find(&base).is_some() {
            bail!(
                "{} is already customized: start from the original wyrcan.initrd (settings of two archives would mix)",
                initrd.display()
            );
        }
        staged
            .file(out)
            .write_all(&base)
            .context("writing the initrd")?;
    }
    staged
        .file(out)
        .write_all(&archive)
        .context("writing the site archive")?;
    staged.commit()?;
    eprintln!(
        "wrote {} ({}; mode 0600: it holds credentials, keep it private)",
        output.display(),
        if a.initrd.is_some() {
            "initrd + site settings"
        } else {
            "site settings, to load after wyrcan.initrd"
        }
    );
    Ok(())
}

/// Validate every option and read the files.
fn contents(a: &CustomizeArgs) -> Result<Contents> {
    if let Some(img) = &a.image {
        img.parse::<Reference>()
            .map_err(|e| anyhow!("--image {img}: {e}"))?;
    }
    for ip in &a.ip {
        ipconfig::parse(ip).map_err(|e| anyhow!("--ip {ip}: {e}"))?;
    }
    for ns in &a.nameserver {
        ipconfig::parse_nameserver(ns).map_err(|e| anyhow!("--nameserver {ns}: {e}"))?;
    }
    for host in &a.insecure {
        if host.is_empty() || host.contains('/') || host.chars().any(char::is_whitespace) {
            bail!("--insecure {host:?}: expected HOST[:PORT], e.g. 10.0.0.5:5000");
        }
    }
    if let Some(p) = &a.proxy {
        let ok = p.starts_with("http://") && p.len() > "http://".len();
        if !ok {
            bail!(
                "--proxy {}: expected http://[USER:PASS@]HOST:PORT",
                site::mask_url(p)
            );
        }
    }
    let auth = match &a.auth {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading --auth {}", path.display()))?;
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| anyhow!("--auth {}: not JSON: {e}", path.display()))?;
            if !v.get("auths").is_some_and(|a| a.is_object()) {
                bail!(
                    "--auth {}: no \"auths\" object (expected a containers-auth.json or ~/.docker/config.json)",
                    path.display()
                );
            }
            Some(bytes)
        }
        None => None,
    };
    let mut cas = Vec::new();
    for (i, path) in a.ca.iter().enumerate() {
        crate::registry::check_ca_file(path).with_context(|| format!("--ca {}", path.display()))?;
        let pem =
            std::fs::read(path).with_context(|| format!("reading --ca {}", path.display()))?;
        cas.push((format!("{i:02}.pem"), pem));
    }
    Ok(Contents {
        config: SiteConfig {
            version: site::VERSION,
            image: a.image.clone(),
            args: a.args.clone(),
            insecure: a.insecure.clone(),
            ip: a.ip.clone(),
            nameservers: a.nameserver.clone(),
            proxy: a.proxy.clone(),
            no_proxy: a.no_proxy.clone(),
        },
        auth,
        cas,
    })
}

/// The archive, gzip-compressed with no name or time in the header (the
/// same settings give the same bytes).
pub fn compressed(c: &Contents) -> Result<Vec<u8>> {
    let cpio = site::archive(c).context("building the site archive")?;
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&cpio)?;
    Ok(gz.finish()?)
}

/// The last site archive in `bytes` (an initrd or an archive alone): every
/// gzip member is tried, from the end, until one holds `config.json`.
fn find(bytes: &[u8]) -> Option<Contents> {
    let starts: Vec<usize> = bytes
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0x1f, 0x8b, 0x08])
        .map(|(i, _)| i)
        .collect();
    for &start in starts.iter().rev() {
        let mut cpio = Vec::new();
        // A site archive is a few KiB; stop early on anything bigger.
        let read = GzDecoder::new(&bytes[start..])
            .take(16 << 20)
            .read_to_end(&mut cpio);
        if read.is_err() {
            continue;
        }
        if let Ok(Some(c)) = site::read_archive(&cpio) {
            return Some(c);
        }
    }
    None
}

fn show(bytes: &[u8], file: &Path, out: &mut dyn Write) -> Result<()> {
    let Some(c) = find(bytes) else {
        bail!(
            "{} holds no Wyrcan site settings (not written by wyrcan customize)",
            file.display()
        );
    };
    let cfg = &c.config;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    writeln!(out, "image: {}", opt(&cfg.image))?;
    let lists: [(&str, &[String]); 5] = [
        ("arg", &cfg.args),
        ("insecure", &cfg.insecure),
        ("ip", &cfg.ip),
        ("nameserver", &cfg.nameservers),
        ("no-proxy", &cfg.no_proxy),
    ];
    for (label, values) in lists {
        for v in values {
            writeln!(out, "{label}: {v}")?;
        }
    }
    if let Some(p) = &cfg.proxy {
        writeln!(out, "proxy: {}", site::mask_url(p))?;
    }
    match &c.auth {
        Some(a) => {
            for line in site::describe_auth(a) {
                writeln!(out, "auth: {line}")?;
            }
        }
        None => writeln!(out, "auth: (none)")?,
    }
    for (name, pem) in &c.cas {
        let n = pem
            .windows(27)
            .filter(|w| w == b"-----BEGIN CERTIFICATE-----")
            .count();
        writeln!(
            out,
            "ca: {name} ({n} certificate{})",
            if n == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> CustomizeArgs {
        use clap::Parser;
        let o = crate::cli::Opt::try_parse_from(
            ["wyrcan", "customize", "-o", "x"]
                .iter()
                .chain(extra.iter()),
        )
        .unwrap();
        match o.cmd {
            crate::cli::Cmd::Customize(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn archive_alone_and_after_an_initrd_are_found_and_shown_masked() {
        let dir = tempfile::tempdir().unwrap();
        let auth = dir.path().join("auth.json");
        std::fs::write(
            &auth,
            br#"{"auths":{"reg.lan:5000":{"username":"op","password":"hunter2"}}}"#,
        )
        .unwrap();
        let mut a = args(&[
            "--image",
            "reg.lan:5000/os:1",
            "--arg",
            "quiet",
            "--proxy",
            "http://p:pw@proxy.lan:3128",
            "--no-proxy",
            "a.lan,b.lan",
        ]);
        a.auth = Some(auth);
        let c = contents(&a).unwrap();
        let gz = compressed(&c).unwrap();
        assert_eq!(compressed(&c).unwrap(), gz, "reproducible");
        // After a zstd initrd of an odd length.
        let mut initrd = zstd::encode_all(&b"not really a cpio"[..], 3).unwrap();
        initrd.push(0);
        initrd.extend_from_slice(&gz);
        let mut out = Vec::new();
        show(&initrd, Path::new("i"), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "image: reg.lan:5000/os:1\narg: quiet\nno-proxy: a.lan\nno-proxy: b.lan\nproxy: http://p:***@proxy.lan:3128\nauth: reg.lan:5000: user op, password ***\n"
        );
        assert!(!text.contains("hunter2") && !text.contains(":pw@"));
        let e = show(b"plain", Path::new("p"), &mut Vec::new()).unwrap_err();
        assert!(
            e.to_string().contains("holds no Wyrcan site settings"),
            "{e}"
        );
    }

    #[test]
    fn options_are_checked() {
        for (extra, want) in [
            (&["--image", "Bad//Ref"][..], "--image Bad//Ref: "),
            (&["--ip", "bogus:x"], "--ip bogus:x: "),
            (&["--nameserver", "one"], "--nameserver one: "),
            (&["--insecure", "http://x"], "--insecure"),
            (
                &["--proxy", "socks5://u:pw@h:1"],
                "--proxy socks5://u:***@h:1: expected",
            ),
        ] {
            let e = contents(&args(extra)).unwrap_err().to_string();
            assert!(e.starts_with(want), "{extra:?}: {e}");
        }
    }
}
