//! No token, key or secret ever reaches the logs: all tracing output (TRACE, every crate) is
//! captured during service-account, user and failed auth flows and searched for them. Its own
//! test binary, so no parallel test shares tracing's global callsite state. Needs
//! `make test-gcp` (TRAINYARD_TEST_AUTH_DIR, TRAINYARD_TEST_AUTH_HOST).

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use common::{fast_retry, require_env, Scripted};
use trainyard_gcp::auth::{Credentials, TokenCache};
use trainyard_gcp::GcpHttp;

fn dir() -> PathBuf {
    PathBuf::from(require_env("TRAINYARD_TEST_AUTH_DIR"))
}

fn cache(creds: Credentials) -> TokenCache {
    TokenCache::new(creds, GcpHttp::new_reqwest_client().unwrap(), fast_retry())
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
#[ignore = "needs the fake token endpoint of `make test-gcp`"]
async fn no_token_or_key_reaches_the_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sa_json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("sa.json")).unwrap()).unwrap();
    let user_json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("user.json")).unwrap()).unwrap();
    let creds = Credentials::from_file(&dir().join("sa.json"), None).unwrap();
    let tokens = cache(creds);
    let http = GcpHttp::with_tokens(GcpHttp::new_reqwest_client().unwrap(), tokens, fast_retry());
    let (base, server) = Scripted::start(vec![
        (
            503,
            vec![],
            common::google_error(503, "UNAVAILABLE", "busy"),
        ),
        (200, vec![], "{}".into()),
    ])
    .await;
    http.get_json(&format!("{base}/v1/x"), &[]).await.unwrap();
    let sent = server.hits.lock().unwrap()[0].2.clone().unwrap();
    let token = sent.trim_start_matches("Bearer ").to_string();
    assert!(token.starts_with("ya29.sa-token-"));
    // user credentials and a refused key, too
    let user = Credentials::from_file(&dir().join("user.json"), None).unwrap();
    let user_token = cache(user).token().await.unwrap().unwrap();
    let wrong = Credentials::from_file(&dir().join("sa_wrong.json"), None).unwrap();
    let _ = cache(wrong).token().await.unwrap_err();

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("gcp access token obtained"), "{logs}");
    assert!(logs.contains("gcp request: retrying"), "{logs}");
    let key_body: String = sa_json["private_key"]
        .as_str()
        .unwrap()
        .lines()
        .nth(3)
        .unwrap()
        .to_string();
    for (what, secret) in [
        ("service-account token", token.as_str()),
        ("user token", user_token.expose()),
        ("private key", key_body.as_str()),
        (
            "refresh token",
            user_json["refresh_token"].as_str().unwrap(),
        ),
        (
            "client secret",
            user_json["client_secret"].as_str().unwrap(),
        ),
        ("JWT assertion", "eyJhbGciOiJSUzI1NiIs"),
        ("bearer header", "Bearer ya29"),
    ] {
        assert!(!logs.contains(secret), "the logs contain the {what}");
    }
}
