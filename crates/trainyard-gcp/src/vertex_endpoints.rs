//! Vertex AI Endpoints: the second deploy target ([`Deployer`]) and the live deployment
//! status a user sees (spec: "Deployment status is dynamically queried from Vertex AI").
//!
//! A deploy finds the endpoint by display name (the trainyard endpoint's service name) or
//! creates it, deploys the registered Model Registry version on it with the deployment
//! config's machine type and replica counts and 100% of the traffic, then undeploys the
//! models it served before. Every step finds what an earlier, interrupted deploy left, so a
//! retried deploy repeats nothing.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use trainyard_core::deployment::{
    live_status, vertex_resources, LiveDeploymentStatus, ServingTarget,
};
use trainyard_core::ports::{DeployRequest, Deployer};
use trainyard_core::ValidationError;

use crate::config::{GcpConfig, OperationSettings};
use crate::error::{GcpError, GcpResult};
use crate::http::{from_value, GcpHttp};
use crate::lro::{self, Operation};
use crate::vertex_registry::strip_version;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeployedModel {
    pub id: String,
    pub model: String,
    pub model_version_id: String,
    pub display_name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Endpoint {
    pub name: String,
    pub display_name: String,
    pub deployed_models: Vec<DeployedModel>,
    /// Deployed model id -> percent of the traffic.
    pub traffic_split: std::collections::BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct DeployModelResponse {
    deployed_model: DeployedModel,
}

/// `projects/../models/ID@VERSION` -> (`projects/../models/ID`, `VERSION`); the version is
/// required (an endpoint serves one registered version).
pub fn split_model_version(model: &str) -> GcpResult<(&str, &str)> {
    match model.split_once('@') {
        Some((m, v)) if m.starts_with("projects/") && m.contains("/models/") && !v.is_empty() => {
            Ok((m, v))
        }
        _ => Err(GcpError::Invalid(format!(
            "a Vertex AI endpoint serves a registered Model Registry version \
             (projects/../models/ID@VERSION), got {model:?}"
        ))),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ListEndpoints {
    endpoints: Vec<Endpoint>,
    next_page_token: Option<String>,
}

/// Reads Vertex AI endpoints.
#[derive(Debug, Clone)]
pub struct VertexEndpoints {
    http: GcpHttp,
    base_url: String,
    parent: String,
    default_endpoint: Option<String>,
    operations: OperationSettings,
}

impl VertexEndpoints {
    pub fn new(http: GcpHttp, config: &GcpConfig) -> Self {
        VertexEndpoints {
            http,
            base_url: config.vertex_base_url(),
            parent: config.parent(),
            default_endpoint: config.vertex_endpoint.clone(),
            operations: config.operations.clone(),
        }
    }

    async fn wait(&self, op: Value) -> GcpResult<Value> {
        let op: Operation = from_value("google.longrunning.Operation", op)?;
        lro::wait(&self.http, &self.base_url, "v1", op, &self.operations).await
    }

    /// The endpoints.create body: the display name and trainyard's labels.
    pub fn create_body(display_name: &str) -> Value {
        json!({
            "displayName": display_name,
            "description": format!("trainyard endpoint {display_name}"),
            "labels": {"managed-by": "trainyard", "trainyard-endpoint": crate::names::label_value(display_name)},
        })
    }

    /// The endpoint named `display_name`, created when there is none.
    pub async fn find_or_create(&self, display_name: &str) -> GcpResult<Endpoint> {
        if let Some(e) = self.find(display_name).await? {
            return Ok(e);
        }
        let url = format!("{}/v1/{}/endpoints", self.base_url, self.parent);
        let op = self
            .http
            .post_json(&url, &[], Self::create_body(display_name))
            .await?;
        let created: Endpoint = from_value("aiplatform Endpoint", self.wait(op).await?)?;
        if created.name.is_empty() {
            // The operation's answer lacks the name: look it up.
            return self.find(display_name).await?.ok_or_else(|| {
                GcpError::decode(
                    "aiplatform.endpoints.create",
                    format!("endpoint {display_name} vanished after it was created"),
                )
            });
        }
        Ok(created)
    }

    /// The endpoints.deployModel body: the version on dedicated resources, with all traffic.
    pub fn deploy_body(request: &DeployRequest) -> GcpResult<Value> {
        split_model_version(&request.model_path)?;
        let r = vertex_resources(&request.config).map_err(|e| GcpError::Invalid(e.to_string()))?;
        Ok(json!({
            "deployedModel": {
                "model": request.model_path,
                "displayName": request.service_name,
                "dedicatedResources": {
                    "machineSpec": {"machineType": r.machine_type},
                    "minReplicaCount": r.min_replica_count,
                    "maxReplicaCount": r.max_replica_count,
                },
            },
            // "0" is the model this request deploys.
            "trafficSplit": {"0": 100},
        }))
    }

    /// Undeploys one deployed model; `traffic_to` gets all the traffic (so a model that still
    /// has some can go), none when it is the last one.
    async fn undeploy_model(
        &self,
        endpoint: &str,
        deployed_model_id: &str,
        traffic_to: Option<&str>,
    ) -> GcpResult<()> {
        let url = format!("{}/v1/{endpoint}:undeployModel", self.base_url);
        let mut body = json!({"deployedModelId": deployed_model_id});
        if let Some(to) = traffic_to {
            body["trafficSplit"] = json!({ to: 100 });
        }
        match self.http.post_json(&url, &[], body).await {
            Ok(op) => self.wait(op).await.map(|_| ()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn deploy_inner(&self, request: &DeployRequest) -> GcpResult<String> {
        let (model, version) = split_model_version(&request.model_path)?;
        let body = Self::deploy_body(request)?;
        let endpoint = self.find_or_create(&request.service_name).await?;
        let serves = |d: &DeployedModel| {
            strip_version(&d.model) == model
                && (d.model_version_id == version || d.model.ends_with(&format!("@{version}")))
        };
        // An earlier deploy of this version that got this far is reused, not repeated.
        let current = match endpoint.deployed_models.iter().find(|d| serves(d)) {
            Some(d) => d.id.clone(),
            None => {
                let url = format!("{}/v1/{}:deployModel", self.base_url, endpoint.name);
                let op = self.http.post_json(&url, &[], body).await?;
                let done: DeployModelResponse =
                    from_value("DeployModelResponse", self.wait(op).await?)?;
                done.deployed_model.id
            }
        };
        for old in endpoint.deployed_models.iter().filter(|d| d.id != current) {
            self.undeploy_model(&endpoint.name, &old.id, Some(&current))
                .await?;
            tracing::info!(endpoint = %endpoint.name, deployed_model = %old.id, model = %old.model, "old model undeployed");
        }
        tracing::info!(endpoint = %endpoint.name, model = %request.model_path, deployed_model = %current, "deployed on vertex ai endpoint");
        Ok(format!("{}/v1/{}:predict", self.base_url, endpoint.name))
    }

    /// The endpoint: by resource name (`projects/.../endpoints/...`), or the first one with
    /// this display name. `None` when there is none.
    pub async fn find(&self, endpoint: &str) -> GcpResult<Option<Endpoint>> {
        if endpoint.starts_with("projects/") {
            let url = format!("{}/v1/{endpoint}", self.base_url);
            return match self.http.get_json(&url, &[]).await {
                Ok(v) => Ok(Some(from_value("aiplatform.endpoints.get", v)?)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            };
        }
        let url = format!("{}/v1/{}/endpoints", self.base_url, self.parent);
        let filter = format!("display_name=\"{}\"", endpoint.replace('"', "\\\""));
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![("filter", filter.as_str())];
            if let Some(t) = &token {
                q.push(("pageToken", t.as_str()));
            }
            let page: ListEndpoints = from_value(
                "aiplatform.endpoints.list",
                self.http.get_json(&url, &q).await?,
            )?;
            if let Some(e) = page
                .endpoints
                .into_iter()
                .find(|e| e.display_name == endpoint)
            {
                return Ok(Some(e));
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                _ => return Ok(None),
            }
        }
    }

    /// Models deployed on the endpoint (empty when the endpoint does not exist).
    pub async fn deployed_models(&self, endpoint: &str) -> GcpResult<Vec<DeployedModel>> {
        Ok(self
            .find(endpoint)
            .await?
            .map(|e| e.deployed_models)
            .unwrap_or_default())
    }

    /// Whether the endpoint serves this model (and version, when given).
    pub async fn is_deployed(
        &self,
        endpoint: &str,
        model_resource_name: &str,
        version: Option<&str>,
    ) -> GcpResult<bool> {
        let (model, at_version) = match model_resource_name.split_once('@') {
            Some((m, v)) => (m, Some(v)),
            None => (model_resource_name, None),
        };
        let version = version.or(at_version).filter(|v| !v.is_empty());
        Ok(self.deployed_models(endpoint).await?.iter().any(|d| {
            strip_version(&d.model) == model
                && version.is_none_or(|v| d.model_version_id.is_empty() || d.model_version_id == v)
        }))
    }

    /// The live status of a registered model version: `unknown` (with the error) when the API
    /// fails, `deployed` when the endpoint serves it, else `idle` / `not_blessed`.
    /// `endpoint` defaults to `gcp.vertex_endpoint`; with neither, nothing is deployed.
    pub async fn live_status(
        &self,
        endpoint: Option<&str>,
        model_resource_name: &str,
        version: Option<&str>,
        is_blessed: bool,
    ) -> LiveDeploymentStatus {
        let Some(endpoint) = endpoint.or(self.default_endpoint.as_deref()) else {
            return live_status(is_blessed, Ok(false));
        };
        let serving = if model_resource_name.is_empty() {
            Ok(false)
        } else {
            self.is_deployed(endpoint, model_resource_name, version)
                .await
                .map_err(|e: GcpError| e.to_string())
        };
        live_status(is_blessed, serving)
    }
}

#[async_trait]
impl Deployer for VertexEndpoints {
    /// Deploys `request.model_path` (`projects/../models/ID@VERSION`) on the endpoint named
    /// `request.service_name`; returns the endpoint's predict URL.
    async fn deploy(&self, request: &DeployRequest) -> trainyard_core::Result<String> {
        match self.deploy_inner(request).await {
            Err(GcpError::Invalid(why)) => {
                Err(ValidationError::field("vertex_endpoint", why).into())
            }
            other => Ok(other?),
        }
    }

    /// Undeploys every model of the endpoint (which stays, owned by its model, for the next
    /// deploy); an endpoint that is gone is fine.
    async fn undeploy(&self, service_name: &str) -> trainyard_core::Result<()> {
        let Some(endpoint) = self.find(service_name).await? else {
            return Ok(());
        };
        // Each but the last hands its traffic to the last, which then goes with none left.
        let models = &endpoint.deployed_models;
        for (i, d) in models.iter().enumerate() {
            let rest = models.last().filter(|_| i + 1 < models.len());
            self.undeploy_model(&endpoint.name, &d.id, rest.map(|l| l.id.as_str()))
                .await?;
        }
        Ok(())
    }

    async fn is_serving(&self, service_name: &str) -> trainyard_core::Result<bool> {
        Ok(!self.deployed_models(service_name).await?.is_empty())
    }

    async fn serves(&self, service_name: &str, model_path: &str) -> trainyard_core::Result<bool> {
        Ok(self.is_deployed(service_name, model_path, None).await?)
    }

    fn serving_target(&self) -> ServingTarget {
        ServingTarget::VertexEndpoint
    }
}
