//! The HTTP layer every backend shares: bearer auth from a [`TokenCache`], Google error bodies
//! parsed into [`GcpError::Api`], and retries with exponential backoff and jitter on 429, 5xx
//! and connection errors, bounded in attempts and total time.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Response};
use serde_json::Value;

use crate::auth::{Credentials, TokenCache};
use crate::config::{GcpConfig, RetrySettings};
use crate::error::{GcpError, GcpResult};

/// Statuses worth another try: rate limiting, timeouts and server-side failures.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Delay before retry number `retry` (1-based): exponential from `initial_backoff`, capped at
/// `max_backoff`, with "equal jitter": uniformly in [d/2, d]. `unit` is a random number in [0, 1).
pub fn backoff_delay(settings: &RetrySettings, retry: u32, unit: f64) -> Duration {
    let exp = settings
        .initial_backoff()
        .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
    let d = exp.min(settings.max_backoff());
    let half = d / 2;
    half + half.mul_f64(unit.clamp(0.0, 1.0))
}

/// One try's outcome, as a retry loop sees it.
pub(crate) enum Attempt<T> {
    Done(T),
    /// An HTTP error answer.
    Status {
        http_status: u16,
        status: Option<String>,
        message: String,
        retry_after: Option<Duration>,
        /// Retry even though the status is not retryable (a 401 answered by a new token).
        retry_now: bool,
    },
    /// No answer at all.
    Transport(reqwest::Error),
}

fn transport_message(e: &reqwest::Error) -> String {
    let mut msg = e.without_url_ref();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let kind = if self.is_timeout() {
            "timed out"
        } else if self.is_connect() {
            "connection failed"
        } else if self.is_body() || self.is_decode() {
            "reading the response failed"
        } else {
            "request failed"
        };
        kind.to_string()
    }
}

/// Runs `f` until it is done, fails for good, or the retry budget is spent.
/// `f` gets the 1-based attempt number.
pub(crate) async fn retry_loop<T, F, Fut>(
    settings: &RetrySettings,
    method: &str,
    url: &str,
    mut f: F,
) -> GcpResult<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = GcpResult<Attempt<T>>>,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let (err, retryable, retry_after) = match f(attempt).await? {
            Attempt::Done(v) => return Ok(v),
            Attempt::Status {
                http_status,
                status,
                message,
                retry_after,
                retry_now,
            } => (
                GcpError::Api {
                    method: method.to_string(),
                    url: url.to_string(),
                    http_status,
                    status,
                    message,
                },
                retry_now || is_retryable_status(http_status),
                retry_after,
            ),
            Attempt::Transport(e) => {
                let retryable = !e.is_builder();
                (
                    GcpError::Transport {
                        method: method.to_string(),
                        url: url.to_string(),
                        message: transport_message(&e),
                    },
                    retryable,
                    None,
                )
            }
        };
        if !retryable {
            return Err(err);
        }
        let delay = backoff_delay(settings, attempt, fastrand::f64())
            .max(retry_after.unwrap_or_default().min(settings.max_backoff()));
        let elapsed = started.elapsed();
        if attempt >= settings.max_attempts || elapsed + delay > settings.max_elapsed() {
            tracing::warn!(method, url, attempts = attempt, error = %err, "gcp request: giving up");
            return Err(GcpError::RetriesExhausted {
                attempts: attempt,
                elapsed,
                last: Box::new(err),
            });
        }
        tracing::info!(
            method,
            url,
            attempt,
            delay_ms = delay.as_millis() as u64,
            error = %err,
            "gcp request: retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Google's error body: `{"error": {"code", "message", "status", "details"}}` (or a list of them).
pub(crate) fn parse_google_error(text: &str) -> (Option<String>, String) {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => return (None, text.trim().chars().take(500).collect()),
    };
    let v = match v {
        Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
        v => v,
    };
    let err = &v["error"];
    let message = err["message"]
        .as_str()
        .map(str::to_string)
        .or_else(|| err.as_str().map(str::to_string))
        .unwrap_or_else(|| text.trim().chars().take(500).collect());
    (err["status"].as_str().map(str::to_string), message)
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Tells from an error answer (HTTP status, Google status, message) that trying again is
/// pointless even though the status is retryable (e.g. a GPU quota that only frees when jobs end).
pub type FinalAnswer<'a> = &'a (dyn Fn(u16, Option<&str>, &str) -> bool + Sync);

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    Json(Value),
    Bytes {
        content_type: String,
        bytes: Vec<u8>,
    },
}

/// An authenticated, retrying client for Google's REST APIs; cheap to clone.
#[derive(Clone)]
pub struct GcpHttp {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    tokens: TokenCache,
    retry: RetrySettings,
}

impl std::fmt::Debug for GcpHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpHttp")
            .field("credentials", &self.inner.tokens.credentials().kind())
            .finish_non_exhaustive()
    }
}

fn build_client() -> GcpResult<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("trainyard/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| GcpError::Config(format!("HTTP client: {e}")))
}

impl GcpHttp {
    pub fn new(credentials: Credentials, retry: RetrySettings) -> GcpResult<Self> {
        let client = build_client()?;
        let tokens = TokenCache::new(credentials, client.clone(), retry.clone());
        Ok(Self::with_tokens(client, tokens, retry))
    }

    /// Uses a prepared token cache (e.g. one with a custom refresh margin).
    pub fn with_tokens(client: reqwest::Client, tokens: TokenCache, retry: RetrySettings) -> Self {
        GcpHttp {
            inner: Arc::new(Inner {
                client,
                tokens,
                retry,
            }),
        }
    }

    /// Credentials from `gcp.credentials_file`, else Application Default Credentials from the
    /// process environment.
    pub fn from_config(config: &GcpConfig) -> GcpResult<Self> {
        let token = config.endpoints.token.as_deref();
        let credentials = match &config.credentials_file {
            Some(path) => Credentials::from_file(path, token)?,
            None => Credentials::application_default(
                &|k: &str| std::env::var(k).ok(),
                &config.endpoints,
            )?,
        };
        Self::new(credentials, config.retry.clone())
    }

    /// A client with a fresh reqwest client, for building a [`TokenCache`] to pass to
    /// [`GcpHttp::with_tokens`].
    pub fn new_reqwest_client() -> GcpResult<reqwest::Client> {
        build_client()
    }

    pub fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    pub fn retry_settings(&self) -> &RetrySettings {
        &self.inner.retry
    }

    /// Sends a request with retries; returns the successful response.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Body>,
    ) -> GcpResult<Response> {
        self.send_with(method, url, query, body, None).await
    }

    /// [`GcpHttp::send`], except that an error answer `final_answer` accepts is returned at once.
    pub async fn send_with(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Body>,
        final_answer: Option<FinalAnswer<'_>>,
    ) -> GcpResult<Response> {
        let inner = &*self.inner;
        let reauthed = AtomicBool::new(false);
        let reauthed = &reauthed;
        let method_s = method.as_str().to_string();
        let method_ref = &method;
        retry_loop(&inner.retry, &method_s, url, move |attempt| async move {
            let mut req = inner
                .client
                .request(method_ref.clone(), url)
                .timeout(inner.retry.request_timeout());
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(token) = inner.tokens.token().await? {
                req = req.header(AUTHORIZATION, format!("Bearer {}", token.expose()));
            }
            req = match body {
                Some(Body::Json(v)) => req
                    .header(CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(v).map_err(|e| GcpError::decode("request body", e))?),
                Some(Body::Bytes {
                    content_type,
                    bytes,
                }) => req
                    .header(CONTENT_TYPE, content_type.as_str())
                    .body(bytes.clone()),
                None => req,
            };
            tracing::debug!(method = %method_ref, url, attempt, "gcp request");
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => return Ok(Attempt::Transport(e)),
            };
            let status = resp.status().as_u16();
            if resp.status().is_success() {
                return Ok(Attempt::Done(resp));
            }
            let after = retry_after(resp.headers());
            let text = resp.text().await.unwrap_or_default();
            let (gstatus, message) = parse_google_error(&text);
            tracing::debug!(method = %method_ref, url, status, "gcp request: error answer");
            if final_answer.is_some_and(|f| f(status, gstatus.as_deref(), &message)) {
                return Err(GcpError::Api {
                    method: method_ref.as_str().to_string(),
                    url: url.to_string(),
                    http_status: status,
                    status: gstatus,
                    message,
                });
            }
            if status == 401 && !reauthed.swap(true, Ordering::SeqCst) {
                // A revoked or expired token: fetch a new one and try once more.
                inner.tokens.invalidate().await;
                return Ok(Attempt::Status {
                    http_status: status,
                    status: gstatus,
                    message,
                    retry_after: None,
                    retry_now: true,
                });
            }
            Ok(Attempt::Status {
                http_status: status,
                status: gstatus,
                message,
                retry_after: after,
                retry_now: false,
            })
        })
        .await
    }

    /// A JSON request; an empty success body is `Value::Null`.
    pub async fn json(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> GcpResult<Value> {
        self.json_with(method, url, query, body, None).await
    }

    async fn json_with(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
        final_answer: Option<FinalAnswer<'_>>,
    ) -> GcpResult<Value> {
        let body = body.map(Body::Json);
        let resp = self
            .send_with(method, url, query, body.as_ref(), final_answer)
            .await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| GcpError::decode(url, transport_message(&e)))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| GcpError::decode(url, e))
    }

    pub async fn get_json(&self, url: &str, query: &[(&str, &str)]) -> GcpResult<Value> {
        self.json(Method::GET, url, query, None).await
    }

    pub async fn post_json(
        &self,
        url: &str,
        query: &[(&str, &str)],
        body: Value,
    ) -> GcpResult<Value> {
        self.json(Method::POST, url, query, Some(body)).await
    }

    /// [`GcpHttp::post_json`] that gives up at once on an answer `final_answer` accepts.
    pub async fn post_json_with(
        &self,
        url: &str,
        query: &[(&str, &str)],
        body: Value,
        final_answer: FinalAnswer<'_>,
    ) -> GcpResult<Value> {
        self.json_with(Method::POST, url, query, Some(body), Some(final_answer))
            .await
    }
}

/// Decodes a JSON value into a typed response, naming the API in the error.
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(context: &str, v: Value) -> GcpResult<T> {
    serde_json::from_value(v).map_err(|e| GcpError::decode(context, e))
}

/// Percent-encodes one URL path segment (everything but RFC 3986 unreserved characters).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let s = RetrySettings {
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
            ..RetrySettings::default()
        };
        assert_eq!(backoff_delay(&s, 1, 0.0), Duration::from_millis(50));
        assert_eq!(backoff_delay(&s, 1, 0.999_999).as_millis(), 99);
        assert_eq!(backoff_delay(&s, 3, 1.0), Duration::from_millis(400));
        assert_eq!(backoff_delay(&s, 10, 1.0), Duration::from_millis(1000));
        assert_eq!(backoff_delay(&s, 60, 0.0), Duration::from_millis(500));
        let spread: std::collections::BTreeSet<u128> = (0..50)
            .map(|_| backoff_delay(&s, 4, fastrand::f64()).as_micros())
            .collect();
        assert!(spread.len() > 10, "jitter must spread delays: {spread:?}");
    }

    #[test]
    fn google_error_bodies() {
        let (s, m) = parse_google_error(
            r#"{"error":{"code":409,"message":"already exists","status":"ALREADY_EXISTS"}}"#,
        );
        assert_eq!(
            (s.as_deref(), m.as_str()),
            (Some("ALREADY_EXISTS"), "already exists")
        );
        let (s, m) =
            parse_google_error(r#"[{"error":{"code":503,"message":"x","status":"UNAVAILABLE"}}]"#);
        assert_eq!((s.as_deref(), m.as_str()), (Some("UNAVAILABLE"), "x"));
        let (s, m) = parse_google_error("Not Found\n");
        assert_eq!((s, m.as_str()), (None, "Not Found"));
    }

    #[test]
    fn segment_encoding() {
        assert_eq!(
            encode_segment("runs/1/pushed model?#.pb"),
            "runs%2F1%2Fpushed%20model%3F%23.pb"
        );
    }
}
