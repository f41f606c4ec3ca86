//! The user-code wheel TFX ships the Transform and Trainer modules in
//! (`tfx_user_code_<component>-0.0+<hash>-py3-none-any.whl` under `<pipeline_root>/_wheels/`).
//! The version hash is TFX's own (udf_utils._get_version_hash), so the IR names the same wheel.

use std::collections::BTreeMap;
use std::io::Write;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::{PipelineError, Result};

/// sha256 over the modules, sorted by name: for each, its name's and its content's lengths
/// (big-endian u64) and bytes.
pub fn user_code_version_hash(modules: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (name, source) in modules {
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update((source.len() as u64).to_be_bytes());
        h.update(source.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// One packaged wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCodeWheel {
    /// The file name, e.g. `tfx_user_code_trainer-0.0+<hash>-py3-none-any.whl`.
    pub file_name: String,
    pub bytes: Vec<u8>,
}

fn record_hash(bytes: &[u8]) -> String {
    format!("sha256={}", URL_SAFE_NO_PAD.encode(Sha256::digest(bytes)))
}

impl UserCodeWheel {
    /// Packages `modules` for the component `instance` (e.g. "Trainer"), deterministically.
    pub fn build(instance: &str, modules: &BTreeMap<String, String>) -> Result<UserCodeWheel> {
        let dist = format!("tfx_user_code_{}", instance.to_ascii_lowercase());
        let version = format!("0.0+{}", user_code_version_hash(modules));
        let dist_info = format!("{dist}-{version}.dist-info");
        let top_level: Vec<&str> = modules
            .keys()
            .filter_map(|m| m.strip_suffix(".py"))
            .collect();
        let mut files: Vec<(String, Vec<u8>)> = modules
            .iter()
            .map(|(n, s)| (n.clone(), s.as_bytes().to_vec()))
            .collect();
        files.push((
            format!("{dist_info}/METADATA"),
            format!(
                "Metadata-Version: 2.1\nName: tfx-user-code-{instance}\nVersion: {version}\nSummary: Auto-generated TFX user code package.\nAuthor: TFX User\nAuthor-email: nobody@example.com\nRequires-Python: >=3.6\n"
            )
            .into_bytes(),
        ));
        files.push((
            format!("{dist_info}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: trainyard-pipeline\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n".to_vec(),
        ));
        files.push((
            format!("{dist_info}/top_level.txt"),
            format!("{}\n", top_level.join("\n")).into_bytes(),
        ));
        let mut record: String = files
            .iter()
            .map(|(n, b)| format!("{n},{},{}\n", record_hash(b), b.len()))
            .collect();
        record.push_str(&format!("{dist_info}/RECORD,,\n"));
        files.push((format!("{dist_info}/RECORD"), record.into_bytes()));

        let err = |e: zip::result::ZipError| PipelineError::Packaging(e.to_string());
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        // A fixed timestamp keeps the bytes identical for identical inputs.
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default());
        for (name, bytes) in &files {
            zip.start_file(name.as_str(), options).map_err(err)?;
            zip.write_all(bytes)
                .map_err(|e| PipelineError::Packaging(e.to_string()))?;
        }
        let bytes = zip.finish().map_err(err)?.into_inner();
        Ok(UserCodeWheel {
            file_name: format!("{dist}-{version}-py3-none-any.whl"),
            bytes,
        })
    }
}
