//! Vertex AI Model Registry as a [`ModelRegistry`]: models:upload as a new model or as a new
//! version (parentModel) of the RegisteredModel, with labels and version aliases; the upload's
//! long-running operation is awaited; versions are listed page by page.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use trainyard_core::metrics::Metric;
use trainyard_core::ports::{ModelRegistry, RegistryVersion};
use trainyard_core::registry::RegisteredModel;
use trainyard_core::run::TrainingRun;

use crate::config::{GcpConfig, OperationSettings};
use crate::error::{GcpError, GcpResult};
use crate::gcs::GcsClient;
use crate::http::{from_value, GcpHttp};
use crate::lro::{self, Operation};
use crate::names;

/// Port of the serving containers (TF Serving REST).
pub const SERVING_PORT: u16 = 8501;
/// The model name the serving containers load (`/v1/models/{name}:predict`).
pub const SERVING_MODEL_NAME: &str = "recommender";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModelVersion {
    pub name: String,
    pub version_id: String,
    pub version_aliases: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ListVersions {
    models: Vec<ModelVersion>,
    next_page_token: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct UploadModelResponse {
    model: String,
    model_version_id: String,
}

/// Vertex AI Model Registry.
#[derive(Debug, Clone)]
pub struct VertexModelRegistry {
    http: GcpHttp,
    base_url: String,
    parent: String,
    config: GcpConfig,
    gcs: GcsClient,
    operations: OperationSettings,
}

/// Labels of a registered version: the spec's training_run_id, model_type, metrics and
/// is_blessed, plus trainyard's ids; `extra` wins over these. Sanitized to Google's rules.
pub fn version_labels(
    run: &TrainingRun,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut raw: BTreeMap<String, String> = BTreeMap::new();
    raw.insert("training_run_id".into(), run.id.to_string());
    raw.insert("run_number".into(), run.run_number.to_string());
    raw.insert("ml_model".into(), run.ml_model.clone());
    raw.insert("model_type".into(), run.model_type().as_str().into());
    raw.insert(
        "is_blessed".into(),
        run.results.is_blessed.unwrap_or(false).to_string(),
    );
    // every result metric except the loss (spec: the version's metrics as labels)
    for metric in Metric::ALL.into_iter().filter(|m| *m != Metric::FinalLoss) {
        if let Some(v) = run.results.value(metric) {
            raw.insert(metric.name().into(), format!("{v:.4}"));
        }
    }
    for (k, v) in extra {
        raw.insert(k.clone(), v.clone());
    }
    // extra keys first so they win a collision after sanitizing
    let mut ordered: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    ordered.extend(raw.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    names::sanitize_labels(ordered)
}

impl VertexModelRegistry {
    pub fn new(http: GcpHttp, config: &GcpConfig) -> Self {
        VertexModelRegistry {
            gcs: GcsClient::from_config(http.clone(), config),
            http,
            base_url: config.vertex_base_url(),
            parent: config.parent(),
            config: config.clone(),
            operations: config.operations.clone(),
        }
    }

    /// The resource name a model gets when trainyard creates it.
    pub fn model_resource_name(&self, model: &RegisteredModel) -> String {
        if model.vertex_model_resource_name.is_empty() {
            format!(
                "{}/models/{}",
                self.parent,
                names::model_id(&model.model_name)
            )
        } else {
            strip_version(&model.vertex_model_resource_name).to_string()
        }
    }

    /// The models:upload body. `parent_model` set: a new version of it; unset: a new model
    /// with our model id.
    pub fn upload_body(
        &self,
        model: &RegisteredModel,
        run: &TrainingRun,
        artifact_uri: &str,
        labels: &BTreeMap<String, String>,
        parent_model: Option<&str>,
    ) -> Value {
        let image = self
            .config
            .serving_image(run.config.model_config.retrieval_algorithm);
        let mut m = json!({
            "displayName": model.model_name,
            "artifactUri": artifact_uri,
            "labels": version_labels(run, labels),
            "versionAliases": [names::version_alias(&format!("run-{}", run.run_number))],
            "versionDescription": format!("{} of {} (trainyard run {})", run.display_name(), run.ml_model, run.id),
            "containerSpec": {
                "imageUri": image,
                "env": [{"name": "MODEL_NAME", "value": SERVING_MODEL_NAME}],
                "ports": [{"containerPort": SERVING_PORT}],
                "predictRoute": format!("/v1/models/{SERVING_MODEL_NAME}:predict"),
                "healthRoute": format!("/v1/models/{SERVING_MODEL_NAME}"),
            },
        });
        if !model.description.is_empty() {
            m["description"] = model.description.clone().into();
        }
        let mut body = json!({ "model": m });
        match parent_model {
            Some(p) => body["parentModel"] = p.into(),
            None => body["modelId"] = names::model_id(&model.model_name).into(),
        }
        body
    }

    async fn list_page(
        &self,
        model_name: &str,
        filter: Option<&str>,
        page_token: Option<&str>,
    ) -> GcpResult<ListVersions> {
        let url = format!("{}/v1/{model_name}:listVersions", self.base_url);
        let mut q: Vec<(&str, &str)> = Vec::new();
        if let Some(f) = filter {
            q.push(("filter", f));
        }
        if let Some(t) = page_token {
            q.push(("pageToken", t));
        }
        from_value(
            "aiplatform.models.listVersions",
            self.http.get_json(&url, &q).await?,
        )
    }

    /// All versions of a model (every page); empty when the model does not exist.
    pub async fn versions(
        &self,
        model_name: &str,
        filter: Option<&str>,
    ) -> GcpResult<Vec<ModelVersion>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = match self.list_page(model_name, filter, token.as_deref()).await {
                Ok(p) => p,
                Err(e) if e.is_not_found() => return Ok(out),
                Err(e) => return Err(e),
            };
            out.extend(page.models);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// The version a run already registered (a retried register must not add a twin).
    async fn version_of_run(
        &self,
        model_name: &str,
        run: &TrainingRun,
    ) -> GcpResult<Option<RegistryVersion>> {
        let filter = format!("labels.training_run_id=\"{}\"", run.id);
        let found = self.versions(model_name, Some(&filter)).await?;
        Ok(found
            .into_iter()
            .find(|v| v.labels.get("training_run_id") == Some(&run.id.to_string()))
            .map(|v| RegistryVersion {
                model_resource_name: strip_version(&v.name).to_string(),
                version: v.version_id,
                artifact_uri: None,
            }))
    }

    async fn upload(&self, body: Value) -> GcpResult<RegistryVersion> {
        let url = format!("{}/v1/{}/models:upload", self.base_url, self.parent);
        let op: Operation = from_value(
            "aiplatform.models.upload",
            self.http.post_json(&url, &[], body).await?,
        )?;
        let response = lro::wait(&self.http, &self.base_url, "v1", op, &self.operations).await?;
        let r: UploadModelResponse = from_value("UploadModelResponse", response)?;
        if r.model.is_empty() {
            return Err(GcpError::decode("UploadModelResponse", "no model name"));
        }
        Ok(RegistryVersion {
            model_resource_name: strip_version(&r.model).to_string(),
            version: r.model_version_id,
            artifact_uri: None,
        })
    }

    /// The folder to register: the newest versioned folder under a gs:// pushed_model path.
    async fn artifact_uri(&self, model_path: &str) -> GcpResult<String> {
        if model_path.starts_with("gs://") {
            self.gcs.versioned_model_path(model_path).await
        } else {
            Err(GcpError::Invalid(format!(
                "Vertex AI registers models from gs:// paths, got {model_path:?}"
            )))
        }
    }

    async fn register_inner(
        &self,
        model: &RegisteredModel,
        run: &TrainingRun,
        model_path: &str,
        labels: &BTreeMap<String, String>,
    ) -> GcpResult<RegistryVersion> {
        let artifact_uri = self.artifact_uri(model_path).await?;
        let registered = self
            .register_uploading(model, run, &artifact_uri, labels)
            .await?;
        Ok(RegistryVersion {
            artifact_uri: Some(artifact_uri),
            ..registered
        })
    }

    async fn register_uploading(
        &self,
        model: &RegisteredModel,
        run: &TrainingRun,
        artifact_uri: &str,
        labels: &BTreeMap<String, String>,
    ) -> GcpResult<RegistryVersion> {
        let artifact_uri = artifact_uri.to_string();
        let known = !model.vertex_model_resource_name.is_empty();
        let model_name = self.model_resource_name(model);
        if known {
            if let Some(v) = self.version_of_run(&model_name, run).await? {
                return Ok(v);
            }
            let body = self.upload_body(model, run, &artifact_uri, labels, Some(&model_name));
            return self.upload(body).await;
        }
        let body = self.upload_body(model, run, &artifact_uri, labels, None);
        match self.upload(body).await {
            Ok(v) => Ok(v),
            Err(e) if e.is_already_exists() => {
                // The model id is taken (an earlier upload whose answer was lost, or a model
                // of the same name): register this run as a version of it, once.
                if let Some(v) = self.version_of_run(&model_name, run).await? {
                    return Ok(v);
                }
                let body = self.upload_body(model, run, &artifact_uri, labels, Some(&model_name));
                self.upload(body).await
            }
            Err(e) => Err(e),
        }
    }
}

/// `projects/../models/123@4` -> `projects/../models/123`
pub fn strip_version(name: &str) -> &str {
    name.split_once('@').map_or(name, |(n, _)| n)
}

#[async_trait]
impl ModelRegistry for VertexModelRegistry {
    async fn register(
        &self,
        model: &RegisteredModel,
        run: &TrainingRun,
        model_path: &str,
        labels: &BTreeMap<String, String>,
    ) -> trainyard_core::Result<RegistryVersion> {
        Ok(self.register_inner(model, run, model_path, labels).await?)
    }

    async fn list_versions(
        &self,
        model: &RegisteredModel,
    ) -> trainyard_core::Result<Vec<RegistryVersion>> {
        let name = self.model_resource_name(model);
        Ok(self
            .versions(&name, None)
            .await?
            .into_iter()
            .map(|v| RegistryVersion {
                model_resource_name: strip_version(&v.name).to_string(),
                version: v.version_id,
                artifact_uri: None,
            })
            .collect())
    }
}
