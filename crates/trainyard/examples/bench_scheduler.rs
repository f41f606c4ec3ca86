//! Benchmark (not a test): fire lag of the embedded scheduler holding many active schedules on
//! SQLite, and the CPU one poll costs. Run by `benches/scheduler/run.sh`; see
//! `benches/scheduler/README.md`.
//!
//! Set-up: `--schedules` daily schedules (one registered model each) are created through the
//! real ScheduleService; then `--fires` of them get a `next_run_at` spread over whole seconds
//! of the next `--window` seconds (cron fires are whole instants, so several fall due at
//! once), the rest stay due tomorrow or later. The scheduler (default config: a poll every
//! 500 ms, 200 schedules a poll) then fires them through the real ScheduleService with the
//! system clock: each fire creates its run, `scheduled` (no executor is configured; the
//! control plane submits). Fire lag = the run's `created_at` - the fire's due time.
//!
//! Phases: idle polls first (every schedule held, none due: the steady-state cost of a poll),
//! then the firing window, polled until every planted fire has its run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use trainyard::core::ports::{Clock, Store, SystemClock};
use trainyard::core::schedule::{CatchUpPolicy, ConcurrencyPolicy, ScheduleType};
use trainyard::core::timing::ScheduleTiming;
use trainyard::{Platform, ProjectConfig, WizardSchedule};
use trainyard_local::SchedulerConfig;

struct Args {
    schedules: usize,
    fires: usize,
    window: u64,
    idle_polls: usize,
    out: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        schedules: 10_000,
        fires: 2_000,
        window: 60,
        idle_polls: 40,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--schedules" => a.schedules = val().parse().expect("--schedules N"),
            "--fires" => a.fires = val().parse().expect("--fires N"),
            "--window" => a.window = val().parse().expect("--window SECONDS"),
            "--idle-polls" => a.idle_polls = val().parse().expect("--idle-polls N"),
            "--out" => a.out = Some(val()),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        a.fires <= a.schedules,
        "--fires must be at most --schedules"
    );
    a
}

/// User + system CPU of this process so far (all threads, including SQLite's worker).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i]
}

fn summary(name: &str, mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "{name}: n={} mean={mean:.2} p50={:.2} p90={:.2} p99={:.2} max={:.2}",
        v.len(),
        pct(&v, 50.0),
        pct(&v, 90.0),
        pct(&v, 99.0),
        v.last().copied().unwrap_or(f64::NAN)
    );
    serde_json::json!({
        "n": v.len(), "mean": mean, "p50": pct(&v, 50.0), "p90": pct(&v, 90.0),
        "p99": pct(&v, 99.0), "max": v.last(),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        trainyard_store::SqliteStore::open(dir.path().join("bench.db"))
            .await
            .unwrap(),
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let p = Platform::with_store(
        dir.path().into(),
        ProjectConfig::default(),
        store.clone(),
        clock.clone(),
    );
    let svc = p.schedules();

    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(a.schedules);
    for i in 0..a.schedules {
        let w = WizardSchedule {
            ml_model: "bench".into(),
            name: format!("model-{i:05}"),
            schedule_name: None,
            schedule_description: String::new(),
            config: Default::default(),
            timing: ScheduleTiming {
                schedule_type: ScheduleType::Daily,
                scheduled_datetime: None,
                schedule_time: Some(format!("{:02}:{:02}", (i / 60) % 24, i % 60)),
                schedule_day_of_week: None,
                schedule_day_of_month: None,
                schedule_timezone: "Europe/Warsaw".into(),
            },
            catch_up: CatchUpPolicy::Once,
            concurrency: ConcurrencyPolicy::Skip,
        };
        ids.push(svc.create_from_config(w).await.unwrap().id);
    }
    let setup = t0.elapsed();
    println!(
        "set-up: {} schedules created in {:.1} s",
        a.schedules,
        setup.as_secs_f64()
    );
    // Every schedule tomorrow or later, so the idle phase has nothing due.
    let tomorrow = Utc::now() + chrono::Duration::hours(25);
    for id in &ids {
        let mut s = store.get_schedule(*id).await.unwrap();
        s.next_run_at = s.timing.next_after(tomorrow).unwrap();
        store.update_schedule(&s).await.unwrap();
    }

    let sched = p.embedded_scheduler(SchedulerConfig::default());
    let tick_every = SchedulerConfig::default().tick;

    // Idle polls: every schedule held, none due.
    let mut idle_wall = Vec::new();
    let cpu0 = cpu_time();
    let idle_t0 = Instant::now();
    for _ in 0..a.idle_polls {
        let t = Instant::now();
        let r = sched.tick().await.unwrap();
        assert_eq!(r.created, 0);
        idle_wall.push(t.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(tick_every).await;
    }
    let idle_cpu = cpu_time() - cpu0;
    let idle_secs = idle_t0.elapsed().as_secs_f64();

    // Plant the fires: whole seconds from 3 s ahead over the window.
    let start = (Utc::now() + chrono::Duration::seconds(3))
        .with_timezone(&Utc)
        .timestamp();
    let mut due: Vec<(i64, DateTime<Utc>)> = Vec::with_capacity(a.fires);
    for (k, id) in ids.iter().take(a.fires).enumerate() {
        let offset = (k as u64 * a.window / a.fires.max(1) as u64) as i64;
        let at = DateTime::from_timestamp(start + offset, 0).unwrap();
        let mut s = store.get_schedule(*id).await.unwrap();
        s.next_run_at = Some(at);
        store.update_schedule(&s).await.unwrap();
        due.push((*id, at));
    }

    // Firing: poll like EmbeddedScheduler::run until every planted fire has its run.
    let mut busy_wall = Vec::new();
    let mut created = 0usize;
    let mut polls = 0usize;
    let cpu1 = cpu_time();
    let fire_t0 = Instant::now();
    let deadline = fire_t0 + Duration::from_secs(a.window + 120);
    while created < a.fires && Instant::now() < deadline {
        let t = Instant::now();
        let r = sched.tick().await.unwrap();
        polls += 1;
        assert_eq!(r.errors, 0, "{r:?}");
        created += r.created;
        busy_wall.push(t.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(tick_every).await;
    }
    let fire_cpu = cpu_time() - cpu1;
    let fire_secs = fire_t0.elapsed().as_secs_f64();

    let mut lags = Vec::with_capacity(due.len());
    let mut missing = 0;
    for (id, at) in &due {
        match store.run_for_fire(*id, *at).await.unwrap() {
            Some(run) => {
                assert_eq!(run.status, trainyard::core::RunStatus::Scheduled);
                lags.push((run.created_at - *at).num_microseconds().unwrap() as f64 / 1e3);
            }
            None => missing += 1,
        }
    }
    println!(
        "\n{} active schedules; {} fires planted over {} s; {missing} without a run",
        a.schedules, a.fires, a.window
    );
    let lag = summary("fire lag (ms)", lags);
    let idle = summary("idle poll wall time (ms)", idle_wall);
    let busy = summary("firing poll wall time (ms)", busy_wall);
    let idle_cpu_ms = idle_cpu.as_secs_f64() * 1e3 / a.idle_polls as f64;
    let fire_cpu_ms = fire_cpu.as_secs_f64() * 1e3 / polls as f64;
    println!(
        "CPU per poll (process, user+sys, 10 ms resolution summed): idle {idle_cpu_ms:.2} ms \
         ({:.2}% of a core at one poll per {} ms); firing {fire_cpu_ms:.2} ms over {polls} \
         polls, {:.2} ms per fire, {:.1}% of a core",
        idle_cpu.as_secs_f64() / idle_secs * 100.0,
        tick_every.as_millis(),
        fire_cpu.as_secs_f64() * 1e3 / a.fires.max(1) as f64,
        fire_cpu.as_secs_f64() / fire_secs * 100.0,
    );
    let result = serde_json::json!({
        "schedules": a.schedules, "fires": a.fires, "window_s": a.window,
        "missing_runs": missing, "setup_s": setup.as_secs_f64(),
        "fire_lag_ms": lag, "idle_poll_ms": idle, "firing_poll_ms": busy,
        "cpu_per_idle_poll_ms": idle_cpu_ms, "cpu_per_firing_poll_ms": fire_cpu_ms,
        "cpu_per_fire_ms": fire_cpu.as_secs_f64() * 1e3 / a.fires.max(1) as f64,
    });
    if let Some(out) = a.out {
        std::fs::write(&out, serde_json::to_string_pretty(&result).unwrap()).unwrap();
        println!("results: {out}");
    }
    assert_eq!(missing, 0, "every planted fire must have its run");
}
