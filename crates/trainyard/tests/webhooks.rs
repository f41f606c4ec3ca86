//! The webhook routes over real HTTP: Google-style OIDC tokens signed with a throwaway RSA key,
//! served from a local JWKS endpoint.

use std::process::Command;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RsaPublicKeyComponents, RSA_PKCS1_SHA256};
use serde_json::{json, Value};
use trainyard::core::ports::{RunFilter, SystemClock};
use trainyard::core::run::NewTrainingRun;
use trainyard::core::schedule::{CatchUpPolicy, ConcurrencyPolicy, ScheduleType};
use trainyard::core::timing::ScheduleTiming;
use trainyard::http::{webhook_router, CallbackAuth, OidcConfig, OidcVerifier, WebhookAuth};
use trainyard::{NewSchedule, Platform};

const AUDIENCE: &str = "https://trainyard.example/api/training/schedules";
const SA: &str = "training-scheduler@proj.iam.gserviceaccount.com";
const SECRET: &str = "callback-secret-123";

fn rsa_key(dir: &std::path::Path, name: &str) -> RsaKeyPair {
    let path = dir.join(name);
    // OpenSSL 3 writes an RSA key as PKCS#1 RSAPrivateKey in DER.
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-outform",
            "DER",
            "-out",
        ])
        .arg(&path)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    RsaKeyPair::from_der(&std::fs::read(path).unwrap()).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sign(key: &RsaKeyPair, kid: &str, claims: &Value) -> String {
    let header = b64(json!({"alg": "RS256", "kid": kid, "typ": "JWT"})
        .to_string()
        .as_bytes());
    let payload = b64(claims.to_string().as_bytes());
    let msg = format!("{header}.{payload}");
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        msg.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{msg}.{}", b64(&sig))
}

fn claims(overrides: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut c = json!({
        "iss": "https://accounts.google.com", "aud": AUDIENCE, "exp": now + 3600, "iat": now,
        "email": SA, "email_verified": true, "sub": "1234"
    });
    for (k, v) in overrides.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_webhook_verifies_tokens_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let key = rsa_key(dir.path(), "good.der");
    let other = rsa_key(dir.path(), "other.der");
    let public: RsaPublicKeyComponents<Vec<u8>> = key.public().into();
    let jwks = json!({"keys": [{
        "kty": "RSA", "alg": "RS256", "use": "sig", "kid": "k1",
        "n": b64(&public.n),
        "e": b64(&public.e),
    }]});
    let jwks_url = format!(
        "{}/certs",
        serve(axum::Router::new().route(
            "/certs",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            })
        ))
        .await
    );

    let p = Platform::init(dir.path().join("project")).await.unwrap();
    let run = p
        .training()
        .create_training_run(NewTrainingRun {
            ml_model: "shop".into(),
            name: "m".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let schedule = p
        .schedules()
        .create_from_run(
            run.id,
            NewSchedule {
                name: "weekly".into(),
                description: String::new(),
                timing: ScheduleTiming {
                    schedule_type: ScheduleType::Weekly,
                    scheduled_datetime: None,
                    schedule_time: Some("09:00".into()),
                    schedule_day_of_week: Some(0),
                    schedule_day_of_month: None,
                    schedule_timezone: "Europe/Warsaw".into(),
                },
                catch_up: CatchUpPolicy::Once,
                concurrency: ConcurrencyPolicy::Allow,
            },
        )
        .await
        .unwrap();

    let mut config = OidcConfig::google(AUDIENCE, SA);
    config.jwks_url = jwks_url;
    let verifier = Arc::new(OidcVerifier::new(config, Arc::new(SystemClock)));
    let auth = WebhookAuth {
        scheduler: verifier,
        callbacks: CallbackAuth::SharedSecret(SECRET.into()),
    };
    let base = serve(webhook_router(p.clone(), auth)).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/api/training/schedules/{}/webhook/", schedule.id);
    let deliver = |token: Option<String>| {
        let mut req = http
            .post(&url)
            .header("X-CloudScheduler-ScheduleTime", "2026-03-02T08:00:00Z");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let scheduled_runs = || async {
        p.store()
            .list_runs(&RunFilter {
                schedule_id: Some(schedule.id),
                ..Default::default()
            })
            .await
            .unwrap()
            .total
    };

    // Refused tokens: 401 and no run.
    let now = chrono::Utc::now().timestamp();
    let refused = [
        ("missing", None),
        (
            "expired",
            Some(sign(
                &key,
                "k1",
                &claims(json!({"exp": now - 3600, "iat": now - 7200})),
            )),
        ),
        (
            "wrong audience",
            Some(sign(
                &key,
                "k1",
                &claims(json!({"aud": "https://elsewhere"})),
            )),
        ),
        (
            "wrong issuer",
            Some(sign(
                &key,
                "k1",
                &claims(json!({"iss": "https://evil.example"})),
            )),
        ),
        (
            "wrong email",
            Some(sign(
                &key,
                "k1",
                &claims(json!({"email": "someone@proj.iam.gserviceaccount.com"})),
            )),
        ),
        (
            "unverified email",
            Some(sign(&key, "k1", &claims(json!({"email_verified": false})))),
        ),
        (
            "bad signature",
            Some(sign(&other, "k1", &claims(json!({})))),
        ),
        ("unknown key", Some(sign(&other, "k2", &claims(json!({}))))),
        ("garbage", Some("not.a.token".into())),
    ];
    for (why, token) in refused {
        let resp = deliver(token).await.unwrap();
        assert_eq!(resp.status(), 401, "{why}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["success"], false, "{why}");
    }
    assert_eq!(scheduled_runs().await, 0);

    // The same delivery five times: one run.
    let good = sign(&key, "k1", &claims(json!({})));
    let mut run_ids = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let resp = deliver(Some(good.clone())).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        run_ids.insert(body["training_run_id"].as_i64().unwrap());
    }
    assert_eq!(run_ids.len(), 1);
    assert_eq!(scheduled_runs().await, 1);
    let fired = p
        .training()
        .get(*run_ids.iter().next().unwrap())
        .await
        .unwrap();
    assert_eq!(
        fired.scheduled_fire_at.unwrap().to_rfc3339(),
        "2026-03-02T08:00:00+00:00"
    );

    // Unknown schedule: 404.
    let resp = http
        .post(format!("{base}/api/training/schedules/999/webhook/"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Pipeline callbacks need the shared secret.
    let cb = |path: &str| format!("{base}/api/training-runs/{}/webhook/{path}/", fired.id);
    let resp = http
        .post(cb("stage-complete"))
        .json(&json!({"stage": "examples"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http
        .post(cb("stage-complete"))
        .bearer_auth("wrong")
        .json(&json!({"stage": "examples"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http
        .post(cb("stage-complete"))
        .bearer_auth(SECRET)
        .json(&json!({"stage": "examples"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["current_stage"].as_str()),
        (Some("running"), Some("stats"))
    );
    let resp = http
        .post(cb("epoch-complete"))
        .bearer_auth(SECRET)
        .json(&json!({"epoch": 0, "metrics": {"loss": 3.5, "val_recall_at_100": 0.1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http
        .post(cb("completed"))
        .bearer_auth(SECRET)
        .json(&json!({"blessed": true, "training_metrics": {
            "loss": {"loss": [3.5], "val_recall_at_100": [0.1]},
            "mlflow": {"run_id": "0a52a83ba1c8481dba623ae5486c457c", "experiment_id": "1"},
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let done = p.training().get(fired.id).await.unwrap();
    assert_eq!(done.status, trainyard_core::RunStatus::Completed);
    assert_eq!(done.results.recall_at_100, Some(0.1));
    // the MLflow run the trainer logged to is stored on the run, and leads back to it
    assert_eq!(
        done.mlflow_run_id.as_deref(),
        Some("0a52a83ba1c8481dba623ae5486c457c")
    );
    let found = p
        .training()
        .list(&RunFilter {
            mlflow_run_id: done.mlflow_run_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        found.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        [done.id]
    );
    // A late failure for a finished run is a conflict, not a silent write.
    let resp = http
        .post(cb("failed"))
        .bearer_auth(SECRET)
        .json(&json!({"error": "late"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    // Malformed bodies are 4xx, not 5xx.
    let resp = http
        .post(cb("stage-complete"))
        .bearer_auth(SECRET)
        .json(&json!({"stage": "nope"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
}
