//! The in-process limit of brute-force retrieval on this machine, for benches/serve: the bench
//! model's query signature, the MatMul over its 100k candidates (TensorFlow's oneDNN kernel, on
//! every core) and the top k (Rust, rows spread over every core), called directly with batches
//! of B rows: no HTTP, no JSON, no batching wait. Prints rows/s per (batch rows, caller threads)
//! and the best, as `LIMIT_JSON {...}`; the same run with TF's own TopK (`--session-top-k`) for
//! comparison.
//!
//!   cargo run --release -p trainyard-serve --example serve_limit -- MODEL_DIR [SECS_EACH]
//!
//! Inputs: the bench model's `customer_id` strings, C00000..C04999 cycled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use trainyard_serve::tensor::{Column, Values};
use trainyard_serve::{Model, SessionConfig, TfOptions};

fn batch(rows: usize, offset: usize) -> Vec<Column> {
    vec![Column {
        dims: vec![rows as u64],
        values: Values::Str(
            (0..rows)
                .map(|i| format!("C{:05}", ((offset + i) * 7919) % 5000))
                .collect(),
        ),
    }]
}

/// Rows per second with `callers` threads each running batches of `rows` for `secs`.
fn measure(model: &Arc<Model>, rows: usize, callers: usize, secs: f64) -> f64 {
    // warm-up: the first runs of a shape allocate
    for i in 0..3 {
        model.run(&batch(rows, i * rows)).expect("run");
    }
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let done: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..callers)
            .map(|c| {
                let model = model.clone();
                s.spawn(move || {
                    let mut n = 0;
                    let mut i = c * 1000;
                    while Instant::now() < until {
                        model.run(&batch(rows, i)).expect("run");
                        n += rows;
                        i += rows;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("caller")).sum()
    });
    done as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .expect("usage: serve_limit MODEL_DIR [SECS_EACH]");
    let secs: f64 = args.get(2).map_or(2.0, |s| s.parse().expect("seconds"));
    let tf = TfOptions::default();
    let mut out = serde_json::Map::new();
    for (label, session_top_k) in [("rust_top_k", false), ("session_top_k", true)] {
        let cfg = SessionConfig {
            disable_thread_spinning: true,
            session_top_k,
            ..SessionConfig::default()
        };
        let model = Arc::new(Model::load_with(dir.as_ref(), &tf, cfg).expect("load the model"));
        assert_eq!(model.rust_top_k().is_some(), !session_top_k, "{label}");
        let mut runs = Vec::new();
        let mut best: (f64, usize, usize) = (0.0, 0, 0);
        for rows in [16, 64, 256] {
            for callers in [1, 2] {
                let rps = measure(&model, rows, callers, secs);
                eprintln!("{label}: batch {rows:3} x {callers} callers: {rps:8.0} rows/s");
                runs.push(serde_json::json!({"rows": rows, "callers": callers, "rows_per_s": rps}));
                if rps > best.0 {
                    best = (rps, rows, callers);
                }
            }
        }
        out.insert(
            label.into(),
            serde_json::json!({"best_rows_per_s": best.0, "best_rows": best.1,
                               "best_callers": best.2, "runs": runs}),
        );
    }
    out.insert(
        "cpus".into(),
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .into(),
    );
    println!("LIMIT_JSON {}", serde_json::Value::Object(out));
}
