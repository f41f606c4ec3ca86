//! Cloud Storage over its JSON API: listing with prefix, delimiter and pagination, small reads,
//! uploads, and the versioned model folder a server must load.

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;

use trainyard_core::ports::ArtifactStore;

use crate::config::GcpConfig;
use crate::error::{GcpError, GcpResult};
use crate::http::{encode_segment, from_value, Body, GcpHttp};

/// `gs://bucket/object` -> (bucket, object). The object may be empty (`gs://bucket/`).
pub fn parse_gs_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("gs://")?;
    let (bucket, object) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then_some((bucket, object))
}

/// Metadata of one object (the fields trainyard reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default)]
    pub bucket: String,
    /// uint64 as a decimal string, as the API sends it.
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub updated: Option<String>,
    #[serde(default)]
    pub generation: Option<String>,
}

impl ObjectMeta {
    pub fn size_bytes(&self) -> Option<u64> {
        self.size.as_deref()?.parse().ok()
    }
}

/// One page of `objects.list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectPage {
    pub items: Vec<ObjectMeta>,
    pub prefixes: Vec<String>,
    pub next_page_token: Option<String>,
}

/// Everything under a prefix, all pages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<ObjectMeta>,
    /// "Directories" when listed with a delimiter.
    pub prefixes: Vec<String>,
    pub pages: u32,
}

/// Google Cloud Storage client; also the GCS [`ArtifactStore`].
#[derive(Debug, Clone)]
pub struct GcsClient {
    http: GcpHttp,
    base_url: String,
    default_bucket: String,
    max_read_bytes: u64,
    page_size: Option<u32>,
}

impl GcsClient {
    /// `base_url` is the API root (`https://storage.googleapis.com` or an emulator);
    /// `default_bucket` serves paths given without `gs://`.
    pub fn new(http: GcpHttp, base_url: &str, default_bucket: &str) -> Self {
        GcsClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            default_bucket: default_bucket.to_string(),
            max_read_bytes: 64 << 20,
            page_size: None,
        }
    }

    pub fn from_config(http: GcpHttp, config: &GcpConfig) -> Self {
        let mut c = Self::new(http, &config.storage_base_url(), &config.bucket);
        c.max_read_bytes = config.max_read_bytes;
        c
    }

    /// Objects per listing page (`maxResults`); the server's default when unset.
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n);
        self
    }

    pub fn with_max_read_bytes(mut self, n: u64) -> Self {
        self.max_read_bytes = n;
        self
    }

    pub fn default_bucket(&self) -> &str {
        &self.default_bucket
    }

    /// (bucket, object) of a `gs://` URI or of a path in the default bucket.
    pub fn locate<'a>(&'a self, path: &'a str) -> GcpResult<(&'a str, &'a str)> {
        if path.starts_with("gs://") {
            return parse_gs_uri(path)
                .ok_or_else(|| GcpError::Invalid(format!("not a gs:// URI: {path:?}")));
        }
        if self.default_bucket.is_empty() {
            return Err(GcpError::Config(format!(
                "{path:?} has no bucket and gcp.bucket is not set"
            )));
        }
        Ok((&self.default_bucket, path.trim_start_matches('/')))
    }

    fn objects_url(&self, bucket: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o",
            self.base_url,
            encode_segment(bucket)
        )
    }

    fn object_url(&self, bucket: &str, name: &str) -> String {
        format!("{}/{}", self.objects_url(bucket), encode_segment(name))
    }

    /// One page of objects.list.
    pub async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        page_token: Option<&str>,
    ) -> GcpResult<ObjectPage> {
        let page_size = self.page_size.map(|n| n.to_string());
        let mut q: Vec<(&str, &str)> = vec![("prefix", prefix)];
        if let Some(d) = delimiter {
            q.push(("delimiter", d));
        }
        if let Some(t) = page_token {
            q.push(("pageToken", t));
        }
        if let Some(n) = &page_size {
            q.push(("maxResults", n));
        }
        let url = self.objects_url(bucket);
        let v = self.http.get_json(&url, &q).await?;
        from_value("storage.objects.list", v)
    }

    /// All pages of objects.list under `prefix`.
    pub async fn list_all(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> GcpResult<Listing> {
        let mut out = Listing::default();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .list_page(bucket, prefix, delimiter, token.as_deref())
                .await?;
            out.pages += 1;
            out.objects.extend(page.items);
            for p in page.prefixes {
                if !out.prefixes.contains(&p) {
                    out.prefixes.push(p);
                }
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                Some(_) => {
                    return Err(GcpError::decode(
                        "storage.objects.list",
                        "the server repeated a page token",
                    ))
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// Object metadata; `None` when it does not exist.
    pub async fn stat(&self, bucket: &str, name: &str) -> GcpResult<Option<ObjectMeta>> {
        match self
            .http
            .get_json(&self.object_url(bucket, name), &[])
            .await
        {
            Ok(v) => Ok(Some(from_value("storage.objects.get", v)?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a whole object, refusing ones over `max_read_bytes`.
    pub async fn read_object(&self, bucket: &str, name: &str) -> GcpResult<Vec<u8>> {
        let url = self.object_url(bucket, name);
        let mut resp = self
            .http
            .send(Method::GET, &url, &[("alt", "media")], None)
            .await?;
        let limit = self.max_read_bytes;
        let too_big = || {
            GcpError::Invalid(format!(
                "gs://{bucket}/{name} is larger than the {limit} bytes read limit"
            ))
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_big());
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| GcpError::decode(format!("gs://{bucket}/{name}"), e))?
        {
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_big());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Uploads (creates or replaces) an object with a simple media upload.
    pub async fn write_object(
        &self,
        bucket: &str,
        name: &str,
        bytes: &[u8],
        content_type: &str,
    ) -> GcpResult<ObjectMeta> {
        let url = format!(
            "{}/upload/storage/v1/b/{}/o",
            self.base_url,
            encode_segment(bucket)
        );
        let body = Body::Bytes {
            content_type: content_type.to_string(),
            bytes: bytes.to_vec(),
        };
        let resp = self
            .http
            .send(
                Method::POST,
                &url,
                &[("uploadType", "media"), ("name", name)],
                Some(&body),
            )
            .await?;
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| GcpError::decode("storage.objects.insert", e))?;
        from_value("storage.objects.insert", v)
    }

    /// The folder a server must load from a `pushed_model` prefix: the newest numeric version
    /// folder holding saved_model.pb (`trainyard_core::deployment::versioned_model_path`), as a
    /// `gs://` URI. A path that already is such a folder is returned as it is.
    pub async fn versioned_model_path(&self, pushed_model: &str) -> GcpResult<String> {
        let (bucket, object) = self.locate(pushed_model)?;
        let object = object.trim_end_matches('/');
        let prefix = format!("{object}/");
        let listing = self.list_all(bucket, &prefix, None).await?;
        let names: Vec<&str> = listing.objects.iter().map(|o| o.name.as_str()).collect();
        let leaf = object.rsplit('/').next().unwrap_or(object);
        let is_version_dir = !leaf.is_empty() && leaf.bytes().all(|b| b.is_ascii_digit());
        if is_version_dir && names.contains(&format!("{prefix}saved_model.pb").as_str()) {
            return Ok(format!("gs://{bucket}/{object}"));
        }
        let dir = trainyard_core::deployment::versioned_model_path(names.iter().copied())
            .ok_or_else(|| {
                GcpError::Invalid(format!(
                    "no version folder with saved_model.pb under gs://{bucket}/{prefix} ({} objects listed)",
                    names.len()
                ))
            })?;
        Ok(format!("gs://{bucket}/{dir}"))
    }
}

fn core_err(e: GcpError) -> trainyard_core::Error {
    e.into()
}

#[async_trait]
impl ArtifactStore for GcsClient {
    /// Object paths under `prefix`, in the form the prefix was given: `gs://bucket/...` URIs
    /// for a `gs://` prefix, object names for a path in the default bucket.
    async fn list(&self, prefix: &str) -> trainyard_core::Result<Vec<String>> {
        let (bucket, object) = self.locate(prefix).map_err(core_err)?;
        let listing = self
            .list_all(bucket, object, None)
            .await
            .map_err(core_err)?;
        let as_uri = prefix.starts_with("gs://");
        Ok(listing
            .objects
            .into_iter()
            .map(|o| {
                if as_uri {
                    format!("gs://{bucket}/{}", o.name)
                } else {
                    o.name
                }
            })
            .collect())
    }

    async fn read(&self, path: &str) -> trainyard_core::Result<Vec<u8>> {
        let (bucket, object) = self.locate(path).map_err(core_err)?;
        self.read_object(bucket, object).await.map_err(core_err)
    }

    async fn write(&self, path: &str, bytes: &[u8]) -> trainyard_core::Result<()> {
        let (bucket, object) = self.locate(path).map_err(core_err)?;
        let content_type = if object.ends_with(".json") {
            "application/json"
        } else {
            "application/octet-stream"
        };
        self.write_object(bucket, object, bytes, content_type)
            .await
            .map(|_| ())
            .map_err(core_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gs_uris() {
        assert_eq!(parse_gs_uri("gs://b/a/b.json"), Some(("b", "a/b.json")));
        assert_eq!(parse_gs_uri("gs://b"), Some(("b", "")));
        assert_eq!(parse_gs_uri("gs:///x"), None);
        assert_eq!(parse_gs_uri("/tmp/x"), None);
    }
}
