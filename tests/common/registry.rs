//! The real `docker-registry` (distribution 2.8) on 127.0.0.1, plain HTTP or
//! TLS with basic auth, in a temp dir; stopped on drop, and by a watchdog
//! when the test process ends (for the shared instance in a `static`).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tempfile::TempDir;

/// A second name in the TLS registry's certificate (beside IP 127.0.0.1).
/// Nothing resolves it but the test proxy (`connect_proxy`), which maps it
/// to 127.0.0.1: a registry addressed as `registry.test:PORT` is reachable
/// through that proxy only (`.test` is reserved, RFC 6761).
pub const PROXIED_NAME: &str = "registry.test";

/// A running registry server.
pub struct Registry {
    child: Child,
    dir: TempDir,
    port: u16,
    ca: Option<PathBuf>,
    creds: Option<(String, String)>,
    agent: ureq::Agent,
}

/// The registry shared by all tests of one test binary (each test uses its
/// own repository name).
pub fn shared() -> &'static Registry {
    static SHARED: OnceLock<Registry> = OnceLock::new();
    SHARED.get_or_init(Registry::start)
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().unwrap().port()
}

fn agent(ca_pem: Option<&[u8]>) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)));
    if let Some(pem) = ca_pem {
        let cert = ureq::tls::Certificate::from_pem(pem).expect("parsing test CA");
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
                .build(),
        );
    }
    config.build().new_agent()
}

struct Tls {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn make_tls() -> Tls {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Wyrcan test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string(), PROXIED_NAME.to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    Tls {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

impl Registry {
    /// Starts a plain-HTTP registry, anonymous, on a free loopback port.
    pub fn start() -> Registry {
        Registry::launch(None, None)
    }

    /// Starts a TLS registry (certificate for IP 127.0.0.1 and
    /// [`PROXIED_NAME`] from a fresh test CA, see [`Registry::ca_path`])
    /// requiring HTTP basic auth for `user`/`pass`.
    pub fn start_tls_basic(user: &str, pass: &str) -> Registry {
        Registry::launch(Some((user, pass)), None)
    }

    /// Starts a plain-HTTP pull-through cache of `upstream` (the registry's
    /// own proxy mode, `proxy.remoteurl`): it fetches what it lacks from
    /// `upstream`, keeps it, and refuses pushes.
    pub fn start_cache_of(upstream: &Registry) -> Registry {
        Registry::launch(None, Some(&upstream.base_url()))
    }

    fn launch(auth: Option<(&str, &str)>, remote: Option<&str>) -> Registry {
        let mut last = String::new();
        for _attempt in 0..3 {
            match Registry::try_launch(auth, remote) {
                Ok(r) => return r,
                Err(e) => last = e,
            }
        }
        panic!("docker-registry did not start: {last}");
    }

    fn try_launch(auth: Option<(&str, &str)>, remote: Option<&str>) -> Result<Registry, String> {
        let dir = tempfile::Builder::new()
            .prefix("wyrcan-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n  formatter: text\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: false\n  \
             cache:\n    blobdescriptor: inmemory\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: wyrcan-test-secret\n",
            data.display()
        );
        if let Some(url) = remote {
            config.push_str(&format!("proxy:\n  remoteurl: {url}\n"));
        }
        let mut ca = None;
        let mut ca_pem = None;
        if let Some((user, pass)) = auth {
            let tls = make_tls();
            let ca_path = dir.path().join("ca.pem");
            fs::write(&ca_path, &tls.ca_pem).unwrap();
            fs::write(dir.path().join("cert.pem"), &tls.cert_pem).unwrap();
            fs::write(dir.path().join("key.pem"), &tls.key_pem).unwrap();
            let hash = bcrypt::hash(pass, 5).unwrap();
            fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "  tls:\n    certificate: {0}/cert.pem\n    key: {0}/key.pem\n\
                 auth:\n  htpasswd:\n    realm: wyrcan-test\n    path: {0}/htpasswd\n",
                dir.path().display()
            ));
            ca = Some(ca_path);
            ca_pem = Some(tls.ca_pem);
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();

        // The watchdog stops the registry (and removes its storage) when the
        // test process is gone: a `static` registry is never dropped. It
        // gives up after 2 hours at most.
        let script = r#"
            docker-registry serve "$1" & r=$!
            trap 'kill $r 2>/dev/null; wait $r; exit 0' TERM INT
            i=0
            while [ $i -lt 14400 ] && kill -0 "$2" 2>/dev/null && kill -0 $r 2>/dev/null; do
                sleep 0.5; i=$((i+1))
            done
            kill $r 2>/dev/null; wait $r
            rm -rf "$3"
        "#;
        let child = {
            use std::os::unix::process::CommandExt as _;
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg("sh")
                .arg(&config_path)
                .arg(std::process::id().to_string())
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .env_remove("REGISTRY_HTTP_ADDR")
                .process_group(0)
                .spawn()
                .expect("running docker-registry (apt-get install docker-registry)")
        };
        let mut registry = Registry {
            child,
            dir,
            port,
            ca,
            creds: auth.map(|(u, p)| (u.to_string(), p.to_string())),
            agent: agent(ca_pem.as_deref().map(str::as_bytes)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        for _ in 0..600 {
            if Instant::now() > deadline {
                break;
            }
            if let Ok(Some(status)) = registry.child.try_wait() {
                return Err(format!("exited with {status}: {}", registry.log()));
            }
            let url = format!("{}/v2/", registry.base_url());
            if let Ok(resp) = registry.agent.get(&url).call() {
                let code = resp.status().as_u16();
                if code == 200 || (code == 401 && registry.creds.is_some()) {
                    return Ok(registry);
                }
            }
            sleep(Duration::from_millis(50));
        }
        Err(format!(
            "no answer on {}: {}",
            registry.addr(),
            registry.log()
        ))
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://…` for the TLS registry.
    pub fn base_url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr())
    }

    /// The PEM file of the CA that signed the TLS registry's certificate.
    pub fn ca_path(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// The credentials the registry requires, if any.
    pub fn creds(&self) -> Option<(&str, &str)> {
        self.creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// An HTTP agent that trusts this registry (no proxy, statuses not errors).
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// Adds this registry's credentials (HTTP basic), if it has any.
    pub fn authorize<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match self.creds() {
            Some((user, pass)) => {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                req.header("Authorization", format!("Basic {token}"))
            }
            None => req,
        }
    }

    /// The server's log so far (warnings, errors and access lines).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Our own process group: the watchdog shell and the registry it runs.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
