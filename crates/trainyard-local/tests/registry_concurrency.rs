//! Concurrent registrations of one run make exactly one version folder, whether they race in
//! threads of one process or in separate processes (the CLI's `registry push` run 4 times at
//! once made folders 1, 2 and 3 before version creation took the model folder's lock).
//!
//! The process case re-runs this test binary: `child_registers_when_asked` registers once when
//! REGISTRY_CHILD_ROOT is set, and does nothing otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use trainyard_core::model_config::ModelType;
use trainyard_core::ports::ModelRegistry;
use trainyard_core::registry::RegisteredModel;
use trainyard_core::run::{NewTrainingRun, RunConfig, TrainingRun};
use trainyard_local::LocalModelRegistry;

fn model() -> RegisteredModel {
    RegisteredModel::new("shop", "recs", ModelType::Retrieval, "", chrono::Utc::now())
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

/// A pushed model big enough that copying it takes a moment (widens the race window).
fn pushed(dir: &Path) -> PathBuf {
    let v = dir.join("pushed_model").join("1700000000");
    std::fs::create_dir_all(v.join("variables")).unwrap();
    std::fs::write(v.join("saved_model.pb"), vec![7u8; 256 << 10]).unwrap();
    for i in 0..8 {
        std::fs::write(
            v.join("variables").join(format!("variables.data-{i:05}")),
            vec![i as u8; 64 << 10],
        )
        .unwrap();
    }
    dir.join("pushed_model")
}

/// Everything in the model folder but its lock file: version folders (and any staging left).
fn version_folders(root: &Path) -> Vec<String> {
    let dir = root.join("shop").join("recs");
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock")
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_run_in_threads_make_one_version() {
    let tmp = tempfile::tempdir().unwrap();
    let push = pushed(tmp.path());
    for trial in 0..5 {
        let root = tmp.path().join(format!("registry-{trial}"));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let reg = LocalModelRegistry::new(&root);
                let push = push.display().to_string();
                tokio::spawn(async move {
                    reg.register(&model(), &run(42), &push, &BTreeMap::new())
                        .await
                })
            })
            .collect();
        let mut versions = Vec::new();
        for t in tasks {
            versions.push(t.await.unwrap().unwrap().version);
        }
        assert!(
            versions.iter().all(|v| v == "1"),
            "trial {trial}: {versions:?}"
        );
        assert_eq!(version_folders(&root), ["1"], "trial {trial}");
        LocalModelRegistry::verify(&root.join("shop/recs/1")).unwrap();
        // another run still gets the next number
        let v2 = LocalModelRegistry::new(&root)
            .register(
                &model(),
                &run(43),
                &push.display().to_string(),
                &BTreeMap::new(),
            )
            .await
            .unwrap();
        assert_eq!(v2.version, "2");
    }
}

#[test]
fn concurrent_registrations_of_one_run_in_processes_make_one_version() {
    let tmp = tempfile::tempdir().unwrap();
    let push = pushed(tmp.path());
    let exe = std::env::current_exe().unwrap();
    for trial in 0..3 {
        let root = tmp.path().join(format!("registry-{trial}"));
        let children: Vec<_> = (0..4)
            .map(|_| {
                Command::new(&exe)
                    .args(["--exact", "child_registers_when_asked", "--nocapture"])
                    .env("REGISTRY_CHILD_ROOT", &root)
                    .env("REGISTRY_CHILD_PUSH", &push)
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success(), "a registering process failed");
        }
        assert_eq!(version_folders(&root), ["1"], "trial {trial}");
        let manifest = LocalModelRegistry::verify(&root.join("shop/recs/1")).unwrap();
        assert_eq!(manifest.training_run_id, 42);
    }
}

/// The body of one registering process (a no-op unless the test above spawned it).
#[test]
fn child_registers_when_asked() {
    let (Some(root), Some(push)) = (
        std::env::var_os("REGISTRY_CHILD_ROOT"),
        std::env::var_os("REGISTRY_CHILD_PUSH"),
    ) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let v = rt
        .block_on(LocalModelRegistry::new(PathBuf::from(root)).register(
            &model(),
            &run(42),
            &PathBuf::from(push).display().to_string(),
            &BTreeMap::new(),
        ))
        .unwrap();
    assert_eq!(v.version, "1");
}

#[tokio::test]
async fn a_relative_registry_root_hands_out_absolute_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let push = pushed(tmp.path());
    // relative to the working directory of this process, as a CLI run elsewhere would give it
    let cwd = std::env::current_dir().unwrap();
    let rel = relative_to(&tmp.path().join("registry"), &cwd);
    assert!(rel.is_relative());
    let v = LocalModelRegistry::new(&rel)
        .register(
            &model(),
            &run(1),
            &push.display().to_string(),
            &BTreeMap::new(),
        )
        .await
        .unwrap();
    let uri = PathBuf::from(v.artifact_uri.unwrap());
    assert!(uri.is_absolute(), "{}", uri.display());
    assert!(uri.join("saved_model.pb").is_file());
    assert!(Path::new(&v.model_resource_name).is_absolute());
}

/// `path` relative to `base` (both absolute).
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c.as_os_str());
    }
    out
}
