"""Awaitables, GIL release and fork safety of the native runtime."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import complete

import trainyard
from trainyard import NotFound, ValidationError


def test_awaitables(project: Path) -> None:
    async def main() -> None:
        p = await trainyard.Platform.init_async(project)
        runs = await asyncio.gather(*(p.training.create_async("m") for _ in range(10)))
        assert sorted(r.run_number for r in runs) == list(range(1, 11))
        got = await p.training.get_async(runs[0].id)
        assert got == runs[0]
        page = await p.training.list_async(page_size=3)
        assert (page.total, len(page)) == (10, 3)
        with pytest.raises(NotFound, match="training run 99 not found"):
            await p.training.get_async(99)
        with pytest.raises(ValidationError):
            await p.training.create_async("")
        sched = await p.schedules.create_from_run_async(
            runs[0].id, {"name": "d", "schedule_type": "daily", "schedule_time": "03:00"}
        )
        assert (await p.schedules.get_async(sched.id)).name == "d"
        assert len(await p.schedules.upcoming_async(sched.id, 4)) == 4
        await p.schedules.delete_async(sched.id)
        with pytest.raises(NotFound):
            await p.schedules.get_async(sched.id)
        models = await p.registry.list_async()
        assert [m.model_name for m in models] == ["m"]
        reopened = await trainyard.Platform.open_async(project)
        assert (await reopened.training.history_async(runs[0].id)) == []

    asyncio.run(main())


def test_awaitable_needs_a_running_loop(platform: trainyard.Platform) -> None:
    with pytest.raises(RuntimeError, match="no running event loop"):
        platform.training.get_async(1)


def test_cancelled_awaitable_is_harmless(platform: trainyard.Platform) -> None:
    errors: list[Any] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        fut = platform.training.create_async("m")
        fut.cancel()
        await asyncio.sleep(0.3)  # the result arrives for a cancelled future
        assert (await platform.training.list_async()).total == 1

    asyncio.run(main())
    assert errors == []


def test_exit_with_awaitables_never_awaited(tmp_path: Path) -> None:
    """Results that arrive after their loop closed, or while the interpreter shuts down, are
    dropped quietly: the process exits cleanly."""
    script = tmp_path / "exit.py"
    script.write_text(
        "import asyncio, sys, trainyard\n"
        "p = trainyard.Platform.init(sys.argv[1])\n"
        "async def main():\n"
        "    for _ in range(30):\n"
        "        p.training.create_async('m')\n"
        "asyncio.run(main())\n"
        "print('bye')\n"
    )
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "p")], capture_output=True, text=True, timeout=60
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, "bye\n", "")


def test_blocking_calls_release_the_gil(platform: trainyard.Platform) -> None:
    """With the interpreter's forced GIL switches off, another Python thread only runs while
    the calling thread gives the GIL away: here, inside each native call."""
    stop = threading.Event()
    ticks = 0

    def spin() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0)

    old = sys.getswitchinterval()
    spinner = threading.Thread(target=spin)
    spinner.start()
    sys.setswitchinterval(1000.0)
    try:
        before = ticks
        for _ in range(20):
            platform.training.get(platform.training.create("m").id)
        during = ticks - before
    finally:
        sys.setswitchinterval(old)
        stop.set()
        spinner.join()
    assert during >= 20, during


def _stacks(pid: int) -> str:
    """Native stacks of a stuck child, when gdb is there (diagnostics for a hang)."""
    gdb = shutil.which("gdb")
    if gdb is None:
        return "(no gdb to show the child's stacks)"
    done = subprocess.run(
        [gdb, "-p", str(pid), "-batch", "-ex", "thread apply all bt 25"],
        capture_output=True, text=True, timeout=60,
    )
    return done.stdout[-12000:]


def _in_child(body: Any, deadline: float = 30.0) -> int:
    """Runs body() in a forked child and returns its exit status; a child still running after
    `deadline` seconds has its stacks printed, is killed, and counts as a failure."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's outcome is its exit code
        code = 1
        try:
            body()
            code = 0
        except BaseException as e:  # noqa: BLE001
            print("child failed:", repr(e), flush=True)
        os._exit(code)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    print(f"child {pid} hung; its stacks:\n{_stacks(pid)}", flush=True)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -1


def test_platform_survives_fork(platform: trainyard.Platform) -> None:
    first = platform.training.create("m")  # the runtime and the store are live before the fork
    complete(platform, first.id)

    def child() -> None:
        run = platform.training.create("m")  # the parent's Platform object, used in the child
        assert run.run_number == 2, run
        assert platform.training.get(first.id).status == "completed"
        assert len(platform.registry.versions(run.registered_model_id or 0)) == 2

        async def go() -> int:
            return (await platform.training.list_async()).total

        assert asyncio.run(go()) == 2

    assert _in_child(child) == 0
    # The parent's runtime and store still work, and see the child's run.
    assert platform.training.list().total == 2
    assert platform.training.create("m").run_number == 3


def test_child_can_open_its_own_platform(project: Path, platform: trainyard.Platform) -> None:
    platform.training.create("m")

    def child() -> None:
        p = trainyard.Platform.open(project)
        assert p.training.list().total == 1
        p.training.create("from-child")

    assert _in_child(child) == 0
    assert platform.training.list(search="from-child").total == 1


def test_forks_right_after_calls(platform: trainyard.Platform) -> None:
    """Fork immediately after each call, many times: the at-fork hook lets the background work
    of the call (its pool connection going back) finish, so no child inherits a held lock."""
    from trainyard import _native

    for i in range(20):
        run = platform.training.create("m")
        platform.training.handle_event(run.id, {"event": "stage_started", "stage": "train"})

        def child() -> None:
            assert platform.training.create("c").status == "pending"

        assert _in_child(child) == 0, f"fork {i}"
    assert _native._before_fork() is True, "idle: no call in flight"
    _native._after_fork()  # the hooks pair up; SQLite's locks are free again
    assert platform.training.list(search="c").total == 20


def test_forks_while_dropped_platforms_close_their_stores(project: Path, platform: trainyard.Platform) -> None:
    """A platform dropped just before a fork closes its SQLite connections on background
    threads; the at-fork hooks keep SQLite's global locks out of their hands at the fork."""
    for i in range(20):
        other = trainyard.Platform.open(project)
        other.training.list()
        del other
        gc.collect()

        def child() -> None:
            platform.training.create("c")

        assert _in_child(child) == 0, f"fork {i}"
    assert platform.training.list().total == 20


def test_failing_child_reports_failure(platform: trainyard.Platform) -> None:
    def child() -> None:
        platform.training.get(12345)

    assert _in_child(child) == 1, "the fork helper would not hide a failure"
