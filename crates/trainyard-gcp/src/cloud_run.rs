//! Cloud Run Admin API v2 as a [`Deployer`]: creates or updates one service per model with the
//! serving image, MODEL_PATH set to the versioned model folder (bug 8), resources and scaling
//! from the deployment config, and waits for the operation; undeploy deletes the service.

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use trainyard_core::config::DeploymentConfig;
use trainyard_core::deployment::validate_service_name;
use trainyard_core::ports::{DeployRequest, Deployer};
use trainyard_core::ValidationError;

use crate::config::{GcpConfig, OperationSettings};
use crate::error::{GcpError, GcpResult};
use crate::gcs::GcsClient;
use crate::http::{from_value, GcpHttp};
use crate::lro::{self, Operation};
use crate::vertex_registry::{SERVING_MODEL_NAME, SERVING_PORT};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    pub message: String,
}

/// The fields of a Cloud Run v2 Service that trainyard reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Service {
    pub name: String,
    pub uri: String,
    pub urls: Vec<String>,
    pub latest_ready_revision: String,
    pub terminal_condition: Option<Condition>,
    pub reconciling: bool,
}

impl Service {
    /// Ready and with a revision that serves traffic.
    pub fn is_serving(&self) -> bool {
        let ready = self
            .terminal_condition
            .as_ref()
            .is_some_and(|c| c.state == "CONDITION_SUCCEEDED");
        ready && !self.latest_ready_revision.is_empty() && !self.url().is_empty()
    }

    pub fn url(&self) -> &str {
        if self.uri.is_empty() {
            self.urls.first().map(String::as_str).unwrap_or("")
        } else {
            &self.uri
        }
    }
}

/// Cloud Run v2 deployer.
#[derive(Debug, Clone)]
pub struct CloudRunDeployer {
    http: GcpHttp,
    base_url: String,
    parent: String,
    service_account: Option<String>,
    gcs: GcsClient,
    operations: OperationSettings,
}

/// Cloud Run Admin API v2: a serviceId "must contain fewer than 50 characters" (stricter than
/// the 63 of `validate_service_name`).
pub const MAX_SERVICE_ID_LEN: usize = 49;

/// Request timeout in seconds from the deployment config (`"300"`).
fn timeout_secs(config: &DeploymentConfig) -> Result<u32, ValidationError> {
    config
        .timeout
        .trim()
        .trim_end_matches('s')
        .parse::<u32>()
        .ok()
        .filter(|t| (1..=3600).contains(t))
        .ok_or_else(|| {
            ValidationError::field(
                "deployment_config.timeout",
                "must be a whole number of seconds between 1 and 3600",
            )
        })
}

impl CloudRunDeployer {
    pub fn new(http: GcpHttp, config: &GcpConfig) -> Self {
        CloudRunDeployer {
            gcs: GcsClient::from_config(http.clone(), config),
            http,
            base_url: config.cloud_run_base_url(),
            parent: config.parent(),
            service_account: config.service_account.clone(),
            operations: config.operations.clone(),
        }
    }

    pub fn service_name(&self, service_id: &str) -> String {
        format!("{}/services/{service_id}", self.parent)
    }

    /// The Service body for a request, with MODEL_PATH already resolved to the version folder.
    pub fn service_body(
        &self,
        request: &DeployRequest,
        model_path: &str,
    ) -> Result<Value, ValidationError> {
        let c = &request.config;
        c.validate()?;
        let timeout = timeout_secs(c)?;
        let mut template = json!({
            "timeout": format!("{timeout}s"),
            "scaling": {
                "minInstanceCount": c.min_instances,
                "maxInstanceCount": c.max_instances,
            },
            "containers": [{
                "image": request.image,
                "env": [
                    {"name": "MODEL_PATH", "value": model_path},
                    {"name": "MODEL_NAME", "value": SERVING_MODEL_NAME},
                ],
                "resources": {
                    "limits": {"cpu": c.cpu, "memory": c.memory},
                    "cpuIdle": true,
                    "startupCpuBoost": true,
                },
                "ports": [{"containerPort": SERVING_PORT}],
                "startupProbe": {
                    "httpGet": {"path": format!("/v1/models/{SERVING_MODEL_NAME}"), "port": SERVING_PORT},
                    "initialDelaySeconds": 5,
                    "periodSeconds": 10,
                    "failureThreshold": 30,
                    "timeoutSeconds": 5,
                },
            }],
        });
        if let Some(sa) = &self.service_account {
            template["serviceAccount"] = sa.clone().into();
        }
        Ok(json!({
            "labels": {"managed-by": "trainyard", "trainyard-service": request.service_name},
            "ingress": "INGRESS_TRAFFIC_ALL",
            "template": template,
        }))
    }

    /// The service, or `None` when it does not exist.
    pub async fn get_service(&self, service_id: &str) -> GcpResult<Option<Service>> {
        let url = format!("{}/v2/{}", self.base_url, self.service_name(service_id));
        match self.http.get_json(&url, &[]).await {
            Ok(v) => Ok(Some(from_value("run.services.get", v)?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn wait(&self, op: Value) -> GcpResult<Value> {
        let op: Operation = from_value("google.longrunning.Operation", op)?;
        lro::wait(&self.http, &self.base_url, "v2", op, &self.operations).await
    }

    async fn create(&self, service_id: &str, body: Value) -> GcpResult<Value> {
        let url = format!("{}/v2/{}/services", self.base_url, self.parent);
        let op = self
            .http
            .post_json(&url, &[("serviceId", service_id)], body)
            .await?;
        self.wait(op).await
    }

    async fn update(&self, service_id: &str, body: Value) -> GcpResult<Value> {
        let url = format!("{}/v2/{}", self.base_url, self.service_name(service_id));
        let op = self.http.json(Method::PATCH, &url, &[], Some(body)).await?;
        self.wait(op).await
    }

    async fn deploy_inner(&self, request: &DeployRequest) -> trainyard_core::Result<String> {
        validate_service_name(&request.service_name)
            .map_err(|e| ValidationError::field("service_name", e.to_string()))?;
        if request.service_name.len() > MAX_SERVICE_ID_LEN {
            return Err(ValidationError::field(
                "service_name",
                format!(
                    "Cloud Run v2 service ids must have fewer than 50 characters; {:?} has {}",
                    request.service_name,
                    request.service_name.len()
                ),
            )
            .into());
        }
        if !request.model_path.starts_with("gs://") {
            return Err(ValidationError::field(
                "model_path",
                format!(
                    "Cloud Run loads models from gs:// paths, got {:?}",
                    request.model_path
                ),
            )
            .into());
        }
        let model_path = self.gcs.versioned_model_path(&request.model_path).await?;
        let body = self.service_body(request, &model_path)?;
        let id = request.service_name.as_str();
        let service = match self.get_service(id).await? {
            Some(_) => self.update(id, body).await?,
            None => match self.create(id, body.clone()).await {
                Ok(s) => s,
                Err(e) if e.is_already_exists() => self.update(id, body).await?,
                Err(e) => return Err(e.into()),
            },
        };
        let mut service: Service = from_value("run Service", service)?;
        if service.url().is_empty() {
            service = self.get_service(id).await?.ok_or_else(|| {
                GcpError::decode(
                    "run.services.get",
                    format!("service {id} vanished after deploy"),
                )
            })?;
        }
        let url = service.url().to_string();
        if url.is_empty() {
            return Err(
                GcpError::decode("run.services.get", format!("service {id} has no URL")).into(),
            );
        }
        tracing::info!(service = id, model_path = %model_path, url = %url, "cloud run service deployed");
        Ok(url)
    }
}

#[async_trait]
impl Deployer for CloudRunDeployer {
    async fn deploy(&self, request: &DeployRequest) -> trainyard_core::Result<String> {
        self.deploy_inner(request).await
    }

    /// Deletes the service; one that is already gone is fine.
    async fn undeploy(&self, service_name: &str) -> trainyard_core::Result<()> {
        let url = format!("{}/v2/{}", self.base_url, self.service_name(service_name));
        match self.http.json(Method::DELETE, &url, &[], None).await {
            Ok(op) => {
                self.wait(op).await?;
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn is_serving(&self, service_name: &str) -> trainyard_core::Result<bool> {
        Ok(self
            .get_service(service_name)
            .await?
            .is_some_and(|s| s.is_serving()))
    }

    fn serving_target(&self) -> trainyard_core::deployment::ServingTarget {
        trainyard_core::deployment::ServingTarget::CloudRun
    }
}
