//! The one layer in front of every management route of the REST API (`serve-api`, the coming
//! `server`, and any app that mounts [`super::api::app`]), in the manner of Jupyter's server:
//!
//! 1. **Host allowlist** (against DNS rebinding): the request's Host must be a loopback name
//!    (`localhost`, `127.0.0.1`, `[::1]`, any port) or one of `[server] allowed_hosts`; else 403
//!    with a bare error body, before any handler runs.
//! 2. **Token**: `Authorization: Bearer <token>` with the project's API token (compared in
//!    constant time), also on loopback; else 401.
//! 3. **JSON only for side effects**: POST, PUT, PATCH and DELETE need
//!    `Content-Type: application/json`, with or without a body; else 415. An HTML form
//!    (`application/x-www-form-urlencoded`, `multipart/form-data`, `text/plain`) or a
//!    `no-cors` fetch without a content type can therefore never reach a handler.
//!
//! **Public routes** (Host-checked, no token): `GET /openapi.json` and `GET /healthz`. Neither
//! carries project data: the document is the same for every project (it is also written by
//! `serve-api --openapi-out` with no project at all) and tools read it before they know a token;
//! the health route answers `{"status": "ok"}` for readiness probes, which cannot hold a secret.
//! Every other route of the management router, the JSON 404 of unknown paths included, needs
//! the token.
//!
//! The webhooks are not behind this layer: Cloud Scheduler and pipelines call them from
//! elsewhere (another Host) and they prove who they are on their own (Google OIDC or the
//! callback secret).
//!
//! [`check_bind`] refuses to listen on a non-loopback address unless TLS termination is stated
//! (`[server] tls_terminated_by_proxy = true`), so the token never crosses a network in clear.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ring::digest::{digest, SHA256};

use super::api::{ApiError, ErrorKind};
use crate::platform::{ApiToken, ServerSection};

/// Host names the API answers by default (with any port).
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Paths answered without the token (still Host-checked): see the module doc.
pub const PUBLIC_PATHS: [&str; 2] = [super::api::OPENAPI_PATH, super::api::HEALTH_PATH];

/// Why the API may not listen on an address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindError {
    #[error(
        "refusing to serve the API on {0}, a non-loopback address, without TLS: put a \
         TLS-terminating proxy in front and state it with `[server] tls_terminated_by_proxy = \
         true` in trainyard.toml (or --tls-terminated-by-proxy), or listen on 127.0.0.1"
    )]
    NonLoopbackWithoutTls(IpAddr),
}

/// Refuses a non-loopback `ip` (an unspecified address such as 0.0.0.0 included) unless TLS
/// termination is stated.
pub fn check_bind(ip: IpAddr, tls_terminated_by_proxy: bool) -> Result<(), BindError> {
    if ip.is_loopback() || tls_terminated_by_proxy {
        Ok(())
    } else {
        Err(BindError::NonLoopbackWithoutTls(ip))
    }
}

/// The token and Host allowlist the management layer enforces.
#[derive(Clone)]
pub struct ApiSecurity {
    /// SHA-256 of the token: comparing digests takes the same time whatever the length or
    /// the matching prefix of what a caller sent.
    token_digest: Arc<[u8; 32]>,
    /// Lower-case names (`example.com`) or names with a port (`example.com:8443`).
    hosts: Arc<Vec<String>>,
}

impl std::fmt::Debug for ApiSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSecurity")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

impl ApiSecurity {
    /// The token required on every management route; loopback host names allowed.
    pub fn new(token: &ApiToken) -> ApiSecurity {
        ApiSecurity {
            token_digest: Arc::new(sha256(token.value().as_bytes())),
            hosts: Arc::new(LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect()),
        }
    }

    /// Also answers requests whose Host is `host` (a name, or a name with a port).
    pub fn allow_host(mut self, host: &str) -> ApiSecurity {
        let host = normalize(host);
        if !host.is_empty() && !self.hosts.contains(&host) {
            Arc::make_mut(&mut self.hosts).push(host);
        }
        self
    }

    /// The project's token and `[server] allowed_hosts`.
    pub fn from_config(token: &ApiToken, server: &ServerSection) -> ApiSecurity {
        server
            .allowed_hosts
            .iter()
            .fold(ApiSecurity::new(token), |s, h| s.allow_host(h))
    }

    /// The project's token (`TRAINYARD_API_TOKEN` or its token file, created when missing)
    /// and Host allowlist.
    pub fn for_platform(platform: &crate::Platform) -> trainyard_core::Result<ApiSecurity> {
        Ok(ApiSecurity::from_config(
            &platform.api_token()?,
            &platform.config().server,
        ))
    }

    /// Whether `token` is the API token (constant time).
    pub fn token_matches(&self, token: &str) -> bool {
        let got = sha256(token.as_bytes());
        got.iter()
            .zip(self.token_digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// Whether a request with this Host value (`name[:port]`) is answered.
    pub fn host_allowed(&self, host: &str) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        self.hosts.iter().any(|allowed| {
            allowed == "*"
                || *allowed == name
                || port.is_some_and(|p| *allowed == format!("{name}:{p}"))
        })
    }
}

fn normalize(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `name[:port]` of a Host value, lower-cased, without a trailing dot; `None` when it is not
/// a host (empty, a bracket left open, a port that is not a number).
fn split_host(host: &str) -> Option<(String, Option<u16>)> {
    let host = host.trim().to_ascii_lowercase();
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, rest) = host.split_at(end + 1);
        match rest {
            "" => (name.to_string(), None),
            r => (name.to_string(), Some(r.strip_prefix(':')?.parse().ok()?)),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => {
                if name.contains(':') {
                    return None; // an IPv6 literal must be bracketed
                }
                (name.to_string(), Some(port.parse().ok()?))
            }
            None => (host.clone(), None),
        }
    };
    let name = name.trim_end_matches('.').to_string();
    (!name.is_empty()).then_some((name, port))
}

fn refuse(status: StatusCode, kind: ErrorKind, message: &str) -> Response {
    ApiError::new(status, kind, message).into_response()
}

/// The request's Host: the URI's authority (HTTP/2, absolute-form), else the Host header.
fn request_host(req: &Request) -> Option<String> {
    if let Some(a) = req.uri().authority() {
        return Some(a.as_str().to_string());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// The middleware (see the module doc); `axum::middleware::from_fn_with_state` wraps it.
pub async fn guard(State(sec): State<ApiSecurity>, req: Request, next: Next) -> Response {
    match request_host(&req) {
        Some(host) if sec.host_allowed(&host) => {}
        Some(_) => {
            return refuse(
                StatusCode::FORBIDDEN,
                ErrorKind::Forbidden,
                "this Host is not allowed (add it to [server] allowed_hosts)",
            )
        }
        None => {
            return refuse(
                StatusCode::BAD_REQUEST,
                ErrorKind::BadRequest,
                "the request has no Host",
            )
        }
    }
    let public = req.method() == Method::GET && PUBLIC_PATHS.contains(&req.uri().path());
    if !public && !bearer(&req).is_some_and(|t| sec.token_matches(t)) {
        let mut resp = refuse(
            StatusCode::UNAUTHORIZED,
            ErrorKind::Unauthorized,
            "this API needs its token: send `Authorization: Bearer <token>` (the token is in \
             <project>/.trainyard/api_token, printed when the server starts)",
        );
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    let side_effect = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if side_effect && !is_json(&req) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::UnsupportedMediaType,
            "requests that change something need `Content-Type: application/json` (with or \
             without a body)",
        );
    }
    next.run(req).await
}
