//! Retries and long-running operations against a local server answering with Google's
//! documented error bodies (google.rpc.Status in "error") and Operation shapes.

mod common;

use std::time::{Duration, Instant};

use serde_json::json;

use common::{fast_ops, fast_retry, google_error, Scripted};
use trainyard_gcp::auth::{Credentials, Secret};
use trainyard_gcp::config::RetrySettings;
use trainyard_gcp::lro::{self, Operation};
use trainyard_gcp::{GcpError, GcpHttp};

fn client(retry: RetrySettings) -> GcpHttp {
    GcpHttp::new(Credentials::Static(Secret::new("ya29.retry-test")), retry).unwrap()
}

fn ok_body() -> String {
    json!({"name": "projects/p/locations/l/jobs/j", "state": "ENABLED"}).to_string()
}

#[tokio::test]
async fn retries_unavailable_then_succeeds_with_growing_delays() {
    let (base, s) = Scripted::start(vec![
        (
            503,
            vec![],
            google_error(503, "UNAVAILABLE", "The service is currently unavailable."),
        ),
        (
            503,
            vec![],
            google_error(503, "UNAVAILABLE", "The service is currently unavailable."),
        ),
        (
            500,
            vec![],
            google_error(500, "INTERNAL", "Internal error encountered."),
        ),
        (200, vec![], ok_body()),
    ])
    .await;
    let retry = RetrySettings {
        initial_backoff_ms: 40,
        ..fast_retry()
    };
    let v = client(retry)
        .get_json(&format!("{base}/v1/x"), &[])
        .await
        .unwrap();
    assert_eq!(v["state"], "ENABLED");
    assert_eq!(s.count(), 4);
    let gaps = s.gaps();
    // equal jitter: retry n waits in [d/2, d] with d = 40ms * 2^(n-1)
    assert!(gaps[0] >= Duration::from_millis(20), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(80), "{gaps:?}");
    // every attempt carried the bearer token
    assert!(s
        .hits
        .lock()
        .unwrap()
        .iter()
        .all(|h| h.2.as_deref() == Some("Bearer ya29.retry-test")));
}

#[tokio::test]
async fn rate_limited_requests_are_retried_and_honour_retry_after() {
    let (base, s) = Scripted::start(vec![
        (
            429,
            vec![("retry-after", "1")],
            google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for aiplatform.googleapis.com/pipeline_job_create_requests",
            ),
        ),
        (200, vec![], ok_body()),
    ])
    .await;
    let retry = RetrySettings {
        max_backoff_ms: 5_000,
        ..fast_retry()
    };
    client(retry)
        .get_json(&format!("{base}/v1/x"), &[])
        .await
        .unwrap();
    assert_eq!(s.count(), 2);
    assert!(s.gaps()[0] >= Duration::from_millis(950), "{:?}", s.gaps());
}

#[tokio::test]
async fn client_errors_are_not_retried_and_keep_googles_status() {
    let (base, s) = Scripted::start(vec![(
        400,
        vec![],
        google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unknown name \"time_zone\" at 'job': Cannot find field."),
    )])
    .await;
    let err = client(fast_retry())
        .post_json(
            &format!("{base}/v1/projects/p/locations/l/jobs?x=1"),
            &[],
            json!({}),
        )
        .await
        .unwrap_err();
    assert_eq!(s.count(), 1);
    match &err {
        GcpError::Api {
            http_status,
            status,
            message,
            method,
            url,
        } => {
            assert_eq!(*http_status, 400);
            assert_eq!(status.as_deref(), Some("INVALID_ARGUMENT"));
            assert!(message.contains("time_zone"), "{message}");
            assert_eq!(method, "POST");
            assert!(url.ends_with("/v1/projects/p/locations/l/jobs?x=1"));
        }
        other => panic!("{other:?}"),
    }
    let core: trainyard_core::Error = err.into();
    assert!(
        matches!(core, trainyard_core::Error::Backend(ref m) if m.contains("INVALID_ARGUMENT")),
        "{core}"
    );
}

#[tokio::test]
async fn not_found_and_already_exists_map_to_core_kinds() {
    let (base, _) = Scripted::start(vec![
        (404, vec![], google_error(404, "NOT_FOUND", "Job not found")),
        (
            409,
            vec![],
            google_error(409, "ALREADY_EXISTS", "Job already exists"),
        ),
    ])
    .await;
    let http = client(fast_retry());
    let e: trainyard_core::Error = http
        .get_json(&format!("{base}/a"), &[])
        .await
        .unwrap_err()
        .into();
    assert!(matches!(e, trainyard_core::Error::NotFound { .. }), "{e}");
    let e: trainyard_core::Error = http
        .get_json(&format!("{base}/a"), &[])
        .await
        .unwrap_err()
        .into();
    assert!(matches!(e, trainyard_core::Error::Conflict(_)), "{e}");
}

#[tokio::test]
async fn retries_stop_at_the_attempt_budget() {
    let (base, s) = Scripted::start(vec![(
        503,
        vec![],
        google_error(503, "UNAVAILABLE", "Visibility check was unavailable."),
    )])
    .await;
    let err = client(fast_retry())
        .get_json(&format!("{base}/v1/x"), &[])
        .await
        .unwrap_err();
    assert_eq!(s.count(), 5);
    match &err {
        GcpError::RetriesExhausted { attempts, last, .. } => {
            assert_eq!(*attempts, 5);
            assert_eq!(last.http_status(), Some(503));
            assert_eq!(err.status(), Some("UNAVAILABLE"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn retries_stop_at_the_time_budget() {
    let (base, s) = Scripted::start(vec![(502, vec![], "<html>Bad Gateway</html>".into())]).await;
    let retry = RetrySettings {
        initial_backoff_ms: 50,
        max_backoff_ms: 100,
        max_elapsed_ms: 400,
        max_attempts: 1000,
        request_timeout_ms: 1000,
    };
    let started = Instant::now();
    let err = client(retry)
        .get_json(&format!("{base}/v1/x"), &[])
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(400 + 300), "{took:?}");
    assert!(s.count() >= 3 && s.count() < 20, "{}", s.count());
    assert!(matches!(err, GcpError::RetriesExhausted { .. }));
    assert!(err.to_string().contains("Bad Gateway"), "{err}");
}

#[tokio::test]
async fn connection_errors_are_retried_then_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let started = Instant::now();
    let err = client(fast_retry())
        .get_json(&format!("http://127.0.0.1:{port}/v1/x"), &[])
        .await
        .unwrap_err();
    match &err {
        GcpError::RetriesExhausted { attempts, last, .. } => {
            assert_eq!(*attempts, 5);
            assert!(matches!(**last, GcpError::Transport { .. }), "{last:?}");
        }
        other => panic!("{other:?}"),
    }
    // 4 sleeps of at least 10, 20, 40, 80 ms
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn an_expired_token_is_replaced_once() {
    let (base, s) = Scripted::start(vec![
        (
            401,
            vec![],
            google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            ),
        ),
        (
            401,
            vec![],
            google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            ),
        ),
    ])
    .await;
    let err = client(fast_retry())
        .get_json(&format!("{base}/v1/x"), &[])
        .await
        .unwrap_err();
    assert_eq!(s.count(), 2, "one retry with a new token, then give up");
    assert_eq!(err.status(), Some("UNAUTHENTICATED"));
}

fn op(done: bool, extra: serde_json::Value) -> String {
    let mut o = json!({"name": "projects/p/locations/l/operations/42", "done": done,
        "metadata": {"@type": "type.googleapis.com/google.cloud.run.v2.Service"}});
    o.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    o.to_string()
}

#[tokio::test]
async fn operations_are_polled_until_done() {
    let (base, s) = Scripted::start(vec![
        (200, vec![], op(false, json!({}))),
        (503, vec![], google_error(503, "UNAVAILABLE", "try again")),
        (200, vec![], op(false, json!({}))),
        (200, vec![], op(true, json!({"response": {"@type": "type.googleapis.com/google.cloud.run.v2.Service", "uri": "https://svc.run.app"}}))),
    ])
    .await;
    let first: Operation = serde_json::from_str(&op(false, json!({}))).unwrap();
    let v = lro::wait(&client(fast_retry()), &base, "v2", first, &fast_ops())
        .await
        .unwrap();
    assert_eq!(v["uri"], "https://svc.run.app");
    assert_eq!(s.count(), 4);
    assert!(s.hits.lock().unwrap()[0]
        .1
        .ends_with("/v2/projects/p/locations/l/operations/42"));
}

#[tokio::test]
async fn a_failed_operation_carries_its_status() {
    let (base, _) = Scripted::start(vec![(
        200,
        vec![],
        op(true, json!({"error": {"code": 9, "message": "Revision 'svc-00002' is not ready and cannot serve traffic.", "details": []}})),
    )])
    .await;
    let first: Operation = serde_json::from_str(&op(false, json!({}))).unwrap();
    let err = lro::wait(&client(fast_retry()), &base, "v2", first, &fast_ops())
        .await
        .unwrap_err();
    match &err {
        GcpError::Operation {
            code,
            message,
            operation,
        } => {
            assert_eq!(*code, 9);
            assert!(message.contains("not ready"));
            assert_eq!(operation, "projects/p/locations/l/operations/42");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.status(), Some("FAILED_PRECONDITION"));
}

#[tokio::test]
async fn operations_time_out() {
    let (base, s) = Scripted::start(vec![(200, vec![], op(false, json!({})))]).await;
    let first: Operation = serde_json::from_str(&op(false, json!({}))).unwrap();
    let mut ops = fast_ops();
    ops.timeout_secs = 1;
    let started = Instant::now();
    let err = lro::wait(&client(fast_retry()), &base, "v2", first, &ops)
        .await
        .unwrap_err();
    assert!(matches!(err, GcpError::OperationTimeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1300));
    assert!(s.count() > 5, "polled {} times", s.count());
}
