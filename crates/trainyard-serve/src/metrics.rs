//! Prometheus metrics (text exposition format 0.0.4), served at
//! `/monitoring/prometheus/metrics` like TF Serving's monitoring endpoint:
//!   trainyard_serve_request_count{model_name, version, signature_name, protocol, status}
//!       (signature_name is empty for a request refused before its signature was known)
//!   trainyard_serve_request_latency_seconds{model_name, version, signature_name, protocol}
//!       (histogram: _bucket{le}, _sum, _count; from arrival to the answer's rows)
//!   trainyard_serve_batch_size{model_name, version, signature_name}
//!       (histogram of rows per session run)
//!   trainyard_serve_model_state{model_name, version, state} (1 for the version's state)
//!   trainyard_serve_warmup_requests{model_name, version} (replayed before AVAILABLE)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the batch size buckets, in rows.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last slot is +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c;
            let le = match self.bounds.get(i) {
                Some(b) => format_float(*b),
                None => "+Inf".into(),
            };
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", format_float(self.sum));
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

fn format_float(v: f64) -> String {
    if v.is_finite() && v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// A label value escaped for the text format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A model version's load state, as TF Serving reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LoadState {
    Start,
    Loading,
    Available,
    Unloading,
    End,
}

impl LoadState {
    pub const ALL: [LoadState; 5] = [
        LoadState::Start,
        LoadState::Loading,
        LoadState::Available,
        LoadState::Unloading,
        LoadState::End,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LoadState::Start => "START",
            LoadState::Loading => "LOADING",
            LoadState::Available => "AVAILABLE",
            LoadState::Unloading => "UNLOADING",
            LoadState::End => "END",
        }
    }
}

type RequestKey = (String, u64, String, &'static str, String);
type LatencyKey = (String, u64, String, &'static str);
type BatchKey = (String, u64, String);

#[derive(Default)]
struct State {
    requests: BTreeMap<RequestKey, u64>,
    latency: BTreeMap<LatencyKey, Histogram>,
    batch: BTreeMap<BatchKey, Histogram>,
    load: BTreeMap<(String, u64), LoadState>,
    warmup: BTreeMap<(String, u64), u64>,
}

/// The server's metrics, shared by the REST and gRPC front ends and the batch threads.
#[derive(Default)]
pub struct Metrics {
    state: Mutex<State>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// One finished request, for [`Metrics::record_request`].
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord<'a> {
    pub model: &'a str,
    pub version: u64,
    pub signature: &'a str,
    /// `rest` or `grpc`.
    pub protocol: &'static str,
    /// `OK`, `INVALID_ARGUMENT`, `INTERNAL`, ... (TF Serving's status names).
    pub status: &'a str,
    pub latency: Duration,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record_request(&self, r: RequestRecord<'_>) {
        let mut st = self.lock();
        *st.requests
            .entry((
                r.model.to_string(),
                r.version,
                r.signature.to_string(),
                r.protocol,
                r.status.to_string(),
            ))
            .or_default() += 1;
        st.latency
            .entry((
                r.model.to_string(),
                r.version,
                r.signature.to_string(),
                r.protocol,
            ))
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(r.latency.as_secs_f64());
    }

    pub fn record_batch(&self, model: &str, version: u64, signature: &str, rows: usize) {
        self.lock()
            .batch
            .entry((model.to_string(), version, signature.to_string()))
            .or_insert_with(|| Histogram::new(BATCH_BUCKETS))
            .observe(rows as f64);
    }

    pub fn set_load_state(&self, model: &str, version: u64, state: LoadState) {
        self.lock().load.insert((model.to_string(), version), state);
    }

    pub fn record_warmup(&self, model: &str, version: u64, requests: usize) {
        self.lock()
            .warmup
            .insert((model.to_string(), version), requests as u64);
    }

    /// Requests counted so far with these labels (for tests and logs).
    pub fn request_count(&self, model: &str, signature: &str, status: &str) -> u64 {
        self.lock()
            .requests
            .iter()
            .filter(|((m, _, s, _, st), _)| m == model && s == signature && st == status)
            .map(|(_, n)| n)
            .sum()
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let st = self.lock();
        let mut out = String::new();
        out.push_str(
            "# HELP trainyard_serve_request_count Predict requests answered, by outcome.\n\
             # TYPE trainyard_serve_request_count counter\n",
        );
        for ((m, v, s, p, status), n) in &st.requests {
            let _ = writeln!(
                out,
                "trainyard_serve_request_count{{model_name=\"{}\",version=\"{v}\",signature_name=\"{}\",protocol=\"{p}\",status=\"{}\"}} {n}",
                esc(m),
                esc(s),
                esc(status)
            );
        }
        out.push_str(
            "# HELP trainyard_serve_request_latency_seconds Predict latency from arrival to answer.\n\
             # TYPE trainyard_serve_request_latency_seconds histogram\n",
        );
        for ((m, v, s, p), h) in &st.latency {
            let labels = format!(
                "model_name=\"{}\",version=\"{v}\",signature_name=\"{}\",protocol=\"{p}\"",
                esc(m),
                esc(s)
            );
            h.render(&mut out, "trainyard_serve_request_latency_seconds", &labels);
        }
        out.push_str(
            "# HELP trainyard_serve_batch_size Rows per session run (merged requests).\n\
             # TYPE trainyard_serve_batch_size histogram\n",
        );
        for ((m, v, s), h) in &st.batch {
            let labels = format!(
                "model_name=\"{}\",version=\"{v}\",signature_name=\"{}\"",
                esc(m),
                esc(s)
            );
            h.render(&mut out, "trainyard_serve_batch_size", &labels);
        }
        out.push_str(
            "# HELP trainyard_serve_model_state 1 for the load state each model version is in.\n\
             # TYPE trainyard_serve_model_state gauge\n",
        );
        for ((m, v), state) in &st.load {
            for s in LoadState::ALL {
                let _ = writeln!(
                    out,
                    "trainyard_serve_model_state{{model_name=\"{}\",version=\"{v}\",state=\"{}\"}} {}",
                    esc(m),
                    s.as_str(),
                    u8::from(s == *state)
                );
            }
        }
        out.push_str(
            "# HELP trainyard_serve_warmup_requests Warm-up requests replayed before a version served.\n\
             # TYPE trainyard_serve_warmup_requests gauge\n",
        );
        for ((m, v), n) in &st.warmup {
            let _ = writeln!(
                out,
                "trainyard_serve_warmup_requests{{model_name=\"{}\",version=\"{v}\"}} {n}",
                esc(m)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, labels, value) of every sample line; panics on a malformed line.
    fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
        let mut out = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}').expect("closing brace")),
                None => (series, ""),
            };
            let mut map = BTreeMap::new();
            for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                map.insert(k.to_string(), v.trim_end_matches('"').to_string());
            }
            let v = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect("a number"),
            };
            out.push((name.to_string(), map, v));
        }
        out
    }

    #[test]
    fn counts_latency_buckets_and_batch_sizes_render_as_prometheus_text() {
        let m = Metrics::new();
        m.set_load_state("rec", 3, LoadState::Available);
        for (ms, status) in [(2, "OK"), (40, "OK"), (3000, "INVALID_ARGUMENT")] {
            m.record_request(RequestRecord {
                model: "rec",
                version: 3,
                signature: "serving_default",
                protocol: "rest",
                status,
                latency: Duration::from_millis(ms),
            });
        }
        m.record_batch("rec", 3, "serving_default", 5);
        m.record_batch("rec", 3, "serving_default", 64);
        assert_eq!(m.request_count("rec", "serving_default", "OK"), 2);
        let text = m.render();
        let s = samples(&text);
        let find = |name: &str, want: &[(&str, &str)]| {
            s.iter()
                .find(|(n, l, _)| {
                    n == name
                        && want
                            .iter()
                            .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
                })
                .unwrap_or_else(|| panic!("no {name} {want:?} in\n{text}"))
                .2
        };
        assert_eq!(
            find(
                "trainyard_serve_request_count",
                &[("status", "OK"), ("version", "3"), ("protocol", "rest")]
            ),
            2.0
        );
        let lat = "trainyard_serve_request_latency_seconds_bucket";
        assert_eq!(find(lat, &[("le", "0.0025")]), 1.0);
        assert_eq!(find(lat, &[("le", "0.05")]), 2.0);
        assert_eq!(find(lat, &[("le", "2.5")]), 2.0);
        assert_eq!(find(lat, &[("le", "+Inf")]), 3.0);
        assert_eq!(
            find("trainyard_serve_request_latency_seconds_count", &[]),
            3.0
        );
        let sum = find("trainyard_serve_request_latency_seconds_sum", &[]);
        assert!((sum - 3.042).abs() < 1e-9, "{sum}");
        assert_eq!(
            find("trainyard_serve_batch_size_bucket", &[("le", "4.0")]),
            0.0
        );
        assert_eq!(
            find("trainyard_serve_batch_size_bucket", &[("le", "8.0")]),
            1.0
        );
        assert_eq!(
            find("trainyard_serve_batch_size_bucket", &[("le", "64.0")]),
            2.0
        );
        assert_eq!(find("trainyard_serve_batch_size_sum", &[]), 69.0);
        assert_eq!(
            find(
                "trainyard_serve_model_state",
                &[("state", "AVAILABLE"), ("version", "3")]
            ),
            1.0
        );
        assert_eq!(
            find("trainyard_serve_model_state", &[("state", "LOADING")]),
            0.0
        );
        // every histogram's buckets are cumulative and end at _count
        assert!(text.contains("# TYPE trainyard_serve_batch_size histogram"));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.set_load_state("a\"b\\c", 1, LoadState::Loading);
        let text = m.render();
        assert!(
            text.contains(r#"model_name="a\"b\\c""#),
            "label not escaped:\n{text}"
        );
    }
}
