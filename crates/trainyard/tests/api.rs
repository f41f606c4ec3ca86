//! The REST API over real HTTP (reqwest against a server on a random port, over a temp project).

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trainyard::core::model_config::{ModelConfig, ModelType};
use trainyard::core::ports::PipelineEvent;
use trainyard::core::ports::SystemClock;
use trainyard::http::api;
use trainyard::http::{ApiSecurity, CallbackAuth, OidcConfig, OidcVerifier, WebhookAuth};
use trainyard::Platform;

const SECRET: &str = "api-test-secret";

struct Server {
    base: String,
    /// Sends the API token and `Content-Type: application/json` on every request.
    http: reqwest::Client,
    /// Sends nothing by default (the cross-site and token-less attempts).
    bare: reqwest::Client,
    token: String,
    platform: Platform,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn authorized_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::init(dir.path()).await.unwrap();
    let token = platform.api_token().unwrap().value().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Webhooks mounted as serve-api mounts them: a callback secret, and a scheduler verifier
    // no token of these tests can satisfy.
    let scheduler = Arc::new(OidcVerifier::new(
        OidcConfig::google(
            "http://trainyard.test",
            "scheduler@test.iam.gserviceaccount.com",
        ),
        Arc::new(SystemClock),
    ));
    let auth = WebhookAuth {
        scheduler,
        callbacks: CallbackAuth::SharedSecret(SECRET.into()),
    };
    let security = ApiSecurity::for_platform(&platform).unwrap();
    let app = api::app(platform.clone(), Some(auth), security);
    tokio::spawn(api::serve(listener, app, async {
        let _ = stopped.await;
    }));
    Server {
        base,
        http: authorized_client(&token),
        bare: reqwest::Client::new(),
        token,
        platform,
        _dir: dir,
        _stop: stop,
    }
}

impl Server {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {text:?}"));
        (status, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn create_run(&self, name: &str, extra: Value) -> Value {
        let mut body = json!({"name": name});
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        let (st, v) = self.post("/api/models/shop/training-runs/", body).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["training_run"].clone()
    }

    /// Drives a run to `completed` the way pipeline callbacks do.
    async fn complete(&self, id: i64) {
        self.complete_with(id, BTreeMap::new()).await
    }

    async fn complete_with(&self, id: i64, artifacts: BTreeMap<String, String>) {
        let svc = self.platform.training();
        svc.handle_event(
            id,
            &PipelineEvent::Submitted {
                job_name: None,
                job_id: None,
            },
        )
        .await
        .unwrap();
        svc.handle_event(
            id,
            &PipelineEvent::Completed {
                training_metrics: json!({
                    "epochs": [0, 1],
                    "loss": {"loss": [0.9, 0.4]},
                    "final_metrics": {"test_recall_at_100": 0.31}
                }),
                blessed: true,
                artifacts,
            },
        )
        .await
        .unwrap();
    }
}

fn assert_error(v: &Value, kind: &str, field: Option<&str>) {
    assert_eq!(v["success"], false, "{v}");
    assert_eq!(v["kind"], kind, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    if let Some(f) = field {
        assert_eq!(v["field"], f, "{v}");
    }
}

#[tokio::test]
async fn runs_create_get_list_and_filter() {
    let s = server().await;
    let a1 = s.create_run("alpha", json!({})).await;
    let a2 = s
        .create_run("alpha", json!({"description": "second"}))
        .await;
    let mut ranking = serde_json::to_value(ModelConfig::default()).unwrap();
    ranking["model_type"] = json!("ranking");
    let b = s.create_run("beta", json!({"model_config": ranking})).await;
    assert_eq!(a1["run_number"], 1);
    assert_eq!(a2["run_number"], 2);
    assert_eq!(a1["status"], "pending");
    assert_eq!(a1["registered_model_id"], a2["registered_model_id"]);
    assert_eq!(b["model_config"]["model_type"], "ranking");

    let (st, v) = s.get(&format!("/api/training-runs/{}/", a2["id"])).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["success"], true);
    assert_eq!(v["training_run"]["description"], "second");

    let (st, _) = s
        .post(
            &format!("/api/training-runs/{}/cancel/", a1["id"]),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);

    let list = |q: &'static str| {
        let s = &s;
        async move {
            let (st, v) = s.get(&format!("/api/models/shop/training-runs/{q}")).await;
            assert_eq!(st, StatusCode::OK, "{q}: {v}");
            v
        }
    };
    let all = list("").await;
    assert_eq!(all["pagination"]["total"], 3);
    assert_eq!(all["training_runs"][0]["id"], b["id"], "newest first");
    assert_eq!(all["kpi"]["by_status"]["cancelled"], 1);
    let v = list("?status=cancelled").await;
    assert_eq!(v["training_runs"].as_array().unwrap().len(), 1);
    assert_eq!(v["training_runs"][0]["id"], a1["id"]);
    let v = list("?status=cancelled,pending").await;
    assert_eq!(v["pagination"]["total"], 3);
    let v = list("?model_type=ranking").await;
    assert_eq!(v["pagination"]["total"], 1);
    let v = list("?search=ALP").await;
    assert_eq!(v["pagination"]["total"], 2);
    let v = list("?page=2&page_size=2").await;
    assert_eq!(v["training_runs"].as_array().unwrap().len(), 1);
    assert_eq!(v["pagination"]["total_pages"], 2);
    assert_eq!(v["pagination"]["has_next"], false);
    assert_eq!(v["pagination"]["has_previous"], true);

    // Another model endpoint's listing does not see these runs; the global one does.
    let (_, v) = s.get("/api/models/other/training-runs/").await;
    assert_eq!(v["pagination"]["total"], 0);
    let (_, v) = s.get("/api/training-runs/?ml_model=shop").await;
    assert_eq!(v["pagination"]["total"], 3);

    // Bad filters name their parameter.
    let (st, v) = s.get("/api/training-runs/?status=done").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_error(&v, "bad_request", Some("status"));
    let (st, v) = s.get("/api/training-runs/?page_size=0").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_error(&v, "bad_request", Some("page_size"));
    let (st, v) = s.get("/api/training-runs/?registered_model_id=x").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_error(&v, "bad_request", Some("registered_model_id"));
}

#[tokio::test]
async fn bad_input_is_400_or_422_naming_the_field_and_unknown_ids_404() {
    let s = server().await;
    // A rule of the domain: 400 with the field.
    let (st, v) = s
        .post(
            "/api/models/shop/training-runs/",
            json!({"name": "m", "training_params": {"epochs": 0}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_error(&v, "validation", Some("training_params.epochs"));
    let (st, v) = s
        .post("/api/models/shop/training-runs/", json!({"name": "   "}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_error(&v, "validation", Some("name"));
    // Well-formed JSON of the wrong shape: 422 with the path.
    let (st, v) = s
        .post("/api/models/shop/training-runs/", json!({"name": 5}))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_error(&v, "invalid_body", Some("name"));
    let (st, v) = s
        .post(
            "/api/models/shop/training-runs/",
            json!({"description": "no name"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_error(&v, "invalid_body", None);
    assert!(v["error"].as_str().unwrap().contains("name"), "{v}");
    // A part given in part is merged over its defaults (as in the CLI and Python).
    let (st, v) = s
        .post(
            "/api/models/shop/training-runs/",
            json!({"name": "m", "model_config": {"model_type": "ranking"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["training_run"]["model_config"]["model_type"], "ranking");
    // Inside a config part, the path names the nested field.
    let (st, v) = s
        .post(
            "/api/models/shop/training-runs/",
            json!({"name": "m", "training_params": {"epochs": "ten"}}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_error(&v, "invalid_body", Some("training_params.epochs"));
    let (st, v) = s
        .post("/api/models/shop/training-runs/", json!(["m"]))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Not JSON at all: 400.
    let resp = s
        .http
        .post(format!("{}/api/models/shop/training-runs/", s.base))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_error(&resp.json().await.unwrap(), "bad_request", None);
    let resp = s
        .http
        .post(format!("{}/api/models/shop/training-runs/", s.base))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    for path in [
        "/api/training-runs/987654/",
        "/api/training-runs/987654/config/",
        "/api/training-runs/987654/metrics/",
        "/api/training/schedules/987654/",
        "/api/registered-models/987654/",
        "/api/registered-models/987654/versions/",
    ] {
        let (st, v) = s.get(path).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_error(&v, "not_found", None);
    }
    let (st, v) = s.post("/api/training-runs/987654/cancel/", json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, v) = s.get("/api/training-runs/abc/").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_error(&v, "bad_request", Some("id"));
    let (st, v) = s.get("/api/no/such/route/").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_error(&v, "not_found", None);
}

#[tokio::test]
async fn cancel_rerun_config_and_invalid_transitions() {
    let s = server().await;
    let run = s.create_run("gamma", json!({})).await;
    let id = run["id"].as_i64().unwrap();

    // The config of a run still owned by the pipeline cannot be edited; nor can it be rerun.
    let patch = json!({"training_params": {"epochs": 3, "batch_size": 256, "learning_rate": 0.05}});
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/training-runs/{id}/config/"),
            Some(patch.clone()),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_error(&v, "conflict", None);
    let (st, _) = s
        .post(&format!("/api/training-runs/{id}/rerun/"), json!({}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // No executor on this server: submitting is refused, not a server error.
    let (st, v) = s
        .post(&format!("/api/training-runs/{id}/submit/"), json!({}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let (st, v) = s
        .post(
            "/api/models/shop/training-runs/",
            json!({"name": "gamma", "submit": true}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");

    let (st, v) = s
        .post(&format!("/api/training-runs/{id}/cancel/"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["training_run"]["status"], "cancelled");
    let (st, v) = s
        .post(&format!("/api/training-runs/{id}/cancel/"), json!({}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_error(&v, "invalid_transition", None);

    // Finished: the config can be edited, and the change is what GET shows afterwards.
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/training-runs/{id}/config/"),
            Some(patch),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["updated_fields"], json!(["training_params"]));
    let (_, v) = s.get(&format!("/api/training-runs/{id}/config/")).await;
    assert_eq!(v["config"]["training_params"]["epochs"], 3);
    assert_eq!(v["config"]["name"], "gamma");
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/training-runs/{id}/config/"),
            Some(json!({"training_params": {"epochs": 0, "batch_size": 1, "learning_rate": 0.1}})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_error(&v, "validation", Some("training_params.epochs"));
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/training-runs/{id}/config/"),
            Some(json!({"dataset": {}})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // Rerun: same name, next number, the edited config.
    let (st, v) = s
        .post(&format!("/api/training-runs/{id}/rerun/"), json!({}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let rerun = &v["training_run"];
    assert_eq!(rerun["name"], "gamma");
    assert_eq!(rerun["run_number"], 2);
    assert_eq!(rerun["status"], "pending");
    assert_eq!(rerun["training_params"]["epochs"], 3);
    assert_eq!(v["message"], "Re-run created as Training #2");

    // A completed run: metrics history and a rerun of it.
    let done = s.create_run("delta", json!({})).await;
    let did = done["id"].as_i64().unwrap();
    s.complete(did).await;
    let (_, v) = s.get(&format!("/api/training-runs/{did}/")).await;
    assert_eq!(v["training_run"]["status"], "completed");
    let (st, v) = s.get(&format!("/api/training-runs/{did}/metrics/")).await;
    assert_eq!(st, StatusCode::OK);
    let epochs: Vec<_> = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["epoch"].clone())
        .collect();
    assert_eq!(epochs, vec![json!(0), json!(1)], "{v}");
    let (st, v) = s
        .post(&format!("/api/training-runs/{did}/cancel/"), json!({}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_error(&v, "invalid_transition", None);
    // Insights of a run whose pipeline left no artifacts: 404 naming what is missing, never 5xx.
    for what in ["statistics/", "schema/", "weight-stats/?epoch=3"] {
        let (st, v) = s.get(&format!("/api/training-runs/{did}/{what}")).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{what}: {v}");
        assert_error(&v, "not_found", None);
    }
    let (st, v) = s
        .get(&format!("/api/training-runs/{did}/weight-stats/?epoch=x"))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_error(&v, "bad_request", Some("epoch"));
    let (st, _) = s.get("/api/training-runs/987654/logs/").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn schedules_crud_preview_and_fires() {
    let s = server().await;
    let run = s.create_run("weekly-model", json!({})).await;
    let rid = run["id"].as_i64().unwrap();

    let (st, v) = s
        .get(&format!(
            "/api/training/schedules/preview/?source_run_id={rid}"
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["preview"]["source_run_name"], "weekly-model");
    assert_eq!(v["preview"]["model_type"], "retrieval");
    let (st, v) = s.get("/api/training/schedules/preview/").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_error(&v, "bad_request", Some("source_run_id"));

    let weekly = json!({
        "source_training_run_id": rid,
        "name": "Weekly retraining",
        "schedule_type": "weekly",
        "schedule_time": "09:00",
        "schedule_day_of_week": 0,
        "schedule_timezone": "Europe/Warsaw"
    });
    let (st, v) = s
        .post("/api/training/schedules/from-run/", weekly.clone())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let sched = &v["schedule"];
    let sid = sched["id"].as_i64().unwrap();
    assert_eq!(sched["cron"], "0 9 * * 1", "Monday is cron day 1");
    assert_eq!(sched["status"], "active");
    assert_eq!(sched["is_recurring"], true);
    assert!(sched["next_run_at"].is_string());
    // One schedule per registered model.
    let (st, v) = s.post("/api/training/schedules/from-run/", weekly).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    // Bad timing names its field.
    let (st, v) = s
        .post(
            "/api/training/schedules/from-run/",
            json!({"source_training_run_id": rid, "name": "x", "schedule_type": "weekly",
                   "schedule_time": "09:00", "schedule_day_of_week": 7}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_error(&v, "validation", Some("schedule_day_of_week"));

    // Wrong types in the body are named too (the service types flatten their parts).
    for (body, field) in [
        (
            json!({"source_training_run_id": rid, "name": {"x": 1}, "schedule_type": "daily",
                "schedule_time": "09:00"}),
            "name",
        ),
        (
            json!({"source_training_run_id": rid, "name": "n", "schedule_type": "daily",
                "schedule_time": "09:00", "catch_up": "sometimes"}),
            "catch_up",
        ),
        (
            json!({"source_training_run_id": rid, "name": "n", "schedule_type": "daily",
                "schedule_time": 900}),
            "schedule_time",
        ),
        (
            json!({"source_training_run_id": "one", "name": "n", "schedule_type": "daily",
                "schedule_time": "09:00"}),
            "source_training_run_id",
        ),
    ] {
        let (st, v) = s.post("/api/training/schedules/from-run/", body).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_error(&v, "invalid_body", Some(field));
    }

    let (_, v) = s.get("/api/training/schedules/").await;
    assert_eq!(v["schedules"].as_array().unwrap().len(), 1);
    let (st, v) = s
        .call(
            Method::PUT,
            &format!("/api/training/schedules/{sid}/"),
            Some(json!({"schedule_time": "10:30", "name": "Renamed"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["schedule"]["cron"], "30 10 * * 1");
    assert_eq!(v["schedule"]["name"], "Renamed");
    assert_eq!(v["schedule"]["schedule_timezone"], "Europe/Warsaw");
    let (st, v) = s
        .call(
            Method::PUT,
            &format!("/api/training/schedules/{sid}/"),
            Some(json!({"training_params": {}})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "frozen config: {v}");

    let (st, v) = s
        .get(&format!("/api/training/schedules/{sid}/upcoming/?count=3"))
        .await;
    assert_eq!(st, StatusCode::OK);
    let fires = v["fires"].as_array().unwrap();
    assert_eq!(fires.len(), 3);
    assert!(
        fires
            .iter()
            .all(|f| f.as_str().unwrap().contains("T10:30:00")),
        "{v}"
    );
    let (st, _) = s
        .get(&format!(
            "/api/training/schedules/{sid}/upcoming/?count=5000"
        ))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let (st, v) = s
        .post(&format!("/api/training/schedules/{sid}/pause/"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["schedule"]["status"], "paused");
    let (st, _) = s
        .post(&format!("/api/training/schedules/{sid}/pause/"), json!({}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, v) = s
        .post(
            &format!("/api/training/schedules/{sid}/trigger/"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["outcome"], "created");
    let fired = v["training_run_id"].as_i64().unwrap();
    let (_, v) = s.get(&format!("/api/training-runs/{fired}/")).await;
    assert_eq!(v["training_run"]["schedule_id"], sid);
    assert_eq!(v["training_run"]["status"], "scheduled");
    let (_, v) = s
        .post(&format!("/api/training/schedules/{sid}/resume/"), json!({}))
        .await;
    assert_eq!(v["schedule"]["status"], "active");
    assert_eq!(v["schedule"]["total_runs"], 1);

    // Registered models: the schedule shows on its model, check-name agrees.
    let (_, v) = s
        .get("/api/registered-models/check-name/?name=weekly-model&ml_model=shop")
        .await;
    assert_eq!(v["exists"], true);
    assert_eq!(v["has_schedule"], true);
    assert_eq!(v["schedule_id"], sid);
    let mid = v["registered_model_id"].as_i64().unwrap();
    let (_, v) = s.get(&format!("/api/registered-models/{mid}/")).await;
    assert_eq!(v["registered_model"]["schedule_status"], "active");
    // ... and by name, in its model endpoint or across all of them.
    for path in [
        "/api/registered-models/weekly-model/",
        "/api/registered-models/weekly-model/?ml_model=shop",
        "/api/registered-models/%20weekly-model/?ml_model=",
    ] {
        let (st, by_name) = s.get(path).await;
        assert_eq!(st, StatusCode::OK, "{path}: {by_name}");
        assert_eq!(by_name, v, "{path}");
    }
    for path in [
        "/api/registered-models/weekly-model/?ml_model=other-endpoint",
        "/api/registered-models/no-such-model/",
    ] {
        let (st, e) = s.get(path).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {e}");
        assert_error(&e, "not_found", None);
    }
    let (_, v) = s
        .get(&format!("/api/registered-models/{mid}/versions/"))
        .await;
    assert_eq!(
        v["versions"].as_array().unwrap().len(),
        2,
        "source run + fired run"
    );

    // Cancel, then delete: the model is free for a new schedule.
    let (_, v) = s
        .post(&format!("/api/training/schedules/{sid}/cancel/"), json!({}))
        .await;
    assert_eq!(v["schedule"]["status"], "cancelled");
    let (st, _) = s
        .call(
            Method::PUT,
            &format!("/api/training/schedules/{sid}/"),
            Some(json!({"name": "late"})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/training/schedules/{sid}/"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.get(&format!("/api/training/schedules/{sid}/")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, v) = s
        .get("/api/registered-models/check-name/?name=weekly-model&ml_model=shop")
        .await;
    assert_eq!(v["has_schedule"], false);

    // For the registered model, with its newest run's config.
    let (st, v) = s
        .post(
            "/api/training/schedules/",
            json!({"registered_model_id": mid, "name": "Daily", "schedule_type": "daily",
                   "schedule_time": "02:00"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["schedule"]["cron"], "0 2 * * *");
    // The wizard: a new model name, its config and the schedule in one request.
    let (st, v) = s
        .post(
            "/api/training/schedules/",
            json!({"name": "wizard-model", "schedule_name": "Monthly", "schedule_type": "monthly",
                   "schedule_time": "03:15", "schedule_day_of_month": 31,
                   "training_params": {"epochs": 2, "batch_size": 64, "learning_rate": 0.1}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["schedule"]["name"], "Monthly");
    assert_eq!(
        v["schedule"]["training_config"]["training_params"]["epochs"],
        2
    );
    let (_, v) = s
        .get("/api/registered-models/check-name/?name=wizard-model")
        .await;
    assert_eq!(
        v["exists"], true,
        "wizard models go to the project's ml_model: {v}"
    );
    assert_eq!(v["has_schedule"], true);
    let (st, v) = s.get("/api/registered-models/check-name/").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_error(&v, "bad_request", Some("name"));

    // The wizard's "Run Now": schedule_type now fires once as it is created, then is finished.
    let (st, v) = s
        .post(
            "/api/training/schedules/",
            json!({"name": "now-model", "schedule_type": "now",
                   "training_params": {"epochs": 4, "batch_size": 64, "learning_rate": 0.1}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let now_sched = &v["schedule"];
    assert_eq!(now_sched["schedule_type"], "now");
    assert_eq!(now_sched["status"], "completed", "{v}");
    assert_eq!(now_sched["is_recurring"], false);
    assert_eq!(now_sched["total_runs"], 1);
    assert!(now_sched["next_run_at"].is_null());
    assert_eq!(now_sched["last_run_at"], now_sched["scheduled_datetime"]);
    let (_, v) = s
        .get("/api/registered-models/check-name/?name=now-model")
        .await;
    assert_eq!(
        v["has_schedule"], true,
        "the finished schedule stays on record: {v}"
    );
    // Its model's next schedule replaces it.
    let (st, v) = s
        .post(
            "/api/training/schedules/",
            json!({"name": "now-model", "schedule_type": "daily", "schedule_time": "01:00"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["schedule"]["status"], "active");
    let (st, v) = s
        .post(
            "/api/training/schedules/",
            json!({"name": "now-model", "schedule_type": "now"}),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "a live schedule is not replaced: {v}"
    );

    let (_, v) = s.get("/api/registered-models/?has_schedule=true").await;
    assert_eq!(v["kpi"]["total"], 3, "{v}");
    assert_eq!(v["kpi"]["with_schedule"], 3);
    let (_, v) = s.get("/api/registered-models/?search=wizard").await;
    assert_eq!(v["registered_models"][0]["model_name"], "wizard-model");
    assert_eq!(v["registered_models"][0]["has_schedule"], true);
    let (st, v) = s.get("/api/registered-models/?has_schedule=maybe").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_error(&v, "bad_request", Some("has_schedule"));
    // A name held in two model endpoints needs its endpoint (or the id).
    let twin = s
        .platform
        .registry()
        .get_or_create_for_training("other-endpoint", "weekly-model", ModelType::Retrieval, "")
        .await
        .unwrap();
    let (st, e) = s.get("/api/registered-models/weekly-model/").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
    assert_error(&e, "validation", Some("model"));
    let (_, e) = s
        .get("/api/registered-models/weekly-model/?ml_model=other-endpoint")
        .await;
    assert_eq!(e["registered_model"]["id"], twin.id, "{e}");
}

#[tokio::test]
async fn registry_push_aliases_and_deployment_routes() {
    let s = server().await;
    let pending = s.create_run("served-model", json!({})).await;
    let pid = pending["id"].as_i64().unwrap();
    // Not completed: pushing and deploying are refused as bad input, naming the run.
    let (st, v) = s
        .post(&format!("/api/training-runs/{pid}/push/"), json!({}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_error(&v, "validation", Some("training_run"));
    let (st, v) = s
        .call(
            Method::POST,
            &format!("/api/training-runs/{pid}/deploy-cloud-run/"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "empty body = defaults: {v}");
    assert_error(&v, "validation", Some("training_run"));
    let (st, v) = s
        .post(
            &format!("/api/training-runs/{pid}/deploy-cloud-run/"),
            json!({"preset": "huge"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_error(&v, "invalid_body", Some("preset"));
    let (st, v) = s
        .get(&format!("/api/training-runs/{pid}/deployment/"))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["deployment"]["has_active_endpoint"], false);
    assert_eq!(v["deployment"]["deployment_status"], "skipped");

    // A completed, blessed run whose pipeline pushed a SavedModel: the platform registers it
    // as version 1 on completion, so a push of it is a conflict.
    let done = s.create_run("served-model", json!({})).await;
    let did = done["id"].as_i64().unwrap();
    let pushed = s.platform.dir().join("pushed_model");
    std::fs::create_dir_all(pushed.join("1700000000")).unwrap();
    std::fs::write(pushed.join("1700000000/saved_model.pb"), b"graph").unwrap();
    let artifacts = BTreeMap::from([("pushed_model".to_string(), pushed.display().to_string())]);
    s.complete_with(did, artifacts).await;
    let (_, v) = s.get(&format!("/api/training-runs/{did}/")).await;
    assert_eq!(v["training_run"]["vertex_model_version"], "1", "{v}");
    let mid = v["training_run"]["registered_model_id"].as_i64().unwrap();
    let (st, v) = s
        .post(&format!("/api/training-runs/{did}/push/"), json!({}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "registered twice: {v}");
    assert_error(&v, "conflict", None);
    // A Vertex AI endpoint needs the Google Cloud backend: refused as input, nothing changes.
    let (st, v) = s
        .call(
            Method::POST,
            &format!("/api/training-runs/{did}/deploy/"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_error(&v, "validation", Some("target"));
    assert!(v.to_string().contains("Google Cloud backend"), "{v}");
    let (st, v) = s
        .post(
            &format!("/api/training-runs/{did}/deploy-cloud-run/"),
            json!({"target": "vertex_endpoint"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_error(&v, "validation", Some("target"));
    let (st, v) = s
        .post(
            &format!("/api/training-runs/{did}/deploy/"),
            json!({"target": "service"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_error(&v, "validation", Some("target"));
    let (_, v) = s.get(&format!("/api/training-runs/{did}/")).await;
    assert_eq!(v["training_run"]["status"], "completed", "{v}");

    let (_, v) = s.get(&format!("/api/registered-models/{mid}/")).await;
    assert_eq!(v["registered_model"]["is_registered"], true, "{v}");
    assert_eq!(v["registered_model"]["has_active_endpoint"], false);
    let (_, v) = s.get("/api/registered-models/?registered=true").await;
    assert_eq!(v["kpi"]["registered"], 1, "{v}");
    let (_, v) = s
        .get(&format!("/api/registered-models/{mid}/versions/"))
        .await;
    assert_eq!(v["versions"].as_array().unwrap().len(), 2, "both runs: {v}");
    assert_eq!(v["registered_versions"][0]["version"], "1");
    assert_eq!(v["registered_versions"][0]["training_run_id"], did);

    let alias = format!("/api/registered-models/{mid}/aliases/production/");
    let (st, v) = s
        .call(Method::PUT, &alias, Some(json!({"version": "7"})))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "no version 7: {v}");
    let (st, v) = s
        .call(Method::PUT, &alias, Some(json!({"version": "1"})))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["aliases"], json!({"production": "1"}));
    let (_, v) = s
        .get(&format!("/api/registered-models/{mid}/aliases/"))
        .await;
    assert_eq!(v["aliases"], json!({"production": "1"}));
    let (st, _) = s.call(Method::DELETE, &alias, None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.call(Method::DELETE, &alias, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, v) = s
        .get(&format!("/api/registered-models/{mid}/history/"))
        .await;
    let aliases: Vec<_> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "alias")
        .map(|e| (e["name"].clone(), e["model_version"].clone()))
        .collect();
    assert_eq!(
        aliases,
        vec![
            (json!("production"), json!("1")),
            (json!("production"), json!(""))
        ],
        "{v}"
    );

    let (st, v) = s
        .get(&format!("/api/registered-models/{mid}/endpoints/"))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["endpoints"], json!([]));
    let (st, _) = s.get("/api/registered-models/987654/endpoints/").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, v) = s.post("/api/endpoints/987654/undeploy/", json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
}

/// Every operation the document lists is routed (and vice versa for the main ones): docs and
/// routes come from the same code, and this keeps it so.
#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let s = server().await;
    let (st, doc) = s.get(api::OPENAPI_PATH).await;
    assert_eq!(st, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc, serde_json::to_value(api::openapi()).unwrap());
    let paths = doc["paths"].as_object().unwrap();
    for required in [
        "/api/models/{ml_model}/training-runs/",
        "/api/training-runs/{id}/",
        "/api/training-runs/{id}/config/",
        "/api/training/schedules/",
        "/api/training/schedules/from-run/",
        "/api/training/schedules/preview/",
        "/api/registered-models/check-name/",
    ] {
        assert!(paths.contains_key(required), "{required} missing");
    }
    let mut n = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "987654")
            .replace("{ml_model}", "shop")
            .replace("{alias}", "production");
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            n += 1;
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method != "get" && method != "delete").then(|| json!({}));
            let (st, v) = s.call(m, &concrete, body).await;
            assert_ne!(st, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(!st.is_server_error(), "{method} {path}: {st} {v}");
            assert_ne!(
                v["error"], "no such route",
                "{method} {path} is documented, not routed"
            );
        }
    }
    assert!(n >= 30, "{n} operations");
    assert!(paths.contains_key("/api/training-runs/{id}/webhook/completed/"));
    // A model is found by id or name: the document says so.
    let params = paths["/api/registered-models/{id}/"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let param = |name: &str| params.iter().find(|p| p["name"] == name).cloned();
    assert_eq!(
        param("id").unwrap()["schema"]["type"],
        "string",
        "{params:?}"
    );
    assert_eq!(param("ml_model").unwrap()["in"], "query", "{params:?}");

    // The documented webhooks are mounted: a callback with the secret reaches its handler.
    let run = s.create_run("hooked", json!({})).await;
    let resp = s
        .http
        .post(format!(
            "{}/api/training-runs/{}/webhook/stage-complete/",
            s.base, run["id"]
        ))
        .bearer_auth(SECRET)
        .json(&json!({"stage": "examples"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, v) = s.get(&format!("/api/training-runs/{}/", run["id"])).await;
    assert_eq!(v["training_run"]["status"], "running", "{v}");
}

/// A request from `client` (no default headers) with the given headers and body.
async fn raw(
    s: &Server,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = s.bare.request(method, format!("{}{path}", s.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

#[tokio::test]
async fn token_is_required_on_every_management_route() {
    let s = server().await;
    let run = s.create_run("guarded", json!({})).await;
    let id = run["id"].as_i64().unwrap();
    let bearer = format!("Bearer {}", s.token);
    let json_ct = ("content-type", "application/json");
    let create = "/api/models/shop/training-runs/";
    let body = r#"{"name": "intruder"}"#;
    let wrong = format!("Bearer {}x", s.token);
    let short = format!("Bearer {}", &s.token[..s.token.len() - 1]);
    let basic = format!("Basic {}", s.token);
    // (method, path, headers): each must be refused with 401 and change nothing.
    let list_path = "/api/training-runs/".to_string();
    let cancel_path = format!("/api/training-runs/{id}/cancel/");
    type Attempt<'a> = (Method, &'a str, Vec<(&'a str, &'a str)>);
    let attempts: Vec<Attempt> = vec![
        (Method::GET, &list_path, vec![]),
        (Method::POST, create, vec![json_ct]),
        (Method::POST, &cancel_path, vec![json_ct]),
        (Method::GET, "/api/no/such/route/", vec![]),
        (Method::GET, &list_path, vec![("authorization", &wrong)]),
        (Method::GET, &list_path, vec![("authorization", &short)]),
        (Method::GET, &list_path, vec![("authorization", "Bearer ")]),
        (Method::GET, &list_path, vec![("authorization", &basic)]),
        (Method::GET, &list_path, vec![("authorization", &s.token)]),
        (
            Method::POST,
            create,
            vec![json_ct, ("authorization", wrong.as_str())],
        ),
    ];
    for (method, path, headers) in attempts {
        let b = (method == Method::POST).then_some(body);
        let (st, h, text) = raw(&s, method.clone(), path, &headers, b).await;
        assert_eq!(
            st,
            StatusCode::UNAUTHORIZED,
            "{method} {path} {headers:?}: {text}"
        );
        assert_eq!(h["www-authenticate"], "Bearer");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_error(&v, "unauthorized", None);
        assert!(!text.contains("guarded"), "{text}");
    }
    let (_, v) = s.get("/api/training-runs/").await;
    assert_eq!(v["pagination"]["total"], 1, "nothing was created: {v}");
    assert_eq!(
        v["training_runs"][0]["status"], "pending",
        "nothing was cancelled"
    );

    // The token works (any case of the scheme).
    let lower = format!("bearer {}", s.token);
    for auth in [bearer.as_str(), lower.as_str()] {
        let (st, _, text) = raw(
            &s,
            Method::GET,
            &list_path,
            &[("authorization", auth)],
            None,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{text}");
        assert!(text.contains("guarded"));
    }
    // Public: the document and the health route (no project data).
    let (st, _, text) = raw(&s, Method::GET, api::OPENAPI_PATH, &[], None).await;
    assert_eq!(st, StatusCode::OK, "{text}");
    let (st, _, text) = raw(&s, Method::GET, api::HEALTH_PATH, &[], None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["status"],
        "ok"
    );
    // ...only for reading.
    let (st, _, _) = raw(&s, Method::POST, api::HEALTH_PATH, &[json_ct], Some("{}")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cross_site_forms_and_bodiless_posts_are_415_and_change_nothing() {
    let s = server().await;
    let run = s.create_run("formed", json!({})).await;
    let id = run["id"].as_i64().unwrap();
    let (st, sched) = s
        .post(
            "/api/training/schedules/from-run/",
            json!({"source_training_run_id": id, "name": "Nightly", "schedule_type": "daily",
                   "schedule_time": "02:00"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sched}");
    let sid = sched["schedule"]["id"].as_i64().unwrap();
    let bearer = format!("Bearer {}", s.token);
    let auth = ("authorization", bearer.as_str());
    let cancel = format!("/api/training-runs/{id}/cancel/");
    let schedule = format!("/api/training/schedules/{sid}/");
    let config = format!("/api/training-runs/{id}/config/");
    let create = "/api/models/shop/training-runs/";
    let cases: Vec<(Method, &str, Option<&str>, Option<&str>)> = vec![
        // A cross-site HTML form: urlencoded, multipart, text/plain.
        (
            Method::POST,
            create,
            Some("application/x-www-form-urlencoded"),
            Some("name=evil"),
        ),
        (
            Method::POST,
            create,
            Some("multipart/form-data; boundary=x"),
            Some("--x--"),
        ),
        (
            Method::POST,
            create,
            Some("text/plain"),
            Some(r#"{"name": "evil"}"#),
        ),
        // A no-cors fetch without a content type, with and without a body.
        (Method::POST, create, None, Some(r#"{"name": "evil"}"#)),
        (Method::POST, &cancel, None, None),
        (
            Method::POST,
            &cancel,
            Some("application/x-www-form-urlencoded"),
            Some(""),
        ),
        (Method::DELETE, &schedule, None, None),
        (Method::DELETE, &schedule, Some("text/plain"), None),
        (
            Method::PUT,
            &schedule,
            Some("text/plain"),
            Some(r#"{"name": "x"}"#),
        ),
        (
            Method::PATCH,
            &config,
            Some("application/x-www-form-urlencoded"),
            Some("a=b"),
        ),
        (
            Method::POST,
            create,
            Some("application/jsonx"),
            Some(r#"{"name": "evil"}"#),
        ),
    ];
    for (method, path, ct, body) in cases {
        let mut headers = vec![auth];
        if let Some(ct) = ct {
            headers.push(("content-type", ct));
        }
        let (st, _, text) = raw(&s, method.clone(), path, &headers, body).await;
        assert_eq!(
            st,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{method} {path} {ct:?}: {text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_error(&v, "unsupported_media_type", None);
    }
    let (_, v) = s.get("/api/training-runs/").await;
    assert_eq!(v["pagination"]["total"], 1, "{v}");
    assert_eq!(v["training_runs"][0]["status"], "pending");
    let (st, v) = s.get(&schedule).await;
    assert_eq!(st, StatusCode::OK, "the schedule is still there");
    assert_eq!(v["schedule"]["name"], "Nightly");
    // The same bodiless POST with the JSON content type goes through.
    let (st, _, text) = raw(
        &s,
        Method::POST,
        &cancel,
        &[auth, ("content-type", "application/json; charset=utf-8")],
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{text}");
}

#[tokio::test]
async fn foreign_hosts_are_refused_without_leaking_an_answer() {
    let s = server().await;
    s.create_run("secret-model", json!({})).await;
    let bearer = format!("Bearer {}", s.token);
    let port = s.base.rsplit(':').next().unwrap().to_string();
    let evil = format!("evil.example:{port}");
    let rebound = format!("127.0.0.1.nip.io:{port}");
    for host in [
        evil.as_str(),
        rebound.as_str(),
        "localhost.evil.example",
        "evil.example",
    ] {
        for path in [
            "/api/training-runs/",
            api::OPENAPI_PATH,
            "/api/registered-models/",
        ] {
            let (st, _, text) = raw(
                &s,
                Method::GET,
                path,
                &[("host", host), ("authorization", &bearer)],
                None,
            )
            .await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{host} {path}: {text}");
            assert!(!text.contains("secret-model"), "{text}");
            assert!(!text.contains("openapi"), "{text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_error(&v, "forbidden", None);
        }
    }
    // Loopback names with the server's port are allowed.
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (st, _, text) = raw(
            &s,
            Method::GET,
            "/api/training-runs/",
            &[("host", &host), ("authorization", &bearer)],
            None,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{host}: {text}");
    }
    // An allowlisted name (from [server] allowed_hosts) is answered.
    let token = s.platform.api_token().unwrap();
    let server = trainyard::ServerSection {
        allowed_hosts: vec!["api.example.com".into()],
        ..Default::default()
    };
    let sec = ApiSecurity::from_config(&token, &server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(api::serve(
        listener,
        api::app(s.platform.clone(), None, sec),
        std::future::pending(),
    ));
    for (host, want) in [
        ("api.example.com", StatusCode::OK),
        ("API.example.com:443", StatusCode::OK),
        ("evil.example", StatusCode::FORBIDDEN),
    ] {
        let resp = s
            .bare
            .get(format!("{base}/api/training-runs/"))
            .header("host", host)
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), want, "{host}");
    }
}

#[tokio::test]
async fn the_token_file_is_private_stable_and_overridable() {
    use std::os::unix::fs::PermissionsExt;
    let s = server().await;
    let path = s.platform.api_token_path();
    assert!(path.ends_with(".trainyard/api_token"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    assert_eq!(s.token.len(), 64);
    assert!(s.token.bytes().all(|b| b.is_ascii_hexdigit()));
    // Reopening reads the same token; a second project gets another.
    let again = Platform::open(s.platform.dir()).await.unwrap();
    assert_eq!(again.api_token().unwrap().value(), s.token);
    let other = tempfile::tempdir().unwrap();
    let p2 = Platform::init(other.path()).await.unwrap();
    assert_ne!(p2.api_token().unwrap().value(), s.token);
    // A project from before tokens gets one on first use; a too-open file is narrowed.
    std::fs::remove_file(p2.api_token_path()).unwrap();
    let fresh = p2.api_token().unwrap();
    assert_eq!(fresh.value().len(), 64);
    std::fs::set_permissions(p2.api_token_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(p2.api_token().unwrap().value(), fresh.value());
    let mode = std::fs::metadata(p2.api_token_path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // An empty token file is an error, not an empty token.
    std::fs::write(p2.api_token_path(), "\n").unwrap();
    assert!(p2.api_token().is_err());
    // The API token's Debug form hides the value.
    assert!(!format!("{fresh:?}").contains(fresh.value()));
}

fn model_with_typo() -> Value {
    let mut m = serde_json::to_value(ModelConfig::default()).unwrap();
    m["output_embeding_dim"] = json!(8);
    m
}

#[tokio::test]
async fn unknown_fields_are_refused_at_create_and_patch_naming_the_nearest() {
    let s = server().await;
    let create = "/api/models/shop/training-runs/";
    for (body, field, hint) in [
        (
            json!({"name": "m", "trainig_params": {"epochs": 2}}),
            "trainig_params",
            "training_params",
        ),
        (
            json!({"name": "m", "training_params": {"epoch": 2}}),
            "training_params.epoch",
            "epochs",
        ),
        (
            json!({"name": "m", "descripton": "x"}),
            "descripton",
            "description",
        ),
        (
            json!({"name": "m", "model_config": model_with_typo()}),
            "model_config.output_embeding_dim",
            "output_embedding_dim",
        ),
    ] {
        let (st, v) = s.post(create, body.clone()).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_error(&v, "invalid_body", Some(field));
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(&format!("did you mean `{hint}`?")), "{msg}");
    }
    let (_, v) = s.get("/api/training-runs/").await;
    assert_eq!(v["pagination"]["total"], 0, "nothing was created");

    let run = s.create_run("strict", json!({})).await;
    let id = run["id"].as_i64().unwrap();
    s.complete(id).await;
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/training-runs/{id}/config/"),
            Some(json!({"training_params": {"epoch": 3}})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_error(&v, "invalid_body", Some("training_params.epoch"));
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("did you mean `epochs`?"),
        "{v}"
    );

    // Schedule bodies: from a run, for a model, and the wizard.
    for body in [
        json!({"source_training_run_id": id, "name": "n", "schedule_type": "daily",
               "schedule_time": "02:00", "schedule_timezon": "UTC"}),
        json!({"registered_model_id": run["registered_model_id"], "name": "n",
               "schedule_type": "daily", "schedule_time": "02:00", "schedule_timezon": "UTC"}),
        json!({"name": "wiz", "schedule_type": "daily", "schedule_time": "02:00",
               "schedule_timezon": "UTC"}),
    ] {
        let path = if body.get("source_training_run_id").is_some() {
            "/api/training/schedules/from-run/"
        } else {
            "/api/training/schedules/"
        };
        let (st, v) = s.post(path, body.clone()).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_error(&v, "invalid_body", Some("schedule_timezon"));
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("did you mean `schedule_timezone`?"),
            "{v}"
        );
    }
    let (st, v) = s
        .post(
            "/api/training/schedules/",
            json!({"name": "wiz", "schedule_type": "daily", "schedule_time": "02:00",
                   "training_params": {"epohcs": 3}}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("did you mean `epochs`?"),
        "{v}"
    );
    let (_, v) = s.get("/api/training/schedules/").await;
    assert_eq!(v["pagination"]["total"], 0, "no schedule was created: {v}");
}

fn unit_sec() -> ApiSecurity {
    ApiSecurity::new(
        &trainyard::ApiToken::new("s3cret-token", trainyard::ApiTokenSource::Env).unwrap(),
    )
}

/// Host parsing: loopback names with any port, allowlisted names (with or without a pinned
/// port); rebinding-style names and malformed values refused.
#[test]
fn host_allowlist_cases() {
    let s = unit_sec()
        .allow_host("API.example.com")
        .allow_host("pinned.example:8443");
    for ok in [
        "localhost",
        "localhost:8080",
        "127.0.0.1:1",
        "[::1]:8080",
        "[::1]",
        "LOCALHOST.",
        "api.example.com",
        "api.example.com:443",
        "pinned.example:8443",
    ] {
        assert!(s.host_allowed(ok), "{ok}");
    }
    for bad in [
        "evil.example",
        "evil.example:8080",
        "localhost.evil.example",
        "127.0.0.1.nip.io:8080",
        "pinned.example:8080",
        "pinned.example",
        "",
        ":8080",
        "[::1",
        "::1",
        "localhost:http",
        "10.0.0.1",
    ] {
        assert!(!s.host_allowed(bad), "{bad}");
    }
}

#[test]
fn token_comparison_cases() {
    let s = unit_sec();
    assert!(s.token_matches("s3cret-token"));
    for bad in ["", "s3cret-toke", "s3cret-tokenn", "S3CRET-TOKEN", "x"] {
        assert!(!s.token_matches(bad), "{bad}");
    }
}

#[test]
fn non_loopback_bind_needs_stated_tls() {
    assert!(trainyard::http::check_bind("127.0.0.1".parse().unwrap(), false).is_ok());
    assert!(trainyard::http::check_bind("::1".parse().unwrap(), false).is_ok());
    for ip in ["0.0.0.0", "::", "10.1.2.3"] {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        assert_eq!(
            trainyard::http::check_bind(ip, false),
            Err(trainyard::http::BindError::NonLoopbackWithoutTls(ip))
        );
        assert!(trainyard::http::check_bind(ip, true).is_ok());
    }
}
