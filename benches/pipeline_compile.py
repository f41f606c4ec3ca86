"""Vertex IR compile: trainyard (Rust, native) vs TFX 1.16 KubeflowV2DagRunner, same pipeline,
measured in one command. Not a test: prints times and ratios.

  make pyenv && cargo build --release -p trainyard-cli && cargo build --release -p trainyard-pipeline --benches
  .venv-tf/bin/python benches/pipeline_compile.py

Cold: a fresh process compiles once (`trainyard pipeline compile` vs a Python process that
imports TFX and compiles). Warm: the compile call alone in a process that has done it before
(packaging the user modules into wheels included on both sides)."""
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
TRAINYARD = os.path.join(REPO, "target/release/trainyard")
GOLDEN = os.path.join(REPO, "crates/trainyard-pipeline/tests/golden/compile_with_tfx.py")
RUN = os.path.join(REPO, "examples/tour/retrieval_run.json")
COLD_RUNS = int(os.environ.get("COLD_RUNS", "5"))


def bench_binary():
    found = [p for p in glob.glob(os.path.join(REPO, "target/release/deps/compile-*")) if os.access(p, os.X_OK) and not p.endswith(".d")]
    if not found:
        sys.exit("build it first: cargo build --release -p trainyard-pipeline --benches")
    return max(found, key=os.path.getmtime)


def timed(cmd, **kw):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def main():
    work = tempfile.mkdtemp(prefix="ty-bench-")
    # The pipeline both sides compile: trainyard's inputs for the tour's retrieval run.
    inputs_path = os.path.join(work, "inputs.json")
    out = os.path.join(work, "job.json")
    subprocess.run([TRAINYARD, "pipeline", "compile", "--run", RUN, "--target", "vertex", "--out", out,
                    "--pipeline-root", os.path.join(work, "root")], check=True, stdout=subprocess.DEVNULL)
    # Rebuild the same PipelineInputs JSON the golden script reads, from the compiled modules.
    job = json.load(open(out))
    cc = json.loads(job["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])
    local = os.path.join(work, "local")
    subprocess.run([TRAINYARD, "pipeline", "compile", "--run", RUN, "--target", "local", "--out", local], check=True, stdout=subprocess.DEVNULL)
    modules = {n: open(os.path.join(local, n)).read() for n in ("transform_module.py", "trainer_module.py", "trainyard_trainer_support.py")}
    inputs = {
        "name": job["displayName"], "pipeline_root": os.path.join(work, "root"),
        "data": {"kind": "csv", "path": "/tmp/data"}, "model_type": "retrieval", "modules": modules,
        "training": {"epochs": cc["epochs"], "batch_size": cc["batch_size"], "learning_rate": cc["learning_rate"],
                     "optimizer": cc["optimizer"], "early_stopping": cc["early_stopping"]},
        "gpu": {"gpu_enabled": False, "gpu_type": "NVIDIA_TESLA_T4", "gpu_count": 2, "machine_type": "n1-standard-16",
                "preemptible": False, "training_region": None},
        "evaluator": {"enabled": True, "blessing_metric": "recall_at_100", "blessing_threshold": 0.05},
        "serving_dir": os.path.join(work, "serving"), "project": "", "region": "", "tfx_image": "tfx", "trainer_image": "tfx",
        "labels": {},
    }
    json.dump(inputs, open(inputs_path, "w"))

    env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
    rust_cold = [timed([TRAINYARD, "pipeline", "compile", "--run", RUN, "--target", "vertex", "--out", out,
                        "--pipeline-root", os.path.join(work, "root")]) for _ in range(COLD_RUNS)]
    tfx_cold = [timed([PY, GOLDEN, inputs_path, os.path.join(work, "tfx.json")], env=env) for _ in range(COLD_RUNS)]

    rust_warm = float(subprocess.run([bench_binary(), inputs_path, "500"], check=True, capture_output=True, text=True)
                      .stdout.split()[-1])
    # TFX warm: compile repeatedly inside one process (imports done, wheels rebuilt each time as TFX does).
    warm_script = f"""
import runpy, sys, time
sys.argv = ["x", {inputs_path!r}, {os.path.join(work, "tfx-warm.json")!r}]
runpy.run_path({GOLDEN!r})
times = []
for _ in range(5):
    t = time.perf_counter(); runpy.run_path({GOLDEN!r}); times.append(time.perf_counter() - t)
times.sort(); print("TFX_WARM_SECONDS", times[len(times) // 2])
"""
    tfx_warm = float(subprocess.run([PY, "-c", warm_script], env=env, check=True, capture_output=True, text=True)
                     .stdout.split()[-1])

    rc, tc = statistics.median(rust_cold), statistics.median(tfx_cold)
    print(f"cold process : trainyard {rc * 1000:8.1f} ms   TFX {tc * 1000:8.1f} ms   ratio {tc / rc:7.1f}x")
    print(f"warm call    : trainyard {rust_warm * 1000:8.3f} ms   TFX {tfx_warm * 1000:8.1f} ms   ratio {tfx_warm / rust_warm:7.1f}x")
    print(f"(medians; cold over {COLD_RUNS} processes each, warm over 500 / 5 calls)")


if __name__ == "__main__":
    main()
