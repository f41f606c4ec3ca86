//! A registered version's MANIFEST.json (written by trainyard's filesystem registry) holds the
//! SHA-256 of every file of the SavedModel. When one sits next to the model, the server checks
//! it before loading and refuses a model whose files were changed, removed or added since.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Result, ServeError};

pub const MANIFEST_FILE: &str = "MANIFEST.json";

#[derive(Deserialize)]
struct Manifest {
    /// Path relative to the version folder -> hex SHA-256.
    files: BTreeMap<String, String>,
}

/// Checks `version_dir` against its MANIFEST.json; `Ok(false)` when it has none.
pub fn verify(version_dir: &Path) -> Result<bool> {
    let path = version_dir.join(MANIFEST_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(ServeError::Io { path, source }),
    };
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| ServeError::ModelModified {
            dir: version_dir.to_path_buf(),
            files: format!("{MANIFEST_FILE} is unreadable ({e})"),
        })?;
    let actual = hash_tree(version_dir).map_err(|source| ServeError::Io {
        path: version_dir.to_path_buf(),
        source,
    })?;
    let mut differ = Vec::new();
    for (name, sum) in &manifest.files {
        match actual.get(name) {
            None => differ.push(format!("{name} (missing)")),
            Some(a) if a != sum => differ.push(format!("{name} (checksum differs)")),
            Some(_) => {}
        }
    }
    for name in actual.keys().filter(|k| !manifest.files.contains_key(*k)) {
        differ.push(format!("{name} (not in the manifest)"));
    }
    if differ.is_empty() {
        Ok(true)
    } else {
        Err(ServeError::ModelModified {
            dir: version_dir.to_path_buf(),
            files: differ.join(", "),
        })
    }
}

/// SHA-256 of every file under `dir` except the manifest, keyed by `/`-separated relative path
/// (the registry's layout).
fn hash_tree(dir: &Path) -> io::Result<BTreeMap<String, String>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(base, &path, out)?;
                continue;
            }
            let rel = path
                .strip_prefix(base)
                .map_err(io::Error::other)?
                .to_string_lossy()
                .replace('\\', "/");
            if rel == MANIFEST_FILE {
                continue;
            }
            let mut hasher = Sha256::new();
            io::copy(&mut std::fs::File::open(&path)?, &mut hasher)?;
            let hex: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            out.insert(rel, hex);
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_version(dir: &Path) {
        std::fs::create_dir_all(dir.join("variables")).unwrap();
        std::fs::write(dir.join("saved_model.pb"), b"graph").unwrap();
        std::fs::write(dir.join("variables/variables.index"), b"idx").unwrap();
        let files = hash_tree(dir).unwrap();
        let manifest = serde_json::json!({"model_name": "m", "version": "1", "files": files});
        std::fs::write(dir.join(MANIFEST_FILE), manifest.to_string()).unwrap();
    }

    #[test]
    fn a_version_matching_its_manifest_passes_and_a_changed_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let v = tmp.path().join("1");
        write_version(&v);
        assert!(verify(&v).unwrap());
        // no manifest: nothing to check
        assert!(!verify(tmp.path()).unwrap());

        let mut pb = std::fs::read(v.join("saved_model.pb")).unwrap();
        pb[0] ^= 1;
        std::fs::write(v.join("saved_model.pb"), pb).unwrap();
        let err = verify(&v).unwrap_err().to_string();
        assert!(err.contains("saved_model.pb (checksum differs)"), "{err}");
        assert!(!err.contains("variables.index"), "{err}");

        std::fs::remove_file(v.join("variables/variables.index")).unwrap();
        std::fs::write(v.join("extra.bin"), b"x").unwrap();
        let err = verify(&v).unwrap_err().to_string();
        assert!(err.contains("variables/variables.index (missing)"), "{err}");
        assert!(err.contains("extra.bin (not in the manifest)"), "{err}");
    }
}
