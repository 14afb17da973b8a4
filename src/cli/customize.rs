//! `wyrcan customize`: the site's settings (default image, credentials,
//! CAs, proxy, network) baked into the boot media, so nothing secret has to
//! ride on the kernel cmdline. The archive is `core::site`'s newc cpio of
//! `/etc/wyrcan/`, gzip-compressed: a compressed member may start at any
//! offset of an initrd (an uncompressed one must start 4-byte aligned), so
//! `cat wyrcan.initrd site.img` works whatever the first file's size.
//!
//! `--iso` writes the archive into a copy of `wyrcan.iso`, in the site area
//! `scripts/build-iso` reserved for it (`core::site_area`): no ISO or FAT
//! tool is needed, and only the bytes of that area change.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use flate2::read::GzDecoder;
use wyrcan_core::ipconfig;
use wyrcan_core::reference::Reference;
use wyrcan_core::site::{self, Contents, SiteConfig};
use wyrcan_core::site_area::{self, Area};

use crate::convert::Staged;

/// `wyrcan customize`.
#[derive(Debug, Args)]
pub struct CustomizeArgs {
    /// Print what a customized initrd, ISO or archive holds (secrets masked).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["initrd", "iso", "output"])]
    pub show: Option<PathBuf>,
    /// Write this initrd followed by the site archive (wyrcan.initrd).
    #[arg(long, value_name = "FILE", conflicts_with = "iso")]
    pub initrd: Option<PathBuf>,
    /// Write a copy of this ISO (wyrcan.iso from scripts/build-iso) whose boot
    /// entry loads the site archive; an ISO customized before gets new settings.
    #[arg(long, value_name = "FILE")]
    pub iso: Option<PathBuf>,
    /// Where to write (the customized initrd or ISO, or the archive alone).
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
    /// Registry mirror, REGISTRY=URL[,URL…] (as wyrcan.mirror; repeatable):
    /// tried before the registry, content verified by digest.
    #[arg(long, value_name = "REGISTRY=URL")]
    pub mirror: Vec<String>,
    /// NTP server that sets the clock before any TLS connection (as
    /// wyrcan.ntp; repeatable).
    #[arg(long, value_name = "HOST")]
    pub ntp: Vec<String>,
    /// Trust policy, containers-policy.json(5): images it rejects are not
    /// booted. The public keys it names are embedded too.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// TPM PCR to measure the boot into (as wyrcan.pcr; default 12).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=23))]
    pub pcr: Option<u32>,
    /// How booted images are held (as wyrcan.root): cpio (unpacked),
    /// squashfs (compressed, about a third of the RAM) or auto.
    #[arg(long, value_enum)]
    pub root: Option<super::Root>,
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
    if let Some(iso) = &a.iso {
        let bytes = std::fs::read(iso).with_context(|| format!("reading {}", iso.display()))?;
        let (custom, replaced) =
            customize_iso(bytes, &archive).with_context(|| format!("{}", iso.display()))?;
        staged
            .file(out)
            .write_all(&custom)
            .context("writing the ISO")?;
        staged.commit()?;
        eprintln!(
            "wrote {} ({}; mode 0600: it holds credentials, keep it private)",
            output.display(),
            if replaced {
                "the ISO with new site settings, replacing its earlier ones"
            } else {
                "the ISO with site settings"
            }
        );
        return Ok(());
    }
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
    for n in &a.ntp {
        if n.is_empty() || n.contains(['/', ' ', '@']) {
            bail!("--ntp {n:?}: expected a host name or address, e.g. time.lan or 10.0.0.1");
        }
    }
    for m in &a.mirror {
        wyrcan_core::mirror::parse(m).map_err(|e| anyhow!("--mirror {m}: {e}"))?;
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
    let (policy, keys) = match &a.policy {
        Some(path) => {
            let (p, k) = crate::cli::policy::embed(path)?;
            (Some(p), k)
        }
        None => (None, Vec::new()),
    };
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
            mirrors: a.mirror.clone(),
            ntp: a.ntp.clone(),
            pcr: a.pcr,
            root: a.root.map(Into::into),
        },
        auth,
        cas,
        policy,
        keys,
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

/// `iso` with `archive` in its site area; true if the area held settings
/// already (they are replaced whole: the rest of the area is zeroed).
/// Refuses an area holding anything else, and an ISO whose initrd carries
/// settings itself (the two archives' files would mix at boot).
fn customize_iso(mut iso: Vec<u8>, archive: &[u8]) -> Result<(Vec<u8>, bool)> {
    let area = site_area::find(&iso)?;
    let replaced = match area_contents(&iso, &area) {
        AreaContents::Empty => false,
        AreaContents::Settings => true,
        AreaContents::Other => bail!(
            "the site area at offset {} holds something other than Wyrcan site settings: \
             refusing to overwrite it (rebuild the ISO with scripts/build-iso)",
            area.offset
        ),
    };
    let range = area.range();
    if find(&iso[..range.start]).is_some() || find(&iso[range.end..]).is_some() {
        bail!(
            "its wyrcan.initrd already carries site settings (built from a customized initrd): \
             rebuild the ISO from the original wyrcan.initrd (settings of two archives would mix)"
        );
    }
    site_area::write(&mut iso, &area, archive)?;
    Ok((iso, replaced))
}

/// What the payload of a site area holds.
#[derive(Debug, PartialEq, Eq)]
enum AreaContents {
    /// Zeros: not customized.
    Empty,
    /// A site archive, then zeros.
    Settings,
    /// Anything else.
    Other,
}

fn area_contents(iso: &[u8], area: &Area) -> AreaContents {
    let payload = &iso[area.payload()];
    if payload.iter().all(|&b| b == 0) {
        return AreaContents::Empty;
    }
    let mut gz = flate2::bufread::GzDecoder::new(payload);
    let mut cpio = Vec::new();
    if (&mut gz).take(16 << 20).read_to_end(&mut cpio).is_err() {
        return AreaContents::Other;
    }
    let rest = gz.into_inner();
    match site::read_archive(&cpio) {
        Ok(Some(_)) if rest.iter().all(|&b| b == 0) => AreaContents::Settings,
        _ => AreaContents::Other,
    }
}

/// The last site archive in `bytes` (an initrd, an ISO or an archive
/// alone): every gzip member is tried, from the end, until one holds
/// `config.json`.
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
        if site_area::find(bytes).is_ok() {
            bail!(
                "{} holds no Wyrcan site settings (an ISO whose site area is empty: \
                 wyrcan customize --iso {} -o OUT writes them)",
                file.display(),
                file.display()
            );
        }
        bail!(
            "{} holds no Wyrcan site settings (not written by wyrcan customize)",
            file.display()
        );
    };
    let cfg = &c.config;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    writeln!(out, "image: {}", opt(&cfg.image))?;
    let lists: [(&str, &[String]); 7] = [
        ("ntp", &cfg.ntp),
        ("arg", &cfg.args),
        ("insecure", &cfg.insecure),
        ("mirror", &cfg.mirrors),
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
    if let Some(pcr) = cfg.pcr {
        writeln!(out, "pcr: {pcr}")?;
    }
    if let Some(root) = cfg.root {
        writeln!(out, "root: {}", root.as_str())?;
    }
    match &c.policy {
        Some(p) => {
            for line in crate::cli::policy::describe(p, &c.keys) {
                writeln!(out, "policy: {line}")?;
            }
        }
        None => writeln!(out, "policy: (none: every image is booted as served)")?,
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

    fn args_err(extra: &[&str]) -> String {
        use clap::Parser;
        crate::cli::Opt::try_parse_from(
            ["wyrcan", "customize", "-o", "x"]
                .iter()
                .chain(extra.iter()),
        )
        .unwrap_err()
        .to_string()
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
            "image: reg.lan:5000/os:1\narg: quiet\nno-proxy: a.lan\nno-proxy: b.lan\nproxy: http://p:***@proxy.lan:3128\nauth: reg.lan:5000: user op, password ***\npolicy: (none: every image is booted as served)\n"
        );
        assert!(!text.contains("hunter2") && !text.contains(":pw@"));
        let e = show(b"plain", Path::new("p"), &mut Vec::new()).unwrap_err();
        assert!(
            e.to_string().contains("holds no Wyrcan site settings"),
            "{e}"
        );
    }

    fn noise(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// Stands in for wyrcan.iso: other bytes (a zstd initrd among them),
    /// the area, more bytes.
    fn fake_iso(area_size: usize) -> (Vec<u8>, usize) {
        let mut iso = noise(300_000, 11);
        iso.extend(zstd::encode_all(&noise(5000, 3)[..], 3).unwrap());
        let offset = iso.len();
        iso.extend(site_area::placeholder(area_size));
        iso.extend(noise(200_000, 13));
        (iso, offset)
    }

    fn customize(iso: &Path, out: &Path, extra: &[&str]) -> Result<()> {
        let mut argv = vec!["--iso", iso.to_str().unwrap()];
        argv.extend_from_slice(extra);
        let mut a = args(&argv);
        a.output = Some(out.to_path_buf());
        run(a)
    }

    fn shown(bytes: &[u8]) -> Result<String> {
        let mut out = Vec::new();
        show(bytes, Path::new("f.iso"), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn an_iso_gets_the_settings_in_its_site_area_and_nowhere_else() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (plain, offset) = fake_iso(site_area::AREA_SIZE);
        let plain_path = dir.path().join("wyrcan.iso");
        std::fs::write(&plain_path, &plain).unwrap();
        let e = shown(&plain).unwrap_err().to_string();
        assert!(
            e.contains("holds no Wyrcan site settings (an ISO whose site area is empty"),
            "{e}"
        );

        let custom_path = dir.path().join("custom.iso");
        customize(&plain_path, &custom_path, &["--image", "reg.lan/os:1"]).unwrap();
        let custom = std::fs::read(&custom_path).unwrap();
        let mode = std::fs::metadata(&custom_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(custom.len(), plain.len());
        let area = site_area::find(&custom).unwrap();
        assert_eq!(area.offset, offset);
        let differ: Vec<usize> = (0..plain.len())
            .filter(|&i| plain[i] != custom[i])
            .collect();
        assert!(!differ.is_empty());
        assert!(
            differ.iter().all(|i| area.payload().contains(i)),
            "bytes outside the area's payload changed"
        );
        assert_eq!(
            shown(&custom).unwrap(),
            "image: reg.lan/os:1\nauth: (none)\npolicy: (none: every image is booted as served)\n"
        );
        assert_eq!(area_contents(&custom, &area), AreaContents::Settings);

        // Reproducible; customizing again replaces the settings whole.
        let again = dir.path().join("again.iso");
        customize(&plain_path, &again, &["--image", "reg.lan/os:1"]).unwrap();
        assert!(std::fs::read(&again).unwrap() == custom, "two runs differ");
        let twice = dir.path().join("twice.iso");
        customize(&custom_path, &twice, &["--arg", "quiet"]).unwrap();
        let direct = dir.path().join("direct.iso");
        customize(&plain_path, &direct, &["--arg", "quiet"]).unwrap();
        let twice = std::fs::read(&twice).unwrap();
        assert!(
            twice == std::fs::read(&direct).unwrap(),
            "the old settings left traces"
        );
        assert_eq!(
            shown(&twice).unwrap(),
            "image: (none)\narg: quiet\nauth: (none)\npolicy: (none: every image is booted as served)\n"
        );
        // In place, too (the output is renamed over the input).
        customize(&plain_path, &plain_path, &["--image", "reg.lan/os:1"]).unwrap();
        assert!(std::fs::read(&plain_path).unwrap() == custom);
    }

    #[test]
    fn an_iso_without_a_usable_area_is_refused() {
        let c = contents(&args(&["--image", "reg.lan/os:1"])).unwrap();
        let archive = compressed(&c).unwrap();

        let e = customize_iso(noise(100_000, 5), &archive).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "not a Wyrcan ISO with a site area: rebuild it with scripts/build-iso"
        );

        // Something else in the area (a fragmented file, another tool).
        let (mut iso, offset) = fake_iso(8192);
        let area = site_area::find(&iso).unwrap();
        iso[area.payload().start + 100] = 1;
        let e = format!("{:#}", customize_iso(iso, &archive).unwrap_err());
        assert!(
            e.contains(&format!(
                "site area at offset {offset} holds something other"
            )),
            "{e}"
        );
        // A site archive followed by other bytes is "something else" too.
        let (iso, _) = fake_iso(8192);
        let (mut iso, _) = customize_iso(iso, &archive).unwrap();
        iso[area.payload().end - 1] = 1;
        assert!(customize_iso(iso, &archive).is_err());

        // Settings in the ISO's initrd already: they would mix.
        let (mut iso, _) = fake_iso(8192);
        iso.splice(1000..1000, archive.iter().copied());
        let e = format!("{:#}", customize_iso(iso, &archive).unwrap_err());
        assert!(
            e.contains("its wyrcan.initrd already carries site settings"),
            "{e}"
        );

        // Too big for the area: both sizes named, nothing written.
        let (iso, _) = fake_iso(1024);
        let room = 1024 - site_area::head(1024).len();
        let e = format!("{:#}", customize_iso(iso, &noise(2000, 1)).unwrap_err());
        assert!(
            e.contains(&format!(
                "take 2000 bytes compressed, but the ISO's site area holds {room}"
            )),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.iso");
        std::fs::write(&small, fake_iso(600).0).unwrap();
        let out = dir.path().join("out.iso");
        let e = format!(
            "{:#}",
            customize(&small, &out, &["--image", "reg.lan/os:1"]).unwrap_err()
        );
        assert!(
            e.starts_with(&format!("{}: the site settings take", small.display())),
            "{e}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "an output was left"
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
            (
                &["--mirror", "docker.io=cache.lan"],
                "--mirror docker.io=cache.lan: ",
            ),
        ] {
            let e = contents(&args(extra)).unwrap_err().to_string();
            assert!(e.starts_with(want), "{extra:?}: {e}");
        }
        let c = contents(&args(&["--mirror", "*=resolve+http://cache.lan:5000"])).unwrap();
        assert_eq!(c.config.mirrors, ["*=resolve+http://cache.lan:5000"]);
        let mut out = Vec::new();
        show(&compressed(&c).unwrap(), Path::new("s"), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("mirror: *=resolve+http://cache.lan:5000\n"),
            "{text}"
        );
    }

    #[test]
    fn a_policy_is_embedded_with_its_keys_under_etc_wyrcan_keys() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("cosign.pub");
        std::fs::write(
            &key,
            include_bytes!("../../crates/wyrcan-core/src/trust/testdata/p256.pub.pem"),
        )
        .unwrap();
        let policy = dir.path().join("policy.json");
        std::fs::write(
            &policy,
            format!(
                r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"reg.lan/os":[{{"type":"sigstoreSigned","keyPaths":["{k}","{k}"]}}]}}}}}}"#,
                k = key.display()
            ),
        )
        .unwrap();
        let mut a = args(&["--pcr", "15", "--root", "auto"]);
        a.policy = Some(policy.clone());
        let c = contents(&a).unwrap();
        assert_eq!(c.keys.len(), 1, "one file per distinct key");
        assert_eq!(c.keys[0].0, "0-cosign.pub");
        let embedded = String::from_utf8(c.policy.clone().unwrap()).unwrap();
        assert!(
            embedded.contains("/etc/wyrcan/keys/0-cosign.pub"),
            "{embedded}"
        );
        assert!(
            !embedded.contains(&dir.path().display().to_string()),
            "{embedded}"
        );
        let mut out = Vec::new();
        show(&compressed(&c).unwrap(), Path::new("s"), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("pcr: 15\n"), "{text}");
        assert!(text.contains("root: auto\n"), "{text}");
        assert!(text.contains("policy: default: reject\n"), "{text}");
        assert!(
            text.contains("sigstoreSigned by any of the keys (sha256:")
                && text.contains("0-cosign.pub"),
            "{text}"
        );

        // A key that is not a public key, and an unknown type: refused here.
        std::fs::write(
            &key,
            b"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = format!("{:#}", contents(&a).unwrap_err());
        assert!(e.contains("private key"), "{e}");
        std::fs::write(&policy, br#"{"default":[{"type":"acceptAll"}]}"#).unwrap();
        let e = format!("{:#}", contents(&a).unwrap_err());
        assert!(e.contains("acceptAll"), "{e}");
        let e = args_err(&["--pcr", "24"]);
        assert!(e.contains("24"), "{e}");
    }
}
