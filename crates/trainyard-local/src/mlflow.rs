//! [`MlflowTracking`]: the [`ExperimentTracking`] port over an MLflow tracking server's REST API
//! (`/api/2.0/mlflow/...`): finds an experiment's runs tagged with a trainyard run's key
//! (`trainyard.run_key`, unique across projects) that are still RUNNING and ends them. Every request has a bounded time; a second call finds nothing
//! left to end.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use trainyard_core::tracking::{ExperimentTracking, RunKey, TrackingEnd, RUN_KEY_TAG};
use trainyard_core::{Error, Result, ValidationError};

/// Time to connect to the tracking server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for one request, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Runs asked for per search page, and pages read at most (one trainyard run has one or a few).
const PAGE_SIZE: u32 = 100;
const MAX_PAGES: usize = 10;

/// An MLflow tracking server at an `http(s)://` URI, with the credentials the MLflow client
/// itself reads (`MLFLOW_TRACKING_TOKEN`, else `MLFLOW_TRACKING_USERNAME` and
/// `MLFLOW_TRACKING_PASSWORD`) when [`MlflowTracking::with_env_credentials`] is used.
#[derive(Clone)]
pub struct MlflowTracking {
    base: String,
    client: reqwest::Client,
    auth: Option<Auth>,
}

#[derive(Clone)]
enum Auth {
    Bearer(String),
    Basic(String, String),
}

impl std::fmt::Debug for MlflowTracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlflowTracking")
            .field("base", &without_userinfo(&self.base))
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `uri` without a `user:password@` part, for messages and logs.
fn without_userinfo(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return "<not a URI>".into();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://<redacted>@{}", &rest[at + 1..]),
        None => uri.to_string(),
    }
}

fn backend(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("mlflow {what}: {e}"))
}

impl MlflowTracking {
    /// The server at `uri` (`http://host:port[/prefix]` or `https://...`); any other tracking
    /// URI (a local `file:` or database store, `databricks`) has no REST API to call and is
    /// refused.
    pub fn new(uri: &str) -> Result<Self> {
        let base = uri.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.contains(' ') {
            return Err(ValidationError::field(
                "mlflow_tracking_uri",
                format!(
                    "{} is not an http(s) URI of an MLflow tracking server",
                    without_userinfo(uri.trim())
                ),
            )
            .into());
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| backend("client", e))?;
        Ok(MlflowTracking {
            base: base.to_string(),
            client,
            auth: None,
        })
    }

    /// The credentials of the MLflow client's environment variables, if set.
    pub fn with_env_credentials(mut self) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        self.auth = match (
            var("MLFLOW_TRACKING_TOKEN"),
            var("MLFLOW_TRACKING_USERNAME"),
        ) {
            (Some(token), _) => Some(Auth::Bearer(token)),
            (None, Some(user)) => Some(Auth::Basic(
                user,
                var("MLFLOW_TRACKING_PASSWORD").unwrap_or_default(),
            )),
            (None, None) => None,
        };
        self
    }

    /// The server's base URI, without credentials.
    pub fn uri(&self) -> String {
        without_userinfo(&self.base)
    }

    fn request(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some(Auth::Bearer(t)) => req.bearer_auth(t),
            Some(Auth::Basic(u, p)) => req.basic_auth(u, Some(p)),
            None => req,
        }
    }

    /// Sends a request to `/api/2.0/mlflow/{path}`; the JSON body of a 2xx answer, `None` for
    /// a 404 RESOURCE_DOES_NOT_EXIST, an error otherwise.
    async fn call(&self, path: &str, req: reqwest::RequestBuilder) -> Result<Option<Value>> {
        let resp = self
            .request(req)
            .send()
            .await
            .map_err(|e| backend(path, e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| backend(path, e))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(Some(body));
        }
        if status == reqwest::StatusCode::NOT_FOUND
            && body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        {
            return Ok(None);
        }
        let detail: String = text.chars().take(300).collect();
        Err(backend(path, format!("{status}: {detail}")))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/2.0/mlflow/{path}", self.base)
    }

    /// The id of experiment `name`, `None` when there is none.
    async fn experiment_id(&self, name: &str) -> Result<Option<String>> {
        let req = self
            .client
            .get(self.url("experiments/get-by-name"))
            .query(&[("experiment_name", name)]);
        let Some(body) = self.call("experiments/get-by-name", req).await? else {
            return Ok(None);
        };
        match body["experiment"]["experiment_id"].as_str() {
            Some(id) => Ok(Some(id.to_string())),
            None => Err(backend(
                "experiments/get-by-name",
                format!("no experiment_id in {body}"),
            )),
        }
    }

    /// Ids of the runs of `experiment_id` tagged with trainyard run key `run` that are RUNNING.
    async fn running_runs(&self, experiment_id: &str, run: &RunKey) -> Result<Vec<String>> {
        let filter = running_filter(run);
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut body = json!({
                "experiment_ids": [experiment_id],
                "filter": filter,
                "max_results": PAGE_SIZE,
            });
            if let Some(t) = &token {
                body["page_token"] = t.clone().into();
            }
            let req = self.client.post(self.url("runs/search")).json(&body);
            let found = self.call("runs/search", req).await?.unwrap_or(Value::Null);
            for r in found["runs"].as_array().into_iter().flatten() {
                if let Some(id) = r["info"]["run_id"].as_str() {
                    ids.push(id.to_string());
                }
            }
            token = found["next_page_token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(String::from);
            if token.is_none() {
                break;
            }
        }
        Ok(ids)
    }
}

/// The runs/search filter of the RUNNING runs of the trainyard run keyed `run` (digits, `-`,
/// `:`, `.`, `T` and `Z`: nothing in it needs quoting). Not the run id: another project's run
/// with the same id may log to the same experiment.
pub(crate) fn running_filter(run: &RunKey) -> String {
    format!("tags.\"{RUN_KEY_TAG}\" = '{run}' and attributes.status = 'RUNNING'")
}

#[async_trait]
impl ExperimentTracking for MlflowTracking {
    async fn end_stale_runs(
        &self,
        experiment: &str,
        run: &RunKey,
        end: TrackingEnd,
    ) -> Result<u32> {
        let Some(experiment_id) = self.experiment_id(experiment).await? else {
            return Ok(0);
        };
        let mut ended = 0;
        for run_id in self.running_runs(&experiment_id, run).await? {
            let end_time = chrono::Utc::now().timestamp_millis();
            let req = self.client.post(self.url("runs/update")).json(&json!({
                "run_id": run_id,
                "status": end.as_mlflow(),
                "end_time": end_time,
            }));
            // a run deleted meanwhile has nothing left to end
            if self.call("runs/update", req).await?.is_some() {
                ended += 1;
            }
        }
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_uris_are_taken() {
        let t = MlflowTracking::new(" http://127.0.0.1:5000/ ").unwrap();
        assert_eq!(t.uri(), "http://127.0.0.1:5000");
        assert!(MlflowTracking::new("https://mlflow.example.com/prefix").is_ok());
        for bad in [
            "",
            "file:///tmp/mlruns",
            "sqlite:///m.db",
            "databricks",
            "http://a b",
        ] {
            let e = MlflowTracking::new(bad).unwrap_err();
            assert!(matches!(e, Error::Validation(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn the_search_names_the_run_key_and_the_running_status() {
        use chrono::TimeZone;
        let at = chrono::Utc.with_ymd_and_hms(2026, 12, 5, 15, 0, 4).unwrap();
        assert_eq!(
            running_filter(&RunKey::new(7, at)),
            "tags.\"trainyard.run_key\" = '7-2026-12-05T15:00:04.000000000Z' and attributes.status = 'RUNNING'"
        );
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let mut t = MlflowTracking::new("http://127.0.0.1:1").unwrap();
        t.auth = Some(Auth::Bearer("s3cret".into()));
        assert!(!format!("{t:?}").contains("s3cret"));
        // nor a password in the URI: not in Debug, uri() or the refusal of a database store
        let t = MlflowTracking::new("https://me:pa55@mlflow.example.com/x").unwrap();
        assert!(!format!("{t:?}").contains("pa55"));
        assert_eq!(t.uri(), "https://<redacted>@mlflow.example.com/x");
        let e = MlflowTracking::new("postgresql://me:pa55@db/mlflow").unwrap_err();
        assert!(!e.to_string().contains("pa55"), "{e}");
    }
}
