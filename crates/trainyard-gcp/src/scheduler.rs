//! Cloud Scheduler as a [`ScheduleTrigger`]: one job per schedule that POSTs to trainyard's
//! webhook with an OIDC token, on the cron string and time zone it is given.

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};

use trainyard_core::ports::ScheduleTrigger;
use trainyard_core::schedule::{ScheduleStatus, TrainingSchedule};
use trainyard_core::ValidationError;

use crate::config::{GcpConfig, SchedulerSettings};
use crate::error::{GcpError, GcpResult};
use crate::http::GcpHttp;
use crate::names;

/// Fields a patch replaces (everything trainyard sets).
pub const JOB_UPDATE_MASK: &str =
    "description,schedule,timeZone,httpTarget,retryConfig,attemptDeadline";

/// Cloud Scheduler trigger.
#[derive(Debug, Clone)]
pub struct CloudSchedulerTrigger {
    http: GcpHttp,
    base_url: String,
    parent: String,
    webhook_base_url: String,
    service_account: String,
    settings: SchedulerSettings,
}

impl CloudSchedulerTrigger {
    /// Needs `gcp.webhook_base_url` and a service account for the OIDC token
    /// (`gcp.scheduler.service_account`, else `gcp.service_account`).
    pub fn new(http: GcpHttp, config: &GcpConfig) -> GcpResult<Self> {
        let webhook_base_url = config
            .webhook_base_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| {
                GcpError::Config("gcp.webhook_base_url is required for Cloud Scheduler".into())
            })?;
        if !webhook_base_url.starts_with("https://") && !webhook_base_url.starts_with("http://") {
            return Err(GcpError::Config(format!(
                "gcp.webhook_base_url must be an http(s) URL, got {webhook_base_url:?}"
            )));
        }
        let service_account = config
            .scheduler
            .service_account
            .clone()
            .or_else(|| config.service_account.clone())
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                GcpError::Config(
                    "gcp.scheduler.service_account (or gcp.service_account) is required for the webhook's OIDC token".into(),
                )
            })?;
        let location = config
            .scheduler
            .region
            .clone()
            .unwrap_or_else(|| config.region.clone());
        Ok(CloudSchedulerTrigger {
            http,
            base_url: config.scheduler_base_url(),
            parent: format!("projects/{}/locations/{location}", config.project),
            webhook_base_url: webhook_base_url.trim_end_matches('/').to_string(),
            service_account,
            settings: config.scheduler.clone(),
        })
    }

    /// `projects/{p}/locations/{region}/jobs/{id}` of a schedule.
    pub fn job_name(&self, schedule: &TrainingSchedule) -> String {
        if schedule
            .cloud_scheduler_job_name
            .starts_with(&format!("{}/jobs/", self.parent))
        {
            schedule.cloud_scheduler_job_name.clone()
        } else {
            format!(
                "{}/jobs/{}",
                self.parent,
                names::scheduler_job_id(schedule.id)
            )
        }
    }

    pub fn webhook_url(&self, schedule: &TrainingSchedule) -> String {
        let path = self
            .settings
            .webhook_path
            .replace("{id}", &schedule.id.to_string());
        format!("{}/{}", self.webhook_base_url, path.trim_start_matches('/'))
    }

    /// The Job body for a schedule and its cron string.
    pub fn job_body(
        &self,
        schedule: &TrainingSchedule,
        cron: &str,
    ) -> Result<Value, ValidationError> {
        if cron.split_whitespace().count() != 5 {
            return Err(ValidationError::field(
                "cron",
                format!("Cloud Scheduler needs a 5-field cron expression, got {cron:?}"),
            ));
        }
        let tz = if schedule.timing.schedule_timezone.trim().is_empty() {
            "UTC"
        } else {
            schedule.timing.schedule_timezone.trim()
        };
        let payload = json!({"schedule_id": schedule.id, "source": "cloud_scheduler"});
        let audience = self
            .settings
            .audience
            .clone()
            .unwrap_or_else(|| self.webhook_base_url.clone());
        let s = &self.settings;
        let mut description = format!("trainyard schedule {}: {}", schedule.id, schedule.name);
        description.truncate(500);
        Ok(json!({
            "name": self.job_name(schedule),
            "description": description,
            "schedule": cron,
            "timeZone": tz,
            "httpTarget": {
                "uri": self.webhook_url(schedule),
                "httpMethod": "POST",
                "headers": {"Content-Type": "application/json"},
                "body": STANDARD.encode(payload.to_string()),
                "oidcToken": {
                    "serviceAccountEmail": self.service_account,
                    "audience": audience,
                },
            },
            "retryConfig": {
                "retryCount": s.retry_count,
                "maxRetryDuration": "0s",
                "minBackoffDuration": format!("{}s", s.min_backoff_secs),
                "maxBackoffDuration": format!("{}s", s.max_backoff_secs),
                "maxDoublings": s.max_doublings,
            },
            "attemptDeadline": format!("{}s", s.attempt_deadline_secs),
        }))
    }

    fn url(&self, name: &str) -> String {
        format!("{}/v1/{name}", self.base_url)
    }

    async fn create(&self, body: Value) -> GcpResult<Value> {
        let url = format!("{}/v1/{}/jobs", self.base_url, self.parent);
        self.http.post_json(&url, &[], body).await
    }

    async fn patch(&self, name: &str, body: Value) -> GcpResult<Value> {
        self.http
            .json(
                Method::PATCH,
                &self.url(name),
                &[("updateMask", JOB_UPDATE_MASK)],
                Some(body),
            )
            .await
    }

    async fn action(&self, name: &str, verb: &str) -> GcpResult<Value> {
        let url = format!("{}:{verb}", self.url(name));
        self.http.post_json(&url, &[], json!({})).await
    }

    /// Fires the job now (the schedule's "trigger").
    pub async fn run_now(&self, job_name: &str) -> trainyard_core::Result<()> {
        self.action(job_name, "run").await?;
        Ok(())
    }

    async fn upsert_inner(
        &self,
        schedule: &TrainingSchedule,
        cron: &str,
    ) -> trainyard_core::Result<String> {
        let body = self.job_body(schedule, cron)?;
        let name = self.job_name(schedule);
        let known = !schedule.cloud_scheduler_job_name.is_empty();
        let created = if known {
            match self.patch(&name, body.clone()).await {
                Ok(_) => false,
                Err(e) if e.is_not_found() => {
                    self.create(body).await?;
                    true
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            match self.create(body.clone()).await {
                Ok(_) => true,
                Err(e) if e.is_already_exists() => {
                    self.patch(&name, body).await?;
                    false
                }
                Err(e) => return Err(e.into()),
            }
        };
        if created && schedule.status == ScheduleStatus::Paused {
            self.action(&name, "pause").await?;
        }
        tracing::info!(job = %name, created, "cloud scheduler job upserted");
        Ok(name)
    }
}

#[async_trait]
impl ScheduleTrigger for CloudSchedulerTrigger {
    async fn upsert(
        &self,
        schedule: &TrainingSchedule,
        cron: &str,
    ) -> trainyard_core::Result<String> {
        self.upsert_inner(schedule, cron).await
    }

    async fn pause(&self, job_name: &str) -> trainyard_core::Result<()> {
        self.action(job_name, "pause").await?;
        Ok(())
    }

    async fn resume(&self, job_name: &str) -> trainyard_core::Result<()> {
        self.action(job_name, "resume").await?;
        Ok(())
    }

    /// Deletes the job; one that is already gone is fine.
    async fn delete(&self, job_name: &str) -> trainyard_core::Result<()> {
        match self
            .http
            .json(Method::DELETE, &self.url(job_name), &[], None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
