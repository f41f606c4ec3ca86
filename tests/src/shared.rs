//! One REAL trained project shared by the suites that only read one (local_run, insights_run,
//! serving_e2e): three local TFX runs in the managed env on the synthetic dataset plus two
//! columns the model does not use (so the statistics see missing values):
//! - `retrieval`: brute force, top 20, 2 epochs without early stopping, blessed at recall > 0;
//! - `scann`: the same with a ScaNN index, 1 epoch;
//! - `multitask`: 1 epoch, with an rmse threshold it cannot reach (trained, not blessed).
//!
//! It is built once under `target/shared-project/<key>/` and reused while the key matches:
//! the key hashes what produced it (the sources of the crates that compile, run and record a
//! pipeline, the store's migrations, the managed env's pins and stamp, this file, and where
//! the project lives). A `manifest.json` written last marks a finished build; a file lock
//! makes concurrent suites wait for one build instead of each starting their own.
//! `TRAINYARD_SHARED_PROJECT=rebuild` forces a rebuild; `TRAINYARD_SHARED_PROJECT_JOBS` (default 2)
//! is how many of its pipelines run at once.
//!
//! Suites must not change it: they read runs, statistics and pushed models, and register or
//! deploy in projects of their own (see serving_e2e).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use trainyard::core::model_config::{ModelType, RetrievalAlgorithm};
use trainyard::core::run::{RunId, TrainingRun};
use trainyard::Until;
use trainyard_core::RunStatus;

use crate::{open_local, python, synth, RunBuilder};

/// Epochs of the shared retrieval run (per-epoch statistics need more than one).
pub const RETRIEVAL_EPOCHS: u32 = 2;
/// The served top k of the retrieval runs.
pub const TOP_K: u32 = 20;

/// The crates whose sources decide what a trained project holds.
const PRODUCERS: &[&str] = &[
    "crates/trainyard-core/src",
    "crates/trainyard-store/src",
    "crates/trainyard-store/migrations",
    "crates/trainyard/src",
    "crates/trainyard-local/src",
    "crates/trainyard-codegen/src",
    "crates/trainyard-codegen/templates",
    "crates/trainyard-pipeline/src",
    "crates/trainyard-synth/src",
    "python-env",
    "tests/src/shared.rs",
];

/// The shared project: where it is and which run is which.
#[derive(Debug, Clone)]
pub struct TrainedProject {
    pub root: PathBuf,
    pub retrieval: RunId,
    pub scann: RunId,
    pub multitask: RunId,
}

impl TrainedProject {
    pub fn csv(&self) -> PathBuf {
        self.root.join("data/interactions.csv")
    }

    /// A run's record as the project's store holds it (read-only use).
    pub async fn run(&self, id: RunId) -> TrainingRun {
        let (p, _) = open_local(&self.root).await;
        p.training().get(id).await.unwrap()
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn base_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target.join("shared-project")
}

fn hash_tree(h: &mut Sha256, root: &Path, path: &Path) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.is_file() {
        h.update(
            path.strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .as_bytes(),
        );
        h.update([0]);
        h.update(std::fs::read(path).unwrap());
        h.update([0]);
        return;
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.starts_with('.') && name != "__pycache__"
        })
        .collect();
    entries.sort();
    for e in entries {
        hash_tree(h, root, &e);
    }
}

/// The key of what would be built now.
pub fn key(base: &Path) -> String {
    let ws = workspace();
    let mut h = Sha256::new();
    for p in PRODUCERS {
        hash_tree(&mut h, &ws, &ws.join(p));
    }
    let py = python();
    h.update(py.to_string_lossy().as_bytes());
    // the managed env's stamp (python-env/install.sh writes it at the env's root)
    if let Some(env_root) = py.parent().and_then(Path::parent) {
        if let Ok(stamp) = std::fs::read(env_root.join(".trainyard-env-stamp")) {
            h.update(stamp);
        }
    }
    h.update(base.to_string_lossy().as_bytes());
    // built with or without an MLflow server to log to (local_run checks the MLflow run)
    h.update([u8::from(crate::mlflow_url().is_some())]);
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The synthetic interactions plus `discount` (FLOAT, blank in every 4th row) and `promo`
/// (a code, blank in every 3rd row): columns the model does not use.
fn write_csv(path: &Path) {
    let data = synth();
    data.write_joined(path, &data.transactions).unwrap();
    let (mut header, rows) = crate::read_csv(path);
    header.extend(["discount".to_string(), "promo".to_string()]);
    let mut out = header.join(",");
    out.push('\n');
    for (i, mut row) in rows.into_iter().enumerate() {
        row.push(if i % 4 == 0 {
            String::new()
        } else {
            format!("{:.2}", (i % 17) as f64 * 0.5)
        });
        row.push(if i % 3 == 0 {
            String::new()
        } else {
            ["spring", "summer", "bulk"][i % 5 % 3].to_string()
        });
        out.push_str(&row.join(","));
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// Holds an exclusive flock on `path` until dropped.
struct Lock(#[allow(dead_code)] std::fs::File);

impl Lock {
    fn take(path: &Path) -> Lock {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap();
        // SAFETY: flock on a descriptor this function owns; released when the file closes.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {}", path.display());
        Lock(f)
    }
}

fn read_manifest(dir: &Path) -> Option<TrainedProject> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let id = |k: &str| v[k].as_i64();
    Some(TrainedProject {
        root: dir.to_path_buf(),
        retrieval: id("retrieval")?,
        scann: id("scann")?,
        multitask: id("multitask")?,
    })
}

/// The shared trained project, built now if no valid one exists (a few minutes).
pub async fn trained_project() -> TrainedProject {
    let base = base_dir();
    std::fs::create_dir_all(&base).unwrap();
    let base = base.canonicalize().unwrap();
    let _lock = Lock::take(&base.join(".lock"));
    let key = key(&base);
    let dir = base.join(&key);
    let rebuild = std::env::var("TRAINYARD_SHARED_PROJECT").as_deref() == Ok("rebuild");
    if !rebuild {
        if let Some(found) = read_manifest(&dir) {
            eprintln!("shared trained project: reusing {}", dir.display());
            return found;
        }
    }
    // Builds of other keys are stale: what produced them changed.
    for e in std::fs::read_dir(&base).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            std::fs::remove_dir_all(e.path()).unwrap();
        }
    }
    eprintln!("shared trained project: building {}", dir.display());
    let started = std::time::Instant::now();
    std::fs::create_dir_all(&dir).unwrap();
    write_csv(&dir.join("data/interactions.csv"));
    let (p, _runner) = local_platform_over(&dir).await;
    let runs = [
        RunBuilder::new("shared-retrieval", ModelType::Retrieval)
            .epochs(RETRIEVAL_EPOCHS)
            .all_epochs()
            .top_k(TOP_K)
            .blessing("recall_at_100", 0.0),
        RunBuilder::new("shared-scann", ModelType::Retrieval)
            .retrieval_algorithm(RetrievalAlgorithm::Scann)
            .top_k(TOP_K)
            .blessing("recall_at_100", 0.0),
        RunBuilder::new("shared-multitask", ModelType::Multitask).blessing("rmse", 0.0001),
    ];
    let mut ids = Vec::new();
    for r in runs {
        let run = p.training().create_training_run(r.build()).await.unwrap();
        ids.push(run.id);
    }
    // The pipelines run as processes of their own: `jobs` at a time, followed in turn.
    let jobs = std::env::var("TRAINYARD_SHARED_PROJECT_JOBS")
        .ok()
        .and_then(|j| j.parse::<usize>().ok())
        .unwrap_or(2)
        .max(1);
    for id in ids.iter().take(jobs) {
        p.submit(*id).await.unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let done = p
            .follow(*id, Until::Settled, Duration::from_secs(1800), |_, _| {})
            .await
            .unwrap();
        assert!(
            matches!(done.status, RunStatus::Completed | RunStatus::NotBlessed),
            "shared run {} ended {}: {:?}",
            done.name,
            done.status,
            done.error_message
        );
        if let Some(next) = ids.get(i + jobs) {
            p.submit(*next).await.unwrap();
        }
    }
    // runs built with a tracking server must have logged to it (a cached project that did not
    // would fail local_run's MLflow check every time)
    if crate::mlflow_url().is_some() {
        let first = p.training().get(ids[0]).await.unwrap();
        assert!(
            first.mlflow_run_id.is_some(),
            "shared run {} has no MLflow run id though a tracking server was given (see its pipeline.log)",
            first.name
        );
    }
    let manifest = serde_json::json!({
        "key": key, "retrieval": ids[0], "scann": ids[1], "multitask": ids[2],
        "built_in_s": started.elapsed().as_secs(),
    });
    let tmp = dir.join("manifest.json.tmp");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(manifest.to_string().as_bytes()).unwrap();
    f.sync_all().unwrap();
    std::fs::rename(&tmp, dir.join("manifest.json")).unwrap();
    eprintln!(
        "shared trained project: built in {} s",
        started.elapsed().as_secs()
    );
    read_manifest(&dir).unwrap()
}

/// A project over an existing `data/` (local_platform writes the plain synthetic CSV).
async fn local_platform_over(
    dir: &Path,
) -> (
    trainyard::Platform,
    std::sync::Arc<trainyard_local::LocalRunner>,
) {
    trainyard::Platform::init(dir).await.unwrap();
    open_local(dir).await
}
