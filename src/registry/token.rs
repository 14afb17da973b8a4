//! Auth challenges of a 401: a bearer token from the realm (GET with basic
//! credentials, or an OAuth2 refresh-token POST for an identity token), or
//! basic credentials.

use anyhow::anyhow;
use tracing::debug;
use ureq::http::{Response, Uri};
use ureq::Body;

use super::auth::{self, Challenge, Credentials};
use super::pace::{Deadline, Pace};
use super::transport::{lock, percent_encode, read_limited, Auth, Failure, Route, Sent};
use super::Endpoint;

/// Upper bound of a token endpoint answer.
const MAX_TOKEN_BYTES: u64 = 1 << 20;
/// The `client_id` of an OAuth2 token request.
const CLIENT_ID: &str = "wyrcan";

impl Endpoint {
    /// Meet the challenge of a 401: fetch a bearer token, or use basic
    /// credentials. `sent` is the header the refused request carried.
    pub(super) fn authenticate(
        &self,
        resp: &Response<Body>,
        sent: Option<&str>,
    ) -> Result<(), Failure> {
        // Holding the lock across the token request makes threads that were
        // refused together wait for one token instead of each fetching one.
        let mut cached = lock(&self.auth);
        if cached.as_deref() != sent {
            // Another thread already got a newer header: use it.
            return Ok(());
        }
        let challenges: Vec<Challenge> = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(auth::parse_challenge)
            .collect();
        let bearer = challenges
            .iter()
            .find(|c| matches!(c, Challenge::Bearer { .. }));
        match bearer.or(challenges.first()) {
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let refresh = self.credentials.as_ref().and_then(Credentials::refresh_token);
                let token = match refresh {
                    Some(refresh) => {
                        self.refresh_token(realm, service.as_deref(), scope.as_deref(), refresh)?
                    }
                    None => self.fetch_token(realm, service.as_deref(), scope.as_deref())?,
                };
                *cached = Some(format!("Bearer {token}"));
            }
            Some(Challenge::Basic) => match &self.credentials {
                Some(c) if c.refresh_token().is_some() => {
                    return Err(Failure::fatal(self.unauthorized_because(
                        401,
                        Some(format!(
                            "the credentials are an identity token, which only a token \
                             server takes, and {} asks for a user name and password",
                            self.registry
                        )),
                    )))
                }
                Some(c) => *cached = Some(c.basic_header()),
                None => return Err(Failure::fatal(self.unauthorized(401))),
            },
            None => {
                return Err(Failure::fatal(anyhow!(
                    "{}: registry {} answered 401 without a challenge we can answer (WWW-Authenticate: {:?})",
                    self.unauthorized(401),
                    self.registry,
                    resp.headers().get("www-authenticate")
                )))
            }
        }
        Ok(())
    }

    /// GET a token from the realm of a bearer challenge, with basic auth
    /// when we have credentials (anonymous pulls work without).
    pub(super) fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<String, Failure> {
        let default_scope = format!("repository:{}:pull", self.repository);
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for (k, v) in [
            ("service", service),
            ("scope", Some(scope.unwrap_or(&default_scope))),
        ] {
            if let Some(v) = v {
                url.push(sep);
                url.push_str(k);
                url.push('=');
                url.push_str(&percent_encode(v));
                sep = '&';
            }
        }
        debug!("fetching a token from {url}");
        let basic = self.credentials.as_ref().map(Credentials::basic_header);
        let deadline = self.limits.fixed();
        let sent = self.send(&url, &[], Auth::Fixed(basic.as_deref()), &deadline)?;
        self.read_token(sent, deadline, false)
    }

    /// Trade an identity token (an OAuth2 refresh token) for an access
    /// token, as Docker does: `POST` to the realm of a bearer challenge,
    /// `grant_type=refresh_token&service=…&scope=…&client_id=wyrcan&refresh_token=…`.
    pub(super) fn refresh_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
        refresh: &str,
    ) -> Result<String, Failure> {
        let default_scope = format!("repository:{}:pull", self.repository);
        let mut form = vec![("grant_type", "refresh_token")];
        if let Some(service) = service {
            form.push(("service", service));
        }
        form.push(("scope", scope.unwrap_or(&default_scope)));
        form.push(("client_id", CLIENT_ID));
        form.push(("refresh_token", refresh));
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        let uri: Uri = realm
            .parse()
            .map_err(|e| Failure::fatal(anyhow!("invalid token realm {realm:?}: {e}")))?;
        self.check_scheme(realm, &uri)?;
        debug!("trading the identity token for an access token at {realm}");
        let deadline = self.limits.fixed();
        let route = self.route(&uri);
        let resp = route
            .post(realm)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .config()
            .timeout_global(Some(deadline.left()))
            .build()
            .send(body.join("&").as_bytes())
            .map_err(|e| route.failure(self.limits, deadline, realm, e))?;
        let via = match route {
            Route::Forward(_, p) => Some(p.to_string()),
            _ => None,
        };
        let sent = Sent {
            resp,
            url: realm.to_string(),
            via,
        };
        self.read_token(sent, deadline, true)
    }

    /// The token in a token endpoint's answer: `token` or `access_token`
    /// (the OAuth2 name, first when `oauth`). An OAuth2 server refuses a
    /// bad refresh token with 400 `invalid_grant` (RFC 6749 §5.2).
    fn read_token(&self, sent: Sent, deadline: Deadline, oauth: bool) -> Result<String, Failure> {
        match sent.resp.status().as_u16() {
            200 => {}
            status if status == 401 || status == 403 || (oauth && status == 400) => {
                let why = oauth.then(|| {
                    format!(
                        "the token server {} refused the identity token (log in again)",
                        sent.url
                    )
                });
                return Err(Failure::fatal(self.unauthorized_because(status, why)));
            }
            _ => return Err(self.status_failure(&sent)),
        }
        let pace = Pace::start(self.limits, deadline);
        let body = read_limited(sent.resp, MAX_TOKEN_BYTES, &sent.url, pace)?.ok_or_else(|| {
            Failure::fatal(anyhow!(
                "token endpoint {} sent more than {MAX_TOKEN_BYTES} bytes",
                sent.url
            ))
        })?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            Failure::fatal(anyhow!(
                "token endpoint {} sent invalid JSON ({})",
                sent.url,
                auth::json_problem(&e)
            ))
        })?;
        let (first, second) = if oauth {
            (answer.access_token, answer.token)
        } else {
            (answer.token, answer.access_token)
        };
        first
            .filter(|t| !t.is_empty())
            .or(second.filter(|t| !t.is_empty()))
            .ok_or_else(|| Failure::fatal(anyhow!("token endpoint {} sent no token", sent.url)))
    }
}
