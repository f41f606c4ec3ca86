//! The local runner's durability: jobs outlive the instance (and the process) that started
//! them, any instance follows or cancels them from the handle, and a run whose process group
//! vanished is concluded from what it left. The "python" is /bin/sh running a fake pipeline
//! that prints TFX-like lines and writes the trainer's and pusher's outputs (no TensorFlow).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use trainyard_core::ports::{PipelineEvent, PipelineExecutor, PipelineHandle, PipelineSubmission};
use trainyard_core::run::{NewTrainingRun, TrainingRun};
use trainyard_core::stages::StageName;
use trainyard_local::{
    group_alive, LocalRunner, RunnerState, COMPONENT_LOG_DIR, PIPELINE_LOG_FILE,
    RUNNER_CANCEL_FILE, RUNNER_EXIT_FILE, RUNNER_LOST, RUNNER_STATE_FILE, RUNNER_TMP_DIR,
};

/// How the fake pipeline behaves.
#[derive(Default, Clone)]
struct Fake {
    /// Seconds between steps.
    step: f32,
    /// After the first epoch: create `training` and sleep 30 s.
    hang_in_train: bool,
    /// After the first epoch: print an error and exit 3.
    fail_in_train: bool,
    /// After the push: create `pushed` and sleep 30 s.
    hang_after_push: bool,
    /// Ignore SIGTERM (the pipeline and its worker; not the wrapper).
    ignore_term: bool,
}

impl Fake {
    fn quick() -> Fake {
        Fake {
            step: 0.05,
            ..Fake::default()
        }
    }

    fn script(&self) -> String {
        let s = self.step;
        let hang = |marker: &str, on: bool| {
            if on {
                format!("touch {marker}\nsleep 30\n")
            } else {
                String::new()
            }
        };
        let fail = if self.fail_in_train {
            "echo 'ValueError: boom' >&2\nkill $worker\nexit 3\n"
        } else {
            ""
        };
        format!(
            r#"{trap}echo $$ >> starts
sleep 60 &
worker=$!
echo "pipeline starts TMPDIR=$TMPDIR TF_USE_LEGACY_KERAS=$TF_USE_LEGACY_KERAS"
mkdir -p "$TMPDIR/user-code/pkg" && touch "$TMPDIR/user-code/pkg/setup.py"
echo "INFO:absl:Component CsvExampleGen is running."
echo "reading csv"
sleep {s}
echo "INFO:absl:Component CsvExampleGen is finished."
echo "between components"
echo "INFO:absl:Component Trainer is running."
echo '[trainyard] EPOCH {{"epoch": 1, "metrics": {{"loss": 2.5}}}}'
{hang_train}{fail}sleep {s}
echo '[trainyard] EPOCH {{"epoch": 2, "metrics": {{"loss": 1.5}}}}' >&2
mkdir -p Trainer/model_run/7
echo '{{"loss": 1.5, "epochs": 2}}' > Trainer/model_run/7/training_metrics.json
echo "INFO:absl:Component Trainer is finished."
echo "INFO:absl:Component Evaluator is running."
echo '[trainyard] BLESSING {{"blessed": true}}'
sleep {s}
echo "INFO:absl:Component Evaluator is finished."
echo "INFO:absl:Component Pusher is running."
mkdir -p pushed_model/1700000000
touch pushed_model/1700000000/saved_model.pb
echo "INFO:absl:Component Pusher is finished."
{hang_push}kill $worker
printf 'pipeline done'
"#,
            trap = if self.ignore_term {
                "trap '' TERM\n"
            } else {
                ""
            },
            hang_train = hang("training", self.hang_in_train),
            hang_push = hang("pushed", self.hang_after_push),
        )
    }
}

fn runner() -> LocalRunner {
    LocalRunner::new("/bin/sh")
}

fn submission(root: &Path, fake: &Fake) -> PipelineSubmission {
    let mut run = TrainingRun::new(
        NewTrainingRun {
            ml_model: "shop".into(),
            name: "durable".into(),
            ..Default::default()
        },
        None,
        chrono::Utc::now(),
    );
    run.id = 7;
    PipelineSubmission {
        run,
        pipeline_root: root.display().to_string(),
        files: BTreeMap::from([("pipeline.py".to_string(), fake.script())]),
    }
}

fn is_terminal(e: &PipelineEvent) -> bool {
    matches!(
        e,
        PipelineEvent::Completed { .. } | PipelineEvent::Failed { .. }
    )
}

/// Polls until the terminal event (within 20 s); checks that the next poll is empty.
async fn poll_to_end(runner: &LocalRunner, handle: &PipelineHandle) -> Vec<PipelineEvent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut all = Vec::new();
    loop {
        let events = runner.poll(handle).await.unwrap();
        let done = events.iter().any(is_terminal);
        all.extend(events);
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "no terminal event: {all:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(runner.poll(handle).await.unwrap().is_empty());
    assert!(all.iter().filter(|e| is_terminal(e)).count() == 1);
    all
}

/// Polls until an event matching `pred` arrives; returns everything seen.
async fn poll_until(
    runner: &LocalRunner,
    handle: &PipelineHandle,
    pred: impl Fn(&PipelineEvent) -> bool,
) -> Vec<PipelineEvent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut all = Vec::new();
    while !all.iter().any(&pred) {
        assert!(Instant::now() < deadline, "never seen: {all:?}");
        all.extend(runner.poll(handle).await.unwrap());
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    all
}

async fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn kill(target: &str) {
    let ok = std::process::Command::new("kill")
        .args(["-KILL", "--", target])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {target}");
}

fn stages(events: &[PipelineEvent]) -> Vec<PipelineEvent> {
    events.iter().filter(|e| !is_terminal(e)).cloned().collect()
}

/// Every non-terminal event of a whole fake run, in order.
fn full_progress() -> Vec<PipelineEvent> {
    use PipelineEvent::*;
    let epoch = |epoch, loss| EpochCompleted {
        epoch,
        metrics: BTreeMap::from([("loss".to_string(), loss)]),
    };
    vec![
        StageStarted {
            stage: StageName::Examples,
        },
        StageCompleted {
            stage: StageName::Examples,
        },
        StageStarted {
            stage: StageName::Train,
        },
        epoch(1, 2.5),
        epoch(2, 1.5),
        StageCompleted {
            stage: StageName::Train,
        },
        StageStarted {
            stage: StageName::Evaluate,
        },
        StageCompleted {
            stage: StageName::Evaluate,
        },
        StageStarted {
            stage: StageName::Register,
        },
        StageCompleted {
            stage: StageName::Register,
        },
    ]
}

/// The Completed event the fake's run ends with.
fn completed(root: &Path) -> PipelineEvent {
    let at = |p: &str| root.join(p).display().to_string();
    PipelineEvent::Completed {
        training_metrics: serde_json::json!({"loss": 1.5, "epochs": 2}),
        blessed: true,
        artifacts: BTreeMap::from([
            ("pipeline_root".to_string(), root.display().to_string()),
            (
                "training_metrics".to_string(),
                at("Trainer/model_run/7/training_metrics.json"),
            ),
            ("log".to_string(), at(PIPELINE_LOG_FILE)),
            ("component_logs".to_string(), at(COMPONENT_LOG_DIR)),
        ]),
    }
}

fn starts(root: &Path) -> usize {
    std::fs::read_to_string(root.join("starts"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Session and process group of a live process, from /proc/<pid>/stat.
fn session_and_group(pid: u32) -> (u32, u32) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = text[text.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    (f[3].parse().unwrap(), f[2].parse().unwrap())
}

#[tokio::test]
async fn a_new_instance_follows_a_run_whose_runner_was_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runs").join("7");
    let first = runner();
    let fake = Fake {
        step: 0.2,
        ..Fake::default()
    };
    let handle = first.submit(&submission(&root, &fake)).await.unwrap();
    assert_eq!(handle.job_name, root.display().to_string());
    assert!(handle.job_id.starts_with("local-7-"), "{}", handle.job_id);
    // The state is on disk when submit returns; the leader has a session of its own.
    let state: RunnerState = serde_json::from_str(&read(&root, RUNNER_STATE_FILE)).unwrap();
    assert_eq!(state.job_id, handle.job_id);
    assert_eq!((state.pid, state.pgid), (state.pgid, state.pgid));
    assert_eq!(first.process_group(&handle), Some(state.pgid));
    let seen = poll_until(&first, &handle, |e| {
        matches!(
            e,
            PipelineEvent::StageStarted {
                stage: StageName::Train
            }
        )
    })
    .await;
    drop(first);

    let second = runner();
    let events = poll_to_end(&second, &handle).await;
    assert_eq!(stages(&events), full_progress());
    assert_eq!(events.last().unwrap(), &completed(&root));
    // The first instance had a prefix of the same events.
    assert_eq!(seen[..], full_progress()[..seen.len()]);

    // Its own TMPDIR and env; the temp folder goes once the run is concluded.
    let log = read(&root, PIPELINE_LOG_FILE);
    let tmp = root.canonicalize().unwrap().join(RUNNER_TMP_DIR);
    assert!(
        log.starts_with(&format!(
            "pipeline starts TMPDIR={} TF_USE_LEGACY_KERAS=1\n",
            tmp.display()
        )),
        "{log}"
    );
    assert!(log.ends_with("pipeline done"), "{log}");
    assert!(!tmp.exists());
    // ... and is deleted in the background.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&root)
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().starts_with(".tmp"))
    {
        assert!(Instant::now() < deadline, "the run's TMPDIR is left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(read(&root, RUNNER_EXIT_FILE), "0\n");
    assert!(!group_alive(state.pgid));

    // Any later instance replays the same run to the same end.
    let third = runner();
    let replay = poll_to_end(&third, &handle).await;
    assert_eq!(replay, events);
    assert_eq!(starts(&root), 1);
}

/// Not a test on its own: the launcher process of the next test (it submits, records the
/// handle, and waits to be killed).
#[tokio::test]
#[ignore = "helper process of launcher_death_does_not_stop_the_run"]
async fn launcher_helper() {
    let Ok(root) = std::env::var("TRAINYARD_TEST_LAUNCH_ROOT") else {
        return;
    };
    let root = PathBuf::from(root);
    let fake = Fake {
        step: 0.3,
        ..Fake::default()
    };
    let runner = runner();
    let handle = runner.submit(&submission(&root, &fake)).await.unwrap();
    let _ = runner.poll(&handle).await.unwrap();
    std::fs::write(
        root.join("handle.json"),
        serde_json::to_string(&handle).unwrap(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn launcher_death_does_not_stop_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    std::fs::create_dir_all(&root).unwrap();
    let mut launcher = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "launcher_helper", "--ignored", "--nocapture"])
        .env("TRAINYARD_TEST_LAUNCH_ROOT", &root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(&root.join("handle.json")).await;
    let handle: PipelineHandle = serde_json::from_str(&read(&root, "handle.json")).unwrap();
    launcher.kill().unwrap(); // SIGKILL: no cleanup of any kind
    launcher.wait().unwrap();
    let pgid = runner().process_group(&handle).unwrap();
    assert!(group_alive(pgid), "the pipeline died with its launcher");
    assert!(!root.join(RUNNER_EXIT_FILE).exists());

    let follower = runner();
    let events = poll_to_end(&follower, &handle).await;
    assert_eq!(stages(&events), full_progress());
    assert_eq!(events.last().unwrap(), &completed(&root));
    assert!(!group_alive(pgid));
}

#[tokio::test]
async fn a_group_killed_mid_run_is_concluded_runner_lost() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    let fake = Fake {
        hang_in_train: true,
        ..Fake::quick()
    };
    let handle = runner().submit(&submission(&root, &fake)).await.unwrap();
    wait_for_file(&root.join("training")).await;
    let pgid = runner().process_group(&handle).unwrap();
    kill(&format!("-{pgid}"));

    let events = poll_to_end(&runner(), &handle).await;
    assert_eq!(stages(&events), full_progress()[..4]);
    let Some(PipelineEvent::Failed { error, stage }) = events.last() else {
        panic!("{events:?}")
    };
    assert!(error.starts_with(RUNNER_LOST), "{error}");
    assert!(error.contains("[trainyard] EPOCH"), "the tail: {error}");
    assert_eq!(*stage, Some(StageName::Train));
    assert!(!group_alive(pgid), "a process of the group is left");
    assert!(!root.join(RUNNER_EXIT_FILE).exists());

    // A lost job no longer owns its root: submitting again starts over.
    let again = runner()
        .submit(&submission(&root, &Fake::quick()))
        .await
        .unwrap();
    assert_ne!(again.job_id, handle.job_id);
    let events = poll_to_end(&runner(), &again).await;
    assert_eq!(events.last().unwrap(), &completed(&root));
    assert_eq!(starts(&root), 2);
    // The old handle names a job the root no longer holds.
    assert!(runner().poll(&handle).await.is_err());
}

#[tokio::test]
async fn orphans_of_a_dead_wrapper_are_killed_before_concluding() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    let fake = Fake {
        hang_in_train: true,
        ..Fake::quick()
    };
    let handle = runner().submit(&submission(&root, &fake)).await.unwrap();
    wait_for_file(&root.join("training")).await;
    let pgid = runner().process_group(&handle).unwrap();
    kill(&pgid.to_string()); // the wrapper alone: the pipeline, its sleep and worker live on
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(group_alive(pgid));

    let started = Instant::now();
    let events = poll_to_end(&runner(), &handle).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let Some(PipelineEvent::Failed { error, stage }) = events.last() else {
        panic!("{events:?}")
    };
    assert!(error.starts_with(RUNNER_LOST), "{error}");
    assert_eq!(*stage, Some(StageName::Train));
    assert!(!group_alive(pgid), "orphans are left");
}

#[tokio::test]
async fn a_group_killed_after_a_blessed_push_is_completed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    let fake = Fake {
        hang_after_push: true,
        ..Fake::quick()
    };
    let handle = runner().submit(&submission(&root, &fake)).await.unwrap();
    wait_for_file(&root.join("pushed")).await;
    let pgid = runner().process_group(&handle).unwrap();
    kill(&format!("-{pgid}"));

    let events = poll_to_end(&runner(), &handle).await;
    assert!(!root.join(RUNNER_EXIT_FILE).exists());
    assert_eq!(stages(&events), full_progress());
    assert_eq!(events.last().unwrap(), &completed(&root));
    assert!(!group_alive(pgid));
}

#[tokio::test]
async fn killed_after_training_without_a_push_is_runner_lost() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    let fake = Fake {
        hang_after_push: true,
        ..Fake::quick()
    };
    let handle = runner().submit(&submission(&root, &fake)).await.unwrap();
    wait_for_file(&root.join("pushed")).await;
    let pgid = runner().process_group(&handle).unwrap();
    kill(&format!("-{pgid}"));
    // The same run without its pushed model: blessing and metrics alone are not enough.
    std::fs::remove_dir_all(root.join("pushed_model")).unwrap();
    let events = poll_to_end(&runner(), &handle).await;
    let Some(PipelineEvent::Failed { error, stage }) = events.last() else {
        panic!("{events:?}")
    };
    assert!(error.starts_with(RUNNER_LOST), "{error}");
    assert_eq!(*stage, Some(StageName::Register));
}

#[tokio::test]
async fn submit_is_idempotent_per_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    let fake = Fake {
        step: 0.2,
        ..Fake::default()
    };
    let sub = submission(&root, &fake);
    let (a, b) = (runner(), runner());
    let (h1, h2) = tokio::join!(a.submit(&sub), b.submit(&sub));
    let (h1, h2) = (h1.unwrap(), h2.unwrap());
    assert_eq!(h1, h2);
    let h3 = runner().submit(&sub).await.unwrap();
    assert_eq!(h3, h1);
    let events = poll_to_end(&a, &h1).await;
    assert_eq!(events.last().unwrap(), &completed(&root));
    // Finished: a repeated submit still gives the same job and starts nothing.
    let h4 = runner().submit(&sub).await.unwrap();
    assert_eq!(h4, h1);
    assert_eq!(starts(&root), 1);
    assert_eq!(
        read(&root, PIPELINE_LOG_FILE)
            .matches("pipeline starts")
            .count(),
        1
    );
    // And a new instance polling the repeated handle sees that one run.
    assert_eq!(poll_to_end(&runner(), &h4).await, events);
}

#[tokio::test]
async fn cancel_from_another_instance_stops_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    let fake = Fake {
        hang_in_train: true,
        ..Fake::quick()
    };
    let owner = runner();
    let handle = owner.submit(&submission(&root, &fake)).await.unwrap();
    wait_for_file(&root.join("training")).await;
    let pgid = owner.process_group(&handle).unwrap();
    // The leader heads a session and group of its own (no terminal signal reaches it).
    assert_eq!(session_and_group(pgid), (pgid, pgid));
    assert!(!owner.poll(&handle).await.unwrap().is_empty());

    let started = Instant::now();
    runner().cancel(&handle).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!group_alive(pgid));
    assert_eq!(read(&root, RUNNER_CANCEL_FILE).trim(), handle.job_id);
    // Nobody reports an end for it: not the owner, not a new instance.
    for _ in 0..3 {
        assert!(owner.poll(&handle).await.unwrap().is_empty());
        assert!(runner().poll(&handle).await.unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Cancelling again, or a job nobody knows, is fine; a cancelled root is not restarted.
    runner().cancel(&handle).await.unwrap();
    let unknown = PipelineHandle {
        job_name: dir.path().join("nothing").display().to_string(),
        job_id: "local-1-1".into(),
    };
    runner().cancel(&unknown).await.unwrap();
    assert!(runner().poll(&unknown).await.is_err());
    let again = runner().submit(&submission(&root, &fake)).await.unwrap();
    assert_eq!(again, handle);
    assert_eq!(starts(&root), 1);
}

#[tokio::test]
async fn cancel_kills_a_group_that_ignores_sigterm_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    let fake = Fake {
        hang_in_train: true,
        ignore_term: true,
        ..Fake::quick()
    };
    let handle = runner().submit(&submission(&root, &fake)).await.unwrap();
    wait_for_file(&root.join("training")).await;
    let pgid = runner().process_group(&handle).unwrap();
    let started = Instant::now();
    runner()
        .with_cancel_grace(Duration::from_millis(400))
        .cancel(&handle)
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(!group_alive(pgid));
    assert!(runner().poll(&handle).await.unwrap().is_empty());
}

#[tokio::test]
async fn component_logs_are_exact_after_replays_and_concurrent_pollers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    let fake = Fake {
        step: 0.15,
        ..Fake::default()
    };
    let first = runner();
    let handle = first.submit(&submission(&root, &fake)).await.unwrap();
    poll_until(&first, &handle, |e| {
        matches!(
            e,
            PipelineEvent::StageStarted {
                stage: StageName::Train
            }
        )
    })
    .await;
    drop(first);
    // Two instances replaying and following at once, one to the end.
    let (a, b) = (runner(), runner());
    let _ = a.poll(&handle).await.unwrap();
    let events = poll_to_end(&b, &handle).await;
    assert_eq!(events.last().unwrap(), &completed(&root));
    let expect = |root: &Path| {
        assert_eq!(
            read(root, "logs/CsvExampleGen.log"),
            "INFO:absl:Component CsvExampleGen is running.\nreading csv\nINFO:absl:Component CsvExampleGen is finished.\n"
        );
        assert_eq!(
            read(root, "logs/Trainer.log"),
            "INFO:absl:Component Trainer is running.\n\
             [trainyard] EPOCH {\"epoch\": 1, \"metrics\": {\"loss\": 2.5}}\n\
             [trainyard] EPOCH {\"epoch\": 2, \"metrics\": {\"loss\": 1.5}}\n\
             INFO:absl:Component Trainer is finished.\n"
        );
        assert_eq!(
            read(root, "logs/Evaluator.log"),
            "INFO:absl:Component Evaluator is running.\n[trainyard] BLESSING {\"blessed\": true}\nINFO:absl:Component Evaluator is finished.\n"
        );
        assert_eq!(
            read(root, "logs/Pusher.log"),
            "INFO:absl:Component Pusher is running.\nINFO:absl:Component Pusher is finished.\n"
        );
        let mut names: Vec<String> = std::fs::read_dir(root.join(COMPONENT_LOG_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "CsvExampleGen.log",
                "Evaluator.log",
                "Pusher.log",
                "Trainer.log"
            ]
        );
    };
    expect(&root);
    // The lagging poller concludes too, and a later replay changes nothing.
    let _ = poll_to_end(&a, &handle).await;
    expect(&root);
    let _ = poll_to_end(&runner(), &handle).await;
    expect(&root);
}

#[tokio::test]
async fn a_failing_pipeline_fails_with_its_tail() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    let fake = Fake {
        fail_in_train: true,
        ..Fake::quick()
    };
    let handle = runner().submit(&submission(&root, &fake)).await.unwrap();
    let events = poll_to_end(&runner(), &handle).await;
    assert_eq!(stages(&events), full_progress()[..4]);
    let Some(PipelineEvent::Failed { error, stage }) = events.last() else {
        panic!("{events:?}")
    };
    assert!(
        error.starts_with("pipeline exited with exit status: 3:\n"),
        "{error}"
    );
    assert!(error.ends_with("ValueError: boom"), "{error}");
    assert!(error.contains("Component Trainer is running."), "{error}");
    assert_eq!(*stage, Some(StageName::Train));
    assert_eq!(read(&root, RUNNER_EXIT_FILE), "3\n");
    // The same end for any instance.
    assert_eq!(poll_to_end(&runner(), &handle).await, events);
}

#[tokio::test]
async fn a_missing_interpreter_is_an_error_at_submit() {
    let dir = tempfile::tempdir().unwrap();
    let err = LocalRunner::new(dir.path().join("no-python"))
        .submit(&submission(&dir.path().join("run"), &Fake::quick()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot start"), "{err}");
    assert!(!dir.path().join("run").join(RUNNER_STATE_FILE).exists());
}

#[tokio::test]
async fn a_relative_interpreter_path_is_the_launchers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    // /bin/sh, relative to this process's working directory (not to the run's root)
    let up = std::env::current_dir().unwrap().components().count() - 1;
    let python: PathBuf = (0..up).map(|_| "..").collect::<PathBuf>().join("bin/sh");
    assert!(python.is_relative());
    let runner = LocalRunner::new(&python);
    let handle = runner
        .submit(&submission(&root, &Fake::quick()))
        .await
        .unwrap();
    let events = poll_to_end(&runner, &handle).await;
    assert_eq!(events.last().unwrap(), &completed(&root));
}
