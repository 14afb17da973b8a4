//! Requests to one repository at one endpoint (the registry itself, or one
//! of its mirrors, see [`super::fallback`]): the scheme of an insecure
//! registry, redirects (each hop with its own TLS policy; the registry's
//! `Authorization` never leaves the registry), auth challenges (bearer
//! tokens, basic), manifests verified in memory, the route of each request
//! (direct or through a proxy, per URL). Every request carries a deadline
//! (`pace`).

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use tracing::{debug, warn};
use ureq::http::Uri;
use ureq::tls::TlsConfig;
use ureq::Agent;
use wyrcan_core::digest::Digest;
use wyrcan_core::manifest::MANIFEST_ACCEPT;
use wyrcan_core::mirror::Endpoint as MirrorEndpoint;
use wyrcan_core::proxy::ProxyConfig;
use wyrcan_core::reference::Reference;

use super::auth::{self, Credentials};
use super::pace::{Deadline, Limits, Pace};
use super::resolve::DnsResolver;
use super::transport::{
    backoff_delay, default_port, forward_agent, is_insecure, location_is_https, lock, origin,
    proxy_config, proxy_refused, read_limited, resolve_location, retry_after, split_host_port,
    with_what, Agents, Auth, Failure, Route, Sent,
};
use super::{tls, CredentialSource, FetchedManifest, PullOptions, RegistryError};

/// Upper bound of a manifest body; the distribution spec asks registries to
/// accept at least 4 MiB, so anything far above is not a manifest.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// The longest `Retry-After` honoured: a registry asking for more is as
/// good as down for a boot.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Half of `d`, plus up to the other half at random ("equal jitter"): the
/// waits keep growing, and a rack's retries spread out.
fn jitter(d: Duration, r: u32) -> Duration {
    let half = d / 2;
    half + half.mul_f64(f64::from(r) / f64::from(u32::MAX))
}

/// Up to a quarter of `d` more, at random.
fn spread(d: Duration, r: u32) -> Duration {
    (d / 4).mul_f64(f64::from(r) / f64::from(u32::MAX))
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // Without randomness the wait is just not spread; never an error.
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    u32::from_ne_bytes(b)
}

/// How long a mirror may take to accept a connection.
const MIRROR_CONNECT: Duration = Duration::from_secs(3);
/// Redirect hops followed per request (registry → CDN is one or two).
const MAX_REDIRECTS: u32 = 10;

/// Whether an error is the proxy's (it could not be reached, or refused).
fn is_proxy_error(err: &anyhow::Error) -> bool {
    matches!(
        RegistryError::find(err),
        Some(RegistryError::ProxyConnect { .. } | RegistryError::ProxyRefused { .. })
    )
}

/// A client for one repository at one endpoint: the registry, or a mirror
/// of it. `Send + Sync`: share it by reference between download threads.
pub struct Endpoint {
    /// Path before `/v2/` (a mirror's prefix; empty for a registry).
    pub(super) prefix: String,
    /// `?ns=<registry>` on every API request to a mirror, as containerd
    /// sends it: one mirror can serve several registries.
    pub(super) ns: Option<String>,
    /// The mirror this is, for messages (`None`: the registry itself).
    pub(super) mirror: Option<MirrorEndpoint>,
    /// The registry as written in the reference (`docker.io`), for messages.
    pub(super) registry: String,
    /// Where the API answers (`registry-1.docker.io`, `host:port`).
    pub(super) api_host: String,
    /// `api_host` split, lowercased, for comparing against URLs.
    pub(super) api_origin: (String, Option<u16>),
    pub(super) repository: String,
    /// The reference as given, for messages.
    pub(super) image: String,
    pub(super) insecure: Vec<String>,
    /// Whether the registry itself is listed in `insecure`.
    pub(super) registry_insecure: bool,
    pub(super) credentials: Option<Credentials>,
    /// Where the credentials came from or why there are none, for the
    /// message of a refused pull (never a secret).
    pub(super) credentials_note: Option<String>,
    pub(super) retries: u32,
    pub(super) backoff: Duration,
    /// Deadlines and the rate floor of every request.
    pub(super) limits: Limits,
    /// Verifies TLS against the system roots and `--ca` files.
    pub(super) verified: Agents,
    /// Skips TLS verification; used only for hosts listed in `insecure`.
    pub(super) unverified: Agents,
    /// Which URLs go through which proxy.
    pub(super) proxies: ProxyConfig,
    /// Plain `http://` requests through the HTTP proxy, in absolute form.
    pub(super) forward: Option<Agent>,
    /// `http` or `https` for an insecure registry, found by the first request.
    pub(super) scheme: Mutex<Option<&'static str>>,
    /// The `Authorization` value for the registry, once a challenge was met.
    pub(super) auth: Mutex<Option<String>>,
}

impl Endpoint {
    /// A client for `reference`'s repository. Reads the `--ca` files and the
    /// system roots now, so a bad CA file fails here rather than mid-pull;
    /// looks up the credentials now too (running a credential helper if the
    /// host's auth files name one: its failure is an error here).
    pub fn new(
        reference: &Reference,
        opts: &PullOptions,
        mirror: Option<&MirrorEndpoint>,
    ) -> anyhow::Result<Endpoint> {
        let (registry, api_host) = match mirror {
            Some(m) => (m.host.clone(), m.host.clone()),
            None => (
                reference.registry().to_string(),
                reference.api_host().to_string(),
            ),
        };
        let mut insecure = opts.insecure.clone();
        // An http:// mirror was written so by the operator: plain HTTP to
        // that host (its bytes are verified by digest all the same).
        let fixed_scheme = match mirror {
            Some(m) if m.scheme == "http" => {
                insecure.push(m.host.clone());
                Some("http")
            }
            Some(_) => Some("https"),
            None => None,
        };
        let registry_insecure = fixed_scheme == Some("http")
            || is_insecure(&opts.insecure, &registry)
            || is_insecure(&opts.insecure, &api_host);
        let (h, p) = split_host_port(&api_host);
        let api_origin = (h.to_ascii_lowercase(), p);

        let found = match &opts.credentials {
            CredentialSource::Given(c) => auth::Lookup {
                credentials: Some(c.clone()),
                note: None,
            },
            CredentialSource::Anonymous => auth::Lookup::default(),
            // A broken auth file is skipped with a warning (a pull that
            // needs no credentials must not fail for it); a failed helper
            // is an error.
            CredentialSource::AuthFiles => auth::lookup(&registry)
                .with_context(|| format!("looking up the credentials for {registry}"))?,
            CredentialSource::AuthFile(path) => auth::lookup_file(path, &registry)?,
        };

        let roots = tls::root_certs(&opts.ca_files, opts.system_roots)?;
        let mut limits = Limits::new(opts);
        if mirror.is_some() {
            limits.connect = MIRROR_CONNECT;
        }
        let proxies = proxy_config(opts)?;
        if !proxies.is_empty() {
            debug!("proxies: {proxies}");
        }
        let https_proxy = proxies.https.as_ref();
        let resolver = DnsResolver::new(&opts.dns);
        let verified = Agents::new(
            TlsConfig::builder().root_certs(roots).build(),
            &limits,
            https_proxy,
            &resolver,
        )?;
        let unverified = Agents::new(
            TlsConfig::builder().disable_verification(true).build(),
            &limits,
            https_proxy,
            &resolver,
        )?;
        let forward = match &proxies.http {
            Some(p) => Some(forward_agent(p, &limits, &resolver)?),
            None => None,
        };
        if registry_insecure && mirror.is_none() {
            warn!("registry {registry} is insecure: plain HTTP or unverified TLS (image digests are still verified)");
        }

        Ok(Endpoint {
            prefix: mirror.map(|m| m.prefix.clone()).unwrap_or_default(),
            ns: mirror.map(|_| reference.registry().to_string()),
            mirror: mirror.cloned(),
            registry,
            api_host,
            api_origin,
            repository: reference.repository().to_string(),
            image: reference.to_string(),
            insecure,
            registry_insecure,
            credentials: found.credentials,
            credentials_note: found.note,
            // A mirror gets one retry: the next endpoint is the better bet.
            retries: if mirror.is_some() {
                opts.retries.min(1)
            } else {
                opts.retries
            },
            backoff: opts.backoff,
            limits,
            verified,
            unverified,
            proxies,
            forward,
            scheme: Mutex::new(fixed_scheme),
            auth: Mutex::new(None),
        })
    }

    /// GET `/v2/<repo>/manifests/<reference>` (a tag or a digest) with
    /// `Accept: MANIFEST_ACCEPT`. Returns the body, its content type and the
    /// sha256 of the body. With `expected`, a body that hashes differently is
    /// retried and then an error; it is never returned.
    pub fn fetch_manifest(
        &self,
        reference: &str,
        expected: Option<&Digest>,
    ) -> anyhow::Result<FetchedManifest> {
        self.fetch_document("manifests", reference, expected)
    }

    /// HEAD `/v2/<repo>/manifests/<tag>`: the digest the tag points at,
    /// from `Docker-Content-Digest` (`None` when the registry sends none).
    /// How a tag is resolved when its manifest should then come from a
    /// mirror, by digest, as containerd does.
    pub fn head_manifest(&self, tag: &str) -> anyhow::Result<Option<Digest>> {
        let what = || format!("resolving {}", self.image_at(tag));
        self.retrying(what, || {
            let (sent, _) = self.request_document(true, "manifests", tag)?;
            Ok(sent
                .resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Digest>().ok()))
        })
    }

    /// GET `/v2/<repo>/referrers/<digest>` (OCI distribution 1.1): the
    /// index of manifests whose `subject` is `digest`. `None` when the
    /// registry has no such API (404, 400, 405, 406 — what registries
    /// without it answer) or nothing refers to it.
    pub fn fetch_referrers(&self, digest: &Digest) -> anyhow::Result<Option<FetchedManifest>> {
        match self.fetch_document("referrers", &digest.to_string(), None) {
            Ok(m) => Ok(Some(m)),
            Err(e) => match RegistryError::find(&e) {
                Some(RegistryError::ManifestNotFound { .. }) => Ok(None),
                Some(RegistryError::Status {
                    status: 400 | 405 | 406,
                    ..
                }) => Ok(None),
                _ => Err(e),
            },
        }
    }

    /// GET (or HEAD) `/v2/<repo>/<endpoint>/<reference>` with `Accept:
    /// MANIFEST_ACCEPT`, under a fixed deadline (returned, for reading the
    /// body): a 404 is [`RegistryError::ManifestNotFound`], any status but
    /// 200 a failure.
    fn request_document(
        &self,
        head: bool,
        endpoint: &str,
        reference: &str,
    ) -> Result<(Sent, Deadline), Failure> {
        let url = self.api_url(&format!("{endpoint}/{reference}"))?;
        let deadline = self.limits.fixed();
        let sent = self.send_with(
            head,
            &url,
            &[("Accept", MANIFEST_ACCEPT.to_string())],
            Auth::Registry,
            &deadline,
        )?;
        match sent.resp.status().as_u16() {
            200 => Ok((sent, deadline)),
            404 => Err(Failure::fatal(RegistryError::ManifestNotFound {
                image: self.image_at(reference),
                registry: self.registry.clone(),
            })),
            _ => Err(self.status_failure(&sent)),
        }
    }

    fn fetch_document(
        &self,
        endpoint: &str,
        reference: &str,
        expected: Option<&Digest>,
    ) -> anyhow::Result<FetchedManifest> {
        let what = || match endpoint {
            "manifests" => format!("fetching manifest {}", self.image_at(reference)),
            _ => format!("fetching the {endpoint} of {}", self.image_at(reference)),
        };
        self.retrying(what, || {
            let (sent, deadline) = self.request_document(false, endpoint, reference)?;
            let header = |name: &str| {
                sent.resp
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let content_type = header("content-type");
            let announced = header("docker-content-digest");
            let pace = Pace::start(self.limits, deadline);
            let body =
                read_limited(sent.resp, MAX_MANIFEST_BYTES, &sent.url, pace)?.ok_or_else(|| {
                    Failure::fatal(anyhow!(
                        "{}: manifest is larger than {MAX_MANIFEST_BYTES} bytes",
                        sent.url
                    ))
                })?;
            let digest = Digest::of(&body);
            if let Some(expected) = expected {
                if *expected != digest {
                    return Err(Failure::transient(RegistryError::DigestMismatch {
                        what: format!("manifest {expected}"),
                        url: sent.url,
                        expected: expected.clone(),
                        actual: digest,
                    }));
                }
            } else if let Some(announced) = announced.filter(|a| *a != digest.to_string()) {
                // Only informative: the body's own hash is what gets pinned.
                debug!(
                    "{}: Docker-Content-Digest {announced} differs from the body's {digest}",
                    sent.url
                );
            }
            Ok(FetchedManifest {
                body,
                content_type,
                digest,
            })
        })
    }

    /// Run `op` until it succeeds, fails for good, or the retries are spent.
    pub(super) fn retrying<T>(
        &self,
        what: impl Fn() -> String,
        mut op: impl FnMut() -> Result<T, Failure>,
    ) -> anyhow::Result<T> {
        // Bounded by `retries`.
        for attempt in 0.. {
            match op() {
                Ok(v) => return Ok(v),
                Err(f) if !f.transient => return Err(with_what(f.err, what)),
                Err(f) if attempt >= self.retries => {
                    return Err(f.err.context(format!(
                        "{}: giving up after {} attempts",
                        what(),
                        attempt + 1
                    )))
                }
                Err(f) => {
                    let delay = self.delay(attempt, f.retry_after);
                    warn!(
                        "{}: {:#}; retrying in {delay:?} ({}/{})",
                        what(),
                        f.err,
                        attempt + 1,
                        self.retries
                    );
                    std::thread::sleep(delay);
                }
            }
        }
        unreachable!("the retry loop returns")
    }

    /// The wait before retry number `failures` (0-based): the backoff
    /// with jitter, so machines that failed together (a rack rebooting at
    /// once) do not come back together; at least the server's
    /// `Retry-After` (429, 503), capped, plus a spread of its own.
    pub(super) fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = jitter(backoff_delay(self.backoff, failures), random_u32());
        match retry_after {
            Some(r) => {
                let r = r.min(MAX_RETRY_AFTER);
                backoff.max(r + spread(r, random_u32()))
            }
            None => backoff,
        }
    }

    /// `scheme://api_host`. For an insecure registry the first call finds out
    /// whether it speaks plain HTTP or only TLS.
    pub(super) fn base(&self) -> Result<String, Failure> {
        if !self.registry_insecure {
            return Ok(format!("https://{}", self.api_host));
        }
        let mut scheme = lock(&self.scheme);
        if let Some(s) = *scheme {
            return Ok(format!("{s}://{}", self.api_host));
        }
        let found = self.probe_scheme()?;
        *scheme = Some(found);
        Ok(format!("{found}://{}", self.api_host))
    }

    /// Plain HTTP first; a TLS-only server refuses it (connection error, or
    /// Go's "400 client sent an HTTP request to an HTTPS server"), and then
    /// HTTPS without verification is tried.
    pub(super) fn probe_scheme(&self) -> Result<&'static str, Failure> {
        let http_url = format!("http://{}{}/v2/", self.api_host, self.prefix);
        let probe = |url: &str| {
            let route = self.route_url(url);
            route
                .get(url)
                .config()
                .timeout_global(Some(self.limits.fixed))
                .build()
                .call()
                .map_err(|e| (route, e))
        };
        let mut http_err = match probe(&http_url) {
            // `http://` redirected to `https://`: the server wants TLS.
            Ok(r) if r.status().is_redirection() && location_is_https(&r) => None,
            Ok(r) if r.status().as_u16() != 400 => {
                debug!("insecure registry {} speaks plain HTTP", self.api_host);
                return Ok("http");
            }
            Ok(_) => None,
            Err((route, e)) => Some(route.failure(self.limits, self.limits.fixed(), &http_url, e)),
        };
        // The proxy failed, not the registry: HTTPS would not fare better.
        if let Some(f) = http_err.take_if(|f| is_proxy_error(&f.err)) {
            return Err(f);
        }
        let https_url = format!("https://{}{}/v2/", self.api_host, self.prefix);
        match probe(&https_url) {
            Ok(_) => {
                debug!("insecure registry {} speaks TLS only", self.api_host);
                Ok("https")
            }
            // Something answered HTTP (if only with 400): keep to it.
            Err(_) if http_err.is_none() => Ok("http"),
            Err((route, e)) => Err(route.failure(self.limits, self.limits.fixed(), &https_url, e)),
        }
    }

    pub(super) fn blob_url(&self, digest: &Digest) -> Result<String, Failure> {
        self.api_url(&format!("blobs/{digest}"))
    }

    /// `scheme://host[/prefix]/v2/<repo>/<path>[?ns=<registry>]`.
    pub(super) fn api_url(&self, path: &str) -> Result<String, Failure> {
        let ns = match &self.ns {
            Some(r) => format!("?ns={r}"),
            None => String::new(),
        };
        Ok(format!(
            "{}{}/v2/{}/{path}{ns}",
            self.base()?,
            self.prefix,
            self.repository
        ))
    }

    /// What the logs call this endpoint: `mirror http://cache.lan:5000` or
    /// the registry's name.
    pub fn name(&self) -> String {
        match &self.mirror {
            Some(m) => format!("mirror {m}"),
            None => self.registry.clone(),
        }
    }

    /// Whether this is a mirror that may answer tag lookups, or the registry.
    pub(super) fn resolves_tags(&self) -> bool {
        self.mirror.as_ref().is_none_or(|m| m.resolve)
    }

    /// `registry/repo:tag` or `registry/repo@digest`, for messages.
    pub(super) fn image_at(&self, reference: &str) -> String {
        let sep = if reference.contains(':') { '@' } else { ':' };
        format!("{}/{}{sep}{reference}", self.registry, self.repository)
    }

    pub(super) fn blob_not_found(&self, digest: &Digest, url: &str) -> RegistryError {
        RegistryError::BlobNotFound {
            digest: digest.clone(),
            image: self.image.clone(),
            registry: self.registry.clone(),
            url: url.to_string(),
        }
    }

    pub(super) fn unauthorized(&self, status: u16) -> RegistryError {
        self.unauthorized_because(status, None)
    }

    /// [`Client::unauthorized`], with what went wrong when it is known
    /// better than "refused" (it goes before the credentials' note).
    pub(super) fn unauthorized_because(&self, status: u16, why: Option<String>) -> RegistryError {
        let hint = why
            .into_iter()
            .chain(self.credentials_note.clone())
            .map(|n| format!("; {n}"))
            .collect();
        RegistryError::Unauthorized {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            status,
            hint,
        }
    }

    /// An error unless `uri` is HTTPS, or plain HTTP to a host the user
    /// allowed with `--insecure`.
    pub(super) fn check_scheme(&self, url: &str, uri: &Uri) -> Result<(), Failure> {
        if uri.scheme_str() == Some("https") {
            return Ok(());
        }
        let allowed = uri.scheme_str() == Some("http")
            && uri
                .authority()
                .is_some_and(|a| is_insecure(&self.insecure, a.as_str()));
        if allowed {
            return Ok(());
        }
        let host = uri.authority().map_or("", |a| a.as_str());
        Err(Failure::fatal(anyhow!(
            "refusing {url}: not HTTPS (allow plain HTTP to this host with --insecure {host})"
        )))
    }

    /// A failure for a status the caller does not handle itself.
    pub(super) fn status_failure(&self, sent: &Sent) -> Failure {
        let status = sent.resp.status().as_u16();
        let uri: Option<Uri> = sent.url.parse().ok();
        let from_registry = uri.as_ref().is_some_and(|u| self.is_registry(u));
        let err = RegistryError::Status {
            url: sent.url.clone(),
            status,
        };
        if from_registry && matches!(status, 401 | 403) {
            return Failure::fatal(self.unauthorized(status));
        }
        // A CDN's 401/403 is usually an expired signed URL: the registry
        // hands out a fresh one on the next attempt.
        let transient = matches!(status, 408 | 429 | 500..=599)
            || (!from_registry && matches!(status, 401 | 403));
        let err = match (&sent.via, status) {
            // A plain-HTTP request through a proxy: the gateway errors may
            // be the proxy's own.
            (Some(p), 502..=504) => anyhow::Error::from(err).context(format!(
                "through proxy {p} (if the registry is up, check that the proxy can reach it)"
            )),
            _ => err.into(),
        };
        Failure {
            err,
            transient,
            retry_after: retry_after(&sent.resp),
        }
    }

    /// Whether `uri` points at the registry's API host.
    pub(super) fn is_registry(&self, uri: &Uri) -> bool {
        let (host, port) = &self.api_origin;
        origin(uri)
            .is_some_and(|(h, p)| h == *host && p == port.unwrap_or_else(|| default_port(uri)))
    }

    /// How a request to `uri` goes: unverified TLS only for hosts the user
    /// listed; through the proxy `wyrcan_core::proxy` picks for its scheme
    /// and host (none for loopback and `NO_PROXY` hosts), else direct.
    pub(super) fn route(&self, uri: &Uri) -> Route<'_> {
        let listed = uri
            .authority()
            .is_some_and(|a| is_insecure(&self.insecure, a.as_str()));
        let agents = if listed {
            &self.unverified
        } else {
            &self.verified
        };
        let scheme = uri.scheme_str().unwrap_or("");
        let proxy =
            origin(uri).and_then(|(host, port)| self.proxies.proxy_for(scheme, &host, port));
        match (proxy, scheme, &agents.tunnel, &self.forward) {
            (Some(p), "https", Some(tunnel), _) => Route::Tunnel(tunnel, p),
            (Some(p), "http", _, Some(forward)) => Route::Forward(forward, p),
            _ => Route::Direct(&agents.direct),
        }
    }

    pub(super) fn route_url(&self, url: &str) -> Route<'_> {
        match url.parse::<Uri>() {
            Ok(uri) => self.route(&uri),
            Err(_) => Route::Direct(&self.verified.direct),
        }
    }

    /// GET `url`, following redirects and answering auth challenges, all
    /// within `deadline` (which keeps running while the body is read);
    /// returns whatever final status the server gave.
    pub(super) fn send(
        &self,
        url: &str,
        headers: &[(&str, String)],
        auth: Auth<'_>,
        deadline: &Deadline,
    ) -> Result<Sent, Failure> {
        self.send_with(false, url, headers, auth, deadline)
    }

    /// [`Endpoint::send`], as a HEAD request when `head`.
    pub(super) fn send_with(
        &self,
        head: bool,
        url: &str,
        headers: &[(&str, String)],
        auth: Auth<'_>,
        deadline: &Deadline,
    ) -> Result<Sent, Failure> {
        let mut url = url.to_string();
        let mut authenticated = false;
        let first_origin = url.parse::<Uri>().ok().as_ref().and_then(origin);
        // Bounded: each pass follows a redirect (at most MAX_REDIRECTS) or
        // answers a challenge (at most once), or returns.
        let mut hops = 0;
        loop {
            let uri: Uri = url
                .parse()
                .map_err(|e| Failure::fatal(anyhow!("invalid URL {url:?}: {e}")))?;
            self.check_scheme(&url, &uri)?;
            let header_value = match &auth {
                Auth::Registry if self.is_registry(&uri) => lock(&self.auth).clone(),
                Auth::Fixed(Some(v)) if origin(&uri) == first_origin => Some(v.to_string()),
                _ => None,
            };
            let route = self.route(&uri);
            if let Some(p) = route.proxy() {
                debug!("GET {url} through proxy {p}");
            }
            let mut req = if head {
                route.head(&url)
            } else {
                route.get(&url)
            };
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            if let Some(v) = &header_value {
                req = req.header("Authorization", v);
            }
            let resp = req
                .config()
                .timeout_global(Some(deadline.left()))
                .build()
                .call()
                .map_err(|e| route.failure(self.limits, *deadline, &url, e))?;
            let status = resp.status().as_u16();
            if let (Route::Forward(_, p), 407) = (route, status) {
                return Err(proxy_refused(p, &url, status));
            }

            if status == 401 && matches!(auth, Auth::Registry) && self.is_registry(&uri) {
                if authenticated {
                    return Err(Failure::fatal(self.unauthorized(401)));
                }
                self.authenticate(&resp, header_value.as_deref())?;
                authenticated = true;
                continue;
            }
            if resp.status().is_redirection() {
                if let Some(loc) = resp.headers().get("location").and_then(|v| v.to_str().ok()) {
                    hops += 1;
                    if hops > MAX_REDIRECTS {
                        return Err(Failure::fatal(anyhow!(
                            "{url}: more than {MAX_REDIRECTS} redirects"
                        )));
                    }
                    let next = resolve_location(&uri, loc)
                        .ok_or_else(|| Failure::fatal(anyhow!("{url}: bad redirect to {loc:?}")))?;
                    debug!("{url} redirects to {next}");
                    url = next;
                    continue;
                }
            }
            let via = match route {
                Route::Forward(_, p) => Some(p.to_string()),
                Route::Direct(_) | Route::Tunnel(..) => None,
            };
            return Ok(Sent { resp, url, via });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_keeps_half_and_spreads_the_rest() {
        let d = Duration::from_secs(4);
        assert_eq!(jitter(d, 0), Duration::from_secs(2));
        assert_eq!(jitter(d, u32::MAX), d);
        let mid = jitter(d, u32::MAX / 2);
        assert!(mid > Duration::from_secs(2) && mid < d, "{mid:?}");
        assert_eq!(spread(d, 0), Duration::ZERO);
        assert_eq!(spread(d, u32::MAX), Duration::from_secs(1));
        // Two machines drawing differently wait differently.
        assert_ne!(jitter(d, 1 << 30), jitter(d, 3 << 30));
    }
}
