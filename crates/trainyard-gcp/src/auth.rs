//! Access tokens for Google APIs, found the way Application Default Credentials are:
//! `GOOGLE_APPLICATION_CREDENTIALS` (a service-account key: JWT-bearer grant to its `token_uri`;
//! or gcloud user credentials: refresh-token grant), then gcloud's well-known
//! `application_default_credentials.json`, then the metadata server (`GCE_METADATA_HOST` or
//! `metadata.google.internal`). Tokens are cached and refreshed before they expire.
//!
//! Nothing here logs or formats a token, a refresh token or a private key: they live in
//! [`Secret`], whose `Debug` and `Display` print `***`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::{ApiEndpoints, RetrySettings};
use crate::error::{GcpError, GcpResult};
use crate::http::{retry_loop, Attempt};

/// OAuth2 scope of every API this crate calls.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint, used when a credential file names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
pub const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A string that must never be printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An access token and when to stop using it.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: Secret,
    /// When the cache fetches a new one (before the real expiry).
    pub refresh_at: Instant,
}

/// A service-account key file (`"type": "service_account"`).
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key: Secret,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default)]
    pub token_uri: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// gcloud's user credentials (`"type": "authorized_user"`).
#[derive(Clone, Deserialize)]
pub struct AuthorizedUser {
    pub client_id: String,
    pub client_secret: Secret,
    pub refresh_token: Secret,
    #[serde(default)]
    pub token_uri: Option<String>,
}

impl fmt::Debug for AuthorizedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizedUser")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Where tokens come from.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// JWT-bearer grant (RFC 7523) signed with the key, posted to `token_uri`.
    ServiceAccount {
        key: ServiceAccountKey,
        token_uri: String,
    },
    /// Refresh-token grant posted to `token_uri`.
    AuthorizedUser {
        user: AuthorizedUser,
        token_uri: String,
    },
    /// The GCE / Cloud Run metadata server at `host[:port]`.
    MetadataServer { host: String },
    /// A fixed token (e.g. from `gcloud auth print-access-token`).
    Static(Secret),
    /// No Authorization header (emulators).
    Anonymous,
}

#[derive(Deserialize)]
struct FileType {
    #[serde(rename = "type")]
    kind: String,
}

impl Credentials {
    /// Parses a credential file: a service-account key or gcloud user credentials.
    /// `token_override` replaces the file's token_uri (tests, private endpoints).
    pub fn from_json(json: &str, token_override: Option<&str>) -> GcpResult<Self> {
        let kind: FileType = serde_json::from_str(json)
            .map_err(|e| GcpError::Auth(format!("credential file is not JSON with a type: {e}")))?;
        match kind.kind.as_str() {
            "service_account" => {
                let key: ServiceAccountKey = serde_json::from_str(json).map_err(|e| {
                    GcpError::Auth(format!("service-account key: {}", strip_values(&e)))
                })?;
                let token_uri = token_override
                    .map(str::to_string)
                    .or_else(|| key.token_uri.clone())
                    .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
                // Fail early on an unusable key rather than at the first API call.
                signing_key(&key)?;
                Ok(Credentials::ServiceAccount { key, token_uri })
            }
            "authorized_user" => {
                let user: AuthorizedUser = serde_json::from_str(json).map_err(|e| {
                    GcpError::Auth(format!("authorized_user credentials: {}", strip_values(&e)))
                })?;
                let token_uri = token_override
                    .map(str::to_string)
                    .or_else(|| user.token_uri.clone())
                    .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
                Ok(Credentials::AuthorizedUser { user, token_uri })
            }
            other => Err(GcpError::Auth(format!(
                "credential type {other:?} is not supported (service_account or authorized_user)"
            ))),
        }
    }

    pub fn from_file(path: &Path, token_override: Option<&str>) -> GcpResult<Self> {
        let json = std::fs::read_to_string(path)
            .map_err(|e| GcpError::Auth(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&json, token_override)
    }

    /// Application Default Credentials, looked up through `env` (pass
    /// `|k| std::env::var(k).ok()` for the process environment).
    pub fn application_default(
        env: &dyn Fn(&str) -> Option<String>,
        endpoints: &ApiEndpoints,
    ) -> GcpResult<Self> {
        let token_override = endpoints.token.as_deref();
        if let Some(path) = env("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty()) {
            tracing::debug!(source = "GOOGLE_APPLICATION_CREDENTIALS", "gcp credentials");
            return Self::from_file(Path::new(&path), token_override);
        }
        if let Some(path) = well_known_file(env).filter(|p| p.is_file()) {
            tracing::debug!(source = %path.display(), "gcp credentials (gcloud)");
            return Self::from_file(&path, token_override);
        }
        let host = endpoints
            .metadata_host
            .clone()
            .or_else(|| env("GCE_METADATA_HOST").filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_METADATA_HOST.to_string());
        tracing::debug!(source = "metadata server", host = %host, "gcp credentials");
        Ok(Credentials::MetadataServer { host })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::ServiceAccount { .. } => "service_account",
            Credentials::AuthorizedUser { .. } => "authorized_user",
            Credentials::MetadataServer { .. } => "metadata_server",
            Credentials::Static(_) => "static",
            Credentials::Anonymous => "anonymous",
        }
    }
}

/// serde errors can quote the offending value; keep only the position.
fn strip_values(e: &serde_json::Error) -> String {
    format!("invalid at line {} column {}", e.line(), e.column())
}

/// gcloud's ADC file: `$CLOUDSDK_CONFIG/application_default_credentials.json`, else
/// `$HOME/.config/gcloud/...` (`%APPDATA%\gcloud\...` on Windows).
fn well_known_file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    const FILE: &str = "application_default_credentials.json";
    if let Some(dir) = env("CLOUDSDK_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join(FILE));
    }
    if cfg!(windows) {
        return env("APPDATA").map(|d| PathBuf::from(d).join("gcloud").join(FILE));
    }
    env("HOME").map(|h| PathBuf::from(h).join(".config").join("gcloud").join(FILE))
}

fn signing_key(key: &ServiceAccountKey) -> GcpResult<RsaKeyPair> {
    let pem = key.private_key.expose();
    let (label, der) =
        pem_decode(pem).ok_or_else(|| GcpError::Auth("private_key is not a PEM block".into()))?;
    let pair = match label.as_str() {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        other => {
            return Err(GcpError::Auth(format!(
                "private_key is a {other:?} PEM block, not an RSA key"
            )))
        }
    };
    pair.map_err(|e| GcpError::Auth(format!("private_key is not a usable RSA key: {e}")))
}

fn pem_decode(pem: &str) -> Option<(String, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end = rest.find(&format!("-----END {label}-----"))?;
    let b64: String = rest[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(b64).ok().map(|der| (label, der))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The signed JWT a service account exchanges for an access token (RS256, 1 h lifetime).
pub fn service_account_assertion(
    key: &ServiceAccountKey,
    audience: &str,
    scope: &str,
    issued_at: u64,
) -> GcpResult<String> {
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = &key.private_key_id {
        header["kid"] = kid.clone().into();
    }
    let claims = serde_json::json!({
        "iss": key.client_email,
        "scope": scope,
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let pair = signing_key(key)?;
    let mut sig = vec![0u8; pair.public().modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| GcpError::Auth("signing the JWT failed".into()))?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: serde_json::Value,
    #[serde(default)]
    error_description: Option<String>,
}

/// Form encoding (application/x-www-form-urlencoded) without another dependency.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://form.invalid/").expect("static URL");
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    url.query().unwrap_or_default().to_string()
}

/// Caches the token of one [`Credentials`], fetching a new one before the old one expires.
pub struct TokenCache {
    credentials: Credentials,
    client: reqwest::Client,
    retry: RetrySettings,
    refresh_margin: Duration,
    scope: String,
    cached: Mutex<Option<AccessToken>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("credentials", &self.credentials.kind())
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    pub fn new(credentials: Credentials, client: reqwest::Client, retry: RetrySettings) -> Self {
        TokenCache {
            credentials,
            client,
            retry,
            refresh_margin: Duration::from_secs(300),
            scope: CLOUD_PLATFORM_SCOPE.to_string(),
            cached: Mutex::new(None),
        }
    }

    /// Refresh this long before expiry (capped at half the token's lifetime).
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// A valid token, or `None` for anonymous access.
    pub async fn token(&self) -> GcpResult<Option<Secret>> {
        match &self.credentials {
            Credentials::Anonymous => return Ok(None),
            Credentials::Static(s) => return Ok(Some(s.clone())),
            _ => {}
        }
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref() {
            if Instant::now() < t.refresh_at {
                return Ok(Some(t.token.clone()));
            }
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(Some(token))
    }

    /// Drops the cached token (after a 401).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> GcpResult<AccessToken> {
        let kind = self.credentials.kind();
        let started = Instant::now();
        let (method, url) = match &self.credentials {
            Credentials::ServiceAccount { token_uri, .. }
            | Credentials::AuthorizedUser { token_uri, .. } => ("POST", token_uri.clone()),
            Credentials::MetadataServer { host } => (
                "GET",
                format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token"),
            ),
            Credentials::Static(_) | Credentials::Anonymous => unreachable!("handled by token()"),
        };
        let this = self;
        let url_ref = url.as_str();
        let resp = retry_loop(&self.retry, method, &url, move |_attempt| async move {
            let req = match &this.credentials {
                Credentials::ServiceAccount { key, token_uri } => {
                    let assertion =
                        service_account_assertion(key, token_uri, &this.scope, unix_now())?;
                    this.client
                        .post(token_uri)
                        .header("Content-Type", "application/x-www-form-urlencoded")
                        .body(form_encode(&[
                            ("grant_type", JWT_BEARER_GRANT),
                            ("assertion", &assertion),
                        ]))
                }
                Credentials::AuthorizedUser { user, token_uri } => this
                    .client
                    .post(token_uri)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form_encode(&[
                        ("grant_type", "refresh_token"),
                        ("client_id", &user.client_id),
                        ("client_secret", user.client_secret.expose()),
                        ("refresh_token", user.refresh_token.expose()),
                    ])),
                Credentials::MetadataServer { .. } => this
                    .client
                    .get(url_ref)
                    .query(&[("scopes", this.scope.as_str())])
                    .header("Metadata-Flavor", "Google"),
                Credentials::Static(_) | Credentials::Anonymous => unreachable!(),
            };
            let result = req.timeout(this.retry.request_timeout()).send().await;
            Ok(match result {
                Err(e) => Attempt::Transport(e),
                Ok(resp) if resp.status().is_success() => Attempt::Done(resp),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    let message = match serde_json::from_str::<OAuthError>(&text) {
                        Ok(e) => match (e.error, e.error_description) {
                            (serde_json::Value::String(code), Some(d)) => format!("{code}: {d}"),
                            (serde_json::Value::String(code), None) => code,
                            (other, d) => format!("{other} {}", d.unwrap_or_default()),
                        },
                        Err(_) => text.chars().take(300).collect(),
                    };
                    Attempt::Status {
                        http_status: status,
                        status: None,
                        message,
                        retry_after: None,
                        retry_now: false,
                    }
                }
            })
        })
        .await
        .map_err(|e| GcpError::Auth(format!("{kind} token request failed: {e}")))?;
        let body: TokenResponse = resp
            .json()
            .await
            .map_err(|_| GcpError::Auth(format!("{kind} token response has no access_token")))?;
        let lifetime = Duration::from_secs(body.expires_in.unwrap_or(3600).max(1));
        let margin = self.refresh_margin.min(lifetime / 2);
        tracing::debug!(
            credentials = kind,
            lifetime_s = lifetime.as_secs(),
            took_ms = started.elapsed().as_millis() as u64,
            "gcp access token obtained"
        );
        Ok(AccessToken {
            token: body.access_token,
            refresh_at: started + lifetime - margin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_format() {
        let s = Secret::new("ya29.very-secret");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        let key = ServiceAccountKey {
            client_email: "a@b".into(),
            private_key: Secret::new("-----BEGIN PRIVATE KEY-----abc"),
            private_key_id: None,
            token_uri: None,
            project_id: None,
        };
        assert!(!format!("{key:?}").contains("abc"));
    }

    #[test]
    fn adc_order_file_then_gcloud_then_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("application_default_credentials.json");
        std::fs::write(
            &user,
            r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#,
        )
        .unwrap();
        let dirs = dir.path().to_string_lossy().to_string();
        let endpoints = ApiEndpoints::default();
        // gcloud's file is found through CLOUDSDK_CONFIG
        let env = |k: &str| (k == "CLOUDSDK_CONFIG").then(|| dirs.clone());
        let c = Credentials::application_default(&env, &endpoints).unwrap();
        match c {
            Credentials::AuthorizedUser { token_uri, .. } => {
                assert_eq!(token_uri, DEFAULT_TOKEN_URI)
            }
            other => panic!("{other:?}"),
        }
        // GOOGLE_APPLICATION_CREDENTIALS wins, and a bad file there is an error, not a fallback
        let missing = dir.path().join("nope.json").to_string_lossy().to_string();
        let env2 = |k: &str| match k {
            "GOOGLE_APPLICATION_CREDENTIALS" => Some(missing.clone()),
            "CLOUDSDK_CONFIG" => Some(dirs.clone()),
            _ => None,
        };
        let err = Credentials::application_default(&env2, &endpoints).unwrap_err();
        assert!(err.to_string().contains("nope.json"), "{err}");
        // nothing configured: the metadata server named by GCE_METADATA_HOST
        let empty = tempfile::tempdir().unwrap();
        let e = empty.path().to_string_lossy().to_string();
        let env3 = |k: &str| match k {
            "HOME" => Some(e.clone()),
            "GCE_METADATA_HOST" => Some("127.0.0.1:1234".to_string()),
            _ => None,
        };
        match Credentials::application_default(&env3, &endpoints).unwrap() {
            Credentials::MetadataServer { host } => assert_eq!(host, "127.0.0.1:1234"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_unusable_keys_without_echoing_them() {
        let json = r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#;
        let err = Credentials::from_json(json, None).unwrap_err().to_string();
        assert!(err.contains("not a usable RSA key"), "{err}");
        assert!(!err.contains("AAAA"));
        let err = Credentials::from_json(r#"{"type":"external_account"}"#, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("external_account"), "{err}");
    }

    #[test]
    fn form_encoding_escapes_reserved_characters() {
        assert_eq!(
            form_encode(&[("a", "x y+z/="), ("b", "1")]),
            "a=x+y%2Bz%2F%3D&b=1"
        );
    }
}
