//! Model versions like TF Serving's: the served model is a base path of numeric version folders;
//! a watcher polls it, loads a newer version in the background (warm-up first), switches to it
//! atomically (new requests go to it, requests in flight finish on the old one), then drains
//! and unloads the old version. Labels (`/v1/models/NAME/labels/LABEL`, gRPC
//! `version_label`) name versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::batcher::BatchConfig;
use crate::error::{Result, ServeError};
use crate::metrics::{LoadState, Metrics};
use crate::model::{Model, SessionConfig};
use crate::servable::Servable;
use crate::tflib::TfOptions;

/// Which version a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRequest {
    Latest,
    Specific(u64),
    Label(String),
}

/// Why a request's version is not served: TF Serving's NOT_FOUND text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotServed {
    #[error("Servable not found for request: Latest({0})")]
    Latest(String),
    #[error("Servable not found for request: Specific({0}, {1})")]
    Specific(String, u64),
    #[error("Unrecognized servable version label: {0}")]
    Label(String),
}

/// The versions of one model name: the one serving, the states of all seen, the labels.
pub struct Models {
    name: String,
    metrics: Arc<Metrics>,
    current: RwLock<Arc<Servable>>,
    states: Mutex<BTreeMap<u64, LoadState>>,
    labels: RwLock<BTreeMap<String, u64>>,
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models")
            .field("name", &self.name)
            .field("current", &self.latest().version())
            .finish_non_exhaustive()
    }
}

impl Models {
    /// Serving `servable` (AVAILABLE) under its name.
    pub fn new(servable: Arc<Servable>) -> Arc<Models> {
        let v = servable.version();
        Arc::new(Models {
            name: servable.name.clone(),
            metrics: servable.metrics.clone(),
            current: RwLock::new(servable),
            states: Mutex::new([(v, LoadState::Available)].into()),
            labels: RwLock::new(BTreeMap::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The version new requests go to.
    pub fn latest(&self) -> Arc<Servable> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The servable for a request's model name and version choice.
    pub fn resolve(&self, name: &str, want: &VersionRequest) -> Result<Arc<Servable>, NotServed> {
        let cur = self.latest();
        let not_found = || match want {
            VersionRequest::Latest => NotServed::Latest(name.to_string()),
            VersionRequest::Specific(v) => NotServed::Specific(name.to_string(), *v),
            VersionRequest::Label(l) => NotServed::Label(l.clone()),
        };
        if name != self.name {
            return Err(match want {
                VersionRequest::Label(_) => NotServed::Latest(name.to_string()),
                _ => not_found(),
            });
        }
        let v = match want {
            VersionRequest::Latest => return Ok(cur),
            VersionRequest::Specific(v) => *v,
            VersionRequest::Label(l) => match self.label(l) {
                Some(v) => v,
                None => return Err(not_found()),
            },
        };
        if v == cur.version() {
            Ok(cur)
        } else {
            Err(NotServed::Specific(name.to_string(), v))
        }
    }

    /// Sets `label` to `version` (any version, as TF Serving allows for versions it knows).
    pub fn set_label(&self, label: &str, version: u64) {
        self.labels
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(label.to_string(), version);
    }

    pub fn label(&self, label: &str) -> Option<u64> {
        self.labels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(label)
            .copied()
    }

    fn set_state(&self, version: u64, state: LoadState) {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(version, state);
        self.metrics.set_load_state(&self.name, version, state);
    }

    /// Every version seen and its state, newest first (TF Serving's model_version_status).
    pub fn states(&self) -> Vec<(u64, LoadState)> {
        let mut v: Vec<_> = self
            .states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(v, s)| (*v, *s))
            .collect();
        v.reverse();
        v
    }

    /// Makes `new` the version new requests go to and returns the one it replaces.
    pub fn switch_to(&self, new: Arc<Servable>) -> Arc<Servable> {
        let v = new.version();
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|e| e.into_inner()),
            new,
        );
        self.set_state(v, LoadState::Available);
        old
    }
}

/// The numeric version folders under `base` that hold saved_model.pb, ascending.
pub fn list_versions(base: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut v: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse::<u64>().ok()?;
            let p = e.path();
            p.join("saved_model.pb").is_file().then_some((n, p))
        })
        .collect();
    v.sort();
    v
}

/// How the watcher loads versions.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub base: PathBuf,
    pub interval: Duration,
    pub tf: TfOptions,
    pub session: SessionConfig,
    pub batch: BatchConfig,
    /// The catalog's product id type (the serving contract, see
    /// [`crate::signature::check_serving_contract_for`]).
    pub product_id: crate::signature::Dtype,
}

/// A running watcher; [`Watcher::stop`] (or drop) ends it.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop()
    }
}

/// Polls `cfg.base` every `cfg.interval` and serves each newer version as it appears.
pub fn watch(models: Arc<Models>, cfg: WatchConfig) -> Watcher {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("model-versions".into())
        .spawn(move || {
            while !flag.load(Ordering::Acquire) {
                if let Err(e) = poll_once(&models, &cfg) {
                    tracing::error!(error = %e, "loading a new model version failed");
                }
                // sleep in small steps so stop is prompt
                let until = Instant::now() + cfg.interval;
                while Instant::now() < until && !flag.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(20).min(cfg.interval));
                }
            }
        })
        .expect("spawn the version watcher");
    Watcher {
        stop,
        thread: Some(thread),
    }
}

/// One poll: when the newest version folder is newer than the one serving, loads it, warms it
/// up, switches to it and drains the old one (in the background). Returns the new version.
pub fn poll_once(models: &Arc<Models>, cfg: &WatchConfig) -> Result<Option<u64>> {
    let current = models.latest().version();
    let Some((version, path)) = list_versions(&cfg.base).pop() else {
        return Ok(None);
    };
    if version <= current {
        return Ok(None);
    }
    {
        let states = models.states.lock().unwrap_or_else(|e| e.into_inner());
        if states.get(&version) == Some(&LoadState::End) {
            return Ok(None); // failed before: not retried until a newer one appears
        }
    }
    models.set_state(version, LoadState::Loading);
    tracing::info!(version, path = %path.display(), "loading a new model version");
    let model =
        match Model::load_version(path.clone(), version, &cfg.tf, cfg.session).and_then(|m| {
            crate::signature::check_serving_contract_for(m.signature(), cfg.product_id)?;
            Ok(m)
        }) {
            Ok(m) => m,
            Err(e) => {
                models.set_state(version, LoadState::End);
                return Err(e);
            }
        };
    let servable = Arc::new(Servable::start(
        models.name.clone(),
        Arc::new(model),
        cfg.batch,
        models.metrics.clone(),
    ));
    // Servable::start marked it AVAILABLE in the metrics: it is LOADING until warmed up
    models.set_state(version, LoadState::Loading);
    let warmed = crate::warmup::replay(&servable, &path)
        .inspect_err(|_| models.set_state(version, LoadState::End))?;
    models.metrics.record_warmup(&models.name, version, warmed);
    if warmed > 0 {
        tracing::info!(version, requests = warmed, "warm-up requests replayed");
    }
    let old = models.switch_to(servable);
    let old_version = old.version();
    models.set_state(old_version, LoadState::Unloading);
    tracing::info!(
        version,
        old_version,
        "serving the new version; draining the old one"
    );
    let m = models.clone();
    std::thread::Builder::new()
        .name(format!("unload-v{old_version}"))
        .spawn(move || {
            // requests in flight hold the old servable; unload once they are done
            let mut old = old;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(s) => {
                        drop(s); // joins its batch threads, frees the session
                        break;
                    }
                    Err(still_shared) => {
                        old = still_shared;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            m.set_state(old_version, LoadState::End);
            tracing::info!(version = old_version, "unloaded the old model version");
        })
        .map_err(|e| ServeError::Server(format!("spawn the unload thread: {e}")))?;
    Ok(Some(version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_numeric_folders_holding_a_saved_model_are_versions() {
        let tmp = tempfile::tempdir().unwrap();
        for (name, pb) in [
            ("1", true),
            ("10", true),
            ("2", true),
            ("3", false),
            (".incoming-4", true),
            ("latest", true),
        ] {
            let d = tmp.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            if pb {
                std::fs::write(d.join("saved_model.pb"), b"").unwrap();
            }
        }
        std::fs::write(tmp.path().join("5"), b"a file, not a folder").unwrap();
        let got: Vec<u64> = list_versions(tmp.path())
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        assert_eq!(got, vec![1, 2, 10], "numeric order, not text order");
        assert!(list_versions(&tmp.path().join("missing")).is_empty());
    }

    #[test]
    fn not_served_messages_are_tf_servings() {
        assert_eq!(
            NotServed::Latest("m".into()).to_string(),
            "Servable not found for request: Latest(m)"
        );
        assert_eq!(
            NotServed::Specific("m".into(), 3).to_string(),
            "Servable not found for request: Specific(m, 3)"
        );
        assert_eq!(
            NotServed::Label("canary".into()).to_string(),
            "Unrecognized servable version label: canary"
        );
    }
}
