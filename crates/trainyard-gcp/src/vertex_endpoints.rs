//! Vertex AI Endpoints: which models an endpoint serves right now, as the live deployment
//! status a user sees (spec: "Deployment status is dynamically queried from Vertex AI").

use serde::Deserialize;

use trainyard_core::deployment::{live_status, LiveDeploymentStatus};

use crate::config::GcpConfig;
use crate::error::{GcpError, GcpResult};
use crate::http::{from_value, GcpHttp};
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
}

impl VertexEndpoints {
    pub fn new(http: GcpHttp, config: &GcpConfig) -> Self {
        VertexEndpoints {
            http,
            base_url: config.vertex_base_url(),
            parent: config.parent(),
            default_endpoint: config.vertex_endpoint.clone(),
        }
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
