//! Cloud Logging: the logs of a Vertex AI pipeline job (`runs logs` of a Vertex run).
//!
//! A pipeline job writes its own events under the monitored resource
//! `aiplatform.googleapis.com/PipelineJob` (label `pipeline_job_id`); each task runs as a
//! Vertex custom job whose container output is logged under `ml_job` (label `job_id`), named
//! in the job's `jobDetail.taskDetails[].executorDetail`. [`CloudLogging::read_logs`] reads the
//! job (`pipelineJobs.get`) for its tasks and their custom jobs, then lists the matching entries
//! (`entries:list`, oldest first, from the job's creation, paged up to the limit).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{json, Value};
use trainyard_core::ports::{PipelineHandle, PipelineLogEntry, PipelineLogReader, PipelineLogs};

use crate::config::GcpConfig;
use crate::error::GcpResult;
use crate::http::GcpHttp;

/// Largest page `entries:list` accepts.
const MAX_PAGE: usize = 1000;
/// Pages read at most for one call, whatever the limit.
const MAX_PAGES: usize = 20;

#[derive(Debug, Clone)]
pub struct CloudLogging {
    http: GcpHttp,
    base_url: String,
    vertex_url: String,
    project: String,
}

/// The tasks of a pipeline job and the custom jobs (ids) each ran in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobTasks {
    pub create_time: Option<String>,
    /// task name -> custom job ids
    pub tasks: BTreeMap<String, Vec<String>>,
}

fn job_id_of(resource: &str) -> Option<String> {
    resource
        .rsplit_once("/customJobs/")
        .map(|(_, id)| id.to_string())
        .filter(|id| !id.is_empty())
}

impl JobTasks {
    /// From a `pipelineJobs.get` answer: every task's main, pre-caching-check and failover
    /// custom jobs (container tasks) or its custom job (custom-job tasks).
    pub fn from_job(job: &Value) -> JobTasks {
        let mut tasks: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let details = job
            .pointer("/jobDetail/taskDetails")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for t in &details {
            let Some(name) = t["taskName"].as_str() else {
                continue;
            };
            let exec = &t["executorDetail"];
            let c = &exec["containerDetail"];
            let mut ids: Vec<String> = [
                &c["mainJob"],
                &c["preCachingCheckJob"],
                &exec["customJobDetail"]["job"],
            ]
            .into_iter()
            .filter_map(Value::as_str)
            .chain(
                c["failedMainJobs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str),
            )
            .filter_map(job_id_of)
            .collect();
            if ids.is_empty() {
                continue; // the DAG's root task, or a task that has not started
            }
            ids.sort();
            ids.dedup();
            tasks.entry(name.to_string()).or_default().extend(ids);
        }
        JobTasks {
            create_time: job["createTime"].as_str().map(str::to_string),
            tasks,
        }
    }

    /// The Cloud Logging filter for the job's entries: its own events and its tasks' custom
    /// jobs, or one task's jobs.
    pub fn filter(&self, pipeline_job_id: &str, task: Option<&str>) -> String {
        let jobs: Vec<&String> = match task {
            Some(t) => self.tasks.get(t).into_iter().flatten().collect(),
            None => self.tasks.values().flatten().collect(),
        };
        let mut parts = Vec::new();
        if task.is_none() {
            parts.push(format!(
                "(resource.type=\"aiplatform.googleapis.com/PipelineJob\" AND resource.labels.pipeline_job_id=\"{pipeline_job_id}\")"
            ));
        }
        if !jobs.is_empty() {
            let ids: Vec<String> = jobs
                .iter()
                .map(|id| format!("resource.labels.job_id=\"{id}\""))
                .collect();
            parts.push(format!(
                "(resource.type=\"ml_job\" AND ({}))",
                ids.join(" OR ")
            ));
        }
        let mut filter = parts.join(" OR ");
        if parts.len() > 1 {
            filter = format!("({filter})");
        }
        if let Some(t) = &self.create_time {
            filter = format!("{filter} AND timestamp>=\"{t}\"");
        }
        filter
    }

    fn task_of_job(&self, job_id: &str) -> Option<&str> {
        self.tasks
            .iter()
            .find(|(_, ids)| ids.iter().any(|i| i == job_id))
            .map(|(t, _)| t.as_str())
    }
}

/// The text of a LogEntry: textPayload, else jsonPayload.message, else the JSON payload.
fn message_of(entry: &Value) -> String {
    if let Some(t) = entry["textPayload"].as_str() {
        return t.trim_end().to_string();
    }
    if let Some(p) = entry.get("jsonPayload") {
        return p["message"]
            .as_str()
            .map(|m| m.trim_end().to_string())
            .unwrap_or_else(|| p.to_string());
    }
    entry
        .get("protoPayload")
        .map(Value::to_string)
        .unwrap_or_default()
}

impl CloudLogging {
    pub fn new(http: GcpHttp, config: &GcpConfig) -> Self {
        CloudLogging {
            http,
            base_url: config.logging_base_url(),
            vertex_url: config.vertex_base_url(),
            project: config.project.clone(),
        }
    }

    /// The job's tasks and their custom jobs (`pipelineJobs.get`).
    pub async fn job_tasks(&self, job_name: &str) -> GcpResult<JobTasks> {
        let job = self
            .http
            .get_json(&format!("{}/v1/{job_name}", self.vertex_url), &[])
            .await?;
        Ok(JobTasks::from_job(&job))
    }

    /// `entries:list` with `filter`, oldest first, at most `limit` entries; whether more matched.
    pub async fn list_entries(&self, filter: &str, limit: usize) -> GcpResult<(Vec<Value>, bool)> {
        let url = format!("{}/v2/entries:list", self.base_url);
        let mut entries = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let want = limit.saturating_sub(entries.len());
            if want == 0 {
                break;
            }
            let mut body = json!({
                "resourceNames": [format!("projects/{}", self.project)],
                "filter": filter,
                "orderBy": "timestamp asc",
                "pageSize": want.min(MAX_PAGE),
            });
            if let Some(t) = &token {
                body["pageToken"] = t.clone().into();
            }
            let page = self.http.post_json(&url, &[], body).await?;
            entries.extend(page["entries"].as_array().cloned().unwrap_or_default());
            token = page["nextPageToken"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                return Ok((entries, false));
            }
        }
        entries.truncate(limit);
        Ok((entries, token.is_some()))
    }
}

#[async_trait]
impl PipelineLogReader for CloudLogging {
    async fn read_logs(
        &self,
        handle: &PipelineHandle,
        component: Option<&str>,
        limit: usize,
    ) -> trainyard_core::Result<PipelineLogs> {
        let tasks = self.job_tasks(&handle.job_name).await?;
        let components: Vec<String> = tasks.tasks.keys().cloned().collect();
        let task = match component {
            None => None,
            Some(c) => Some(
                components
                    .iter()
                    .find(|t| t.eq_ignore_ascii_case(c))
                    .cloned()
                    .ok_or_else(|| {
                        trainyard_core::Error::not_found(
                            "component log",
                            format!(
                                "{c} (pipeline job {} has logs of {})",
                                handle.job_id,
                                if components.is_empty() {
                                    "no task yet".to_string()
                                } else {
                                    components.join(", ")
                                }
                            ),
                        )
                    })?,
            ),
        };
        let filter = tasks.filter(&handle.job_id, task.as_deref());
        let (raw, truncated) = self.list_entries(&filter, limit).await?;
        let entries = raw
            .iter()
            .map(|e| PipelineLogEntry {
                timestamp: e["timestamp"].as_str().unwrap_or_default().to_string(),
                severity: e["severity"].as_str().unwrap_or("DEFAULT").to_string(),
                component: e
                    .pointer("/resource/labels/job_id")
                    .and_then(Value::as_str)
                    .and_then(|id| tasks.task_of_job(id))
                    .map(str::to_string),
                message: message_of(e),
            })
            .collect();
        Ok(PipelineLogs {
            source: format!("cloud logging: projects/{} {filter}", self.project),
            components,
            entries,
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Value {
        json!({
            "name": "projects/p/locations/r/pipelineJobs/run-7-x",
            "createTime": "2026-11-27T10:00:00.123456Z",
            "jobDetail": {"taskDetails": [
                {"taskName": "run-7-x", "taskId": "1"},
                {"taskName": "Trainer", "taskId": "2", "executorDetail": {"containerDetail": {
                    "mainJob": "projects/123/locations/r/customJobs/555",
                    "failedMainJobs": ["projects/123/locations/r/customJobs/554"]}}},
                {"taskName": "Transform", "taskId": "3", "executorDetail": {"containerDetail": {
                    "mainJob": "projects/123/locations/r/customJobs/444"}}},
                {"taskName": "Pusher", "taskId": "4", "state": "PENDING"}
            ]}
        })
    }

    #[test]
    fn the_filter_names_the_pipeline_job_and_its_tasks_custom_jobs() {
        let t = JobTasks::from_job(&job());
        assert_eq!(
            t.tasks,
            BTreeMap::from([
                (
                    "Trainer".to_string(),
                    vec!["554".to_string(), "555".to_string()]
                ),
                ("Transform".to_string(), vec!["444".to_string()]),
            ])
        );
        assert_eq!(
            t.filter("run-7-x", None),
            "((resource.type=\"aiplatform.googleapis.com/PipelineJob\" AND resource.labels.pipeline_job_id=\"run-7-x\") OR (resource.type=\"ml_job\" AND (resource.labels.job_id=\"554\" OR resource.labels.job_id=\"555\" OR resource.labels.job_id=\"444\"))) AND timestamp>=\"2026-11-27T10:00:00.123456Z\""
        );
        assert_eq!(
            t.filter("run-7-x", Some("Transform")),
            "(resource.type=\"ml_job\" AND (resource.labels.job_id=\"444\")) AND timestamp>=\"2026-11-27T10:00:00.123456Z\""
        );
        assert_eq!(t.task_of_job("554"), Some("Trainer"));
        let pending = JobTasks::from_job(&json!({"name": "x"}));
        assert_eq!(
            pending.filter("j", None),
            "(resource.type=\"aiplatform.googleapis.com/PipelineJob\" AND resource.labels.pipeline_job_id=\"j\")"
        );
    }

    #[test]
    fn messages_come_from_text_or_json_payloads() {
        assert_eq!(message_of(&json!({"textPayload": "epoch 1\n"})), "epoch 1");
        assert_eq!(
            message_of(&json!({"jsonPayload": {"message": "Task Trainer failed", "x": 1}})),
            "Task Trainer failed"
        );
        assert_eq!(message_of(&json!({"jsonPayload": {"x": 1}})), "{\"x\":1}");
    }
}
