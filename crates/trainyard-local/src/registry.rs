//! The filesystem model registry: each registered version is an immutable copy of the pushed
//! SavedModel under `<root>/<ml_model>/<model_name>/<N>/`, with a MANIFEST.json holding the
//! SHA-256 of every file and the version's labels. The folder of a model is laid out like TF
//! Serving's model base path (numeric version folders holding saved_model.pb), so a server
//! can be pointed at either one version or the whole model.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use trainyard_core::deployment::versioned_model_path;
use trainyard_core::ports::{ModelRegistry, RegistryVersion};
use trainyard_core::registry::RegisteredModel;
use trainyard_core::run::TrainingRun;
use trainyard_core::{Error, Result};

pub const MANIFEST_FILE: &str = "MANIFEST.json";

/// What a registered version holds: where it came from and the checksum of every file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionManifest {
    pub model_name: String,
    pub version: String,
    pub training_run_id: i64,
    /// The pushed folder the copy was made from.
    pub source: String,
    pub labels: BTreeMap<String, String>,
    /// Path relative to the version folder -> hex SHA-256.
    pub files: BTreeMap<String, String>,
    pub registered_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone)]
pub struct LocalModelRegistry {
    root: PathBuf,
}

impl LocalModelRegistry {
    /// A registry under `root`, made absolute (against the working directory of this call), so
    /// the version paths it hands out work from any directory.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        LocalModelRegistry {
            root: std::path::absolute(&root).unwrap_or(root),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of a model: `<root>/<ml_model>/<model_name>`.
    pub fn model_dir(&self, model: &RegisteredModel) -> PathBuf {
        self.root
            .join(path_segment(&model.ml_model))
            .join(path_segment(&model.model_name))
    }

    /// Re-hashes a registered version and compares it with its manifest. A version that
    /// differs (a file changed, missing or added) is refused with a validation error naming
    /// each such file.
    pub fn verify(version_dir: &Path) -> Result<VersionManifest> {
        let manifest = read_manifest(version_dir)?;
        let actual = hash_tree(version_dir).map_err(|e| io_error(version_dir, e))?;
        if actual != manifest.files {
            let mut changed: Vec<String> = Vec::new();
            for (name, sum) in &manifest.files {
                match actual.get(name) {
                    None => changed.push(format!("{name} (missing)")),
                    Some(a) if a != sum => changed.push(format!("{name} (checksum differs)")),
                    Some(_) => {}
                }
            }
            for name in actual.keys().filter(|k| !manifest.files.contains_key(*k)) {
                changed.push(format!("{name} (not in the manifest)"));
            }
            return Err(Error::Validation(trainyard_core::ValidationError::field(
                "model",
                format!(
                    "registered version {} was modified after registration and will not be served: {} does not match its {MANIFEST_FILE}",
                    version_dir.display(),
                    changed.join(", ")
                ),
            )));
        }
        Ok(manifest)
    }

    /// [`LocalModelRegistry::verify`] for a path that may be a registered version (it holds a
    /// MANIFEST.json); any other path passes unchecked.
    pub fn verify_if_registered(path: &Path) -> Result<()> {
        if path.join(MANIFEST_FILE).is_file() {
            Self::verify(path)?;
        }
        Ok(())
    }

    fn versions_in(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            let name = entry.file_name();
            let Some(n) = name.to_str().and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            if entry.path().join(MANIFEST_FILE).is_file() {
                out.push((n, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Registers under the model folder's lock (`<model>/.lock`, flock): the run's existing
    /// version is given back when it has one, else the pushed model is copied into a staging
    /// folder and renamed to the next version number. Concurrent registrations of one run, by
    /// threads or processes, make exactly one version; a version folder is complete or absent.
    fn register_blocking(
        &self,
        model: &RegisteredModel,
        run: &TrainingRun,
        model_path: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<RegistryVersion> {
        let source = pushed_version_dir(Path::new(model_path))?;
        let model_dir = self.model_dir(model);
        fs::create_dir_all(&model_dir).map_err(|e| io_error(&model_dir, e))?;
        let _lock = DirLock::acquire(&model_dir.join(".lock"))?;
        // Registering the same run twice gives back its version instead of a copy.
        for (n, dir) in Self::versions_in(&model_dir)? {
            if read_manifest(&dir)?.training_run_id == run.id {
                return Ok(version_of(&model_dir, n));
            }
        }
        // Under the lock no one else is staging: what is left is from a registration that died.
        if let Ok(entries) = fs::read_dir(&model_dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".staging-") {
                    let _ = make_writable(&e.path());
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let staging = model_dir.join(format!(".staging-{}-{}", run.id, std::process::id()));
        copy_tree(&source, &staging).map_err(|e| {
            let _ = fs::remove_dir_all(&staging);
            io_error(&source, e)
        })?;
        let files = hash_tree(&staging).map_err(|e| io_error(&staging, e))?;
        let next = Self::versions_in(&model_dir)?
            .last()
            .map_or(1, |(n, _)| n + 1);
        let manifest = VersionManifest {
            model_name: model.model_name.clone(),
            version: next.to_string(),
            training_run_id: run.id,
            source: source.display().to_string(),
            labels: labels.clone(),
            files,
            registered_at: chrono::Utc::now(),
        };
        let text =
            serde_json::to_string_pretty(&manifest).map_err(|e| Error::Backend(e.to_string()))?;
        fs::write(staging.join(MANIFEST_FILE), text).map_err(|e| io_error(&staging, e))?;
        make_read_only(&staging).map_err(|e| io_error(&staging, e))?;
        let target = model_dir.join(next.to_string());
        fs::rename(&staging, &target).map_err(|e| {
            let _ = make_writable(&staging);
            let _ = fs::remove_dir_all(&staging);
            io_error(&target, e)
        })?;
        Ok(version_of(&model_dir, next))
    }
}

/// An exclusive advisory lock (flock) on a lock file, released when dropped (or when the
/// process dies).
struct DirLock {
    _file: fs::File,
}

impl DirLock {
    fn acquire(path: &Path) -> Result<DirLock> {
        use std::os::fd::AsRawFd;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        loop {
            // SAFETY: flock on a descriptor this function owns for the File's lifetime.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(DirLock { _file: file });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(io_error(path, e));
            }
        }
    }
}

fn version_of(model_dir: &Path, n: u64) -> RegistryVersion {
    RegistryVersion {
        model_resource_name: model_dir.display().to_string(),
        version: n.to_string(),
        artifact_uri: Some(model_dir.join(n.to_string()).display().to_string()),
    }
}

#[async_trait]
impl ModelRegistry for LocalModelRegistry {
    async fn register(
        &self,
        model: &RegisteredModel,
        run: &TrainingRun,
        model_path: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<RegistryVersion> {
        let (this, model, run, path, labels) = (
            self.clone(),
            model.clone(),
            run.clone(),
            model_path.to_string(),
            labels.clone(),
        );
        tokio::task::spawn_blocking(move || this.register_blocking(&model, &run, &path, &labels))
            .await
            .map_err(|e| Error::Backend(format!("registry task failed: {e}")))?
    }

    async fn list_versions(&self, model: &RegisteredModel) -> Result<Vec<RegistryVersion>> {
        let dir = self.model_dir(model);
        Ok(Self::versions_in(&dir)?
            .into_iter()
            .map(|(n, _)| version_of(&dir, n))
            .collect())
    }
}

/// The folder to copy: `path` itself when it holds saved_model.pb, else the newest numeric
/// version folder under it that does (TFX's Pusher writes `pushed_model/<timestamp>/`).
pub fn pushed_version_dir(path: &Path) -> Result<PathBuf> {
    if path.join("saved_model.pb").is_file() {
        return Ok(path.to_path_buf());
    }
    let entries = fs::read_dir(path).map_err(|e| {
        Error::Validation(trainyard_core::ValidationError::field(
            "model_path",
            format!("no pushed model at {}: {e}", path.display()),
        ))
    })?;
    let candidates: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("saved_model.pb").display().to_string())
        .filter(|p| Path::new(p).is_file())
        .collect();
    versioned_model_path(candidates.iter().map(String::as_str))
        .map(PathBuf::from)
        .ok_or_else(|| {
            Error::Validation(trainyard_core::ValidationError::field(
                "model_path",
                format!(
                    "{} holds no numeric version folder with a saved_model.pb",
                    path.display()
                ),
            ))
        })
}

fn read_manifest(version_dir: &Path) -> Result<VersionManifest> {
    let path = version_dir.join(MANIFEST_FILE);
    let text = fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Backend(format!("{} is unreadable: {e}", path.display())))
}

/// A name as one safe path segment (no separators, no `..`).
fn path_segment(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.chars().all(|c| c == '.') {
        format!("_{s}")
    } else {
        s
    }
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// SHA-256 of every file under `dir` except the manifest, keyed by relative path.
fn hash_tree(dir: &Path) -> io::Result<BTreeMap<String, String>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
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
            io::copy(&mut fs::File::open(&path)?, &mut hasher)?;
            let digest = hasher.finalize();
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            out.insert(rel, hex);
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

fn make_read_only(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            make_read_only(&entry.path())?;
        } else {
            let mut perms = entry.metadata()?.permissions();
            perms.set_readonly(true);
            fs::set_permissions(entry.path(), perms)?;
        }
    }
    Ok(())
}

fn make_writable(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            make_writable(&entry.path())?;
        } else {
            let mut perms = entry.metadata()?.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            fs::set_permissions(entry.path(), perms)?;
        }
    }
    Ok(())
}

fn io_error(path: &Path, e: io::Error) -> Error {
    Error::Backend(format!("registry: {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trainyard_core::model_config::ModelType;
    use trainyard_core::run::{NewTrainingRun, RunConfig};

    fn pushed(dir: &Path, stamp: &str, content: &[u8]) {
        let v = dir.join(stamp);
        fs::create_dir_all(v.join("variables")).unwrap();
        fs::write(v.join("saved_model.pb"), content).unwrap();
        fs::write(v.join("variables/variables.index"), b"idx").unwrap();
    }

    fn run(id: i64) -> TrainingRun {
        let mut r = TrainingRun::new(
            NewTrainingRun {
                ml_model: "shop".into(),
                name: "r".into(),
                description: String::new(),
                config: RunConfig::default(),
            },
            None,
            chrono::Utc::now(),
        );
        r.id = id;
        r
    }

    #[tokio::test]
    async fn versions_are_immutable_checksummed_copies_of_the_newest_push() {
        let tmp = tempfile::tempdir().unwrap();
        let push = tmp.path().join("pushed_model");
        pushed(&push, "1700000000", b"old");
        pushed(&push, "1700000100", b"new");
        // A newer folder without saved_model.pb (a push in progress) is not a model.
        fs::create_dir_all(push.join("1700000200")).unwrap();
        let reg = LocalModelRegistry::new(tmp.path().join("registry"));
        let model =
            RegisteredModel::new("shop", "recs", ModelType::Retrieval, "", chrono::Utc::now());
        let labels = BTreeMap::from([("training_run_id".to_string(), "7".to_string())]);
        let v1 = reg
            .register(&model, &run(7), push.to_str().unwrap(), &labels)
            .await
            .unwrap();
        assert_eq!(v1.version, "1");
        let dir1 = PathBuf::from(v1.artifact_uri.clone().unwrap());
        assert_eq!(fs::read(dir1.join("saved_model.pb")).unwrap(), b"new");
        let manifest = LocalModelRegistry::verify(&dir1).unwrap();
        assert_eq!(manifest.training_run_id, 7);
        assert_eq!(manifest.labels, labels);
        assert_eq!(manifest.files.len(), 2);
        assert!(fs::metadata(dir1.join("saved_model.pb"))
            .unwrap()
            .permissions()
            .readonly());

        // The same run again: its existing version, no copy.
        let again = reg
            .register(&model, &run(7), push.to_str().unwrap(), &labels)
            .await
            .unwrap();
        assert_eq!(again, v1);
        let v2 = reg
            .register(&model, &run(8), push.to_str().unwrap(), &labels)
            .await
            .unwrap();
        assert_eq!(v2.version, "2");
        let listed: Vec<String> = reg
            .list_versions(&model)
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(listed, ["1", "2"]);

        // Tampering is detected.
        let pb = dir1.join("saved_model.pb");
        let mut perms = fs::metadata(&pb).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        fs::set_permissions(&pb, perms).unwrap();
        fs::write(&pb, b"tampered").unwrap();
        let err = LocalModelRegistry::verify(&dir1).unwrap_err();
        assert!(err.to_string().contains("saved_model.pb"), "{err}");
    }

    #[tokio::test]
    async fn a_path_without_a_model_is_a_validation_error() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = LocalModelRegistry::new(tmp.path().join("registry"));
        let model =
            RegisteredModel::new("shop", "recs", ModelType::Retrieval, "", chrono::Utc::now());
        for path in [tmp.path().join("missing"), tmp.path().to_path_buf()] {
            let err = reg
                .register(&model, &run(1), path.to_str().unwrap(), &BTreeMap::new())
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Validation(_)), "{err:?}");
        }
        assert!(reg.list_versions(&model).await.unwrap().is_empty());
    }
}
