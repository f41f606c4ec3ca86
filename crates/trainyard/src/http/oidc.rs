//! Verification of Google-signed OIDC ID tokens (what Cloud Scheduler sends with
//! `oidcToken`): RS256 against a cached JWKS, then issuer, audience, expiry and the expected
//! service-account email.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use serde::Deserialize;
use trainyard_core::ports::Clock;

/// Google's JWKS for ID tokens.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// Issuers Google uses in ID tokens.
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

const JWKS_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` refetches the JWKS at most this often (keys rotate; attackers invent kids).
const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(30);

/// Why a token was refused. Every variant answers 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("unsupported token algorithm {0:?}; RS256 expected")]
    Algorithm(String),
    #[error("token signed with unknown key {0:?}")]
    UnknownKey(String),
    #[error("bad token signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("token issuer {0:?} is not accepted")]
    Issuer(String),
    #[error("token audience does not match")]
    Audience,
    #[error("token email {0:?} is not the expected service account")]
    Email(String),
    #[error("cannot fetch signing keys: {0}")]
    Jwks(String),
    #[error("wrong shared secret")]
    Secret,
}

/// Settings of an [`OidcVerifier`].
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub jwks_url: String,
    pub issuers: Vec<String>,
    /// The `aud` the token must carry (Cloud Scheduler: the audience set on the job).
    pub audience: String,
    /// The service account the token must be for (`email`, verified).
    pub service_account_email: String,
    /// Clock skew tolerated on `exp`/`iat`.
    pub leeway: Duration,
}

impl OidcConfig {
    pub fn google(audience: impl Into<String>, service_account_email: impl Into<String>) -> Self {
        OidcConfig {
            jwks_url: GOOGLE_JWKS_URL.into(),
            issuers: GOOGLE_ISSUERS.iter().map(|s| s.to_string()).collect(),
            audience: audience.into(),
            service_account_email: service_account_email.into(),
            leeway: Duration::from_secs(60),
        }
    }
}

/// Claims we check.
#[derive(Debug, Clone, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub aud: Audience,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<bool>,
    #[serde(default)]
    pub sub: Option<String>,
}

/// `aud` may be one string or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, aud: &str) -> bool {
        match self {
            Audience::One(a) => a == aud,
            Audience::Many(list) => list.iter().any(|a| a == aud),
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kid: Option<String>,
    kty: String,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

type Keys = HashMap<String, RsaPublicKeyComponents<Vec<u8>>>;

struct Cache {
    keys: Keys,
    fetched: Option<Instant>,
}

pub struct OidcVerifier {
    config: OidcConfig,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    cache: Mutex<Cache>,
}

fn b64(part: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| AuthError::Malformed(e.to_string()))
}

impl OidcVerifier {
    pub fn new(config: OidcConfig, clock: Arc<dyn Clock>) -> Self {
        OidcVerifier {
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            clock,
            cache: Mutex::new(Cache {
                keys: HashMap::new(),
                fetched: None,
            }),
        }
    }

    async fn fetch_keys(&self) -> Result<Keys, AuthError> {
        let jwks: Jwks = self
            .http
            .get(&self.config.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| AuthError::Jwks(e.to_string()))?
            .json()
            .await
            .map_err(|e| AuthError::Jwks(e.to_string()))?;
        let mut keys = Keys::new();
        for k in jwks.keys.into_iter().filter(|k| k.kty == "RSA") {
            if let (Some(kid), Some(n), Some(e)) = (k.kid, k.n, k.e) {
                keys.insert(
                    kid,
                    RsaPublicKeyComponents {
                        n: b64(&n)?,
                        e: b64(&e)?,
                    },
                );
            }
        }
        Ok(keys)
    }

    /// The key for `kid`, fetching the JWKS when the cache is old or lacks it.
    async fn key(&self, kid: &str) -> Result<RsaPublicKeyComponents<Vec<u8>>, AuthError> {
        let refetch = {
            let cache = self
                .cache
                .lock()
                .map_err(|_| AuthError::Jwks("key cache poisoned".into()))?;
            let age = cache.fetched.map(|t| t.elapsed());
            match (cache.keys.get(kid), age) {
                (Some(k), Some(age)) if age < JWKS_TTL => return Ok(k.clone()),
                (None, Some(age)) if age < REFETCH_MIN_INTERVAL => {
                    return Err(AuthError::UnknownKey(kid.to_string()));
                }
                _ => true,
            }
        };
        if refetch {
            let keys = self.fetch_keys().await?;
            let mut cache = self
                .cache
                .lock()
                .map_err(|_| AuthError::Jwks("key cache poisoned".into()))?;
            cache.keys = keys;
            cache.fetched = Some(Instant::now());
        }
        let cache = self
            .cache
            .lock()
            .map_err(|_| AuthError::Jwks("key cache poisoned".into()))?;
        cache
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| AuthError::UnknownKey(kid.to_string()))
    }

    /// Verifies a compact JWS ID token and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<IdClaims, AuthError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed(
                "expected three dot-separated parts".into(),
            ));
        };
        let header: Header =
            serde_json::from_slice(&b64(h)?).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if header.alg != "RS256" {
            return Err(AuthError::Algorithm(header.alg));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Malformed("no kid in header".into()))?;
        let key = self.key(&kid).await?;
        let signed = &token[..h.len() + 1 + p.len()];
        key.verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &b64(sig)?)
            .map_err(|_| AuthError::Signature)?;
        // Only a verified payload is parsed further.
        let claims: IdClaims =
            serde_json::from_slice(&b64(p)?).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let now = self.clock.now().timestamp();
        let leeway = self.config.leeway.as_secs() as i64;
        if claims.exp + leeway < now {
            return Err(AuthError::Expired);
        }
        if claims.iat.is_some_and(|iat| iat - leeway > now) {
            return Err(AuthError::NotYetValid);
        }
        if !self.config.issuers.contains(&claims.iss) {
            return Err(AuthError::Issuer(claims.iss));
        }
        if !claims.aud.contains(&self.config.audience) {
            return Err(AuthError::Audience);
        }
        let email = claims.email.clone().unwrap_or_default();
        if email != self.config.service_account_email || claims.email_verified != Some(true) {
            return Err(AuthError::Email(email));
        }
        Ok(claims)
    }
}
