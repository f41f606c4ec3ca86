"""trainyard-serve vs the Flask + gunicorn baseline (benches/serve/flask_server.py) on the same
SavedModels and the same wrk requests; prints a table and the ratios DESIGN.md targets.
Run through benches/serve/run.sh (it prepares wrk, flask/gunicorn, the models, the release build).

  python driver.py --bin BIN --models DIR --pylib DIR --out JSON [--secs 10] [--no-scann]

Both servers run side by side and their measurements alternate (same background load for
both). Before each measurement it samples whole-machine CPU busy% (other processes skew a
2-core machine) and waits up to 120 s for it to drop below 15%; the busy% seen and the load
average are reported with each run.
Only processes started here are signalled, by PID.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "retrieval"


def cpu_busy(sec=1.0):
    def snap():
        v = list(map(int, open("/proc/stat").readline().split()[1:]))
        return sum(v), v[3] + v[4]
    t0, i0 = snap()
    time.sleep(sec)
    t1, i1 = snap()
    return 100.0 * (1 - (i1 - i0) / max(1, t1 - t0))


QUIET_WAIT_S = 120.0


def wait_quiet(limit=15.0, wait_s=None):
    wait_s = QUIET_WAIT_S if wait_s is None else wait_s
    end = time.time() + wait_s
    b = cpu_busy()
    while b > limit and time.time() < end:
        time.sleep(3)
        b = cpu_busy()
    return round(b, 1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


class Server:
    def __init__(self, kind, model_dir, args):
        self.kind = kind
        self.tmp = tempfile.mkdtemp(prefix=f"serve-bench-{kind}-")
        self.log = open(os.path.join(self.tmp, "server.log"), "w")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1")
        if kind == "trainyard":
            ready = os.path.join(self.tmp, "ready.json")
            cmd = [args.bin, "--model", model_dir, "--name", NAME, "--port", "0",
                   "--ready-file", ready, "--python", sys.executable]
            env["TRAINYARD_LOG"] = "warn"
        else:
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            ready_dir = os.path.join(self.tmp, "ready")
            os.makedirs(ready_dir)
            env.update(MODEL_NAME=NAME, MODEL_BASE_PATH=model_dir, READY_DIR=ready_dir,
                       PYTHONPATH=os.pathsep.join([args.pylib, HERE]), CUDA_VISIBLE_DEVICES="")
            # the baseline's command: 2 workers x gthread 4 threads, no --preload (TF is not fork-safe)
            cmd = [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "4",
                   "-b", f"127.0.0.1:{port}", "flask_server:app"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=HERE, stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        end = time.time() + 300
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{kind} server exited: see {self.log.name}")
            if kind == "trainyard" and os.path.exists(ready):
                self.url = json.load(open(ready))["url"]
                break
            if kind == "flask" and len(os.listdir(ready_dir)) >= 2 and http_ok(
                    f"{self.url}/v1/models/{NAME}"):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{kind} server not ready in 300 s")
        self.predict = f"{self.url}/v1/models/{NAME}:predict"

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # our own session: gunicorn and its workers
        except ProcessLookupError:
            pass
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()


def wrk(url, conns, secs):
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency", "-s",
                          os.path.join(HERE, "post.lua"), url],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"WRK_JSON (\{.*\})", out)
    if not m:
        raise RuntimeError(f"no WRK_JSON in wrk output:\n{out}")
    r = json.loads(m.group(1))
    r["errors"] = sum(r[k] for k in r if k.startswith("err_"))
    return r


def predict(url, customer_ids):
    """One request per customer (as the load sends them): [{product_ids, scores}]."""
    out = []
    for c in customer_ids:
        body = json.dumps({"instances": [{"customer_id": c}]}).encode()
        req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            out.append(json.load(r)["predictions"][0])
    return out


def limit(limit_bin, model_dir, secs):
    """The in-process limit (crates/trainyard-serve/examples/serve_limit.rs): the model's query
    signature + MatMul over the candidates + top k, batches of 16/64/256 rows from 1 or 2
    threads, no HTTP; rows/s with the top k in Rust and with TF's TopK."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TRAINYARD_LOG="warn",
               TRAINYARD_PYTHON=sys.executable)
    r = subprocess.run([limit_bin, os.path.join(model_dir, "1"), str(secs)], env=env,
                       capture_output=True, text=True, check=True)
    return json.loads(re.search(r"LIMIT_JSON (\{.*\})", r.stdout).group(1))


def floor(model_dir):
    """The in-process floor of one request: numpy 1x64 @ 64xN + top-100 on one thread (the
    memory-bandwidth bound), and the SavedModel's signature called from Python, p50 ms."""
    code = r"""
import os, json, sys, time
os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                  TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
import numpy as np
n, dim, k = 100_000, 64, 100
rng = np.random.default_rng(0)
emb = rng.normal(size=(n, dim)).astype(np.float32)
q = rng.normal(size=(1, dim)).astype(np.float32)
def p50(f, reps):
    for _ in range(20): f()
    t = []
    for _ in range(reps):
        s = time.perf_counter(); f(); t.append(time.perf_counter() - s)
    return float(np.median(t) * 1e3)
def np_query():
    s = q @ emb.T
    idx = np.argpartition(-s[0], k)[:k]
    return idx[np.argsort(-s[0, idx])]
out = {"numpy_floor_p50_ms": p50(np_query, 300)}
import tensorflow as tf
f = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
ids = [tf.constant([f"C{(i * 7919) % 5000:05d}"]) for i in range(300)]
it = iter(range(10**9))
out["tf_signature_python_p50_ms"] = p50(lambda: f(customer_id=ids[next(it) % 300]), 300)
print("FLOOR_JSON " + json.dumps(out))
"""
    r = subprocess.run([sys.executable, "-c", code, os.path.join(model_dir, "1")],
                       capture_output=True, text=True, check=True)
    return json.loads(re.search(r"FLOOR_JSON (\{.*\})", r.stdout).group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--pylib", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--no-scann", action="store_true")
    ap.add_argument("--limit-bin", help="the serve_limit example (the in-process limit)")
    ap.add_argument("--quiet-wait", type=float, default=120.0,
                    help="seconds to wait for the machine to go quiet before a measurement")
    args = ap.parse_args()
    global QUIET_WAIT_S
    QUIET_WAIT_S = args.quiet_wait
    args.pylib, args.bin = os.path.abspath(args.pylib), os.path.abspath(args.bin)
    args.models = os.path.abspath(args.models)
    models = {"bf_100k": os.path.join(args.models, "bf_100000")}
    if not args.no_scann:
        models["scann_100k"] = os.path.join(args.models, "scann_100000")
    results = {"runs": [], "machine": {"cpus": os.cpu_count()}}
    busy = wait_quiet()
    results["floor"] = dict(floor(models["bf_100k"]), busy_before=busy)
    print("in-process floor:", results["floor"], flush=True)
    if args.limit_bin:
        busy = wait_quiet()
        results["limit"] = dict(limit(args.limit_bin, models["bf_100k"], 1.5), busy_before=busy)
        lim = results["limit"]
        print(f"in-process limit (rows/s): top k in Rust {lim['rust_top_k']['best_rows_per_s']:.0f} "
              f"(batch {lim['rust_top_k']['best_rows']} x {lim['rust_top_k']['best_callers']} "
              f"threads), TF's TopK {lim['session_top_k']['best_rows_per_s']:.0f}", flush=True)
    probe = [f"C{i:05d}" for i in range(0, 5000, 25)]
    answers = {}
    for model, mdir in models.items():
        # both servers up at once and their runs interleaved, so drifting background load
        # falls on both alike; an idle server sleeps (TF threads stop spinning within ms)
        servers = {}
        try:
            for kind in ["flask", "trainyard"]:
                servers[kind] = Server(kind, mdir, args)
            answers[model] = {kind: predict(srv.predict, probe) for kind, srv in servers.items()}
            for srv in servers.values():
                wrk(srv.predict, 16, 3)  # warm-up
            for conns in [1, 16]:
                for kind, srv in servers.items():
                    time.sleep(1)
                    busy = wait_quiet()
                    r = wrk(srv.predict, conns, args.secs)
                    r.update(server=kind, model=model, conns=conns, busy_before=busy,
                             loadavg_1m_after=float(open("/proc/loadavg").read().split()[0]))
                    results["runs"].append(r)
                    print(f"{model:11s} {kind:9s} c={conns:2d}: {r['rps']:8.1f} req/s  "
                          f"p50 {r['p50_ms']:7.3f} ms  p99 {r['p99_ms']:7.3f} ms  "
                          f"errors {r['errors']}  busy-before {busy}%  load {r['loadavg_1m_after']}",
                          flush=True)
        finally:
            for kind, srv in servers.items():
                rc = srv.stop()
                if kind == "trainyard":
                    results.setdefault("sigterm_exit", {})[model] = rc
    # brute force: trainyard-serve (top k in Rust) answers as the model does in TF (Flask)
    bf_t, bf_f = answers["bf_100k"]["trainyard"], answers["bf_100k"]["flask"]
    results["bf_identical_to_tf"] = {
        "rows": len(bf_t),
        "ids_equal": sum(a["product_ids"] == b["product_ids"] for a, b in zip(bf_t, bf_f)),
        "max_abs_score_diff": max(abs(x - y) for a, b in zip(bf_t, bf_f)
                                  for x, y in zip(a["scores"], b["scores"])),
    }
    if "scann_100k" in answers:
        bf = [a["product_ids"] for a in bf_t]
        sc = [a["product_ids"] for a in answers["scann_100k"]["trainyard"]]
        results["scann_recall_at_100_vs_bruteforce"] = sum(
            len(set(a) & set(b)) / len(a) for a, b in zip(bf, sc)) / len(bf)
        check = os.path.join(args.models, "check.json")
        if os.path.exists(check):
            results["scann_settings"] = json.load(open(check)).get("scann")

    def get(model, kind, conns):
        return next(r for r in results["runs"]
                    if (r["model"], r["server"], r["conns"]) == (model, kind, conns))

    ratios = {}
    for model in models:
        f16, t16 = get(model, "flask", 16), get(model, "trainyard", 16)
        f1, t1 = get(model, "flask", 1), get(model, "trainyard", 1)
        ratios[model] = {
            "c16_rps_ratio": t16["rps"] / f16["rps"],
            "c16_p99_ratio": t16["p99_ms"] / f16["p99_ms"],
            "c1_p50_ratio_vs_flask": t1["p50_ms"] / f1["p50_ms"],
            "c1_p50_over_numpy_floor": t1["p50_ms"] / results["floor"]["numpy_floor_p50_ms"],
            "c1_p50_over_tf_signature_in_python":
                t1["p50_ms"] / results["floor"]["tf_signature_python_p50_ms"],
        }
    results["ratios"] = ratios
    with open(args.out, "w") as fh:
        json.dump(results, fh, indent=1)

    print("\n| model | server | conns | req/s | p50 ms | p90 ms | p99 ms | errors | busy% before | load 1m |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results["runs"]:
        print(f"| {r['model']} | {r['server']} | {r['conns']} | {r['rps']:.0f} | {r['p50_ms']:.2f} "
              f"| {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | {r['busy_before']} "
              f"| {r['loadavg_1m_after']} |")
    fl = results["floor"]
    print(f"\nin-process floor: numpy (1 thread) p50 {fl['numpy_floor_p50_ms']:.3f} ms; "
          f"TF signature from Python p50 {fl['tf_signature_python_p50_ms']:.3f} ms")
    if "limit" in results:
        lim = results["limit"]
        best = max(lim["rust_top_k"]["best_rows_per_s"], lim["session_top_k"]["best_rows_per_s"])
        t16 = get("bf_100k", "trainyard", 16)["rps"]
        ratios["bf_100k"]["c16_rps_over_limit"] = t16 / best
        print(f"in-process limit, brute force 100k (batched MatMul + top k, both cores, no "
              f"HTTP): {best:.0f} rows/s (top k in Rust {lim['rust_top_k']['best_rows_per_s']:.0f}, "
              f"TF's TopK {lim['session_top_k']['best_rows_per_s']:.0f})")
    idt = results["bf_identical_to_tf"]
    print(f"bf_100k answers vs TF (Flask) on {idt['rows']} customers: ids equal in "
          f"{idt['ids_equal']}, max |score diff| {idt['max_abs_score_diff']:.2e}")
    for model, r in ratios.items():
        lim_txt = (f", {r['c16_rps_over_limit']:.2f} of the in-process limit"
                   if "c16_rps_over_limit" in r else "")
        print(f"{model}: c=16 req/s {r['c16_rps_ratio']:.2f}x Flask (target >= 5x){lim_txt}, "
              f"p99 {r['c16_p99_ratio']:.3f} of Flask's (target <= 0.333); "
              f"c=1 p50 {r['c1_p50_over_numpy_floor']:.2f}x the numpy floor (target <= 1.3x), "
              f"{r['c1_p50_ratio_vs_flask']:.2f}x Flask's")
    if "scann_recall_at_100_vs_bruteforce" in results:
        print(f"ScaNN recall@100 vs brute force (through trainyard-serve): "
              f"{results['scann_recall_at_100_vs_bruteforce']:.3f} (target >= 0.95); index "
              f"{results.get('scann_settings')}")
    print(f"trainyard-serve exit status after SIGTERM: {results.get('sigterm_exit')}")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
