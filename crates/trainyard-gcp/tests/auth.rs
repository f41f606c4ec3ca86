//! Auth against tests/py/fake_auth.py, a local token endpoint whose JWT checks are Google's own
//! google-auth, and its metadata server. Needs `make test-gcp`: TRAINYARD_TEST_AUTH_DIR (the
//! throwaway keys) and TRAINYARD_TEST_AUTH_HOST (127.0.0.1:port of the fake).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use common::{fast_retry, require_env};
use trainyard_gcp::auth::{Credentials, TokenCache};
use trainyard_gcp::config::ApiEndpoints;
use trainyard_gcp::GcpHttp;

fn dir() -> PathBuf {
    PathBuf::from(require_env("TRAINYARD_TEST_AUTH_DIR"))
}

fn host() -> String {
    require_env("TRAINYARD_TEST_AUTH_HOST")
}

/// The token URL with a tag the fake counts separately (tests run in parallel).
fn tagged(tag: &str) -> String {
    format!("http://{}/token?tag={tag}", host())
}

async fn tag_count(tag: &str, counter: &str) -> u64 {
    stats().await["by_tag"][tag][counter].as_u64().unwrap_or(0)
}

async fn stats() -> Value {
    reqwest::get(format!("http://{}/stats", host()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn cache(creds: Credentials) -> TokenCache {
    TokenCache::new(creds, GcpHttp::new_reqwest_client().unwrap(), fast_retry())
}

#[tokio::test]
#[ignore = "needs the fake token endpoint of `make test-gcp`"]
async fn service_account_jwt_is_accepted_by_google_auth_and_cached() {
    let creds = Credentials::from_file(&dir().join("sa.json"), Some(&tagged("cache"))).unwrap();
    let tokens = cache(creds);
    let t1 = tokens.token().await.expect("token").unwrap();
    assert!(t1.expose().starts_with("ya29.sa-token-"), "{t1:?}");
    let t2 = tokens.token().await.unwrap().unwrap();
    assert_eq!(
        t1.expose(),
        t2.expose(),
        "second call served from the cache"
    );
    assert_eq!(tag_count("cache", "jwt_grants").await, 1);
}

#[tokio::test]
#[ignore = "needs the fake token endpoint of `make test-gcp`"]
async fn tokens_are_refreshed_before_they_expire() {
    // sa_short.json's endpoint issues tokens that live 2 s: refresh after half of that
    let creds = Credentials::from_file(&dir().join("sa_short.json"), None).unwrap();
    let tokens = cache(creds);
    let t1 = tokens.token().await.unwrap().unwrap();
    let t1_again = tokens.token().await.unwrap().unwrap();
    assert_eq!(t1.expose(), t1_again.expose());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t2 = tokens.token().await.unwrap().unwrap();
    assert_ne!(
        t1.expose(),
        t2.expose(),
        "a token near expiry must be replaced"
    );
}

#[tokio::test]
#[ignore = "needs the fake token endpoint of `make test-gcp`"]
async fn a_jwt_signed_with_the_wrong_key_is_refused_by_google_auth() {
    let creds =
        Credentials::from_file(&dir().join("sa_wrong.json"), Some(&tagged("wrong-key"))).unwrap();
    let err = cache(creds).token().await.unwrap_err().to_string();
    assert!(err.contains("invalid_grant"), "{err}");
    assert!(err.to_lowercase().contains("signature"), "{err}");
    // a 400 is final: exactly one rejected attempt
    assert_eq!(tag_count("wrong-key", "rejected").await, 1);
    assert_eq!(tag_count("wrong-key", "jwt_grants").await, 0);
}

#[tokio::test]
#[ignore = "needs the fake token endpoint of `make test-gcp`"]
async fn adc_finds_each_source_in_order() {
    let d = dir();
    let sa = d.join("sa.json").to_string_lossy().to_string();
    let empty = tempfile::tempdir().unwrap();
    let empty_s = empty.path().to_string_lossy().to_string();
    let gcloud = tempfile::tempdir().unwrap();
    std::fs::copy(
        d.join("user.json"),
        gcloud.path().join("application_default_credentials.json"),
    )
    .unwrap();
    let gcloud_s = gcloud.path().to_string_lossy().to_string();
    let host = host();
    let endpoints = ApiEndpoints::default();

    // 1. GOOGLE_APPLICATION_CREDENTIALS beats everything
    let env = |k: &str| match k {
        "GOOGLE_APPLICATION_CREDENTIALS" => Some(sa.clone()),
        "CLOUDSDK_CONFIG" => Some(gcloud_s.clone()),
        "GCE_METADATA_HOST" => Some(host.clone()),
        _ => None,
    };
    let t = cache(Credentials::application_default(&env, &endpoints).unwrap())
        .token()
        .await
        .unwrap()
        .unwrap();
    assert!(t.expose().starts_with("ya29.sa-token-"));

    // 2. gcloud's user credentials (refresh-token grant)
    let env = |k: &str| match k {
        "CLOUDSDK_CONFIG" => Some(gcloud_s.clone()),
        "GCE_METADATA_HOST" => Some(host.clone()),
        _ => None,
    };
    let t = cache(Credentials::application_default(&env, &endpoints).unwrap())
        .token()
        .await
        .unwrap()
        .unwrap();
    assert!(t.expose().starts_with("ya29.user-token-"), "{t:?}");

    // 3. the metadata server named by GCE_METADATA_HOST
    let env = |k: &str| match k {
        "HOME" => Some(empty_s.clone()),
        "GCE_METADATA_HOST" => Some(host.clone()),
        _ => None,
    };
    let before = stats().await["metadata"].as_u64().unwrap();
    let t = cache(Credentials::application_default(&env, &endpoints).unwrap())
        .token()
        .await
        .unwrap()
        .unwrap();
    assert!(t.expose().starts_with("ya29.mds-token-"), "{t:?}");
    assert_eq!(stats().await["metadata"].as_u64().unwrap(), before + 1);
}
