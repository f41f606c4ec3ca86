//! Merges concurrent predict requests into one session run, on dedicated threads (never on the
//! async workers), and hands each request its rows of the result.
//!
//! A worker takes every request already queued (up to `max_batch_size` rows). It waits longer,
//! up to `batch_timeout`, only while requests whose body has been read are still being parsed
//! ([`Batcher::arrival`]): a lone request runs at once instead of paying the timeout, under
//! load the queue that builds up during one run becomes the next batch, and a client whose body
//! stalls (not yet an arrival) never holds a batch back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::ServeError;
use crate::model::Model;
use crate::request::Batch;
use crate::tensor::Column;

#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    pub max_batch_size: usize,
    pub batch_timeout: Duration,
    /// Threads running sessions at once (TF parallelizes inside each run too).
    pub threads: usize,
}

impl Default for BatchConfig {
    /// The spec's batching_config.txt: max_batch_size 64, batch_timeout_micros 10000.
    fn default() -> Self {
        BatchConfig {
            max_batch_size: 64,
            batch_timeout: Duration::from_micros(10_000),
            threads: 1,
        }
    }
}

/// Every output of one session run, shared by the requests of the batch.
#[derive(Debug)]
pub struct RunOutput {
    pub names: Vec<String>,
    pub columns: Vec<Column>,
    /// Rows of the merged batch, and how many requests were in it.
    pub batch_rows: usize,
    pub batch_requests: usize,
}

/// One request's rows `[start, start + rows)` of a run's outputs.
#[derive(Debug, Clone)]
pub struct RowSlice {
    pub output: Arc<RunOutput>,
    pub start: usize,
    pub rows: usize,
}

struct Job {
    batch: Batch,
    reply: oneshot::Sender<Result<RowSlice, String>>,
}

/// Told the signature and the rows of every session run (the batch size metric).
pub type BatchObserver = Arc<dyn Fn(&str, usize) + Send + Sync>;

pub struct Batcher {
    tx: Option<mpsc::Sender<Job>>,
    arriving: Arc<AtomicUsize>,
    workers: Vec<JoinHandle<()>>,
}

/// Counts a request from its arrival until it is queued or refused.
pub struct Arrival(Arc<AtomicUsize>);

impl Drop for Arrival {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Batcher {
    pub fn start(model: Arc<Model>, cfg: BatchConfig) -> Batcher {
        Self::start_observed(model, cfg, Arc::new(|_: &str, _: usize| {}))
    }

    /// [`Batcher::start`], calling `observe` after every session run.
    pub fn start_observed(model: Arc<Model>, cfg: BatchConfig, observe: BatchObserver) -> Batcher {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let arriving = Arc::new(AtomicUsize::new(0));
        let cfg = BatchConfig {
            max_batch_size: cfg.max_batch_size.max(1),
            threads: cfg.threads.max(1),
            ..cfg
        };
        let workers = (0..cfg.threads)
            .map(|i| {
                let (rx, model, arriving) = (rx.clone(), model.clone(), arriving.clone());
                let observe = observe.clone();
                std::thread::Builder::new()
                    .name(format!("tf-batch-{i}"))
                    .spawn(move || worker(rx, model, arriving, cfg, observe))
                    .expect("spawn a batch thread")
            })
            .collect();
        Batcher {
            tx: Some(tx),
            arriving,
            workers,
        }
    }

    /// Call once a request's body is read, before parsing it; drop after `submit` (or refusal).
    pub fn arrival(&self) -> Arrival {
        self.arriving.fetch_add(1, Ordering::AcqRel);
        Arrival(self.arriving.clone())
    }

    /// Queues a parsed request (ending its arrival once queued); resolves to its rows of the
    /// merged run.
    pub async fn submit(&self, batch: Batch, arrival: Arrival) -> Result<RowSlice, String> {
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or("the server is shutting down")?;
        let sent = tx.send(Job { batch, reply });
        drop(arrival);
        sent.map_err(|_| "the batch threads have stopped".to_string())?;
        rx.await
            .map_err(|_| "the batch thread dropped the request".to_string())?
    }

    /// Stops taking requests and waits for the queued ones to finish.
    pub fn shutdown(&mut self) {
        self.tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn worker(
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    model: Arc<Model>,
    arriving: Arc<AtomicUsize>,
    cfg: BatchConfig,
    observe: BatchObserver,
) {
    // jobs taken from the queue that could not join the batch being built (another row shape)
    let mut deferred: VecDeque<Job> = VecDeque::new();
    loop {
        let jobs = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            match collect(&rx, &mut deferred, &arriving, &cfg) {
                Some(jobs) => jobs,
                None => return, // channel closed and nothing deferred
            }
        };
        run_jobs(&model, jobs, &observe);
    }
}

fn collect(
    rx: &mpsc::Receiver<Job>,
    deferred: &mut VecDeque<Job>,
    arriving: &AtomicUsize,
    cfg: &BatchConfig,
) -> Option<Vec<Job>> {
    let first = match deferred.pop_front() {
        Some(j) => j,
        None => rx.recv().ok()?,
    };
    let deadline = Instant::now() + cfg.batch_timeout;
    let key: Vec<Vec<u64>> = first.batch.shape_key().iter().map(|s| s.to_vec()).collect();
    let signature = first.batch.signature.clone();
    let fits = |j: &Job| {
        j.batch.signature == signature && j.batch.shape_key().iter().zip(&key).all(|(a, b)| *a == b)
    };
    let mut rows = first.batch.rows;
    let mut jobs = vec![first];
    // deferred jobs first (they arrived earlier), then the queue
    let mut i = 0;
    while i < deferred.len() && rows < cfg.max_batch_size {
        if fits(&deferred[i]) && rows + deferred[i].batch.rows <= cfg.max_batch_size {
            let j = deferred.remove(i).expect("index in range");
            rows += j.batch.rows;
            jobs.push(j);
        } else {
            i += 1;
        }
    }
    while rows < cfg.max_batch_size {
        let next = match rx.try_recv() {
            Ok(j) => Some(j),
            Err(TryRecvError::Disconnected) => None,
            Err(TryRecvError::Empty) => {
                let now = Instant::now();
                if arriving.load(Ordering::Acquire) == 0 || now >= deadline {
                    None
                } else {
                    // a request is being read: give it a moment (bounded by the deadline)
                    let wait = (deadline - now).min(Duration::from_micros(100));
                    match rx.recv_timeout(wait) {
                        Ok(j) => Some(j),
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => None,
                    }
                }
            }
        };
        let Some(j) = next else { break };
        if fits(&j) && rows + j.batch.rows <= cfg.max_batch_size {
            rows += j.batch.rows;
            jobs.push(j);
        } else {
            deferred.push_back(j);
            break;
        }
    }
    Some(jobs)
}

fn merge(jobs: &[Job]) -> Vec<Column> {
    let rows: usize = jobs.iter().map(|j| j.batch.rows).sum();
    let mut cols: Vec<Column> = jobs[0].batch.columns.clone();
    for c in cols.iter_mut() {
        c.dims[0] = rows as u64;
    }
    for j in &jobs[1..] {
        for (c, add) in cols.iter_mut().zip(&j.batch.columns) {
            c.values.extend_from(&add.values);
        }
    }
    cols
}

fn run_jobs(model: &Model, jobs: Vec<Job>, observe: &BatchObserver) {
    let inputs = if jobs.len() == 1 {
        jobs[0].batch.columns.clone()
    } else {
        merge(&jobs)
    };
    let rows: usize = jobs.iter().map(|j| j.batch.rows).sum();
    let signature = jobs[0].batch.signature.clone();
    let started = Instant::now();
    let result = model.run_signature(&signature, &inputs).and_then(|cols| {
        match cols.iter().find(|c| c.rows() != rows) {
            Some(_) => Err(ServeError::Tf {
                what: "split the outputs per request".into(),
                message: format!(
                    "an output of the signature is not batch-major (expected {rows} rows)"
                ),
            }),
            None => Ok(cols),
        }
    });
    tracing::debug!(
        rows,
        requests = jobs.len(),
        run_us = started.elapsed().as_micros() as u64,
        ok = result.is_ok(),
        "session run"
    );
    observe(&signature, rows);
    match result {
        Ok(columns) => {
            let output = Arc::new(RunOutput {
                names: model
                    .output_names_of(&signature)
                    .into_iter()
                    .map(String::from)
                    .collect(),
                columns,
                batch_rows: rows,
                batch_requests: jobs.len(),
            });
            let mut start = 0;
            for j in jobs {
                let n = j.batch.rows;
                let _ = j.reply.send(Ok(RowSlice {
                    output: output.clone(),
                    start,
                    rows: n,
                }));
                start += n;
            }
        }
        // one bad request must not fail the others it was merged with: run them alone
        Err(_) if jobs.len() > 1 => {
            for j in jobs {
                run_jobs(model, vec![j], observe);
            }
        }
        Err(e) => {
            for j in jobs {
                let _ = j.reply.send(Err(e.to_string()));
            }
        }
    }
}
