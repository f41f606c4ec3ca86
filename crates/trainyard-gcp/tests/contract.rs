//! Contract tests: every request the backends send (and every response they are tested on) is
//! checked against Google's discovery documents from the pinned google-api-python-client, and
//! Scheduler Job / Cloud Run Service bodies against Google's proto messages
//! (tests/py/validate_requests.py). Needs the Python env `make test-gcp` prepares:
//! TRAINYARD_GCP_PYTHON names its interpreter.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use common::{flows, require_env, Exchange, FakeGoogle};

fn validator() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/validate_requests.py")
}

fn run_validator(exchanges: &[Exchange], extra: &[&str]) -> (bool, String) {
    let python = require_env("TRAINYARD_GCP_PYTHON");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exchanges.json");
    std::fs::write(&file, serde_json::to_vec_pretty(exchanges).unwrap()).unwrap();
    let out = Command::new(python)
        .arg(validator())
        .arg(&file)
        .args(extra)
        .output()
        .expect("run the validator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
#[ignore = "needs the Python env of `make test-gcp` (TRAINYARD_GCP_PYTHON)"]
async fn every_request_and_response_matches_googles_discovery_documents() {
    require_env("TRAINYARD_GCP_PYTHON");
    let fake = FakeGoogle::start().await;
    flows::all_flows(&fake).await;
    let exchanges = fake.exchanges();
    let (ok, report) = run_validator(&exchanges, &[]);
    println!("{report}");
    assert!(ok, "contract violations:\n{report}");
    // The flows must have exercised every method the crate can call.
    for method in [
        "aiplatform.projects.locations.pipelineJobs.create",
        "aiplatform.projects.locations.pipelineJobs.get",
        "aiplatform.projects.locations.pipelineJobs.cancel",
        "aiplatform.projects.locations.models.upload",
        "aiplatform.projects.locations.models.listVersions",
        "aiplatform.projects.locations.operations.get",
        "aiplatform.projects.locations.endpoints.get",
        "aiplatform.projects.locations.endpoints.list",
        "aiplatform.projects.locations.endpoints.create",
        "aiplatform.projects.locations.endpoints.deployModel",
        "aiplatform.projects.locations.endpoints.undeployModel",
        "run.projects.locations.services.create",
        "run.projects.locations.services.get",
        "run.projects.locations.services.patch",
        "run.projects.locations.services.delete",
        "run.projects.locations.operations.get",
        "cloudscheduler.projects.locations.jobs.create",
        "cloudscheduler.projects.locations.jobs.patch",
        "cloudscheduler.projects.locations.jobs.pause",
        "cloudscheduler.projects.locations.jobs.resume",
        "cloudscheduler.projects.locations.jobs.run",
        "cloudscheduler.projects.locations.jobs.delete",
        "storage.objects.list",
        "storage.objects.get",
        "storage.objects.insert",
        "logging.entries.list",
    ] {
        assert!(
            report.contains(&format!("  {method}\n")),
            "{method} was never exercised:\n{report}"
        );
    }
}

fn mutate(
    exchanges: &[Exchange],
    method: &str,
    path_part: &str,
    f: impl Fn(&mut Exchange),
) -> Exchange {
    let mut e = exchanges
        .iter()
        .find(|e| e.method == method && e.path.contains(path_part) && e.status < 300)
        .unwrap_or_else(|| panic!("no {method} {path_part} recorded"))
        .clone();
    f(&mut e);
    e
}

fn body(e: &mut Exchange) -> &mut Value {
    e.request.as_mut().unwrap()
}

/// The validator must be able to fail: known-bad variants of real requests are all rejected.
#[tokio::test]
#[ignore = "needs the Python env of `make test-gcp` (TRAINYARD_GCP_PYTHON)"]
async fn the_validator_rejects_broken_requests() {
    require_env("TRAINYARD_GCP_PYTHON");
    let fake = FakeGoogle::start().await;
    flows::all_flows(&fake).await;
    let ex = fake.exchanges();
    let bad = vec![
        mutate(&ex, "POST", "/jobs", |e| {
            let b = body(e);
            let tz = b.as_object_mut().unwrap().remove("timeZone").unwrap();
            b["time_zone"] = tz;
        }),
        // valid for the discovery schema, but two members of the Job.target oneof
        mutate(&ex, "POST", "/jobs", |e| {
            body(e)["pubsubTarget"] = json!({"topicName": "projects/p/topics/t"});
        }),
        mutate(&ex, "POST", "/jobs", |e| {
            body(e)["attemptDeadline"] = "3m".into()
        }),
        mutate(&ex, "POST", "/jobs", |e| {
            body(e)["httpTarget"]["httpMethod"] = "POSTT".into()
        }),
        mutate(&ex, "POST", "/services", |e| {
            body(e)["template"]["scaling"]["minInstanceCount"] = "zero".into()
        }),
        mutate(&ex, "POST", "/services", |e| {
            body(e)["uri"] = "https://x.run.app".into()
        }),
        mutate(&ex, "POST", "/services", |e| {
            e.query = vec![("serviceId".into(), "Shop_Recs".into())]
        }),
        // Probe.httpGet and Probe.tcpSocket are one oneof
        mutate(&ex, "POST", "/services", |e| {
            body(e)["template"]["containers"][0]["startupProbe"]["tcpSocket"] =
                json!({"port": 8501})
        }),
        mutate(&ex, "POST", "/pipelineJobs", |e| {
            e.query = vec![("pipelineJobId".into(), "Run_17".into())]
        }),
        mutate(&ex, "POST", "/pipelineJobs", |e| {
            body(e)["labels"]["Team"] = "recs".into()
        }),
        mutate(&ex, "POST", "models:upload", |e| {
            body(e)["model"]["versionAliases"] = json!(["1"])
        }),
        mutate(&ex, "POST", "models:upload", |e| {
            body(e)["model"]["artifact_uri"] = "gs://b/x".into()
        }),
        mutate(&ex, "POST", ":deployModel", |e| {
            body(e)["deployedModel"]["dedicatedResources"]["machineSpec"]["machine_type"] =
                "n1-standard-2".into()
        }),
        mutate(&ex, "POST", ":deployModel", |e| {
            body(e)["deployedModel"]["dedicatedResources"]["minReplicaCount"] = "one".into()
        }),
        // deployedModels is output only on an Endpoint
        mutate(&ex, "POST", "locations/europe-central2/endpoints", |e| {
            body(e)["deployedModels"] = json!([])
        }),
        mutate(&ex, "POST", ":undeployModel", |e| {
            body(e)["deployed_model_id"] = "1".into()
        }),
        mutate(&ex, "GET", "/storage/v1/b/trainyard-test/o", |e| {
            e.query.push(("max_results".into(), "2".into()))
        }),
        mutate(&ex, "GET", "/pipelineJobs/", |e| {
            e.response.as_mut().unwrap()["state"] = "RUNNING".into()
        }),
        mutate(&ex, "POST", "/v2/entries:list", |e| {
            body(e)["order_by"] = "timestamp asc".into()
        }),
        mutate(&ex, "POST", "/v2/entries:list", |e| {
            body(e)["pageSize"] = "many".into()
        }),
        mutate(&ex, "PATCH", "/jobs/", |e| {
            e.query = vec![("updateMask".into(), "schedule,time_zone".into())]
        }),
    ];
    let n = bad.len();
    let (ok, report) = run_validator(&bad, &["--expect-errors"]);
    println!("{report}");
    assert!(ok, "some broken requests passed the validator:\n{report}");
    assert_eq!(
        report.matches("REJECTED (as expected)").count(),
        n,
        "{report}"
    );
}
