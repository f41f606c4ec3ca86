//! Test helpers: domain fixtures, env-gated peers, a scripted HTTP server for retry tests, and
//! a recording stand-in for Google's APIs whose every request and response is checked
//! against Google's discovery documents by tests/py/validate_requests.py.
#![allow(dead_code)]

pub mod flows;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use trainyard_core::registry::RegisteredModel;
use trainyard_core::run::{NewTrainingRun, TrainingRun};
use trainyard_core::schedule::TrainingSchedule;
use trainyard_core::ModelType;
use trainyard_gcp::config::{OperationSettings, RetrySettings};
use trainyard_gcp::GcpConfig;

/// A variable `make test-gcp` sets; missing means the test was run without its peers, which
/// must fail loudly rather than pass.
pub fn require_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: this test needs the local fakes that `make test-gcp` starts \
             (run `make test-gcp`, not `cargo test -- --ignored` alone)"
        ),
    }
}

pub fn run(id: i64, run_number: u32, ml_model: &str) -> TrainingRun {
    let mut r = TrainingRun::new(
        NewTrainingRun {
            ml_model: ml_model.into(),
            name: format!("Nightly {ml_model}"),
            description: "test run".into(),
            ..Default::default()
        },
        Some(1),
        Utc.with_ymd_and_hms(2026, 11, 27, 9, 49, 38).unwrap(),
    );
    r.id = id;
    r.run_number = run_number;
    r
}

pub fn registered_model(name: &str) -> RegisteredModel {
    let mut m = RegisteredModel::new(
        "shop",
        name,
        ModelType::Retrieval,
        "two-tower retrieval",
        Utc::now(),
    );
    m.id = 1;
    m
}

pub fn schedule(id: i64, tz: &str, status: &str) -> TrainingSchedule {
    serde_json::from_value(json!({
        "id": id, "name": "Nightly retrain", "description": "", "ml_model": "shop",
        "registered_model_id": 1, "source_training_run_id": 7,
        "schedule_type": "daily", "schedule_time": "02:30", "schedule_timezone": tz,
        "training_config": {}, "cloud_scheduler_job_name": "", "status": status,
        "last_run_at": null, "next_run_at": null, "total_runs": 0, "successful_runs": 0,
        "failed_runs": 0, "created_at": "2026-11-27T09:00:00Z",
        "updated_at": "2026-11-27T09:00:00Z", "version": 0
    }))
    .expect("schedule fixture matches TrainingSchedule")
}

/// Retries and operation polls fast enough for tests.
pub fn fast_retry() -> RetrySettings {
    RetrySettings {
        initial_backoff_ms: 20,
        max_backoff_ms: 200,
        max_elapsed_ms: 3_000,
        max_attempts: 5,
        request_timeout_ms: 2_000,
    }
}

pub fn fast_ops() -> OperationSettings {
    OperationSettings {
        poll_initial_ms: 10,
        poll_max_ms: 40,
        timeout_secs: 5,
    }
}

/// A config whose every Google endpoint is `base`.
pub fn config_for(base: &str) -> GcpConfig {
    let mut c = GcpConfig {
        project: "test-project".into(),
        region: "europe-central2".into(),
        bucket: "trainyard-test".into(),
        service_account: Some("trainer@test-project.iam.gserviceaccount.com".into()),
        webhook_base_url: Some("https://trainyard-abc-uc.a.run.app".into()),
        vertex_endpoint: Some("recs-endpoint".into()),
        retry: fast_retry(),
        operations: fast_ops(),
        ..GcpConfig::default()
    };
    c.endpoints.vertex = Some(base.into());
    c.endpoints.cloud_run = Some(base.into());
    c.endpoints.storage = Some(base.into());
    c.endpoints.scheduler = Some(base.into());
    c
}

pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

// ---------------------------------------------------------------------------------------------
// Scripted server: answers with a fixed sequence, records when each request came.

/// Status, headers, body.
pub type Canned = (u16, Vec<(String, String)>, String);
/// When, URI, Authorization header.
pub type Hit = (Instant, String, Option<String>);

#[derive(Clone)]
pub struct Scripted {
    pub responses: Arc<Mutex<VecDeque<Canned>>>,
    pub hits: Arc<Mutex<Vec<Hit>>>,
}

/// The error body Google's JSON APIs send (google.rpc.Status inside "error").
pub fn google_error(code: u16, status: &str, message: &str) -> String {
    json!({"error": {"code": code, "message": message, "status": status, "details": [{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": status, "domain": "googleapis.com"
    }]}})
    .to_string()
}

impl Scripted {
    /// Serves `responses` in order; the last one repeats.
    #[allow(clippy::type_complexity)]
    pub async fn start(responses: Vec<(u16, Vec<(&str, &str)>, String)>) -> (String, Scripted) {
        let s = Scripted {
            responses: Arc::new(Mutex::new(
                responses
                    .into_iter()
                    .map(|(c, h, b)| {
                        (
                            c,
                            h.into_iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect(),
                            b,
                        )
                    })
                    .collect(),
            )),
            hits: Arc::new(Mutex::new(Vec::new())),
        };
        let app = axum::Router::new()
            .fallback(scripted_handler)
            .with_state(s.clone());
        let addr = serve(app).await;
        (format!("http://{addr}"), s)
    }

    pub fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    pub fn gaps(&self) -> Vec<Duration> {
        let h = self.hits.lock().unwrap();
        h.windows(2).map(|w| w[1].0 - w[0].0).collect()
    }
}

async fn scripted_handler(State(s): State<Scripted>, uri: Uri, headers: HeaderMap) -> Response {
    s.hits.lock().unwrap().push((
        Instant::now(),
        uri.to_string(),
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    ));
    let (code, hdrs, body) = {
        let mut q = s.responses.lock().unwrap();
        if q.len() > 1 {
            q.pop_front().unwrap()
        } else {
            q.front().cloned().unwrap()
        }
    };
    let mut resp = (StatusCode::from_u16(code).unwrap(), body).into_response();
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    for (k, v) in hdrs {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    resp
}

// ---------------------------------------------------------------------------------------------
// Recording stand-in for Vertex AI, Cloud Run v2, Cloud Scheduler and GCS.

#[derive(Debug, Clone, serde::Serialize)]
pub struct Exchange {
    /// Which API's host got it: aiplatform, run, cloudscheduler, storage or logging.
    pub api: String,
    pub method: String,
    /// Raw (percent-encoded) path.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub request: Option<Value>,
    pub request_bytes: usize,
    pub status: u16,
    pub response: Option<Value>,
    /// The response was object content (alt=media), not JSON.
    pub media: bool,
}

#[derive(Default)]
pub struct FakeState {
    pub exchanges: Vec<Exchange>,
    pub objects: BTreeMap<(String, String), Vec<u8>>,
    pub pipeline_jobs: BTreeMap<String, (Value, u32)>,
    /// model name -> (model json, versions)
    pub models: BTreeMap<String, Vec<Value>>,
    /// name -> (polls, response, metadata)
    pub operations: BTreeMap<String, (u32, Value, Value)>,
    pub services: BTreeMap<String, Value>,
    pub jobs: BTreeMap<String, Value>,
    pub endpoints: Vec<Value>,
    pub next_id: u64,
    /// Page size of list answers.
    pub page_size: usize,
    /// `ACCELERATOR:COUNT` of a Trainer worker pool -> the google.rpc.Status its task fails with
    /// once the job runs (a custom job refused after the pipeline job was created).
    pub trainer_errors: BTreeMap<String, Value>,
    /// (method, path part, HTTP code, status): matching requests fail with Google's error.
    pub failures: Vec<(String, String, u16, String)>,
}

/// `ACCELERATOR:COUNT` of a posted PipelineJob's Trainer worker pool, if it has one.
pub fn trainer_pool_key(job: &Value) -> Option<String> {
    let tasks = job.pointer("/pipelineSpec/root/dag/tasks")?.as_object()?;
    let text = tasks
        .get("Trainer")?
        .pointer("/inputs/parameters/custom_config/runtimeValue/constantValue/stringValue")?;
    let config: Value = serde_json::from_str(text.as_str()?).ok()?;
    let spec = config.pointer("/ai_platform_training_args/worker_pool_specs/0/machine_spec")?;
    Some(format!(
        "{}:{}",
        spec["accelerator_type"].as_str()?,
        spec["accelerator_count"].as_u64()?
    ))
}

/// One listener per API (as Google has one host per API), sharing one state.
#[derive(Clone)]
pub struct FakeGoogle {
    pub state: Arc<Mutex<FakeState>>,
    /// api name -> base URL
    pub bases: BTreeMap<&'static str, String>,
}

#[derive(Clone)]
struct Listener {
    state: Arc<Mutex<FakeState>>,
    api: &'static str,
}

const TS: &str = "2026-11-27T10:00:00.123456Z";

impl FakeGoogle {
    pub async fn start() -> FakeGoogle {
        let state = Arc::new(Mutex::new(FakeState {
            page_size: 2,
            ..Default::default()
        }));
        let mut bases = BTreeMap::new();
        for api in ["aiplatform", "run", "cloudscheduler", "storage", "logging"] {
            let app = axum::Router::new()
                .fallback(fake_handler)
                .with_state(Listener {
                    state: state.clone(),
                    api,
                });
            bases.insert(api, format!("http://{}", serve(app).await));
        }
        FakeGoogle { state, bases }
    }

    /// A config pointing every API at its listener.
    pub fn config(&self) -> GcpConfig {
        let mut c = config_for("http://127.0.0.1:9");
        c.endpoints.vertex = Some(self.bases["aiplatform"].clone());
        c.endpoints.cloud_run = Some(self.bases["run"].clone());
        c.endpoints.scheduler = Some(self.bases["cloudscheduler"].clone());
        c.endpoints.storage = Some(self.bases["storage"].clone());
        c.endpoints.logging = Some(self.bases["logging"].clone());
        c
    }

    /// [`Self::config`] with credentials a real client can use: authorized-user ADC written
    /// into `dir`, exchanged at an OAuth token endpoint of its own (for platforms opened with
    /// `--backend gcp`, which authenticate as in production).
    pub async fn config_with_credentials(&self, dir: &std::path::Path) -> GcpConfig {
        let token = axum::Router::new().route(
            "/token",
            axum::routing::post(|| async {
                axum::Json(
                    json!({"access_token": "ya29.fake", "expires_in": 3600, "token_type": "Bearer"}),
                )
            }),
        );
        let token_addr = serve(token).await;
        let creds = dir.join("adc.json");
        std::fs::write(
            &creds,
            r#"{"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"}"#,
        )
        .unwrap();
        let mut gcp = self.config();
        gcp.credentials_file = Some(creds);
        gcp.endpoints.token = Some(format!("http://{token_addr}/token"));
        gcp
    }

    pub fn put_object(&self, bucket: &str, name: &str, bytes: &[u8]) {
        self.state
            .lock()
            .unwrap()
            .objects
            .insert((bucket.into(), name.into()), bytes.to_vec());
    }

    /// Trainers on `accelerator` x `count` fail with `status` once their job runs.
    pub fn fail_trainer(&self, accelerator: &str, count: u32, status: Value) {
        self.state
            .lock()
            .unwrap()
            .trainer_errors
            .insert(format!("{accelerator}:{count}"), status);
    }

    /// Requests with `method` whose path contains `path_part` fail with `code` / `status`
    /// until [`FakeGoogle::clear_failures`].
    pub fn fail_requests(&self, method: &str, path_part: &str, code: u16, status: &str) {
        self.state.lock().unwrap().failures.push((
            method.into(),
            path_part.into(),
            code,
            status.into(),
        ));
    }

    pub fn clear_failures(&self) {
        self.state.lock().unwrap().failures.clear();
    }

    /// The Vertex AI endpoint whose display name is `display_name`, as the fake holds it.
    pub fn endpoint(&self, display_name: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .endpoints
            .iter()
            .find(|e| e["displayName"] == display_name)
            .cloned()
    }

    pub fn add_endpoint(&self, endpoint: Value) {
        self.state.lock().unwrap().endpoints.push(endpoint);
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.state.lock().unwrap().exchanges.clone()
    }

    pub fn requests_to(&self, method: &str, path_contains: &str) -> Vec<Exchange> {
        self.exchanges()
            .into_iter()
            .filter(|e| e.method == method && e.path.contains(path_contains))
            .collect()
    }
}

fn err(code: u16, status: &str, msg: &str) -> (u16, Value) {
    (
        code,
        serde_json::from_str(&google_error(code, status, msg)).unwrap(),
    )
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn object_json(bucket: &str, name: &str, bytes: &[u8]) -> Value {
    json!({
        "kind": "storage#object", "id": format!("{bucket}/{name}/1"), "name": name,
        "bucket": bucket, "size": bytes.len().to_string(), "generation": "1795788684709937",
        "metageneration": "1", "contentType": "application/octet-stream",
        "timeCreated": TS, "updated": TS, "storageClass": "STANDARD"
    })
}

/// A pending operation; `metadata` is what Vertex (UploadModelOperationMetadata) or Cloud Run
/// (the Service) puts there.
fn operation(st: &mut FakeState, parent: &str, response: Value, metadata: Value) -> Value {
    st.next_id += 1;
    let name = format!("{parent}/operations/{}", 9000 + st.next_id);
    st.operations
        .insert(name.clone(), (0, response, metadata.clone()));
    json!({"name": name, "done": false, "metadata": metadata})
}

fn upload_metadata() -> Value {
    json!({"@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelOperationMetadata",
        "genericMetadata": {"createTime": TS, "updateTime": TS}})
}

fn run_metadata(name: &str) -> Value {
    json!({"@type": "type.googleapis.com/google.cloud.run.v2.Service", "name": name, "createTime": TS})
}

fn pipeline_progress(job: &mut Value, polls: u32, trainer_error: Option<Value>) {
    let root = job["runtimeConfig"]["gcsOutputDirectory"]
        .as_str()
        .unwrap_or("gs://trainyard-test/root")
        .trim_end_matches('/')
        .to_string();
    let id = job["name"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let trainer_error = trainer_error.or_else(|| {
        job["displayName"].as_str().unwrap_or("").contains("fail").then(|| {
            json!({"code": 9, "message": "The replica workerpool0-0 exited with a non-zero status of 1."})
        })
    });
    let fail = trainer_error.is_some();
    let task = |name: &str, state: &str, outputs: Value| {
        let task_id = name.len() * 1000 + 7;
        let mut t = json!({"taskId": format!("{task_id}"), "taskName": name,
            "state": state, "createTime": TS, "startTime": TS});
        if name.starts_with(|c: char| c.is_ascii_uppercase()) {
            // a component: its container ran as a custom job (the DAG's root task did not)
            t["executorDetail"] = json!({"containerDetail": {
                "mainJob": format!("projects/123/locations/europe-central2/customJobs/{}",
                    name.bytes().fold(880_000u64, |h, b| (h * 31 + u64::from(b)) % 1_000_000_000))
            }});
        }
        if state == "SUCCEEDED" || state == "FAILED" {
            t["endTime"] = TS.into();
        }
        if !outputs.is_null() {
            t["outputs"] = outputs;
        }
        t
    };
    let art = |task: &str, key: &str, metadata: Value| {
        json!({key: {"artifacts": [{
            "name": format!("projects/123/locations/europe-central2/metadataStores/default/artifacts/{task}-{key}"),
            "uri": format!("{root}/123/{id}/{task}_7/{key}"),
            "schemaTitle": "tfx.Model", "state": "LIVE", "metadata": metadata,
            "createTime": TS, "updateTime": TS
        }]}})
    };
    let (state, tasks) = match polls {
        0 => ("PIPELINE_STATE_PENDING", vec![]),
        1 => (
            "PIPELINE_STATE_RUNNING",
            vec![
                task(
                    job["pipelineSpec"]["pipelineInfo"]["name"]
                        .as_str()
                        .unwrap_or("root"),
                    "RUNNING",
                    Value::Null,
                ),
                task("BigQueryExampleGen", "SUCCEEDED", Value::Null),
                task("StatisticsGen", "RUNNING", Value::Null),
            ],
        ),
        n if n >= 2 && fail => (
            "PIPELINE_STATE_FAILED",
            vec![
                task("BigQueryExampleGen", "SUCCEEDED", Value::Null),
                task("StatisticsGen", "SUCCEEDED", Value::Null),
                task("SchemaGen", "SUCCEEDED", Value::Null),
                task("Transform", "SUCCEEDED", Value::Null),
                {
                    let mut t = task("Trainer", "FAILED", Value::Null);
                    t["error"] = trainer_error.clone().unwrap_or_default();
                    t
                },
            ],
        ),
        2 => (
            "PIPELINE_STATE_RUNNING",
            vec![
                task("BigQueryExampleGen", "SUCCEEDED", Value::Null),
                task("StatisticsGen", "SUCCEEDED", Value::Null),
                task("SchemaGen", "SUCCEEDED", Value::Null),
                task("Transform", "SUCCEEDED", Value::Null),
                task("Trainer", "RUNNING", Value::Null),
            ],
        ),
        _ => {
            let mut outs = art("Trainer", "model", json!({}));
            outs.as_object_mut().unwrap().extend(
                art("Trainer", "model_run", json!({}))
                    .as_object()
                    .unwrap()
                    .clone(),
            );
            (
                "PIPELINE_STATE_SUCCEEDED",
                vec![
                    task(
                        "BigQueryExampleGen",
                        "SUCCEEDED",
                        art("BigQueryExampleGen", "examples", json!({})),
                    ),
                    task("StatisticsGen", "SUCCEEDED", Value::Null),
                    task(
                        "SchemaGen",
                        "SUCCEEDED",
                        art("SchemaGen", "schema", json!({})),
                    ),
                    task(
                        "Transform",
                        "SUCCEEDED",
                        art("Transform", "transform_graph", json!({})),
                    ),
                    task("Trainer", "SUCCEEDED", outs),
                    task(
                        "Evaluator",
                        "SUCCEEDED",
                        art(
                            "Evaluator",
                            "blessing",
                            json!({"blessed": 1.0, "current_model": "gs://x"}),
                        ),
                    ),
                    task(
                        "Pusher",
                        "SUCCEEDED",
                        art(
                            "Pusher",
                            "pushed_model",
                            json!({
                                "pushed": 1.0,
                                "pushed_destination": format!("gs://trainyard-test/runs/{id}/pushed_model/1768842986")
                            }),
                        ),
                    ),
                ],
            )
        }
    };
    job["state"] = state.into();
    job["updateTime"] = TS.into();
    if !tasks.is_empty() {
        job["jobDetail"] = json!({
            "pipelineContext": {"name": "projects/123/locations/europe-central2/metadataStores/default/contexts/ctx", "displayName": "ctx"},
            "taskDetails": tasks
        });
        job["startTime"] = TS.into();
    }
    if state == "PIPELINE_STATE_FAILED" {
        job["error"] = json!({"code": 9, "message": "The DAG failed because some tasks failed. The failed tasks are: [Trainer]."});
        job["endTime"] = TS.into();
    }
    if state == "PIPELINE_STATE_SUCCEEDED" {
        job["endTime"] = TS.into();
    }
}

fn page<T: Clone>(items: &[T], token: Option<&str>, size: usize) -> (Vec<T>, Option<String>) {
    let start: usize = token.and_then(|t| t.parse().ok()).unwrap_or(0);
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    (items[start.min(end)..end].to_vec(), next)
}

async fn fake_handler(
    State(Listener { state, api }): State<Listener>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query: Vec<(String, String)> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect();
    let q = |k: &str| query.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let req_json: Option<Value> = if content_type.as_deref() == Some("application/json") {
        serde_json::from_slice(&body).ok()
    } else {
        None
    };
    let mut st = state.lock().unwrap();
    let mut media: Option<Vec<u8>> = None;
    let m = method.as_str();
    let (status, resp): (u16, Value) = (|| {
        if let Some((_, _, code, status)) = st
            .failures
            .iter()
            .find(|(fm, part, _, _)| fm == m && path.contains(part.as_str()))
        {
            return err(*code, &status.clone(), "injected failure");
        }
        // ---- GCS
        if let Some(rest) = path.strip_prefix("/upload/storage/v1/b/") {
            let bucket = rest.trim_end_matches("/o").to_string();
            let name = q("name").unwrap_or_default();
            st.objects
                .insert((bucket.clone(), name.clone()), body.to_vec());
            return (200, object_json(&bucket, &name, &body));
        }
        if let Some(rest) = path.strip_prefix("/storage/v1/b/") {
            let (bucket, obj) = rest.split_once("/o").unwrap();
            let bucket = bucket.to_string();
            if obj.is_empty() {
                let prefix = q("prefix").unwrap_or_default();
                let delim = q("delimiter");
                let mut items = Vec::new();
                let mut prefixes: Vec<String> = Vec::new();
                for ((b, n), bytes) in &st.objects {
                    if b != &bucket || !n.starts_with(&prefix) {
                        continue;
                    }
                    if let Some(d) = &delim {
                        if let Some(i) = n[prefix.len()..].find(d.as_str()) {
                            let p = n[..prefix.len() + i + d.len()].to_string();
                            if !prefixes.contains(&p) {
                                prefixes.push(p);
                            }
                            continue;
                        }
                    }
                    items.push(object_json(b, n, bytes));
                }
                let size = q("maxResults")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(st.page_size);
                let (items, next) = page(&items, q("pageToken").as_deref(), size);
                let mut out = json!({"kind": "storage#objects", "items": items});
                if !prefixes.is_empty() {
                    out["prefixes"] = json!(prefixes);
                }
                if let Some(n) = next {
                    out["nextPageToken"] = n.into();
                }
                return (200, out);
            }
            let name = decode(obj.trim_start_matches('/'));
            return match st.objects.get(&(bucket.clone(), name.clone())) {
                None => err(
                    404,
                    "NOT_FOUND",
                    &format!("No such object: {bucket}/{name}"),
                ),
                Some(bytes) if q("alt").as_deref() == Some("media") => {
                    media = Some(bytes.clone());
                    (200, Value::Null)
                }
                Some(bytes) => (200, object_json(&bucket, &name, bytes)),
            };
        }
        // ---- Cloud Logging: entries of the filter's pipeline job and custom jobs
        if m == "POST" && path == "/v2/entries:list" {
            let body = req_json.clone().unwrap_or_default();
            let filter = body["filter"].as_str().unwrap_or_default().to_string();
            let quoted = |key: &str| -> Vec<String> {
                filter
                    .split(key)
                    .skip(1)
                    .filter_map(|rest| rest.split('"').next().map(str::to_string))
                    .collect()
            };
            let mut entries = Vec::new();
            for id in quoted("resource.labels.pipeline_job_id=\"") {
                entries.push(json!({
                    "logName": "projects/test-project/logs/aiplatform.googleapis.com%2Fpipeline_job_events",
                    "resource": {"type": "aiplatform.googleapis.com/PipelineJob",
                                 "labels": {"pipeline_job_id": id, "location": "europe-central2", "resource_container": "projects/123"}},
                    "timestamp": TS, "receiveTimestamp": TS, "severity": "INFO",
                    "insertId": format!("ev-{id}"),
                    "jsonPayload": {"message": format!("Pipeline job {id} started."), "@type": "type.googleapis.com/google.cloud.aiplatform.logging.PipelineJobLogEntry"}
                }));
            }
            for id in quoted("resource.labels.job_id=\"") {
                for (i, line) in [
                    format!("custom job {id}: starting"),
                    format!("custom job {id}: done"),
                ]
                .into_iter()
                .enumerate()
                {
                    entries.push(json!({
                        "logName": "projects/test-project/logs/workerpool0-0",
                        "resource": {"type": "ml_job", "labels": {"job_id": id, "task_name": "workerpool0-0", "project_id": "test-project"}},
                        "timestamp": TS, "receiveTimestamp": TS,
                        "severity": if i == 0 { "INFO" } else { "ERROR" },
                        "insertId": format!("{id}-{i}"), "textPayload": line
                    }));
                }
            }
            let size = body["pageSize"].as_u64().unwrap_or(50) as usize;
            let size = size.min(st.page_size.max(1));
            let (items, next) = page(&entries, body["pageToken"].as_str(), size);
            let mut out = json!({"entries": items});
            if let Some(n) = next {
                out["nextPageToken"] = n.into();
            }
            return (200, out);
        }
        // ---- Vertex AI / Cloud Run / Cloud Scheduler (one host here)
        let p = path.trim_start_matches('/');
        let (ver, rest) = p.split_once('/').unwrap_or((p, ""));
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() < 4 || parts[0] != "projects" || parts[2] != "locations" {
            return err(404, "NOT_FOUND", &format!("unknown path {path}"));
        }
        let parent = parts[..4].join("/");
        let coll = parts.get(4).copied().unwrap_or("");
        let res_id = parts.get(5).copied().unwrap_or("");
        let full = rest.to_string();
        match (ver, m, coll) {
            // pipelines
            ("v1", "POST", "pipelineJobs") if res_id.is_empty() => {
                let id = q("pipelineJobId").unwrap();
                let name = format!("{parent}/pipelineJobs/{id}");
                if st.pipeline_jobs.contains_key(&name) {
                    return err(409, "ALREADY_EXISTS", &format!("PipelineJob {name} already exists."));
                }
                let mut job = req_json.clone().unwrap();
                job["name"] = name.clone().into();
                job["createTime"] = TS.into();
                job["state"] = "PIPELINE_STATE_QUEUED".into();
                st.pipeline_jobs.insert(name, (job.clone(), 0));
                (200, job)
            }
            ("v1", "GET", "pipelineJobs") => {
                let trainer_error = st
                    .pipeline_jobs
                    .get(&full)
                    .and_then(|(job, _)| trainer_pool_key(job))
                    .and_then(|k| st.trainer_errors.get(&k).cloned());
                match st.pipeline_jobs.get_mut(&full) {
                None => err(404, "NOT_FOUND", "PipelineJob not found"),
                Some((job, polls)) => {
                    pipeline_progress(job, *polls, trainer_error);
                    *polls += 1;
                    (200, job.clone())
                }
            }
            }
            ("v1", "POST", "pipelineJobs") if res_id.ends_with(":cancel") => {
                let name = full.trim_end_matches(":cancel");
                match st.pipeline_jobs.get_mut(name) {
                    None => err(404, "NOT_FOUND", "PipelineJob not found"),
                    Some((job, _)) => {
                        job["state"] = "PIPELINE_STATE_CANCELLING".into();
                        (200, json!({}))
                    }
                }
            }
            // model registry
            ("v1", "POST", "models:upload") => {
                let req = req_json.clone().unwrap();
                let (model_name, version) = if let Some(parent_model) = req["parentModel"].as_str() {
                    // Vertex accepts the project id and answers with the project number.
                    let parent_model = parent_model.replace("projects/test-project/", "projects/123/");
                    let parent_model = parent_model.as_str();
                    match st.models.get(parent_model) {
                        None => return err(404, "NOT_FOUND", "parent model not found"),
                        Some(v) => (parent_model.to_string(), v.len() + 1),
                    }
                } else {
                    let id = req["modelId"].as_str().unwrap();
                    let name = format!("projects/123/locations/{}/models/{id}", parts[3]);
                    if st.models.contains_key(&name) {
                        return err(409, "ALREADY_EXISTS", &format!("Model {name} already exists."));
                    }
                    (name, 1)
                };
                let mut mv = req["model"].clone();
                mv["name"] = model_name.clone().into();
                mv["versionId"] = version.to_string().into();
                mv["createTime"] = TS.into();
                mv["versionCreateTime"] = TS.into();
                st.models.entry(model_name.clone()).or_default().push(mv);
                let resp = json!({
                    "@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse",
                    "model": model_name, "modelVersionId": version.to_string()
                });
                (200, operation(&mut st, &parent, resp, upload_metadata()))
            }
            ("v1", "GET", "models") if res_id.ends_with(":listVersions") => {
                let name = format!("projects/{}/locations/{}/models/{}", parts[1], parts[3], res_id.trim_end_matches(":listVersions"));
                let name = if st.models.contains_key(&name) { name } else { format!("projects/123/locations/{}/models/{}", parts[3], res_id.trim_end_matches(":listVersions")) };
                let Some(versions) = st.models.get(&name) else {
                    return err(404, "NOT_FOUND", "Model not found");
                };
                let filter = q("filter");
                let versions: Vec<Value> = versions
                    .iter()
                    .filter(|v| match &filter {
                        Some(f) => {
                            let (k, val) = f.trim_start_matches("labels.").split_once('=').unwrap();
                            v["labels"][k].as_str() == Some(val.trim_matches('"'))
                        }
                        None => true,
                    })
                    .cloned()
                    .collect();
                let size = st.page_size;
                let (items, next) = page(&versions, q("pageToken").as_deref(), size);
                let mut out = json!({"models": items});
                if let Some(n) = next {
                    out["nextPageToken"] = n.into();
                }
                (200, out)
            }
            // vertex ai endpoints
            ("v1", "POST", "endpoints") if res_id.is_empty() => {
                let req = req_json.clone().unwrap();
                st.next_id += 1;
                let name = format!("projects/123/locations/{}/endpoints/{}", parts[3], 5_000 + st.next_id);
                let mut ep = req.clone();
                ep["name"] = name.into();
                ep["createTime"] = TS.into();
                ep["updateTime"] = TS.into();
                ep["etag"] = "\"e1\"".into();
                st.endpoints.push(ep.clone());
                ep["@type"] = "type.googleapis.com/google.cloud.aiplatform.v1.Endpoint".into();
                let md = json!({"@type": "type.googleapis.com/google.cloud.aiplatform.v1.CreateEndpointOperationMetadata",
                    "genericMetadata": {"createTime": TS, "updateTime": TS}});
                (200, operation(&mut st, &parent, ep, md))
            }
            ("v1", "POST", "endpoints") if res_id.ends_with(":deployModel") => {
                let ep_name = full.trim_end_matches(":deployModel").to_string();
                let Some(i) = st.endpoints.iter().position(|e| e["name"] == ep_name.as_str()) else {
                    return err(404, "NOT_FOUND", "Endpoint not found");
                };
                let req = req_json.clone().unwrap();
                let mut dm = req["deployedModel"].clone();
                let model = dm["model"].as_str().unwrap_or("").to_string();
                let (model, version) = model.split_once('@').unwrap_or((&model, "1"));
                if !st.models.contains_key(model) {
                    return err(404, "NOT_FOUND", &format!("Model {model} not found"));
                }
                st.next_id += 1;
                let id = format!("{}", 7_000_000 + st.next_id);
                dm["id"] = id.clone().into();
                dm["model"] = model.into();
                dm["modelVersionId"] = version.into();
                dm["createTime"] = TS.into();
                let mut split = serde_json::Map::new();
                for (k, v) in req["trafficSplit"].as_object().cloned().unwrap_or_default() {
                    split.insert(if k == "0" { id.clone() } else { k }, v);
                }
                let ep = &mut st.endpoints[i];
                if ep["deployedModels"].as_array().is_none() {
                    ep["deployedModels"] = json!([]);
                }
                ep["deployedModels"].as_array_mut().unwrap().push(dm.clone());
                if !split.is_empty() {
                    ep["trafficSplit"] = Value::Object(split);
                }
                let resp = json!({"@type": "type.googleapis.com/google.cloud.aiplatform.v1.DeployModelResponse", "deployedModel": dm});
                let md = json!({"@type": "type.googleapis.com/google.cloud.aiplatform.v1.DeployModelOperationMetadata",
                    "genericMetadata": {"createTime": TS, "updateTime": TS}});
                (200, operation(&mut st, &parent, resp, md))
            }
            ("v1", "POST", "endpoints") if res_id.ends_with(":undeployModel") => {
                let ep_name = full.trim_end_matches(":undeployModel").to_string();
                let Some(i) = st.endpoints.iter().position(|e| e["name"] == ep_name.as_str()) else {
                    return err(404, "NOT_FOUND", "Endpoint not found");
                };
                let req = req_json.clone().unwrap();
                let id = req["deployedModelId"].as_str().unwrap_or("").to_string();
                let ep = &mut st.endpoints[i];
                let models = ep["deployedModels"].as_array().cloned().unwrap_or_default();
                if !models.iter().any(|d| d["id"] == id.as_str()) {
                    return err(404, "NOT_FOUND", &format!("DeployedModel {id} not found"));
                }
                let traffic = ep["trafficSplit"][&id].as_u64().unwrap_or(0);
                // Vertex refuses to undeploy a model that keeps traffic, unless it is the last
                // one or the request moves its traffic.
                if traffic > 0 && models.len() > 1 && req.get("trafficSplit").is_none() {
                    return err(400, "FAILED_PRECONDITION", &format!("DeployedModel {id} has traffic {traffic}; set trafficSplit to undeploy it"));
                }
                let rest: Vec<Value> = models.into_iter().filter(|d| d["id"] != id.as_str()).collect();
                ep["deployedModels"] = json!(rest);
                let split = match req.get("trafficSplit") {
                    Some(s) if !rest.is_empty() => s.clone(),
                    _ if rest.is_empty() => json!({}),
                    _ => {
                        let mut s = ep["trafficSplit"].clone();
                        if let Some(o) = s.as_object_mut() { o.remove(&id); }
                        s
                    }
                };
                ep["trafficSplit"] = split;
                let resp = json!({"@type": "type.googleapis.com/google.cloud.aiplatform.v1.UndeployModelResponse"});
                let md = json!({"@type": "type.googleapis.com/google.cloud.aiplatform.v1.UndeployModelOperationMetadata",
                    "genericMetadata": {"createTime": TS, "updateTime": TS}});
                (200, operation(&mut st, &parent, resp, md))
            }
            ("v1", "GET", "endpoints") if res_id.is_empty() => {
                let f = q("filter").unwrap_or_default();
                let want = f.trim_start_matches("display_name=").trim_matches('"').to_string();
                let eps: Vec<Value> = st.endpoints.iter().filter(|e| e["displayName"] == want.as_str()).cloned().collect();
                (200, json!({"endpoints": eps}))
            }
            ("v1", "GET", "endpoints") => match st.endpoints.iter().find(|e| e["name"] == full.as_str()) {
                Some(e) => (200, e.clone()),
                None => err(404, "NOT_FOUND", "Endpoint not found"),
            },
            ("v1" | "v2", "GET", "operations") => match st.operations.get_mut(&full) {
                None => err(404, "NOT_FOUND", "operation not found"),
                Some((polls, response, metadata)) => {
                    *polls += 1;
                    if *polls < 2 {
                        (200, json!({"name": full, "done": false, "metadata": metadata.clone()}))
                    } else {
                        (200, json!({"name": full, "done": true, "metadata": metadata.clone(), "response": response.clone()}))
                    }
                }
            },
            // cloud run v2
            ("v2", "GET", "services") => match st.services.get(&full) {
                Some(s) => (200, s.clone()),
                None => err(404, "NOT_FOUND", &format!("Resource '{res_id}' of kind 'SERVICE' in region '{}' in project '{}' does not exist.", parts[3], parts[1])),
            },
            ("v2", "POST", "services") => {
                let id = q("serviceId").unwrap();
                let name = format!("{parent}/services/{id}");
                if st.services.contains_key(&name) {
                    return err(409, "ALREADY_EXISTS", "Resource already exists");
                }
                let svc = run_service(&name, &id, req_json.clone().unwrap(), 1);
                st.services.insert(name.clone(), svc.clone());
                let mut r = svc;
                r["@type"] = "type.googleapis.com/google.cloud.run.v2.Service".into();
                {
                    let md = run_metadata(&name);
                    (200, operation(&mut st, &parent, r, md))
                }
            }
            ("v2", "PATCH", "services") => {
                let gen = match st.services.get(&full) {
                    None => return err(404, "NOT_FOUND", "Service not found"),
                    Some(s) => s["generation"].as_str().unwrap().parse::<u32>().unwrap() + 1,
                };
                let svc = run_service(&full, res_id, req_json.clone().unwrap(), gen);
                st.services.insert(full.clone(), svc.clone());
                let mut r = svc;
                r["@type"] = "type.googleapis.com/google.cloud.run.v2.Service".into();
                {
                    let md = run_metadata(&full);
                    (200, operation(&mut st, &parent, r, md))
                }
            }
            ("v2", "DELETE", "services") => match st.services.remove(&full) {
                None => err(404, "NOT_FOUND", "Service not found"),
                Some(mut s) => {
                    s["@type"] = "type.googleapis.com/google.cloud.run.v2.Service".into();
                    {
                        let md = run_metadata(&full);
                        (200, operation(&mut st, &parent, s, md))
                    }
                }
            },
            // cloud scheduler
            ("v1", "POST", "jobs") if res_id.is_empty() => {
                let mut job = req_json.clone().unwrap();
                let name = job["name"].as_str().unwrap().to_string();
                if st.jobs.contains_key(&name) {
                    return err(409, "ALREADY_EXISTS", "Job already exists");
                }
                job["state"] = "ENABLED".into();
                job["userUpdateTime"] = TS.into();
                job["scheduleTime"] = TS.into();
                st.jobs.insert(name, job.clone());
                (200, job)
            }
            ("v1", "PATCH", "jobs") => match st.jobs.get(&full).cloned() {
                None => err(404, "NOT_FOUND", "Job not found"),
                Some(old) => {
                    let mut job = req_json.clone().unwrap();
                    job["state"] = old["state"].clone();
                    job["userUpdateTime"] = TS.into();
                    st.jobs.insert(full.clone(), job.clone());
                    (200, job)
                }
            },
            ("v1", "DELETE", "jobs") => match st.jobs.remove(&full) {
                None => err(404, "NOT_FOUND", "Job not found"),
                Some(_) => (200, json!({})),
            },
            ("v1", "POST", "jobs") => {
                let (name, verb) = full.rsplit_once(':').unwrap();
                match st.jobs.get_mut(name) {
                    None => err(404, "NOT_FOUND", "Job not found"),
                    Some(job) => {
                        match verb {
                            "pause" => job["state"] = "PAUSED".into(),
                            "resume" => job["state"] = "ENABLED".into(),
                            "run" => job["lastAttemptTime"] = TS.into(),
                            _ => {}
                        }
                        (200, job.clone())
                    }
                }
            }
            _ => err(404, "NOT_FOUND", &format!("no fake for {m} {path}")),
        }
    })();
    st.exchanges.push(Exchange {
        api: api.to_string(),
        method: m.to_string(),
        path: path.clone(),
        query: query.clone(),
        content_type: content_type.clone(),
        request: req_json,
        request_bytes: body.len(),
        status,
        response: if media.is_some() {
            None
        } else {
            Some(resp.clone())
        },
        media: media.is_some(),
    });
    drop(st);
    if let Some(bytes) = media {
        return (StatusCode::OK, bytes).into_response();
    }
    let mut r = (StatusCode::from_u16(status).unwrap(), resp.to_string()).into_response();
    r.headers_mut().insert(
        "content-type",
        "application/json; charset=UTF-8".parse().unwrap(),
    );
    r
}

fn run_service(name: &str, id: &str, body: Value, generation: u32) -> Value {
    let mut s = body;
    s["name"] = name.into();
    s["uid"] = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0".into();
    s["generation"] = generation.to_string().into();
    s["createTime"] = TS.into();
    s["updateTime"] = TS.into();
    s["uri"] = format!("https://{id}-abc123-lm.a.run.app").into();
    s["urls"] = json!([format!("https://{id}-123456789.europe-central2.run.app")]);
    s["latestReadyRevision"] = format!("{name}/revisions/{id}-{generation:05}-abc").into();
    s["latestCreatedRevision"] = s["latestReadyRevision"].clone();
    s["observedGeneration"] = generation.to_string().into();
    s["terminalCondition"] =
        json!({"type": "Ready", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": TS});
    s["reconciling"] = false.into();
    s["etag"] = "\"abc\"".into();
    s
}
