#!/usr/bin/env python3
"""Every shell block of README.md and docs/ against the code of today (make test-docs).

usage: doc_blocks.py TRAINYARD_BIN                  check the docs (exit 1 when stale)
       doc_blocks.py --cli-reference TRAINYARD_BIN  print docs/reference/cli.md

Besides the blocks: docs/reference/cli.md must be what --cli-reference prints today (every
command's --help), and every TRAINYARD_* variable the crates read must appear in the docs.

Each ```sh block is read line by line (backslash continuations joined, comments dropped):
- `trainyard ...`: the subcommand path must exist (`trainyard <path> --help` succeeds) and
  every `--flag` on the line must be an option of that command or a global one;
- `make T...`: every target must exist (`make -n T` succeeds; nothing runs);
- `cargo ... -p CRATE [--example E]`: the crate and the example must exist;
- other lines (export, cd, python ...) are not checked.
A block right after a `<!-- doc-test: run -->` line is also RUN, as written, with bash -e in a
fresh directory (the repository's examples/ and crates/ linked into it; `trainyard` on PATH):
those blocks are the ones a reader can paste without TensorFlow or a server. A block after
`<!-- doc-test: run, continued -->` runs after the previous run block of the same page, in its
directory (a tour told in several blocks). Endpoints a page's blocks deployed and left running
(a block that failed half-way) are undeployed when its blocks are done.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_MARK = "<!-- doc-test: run -->"
CONTINUE_MARK = "<!-- doc-test: run, continued -->"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path):
    """(first line number, run, [lines]) of every sh block; run is None, "run" or "continued"."""
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() in ("```sh", "```bash", "```shell"):
            mark = lines[i - 1].strip() if i > 0 else ""
            run = {RUN_MARK: "run", CONTINUE_MARK: "continued"}.get(mark)
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            yield start + 1, run, lines[start:j]
            i = j
        i += 1


def commands(block: list[str]) -> list[str]:
    out, cur = [], ""
    for line in block:
        if cur:
            cur += " " + line.strip()
        else:
            cur = line.strip()
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        cmd = strip_comment(cur)
        if cmd:
            out.append(cmd)
        cur = ""
    return out


def strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a # outside quotes, after whitespace)."""
    quote = None
    for k, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or line[k - 1].isspace()):
            return line[:k].strip()
    return line.strip()


@lru_cache(maxsize=None)
def help_of(binary: str, path: tuple[str, ...]) -> str | None:
    r = subprocess.run([binary, *path, "--help"], capture_output=True, text=True,
                       env={**os.environ, "NO_COLOR": "1"})
    return r.stdout if r.returncode == 0 else None


def subcommands(help_text: str) -> set[str]:
    names, inside = set(), False
    for line in help_text.splitlines():
        if line.startswith("Commands:"):
            inside = True
            continue
        if inside:
            if not line.startswith("  "):
                break
            names.add(line.split()[0])
    return names


def options(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", help_text))


def check_trainyard(binary: str, words: list[str]) -> str | None:
    root = help_of(binary, ())
    if root is None:
        return f"{binary} --help fails"
    globals_ = options(root)
    path: list[str] = []
    helptext = root
    k = 1
    while k < len(words):
        w = words[k]
        if w.startswith("-"):
            # a global option's value is the next word (--project DIR, --backend B)
            if w in ("--project", "--backend", "--format") and "=" not in w:
                k += 1
            k += 1
            continue
        if w in subcommands(helptext):
            path.append(w)
            found = help_of(binary, tuple(path))
            if found is None:
                return f"`trainyard {' '.join(path)} --help` fails"
            helptext = found
            k += 1
            continue
        break
    rest = [w for w in words[k:] if not w.startswith("-")]
    subs = subcommands(helptext) - {"help"}
    if subs and rest and rest[0] not in subs and rest[0] != "...":
        return f"`{rest[0]}` is not a subcommand of `trainyard {' '.join(path)}`"
    known = options(helptext) | globals_ | {"--help", "--version"}
    for w in words[1:]:
        if w.startswith("--"):
            flag = w.split("=", 1)[0]
            if flag not in known:
                return f"`{flag}` is not an option of `trainyard {' '.join(path)}`"
    if not path and len(words) > 1 and not words[1].startswith("-"):
        return f"`{words[1]}` is not a trainyard command"
    return None


def check_make(words: list[str]) -> str | None:
    targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    if not targets:
        return None
    r = subprocess.run(["make", "-n", "-C", str(ROOT), *targets], capture_output=True, text=True)
    if r.returncode != 0:
        return f"make -n {' '.join(targets)}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
    return None


def check_cargo(words: list[str]) -> str | None:
    crate = None
    for k, w in enumerate(words):
        if w in ("-p", "--package") and k + 1 < len(words):
            crate = words[k + 1]
    if crate is None:
        return None
    dirs = [p for p in [ROOT / "crates" / crate, ROOT / "tests", ROOT / "bindings" / "python"]
            if (p / "Cargo.toml").is_file() and f'name = "{crate}"' in (p / "Cargo.toml").read_text()]
    if not dirs:
        return f"no workspace crate {crate}"
    if "--example" in words:
        ex = words[words.index("--example") + 1]
        if not (dirs[0] / "examples" / f"{ex}.rs").is_file():
            return f"no example {ex} in {crate}"
    return None


def run_blocks(binary: str, blocks_: list[tuple[str, list[str]]]) -> str | None:
    """Runs (where, lines) blocks one after the other in one fresh directory; the first that
    fails ends the run. Endpoints left deployed there are undeployed whatever the outcome."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("examples", "crates"):
            os.symlink(ROOT / name, Path(tmp) / name)
        env = {**os.environ, "PATH": f"{Path(binary).parent}:{os.environ['PATH']}", "NO_COLOR": "1"}
        try:
            for where, block in blocks_:
                r = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(block)], cwd=tmp,
                                   capture_output=True, text=True, env=env, timeout=180)
                if r.returncode != 0:
                    return f"{where}: the block exits {r.returncode}:\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
        finally:
            undeploy_all(binary, Path(tmp), env)
    return None


def undeploy_all(binary: str, tmp: Path, env: dict[str, str]) -> None:
    """Stops the endpoints of every project under `tmp` (depth 2) that are still up."""
    for toml in [*tmp.glob("trainyard.toml"), *tmp.glob("*/trainyard.toml"),
                 *tmp.glob("*/*/trainyard.toml")]:
        project = str(toml.parent)
        r = subprocess.run([binary, "--project", project, "endpoints", "--json"],
                           capture_output=True, text=True, env=env, timeout=60)
        if r.returncode != 0:
            continue
        try:
            endpoints = json.loads(r.stdout)
        except ValueError:
            continue
        for ep in endpoints:
            if ep.get("is_active") or ep.get("serving"):
                subprocess.run([binary, "--project", project, "undeploy", ep["service_name"]],
                               capture_output=True, text=True, env=env, timeout=60)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env.update(NO_COLOR="1", COLUMNS="100")
    return env


def cli_reference(binary: str) -> str:
    out = ["# CLI reference",
           "",
           "<!-- Generated by `python3 scripts/doc_blocks.py --cli-reference target/debug/trainyard`",
           "     (make docs-reference); make test-docs fails when it differs from the CLI. -->",
           "",
           "Every command and command group of `trainyard`, as its `--help` prints it. The guides",
           "show them at work: [quickstart](../guide/quickstart.md), [concepts](../guide/concepts.md),",
           "[Google Cloud](../guide/google-cloud.md), [reports](../guide/reports.md).",
           ""]

    def walk(path: list[str]) -> None:
        r = subprocess.run([binary, *path, "--help"], capture_output=True, text=True,
                           env=clean_env())
        if r.returncode != 0:
            raise SystemExit(f"{binary} {' '.join(path)} --help failed: {r.stderr}")
        title = " ".join(["trainyard", *path])
        out.extend([f"{'#' * min(2 + len(path), 4)} `{title}`", "", "```text",
                    r.stdout.rstrip(), "```", ""])
        for sub in sorted(subcommands(r.stdout) - {"help"}):
            walk([*path, sub])

    walk([])
    return "\n".join(out)


def env_vars_read() -> set[str]:
    found: set[str] = set()
    for p in (ROOT / "crates").glob("*/src/**/*.rs"):
        found |= set(re.findall(r'"(TRAINYARD_[A-Z0-9_]+)"', p.read_text()))
    return found


def main() -> int:
    if sys.argv[1] == "--cli-reference":
        print(cli_reference(str(Path(sys.argv[2]).resolve())))
        return 0
    binary = str(Path(sys.argv[1]).resolve())
    problems: list[str] = []
    n_blocks = n_checked = n_run = 0
    for path in doc_files():
        rel = path.relative_to(ROOT)
        # the run blocks of this page, grouped: a continued block joins the group before it
        groups: list[list[tuple[str, list[str]]]] = []
        for line_no, run, block in blocks(path):
            n_blocks += 1
            for cmd in commands(block):
                try:
                    words = shlex.split(cmd)
                except ValueError as e:
                    problems.append(f"{rel}:{line_no}: cannot split `{cmd}`: {e}")
                    continue
                if not words:
                    continue
                # a leading VAR=value prefix
                while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                    words = words[1:]
                if not words:
                    continue
                head = words[0]
                if head == "trainyard":
                    err = check_trainyard(binary, words)
                elif head == "make":
                    err = check_make(words)
                elif head == "cargo":
                    err = check_cargo(words)
                else:
                    continue
                n_checked += 1
                if err:
                    problems.append(f"{rel}:{line_no}: {err}\n    {cmd}")
            if run == "continued" and not groups:
                problems.append(f"{rel}:{line_no}: a continued run block with no run block before it")
            elif run == "continued":
                groups[-1].append((f"{rel}:{line_no}", block))
            elif run == "run":
                groups.append([(f"{rel}:{line_no}", block)])
        for group in groups:
            n_run += len(group)
            err = run_blocks(binary, group)
            if err:
                problems.append(err)
    reference = ROOT / "docs/reference/cli.md"
    if not reference.is_file() or reference.read_text() != cli_reference(binary) + "\n":
        problems.append("docs/reference/cli.md is stale: run make docs-reference")
    docs = "\n".join(p.read_text() for p in doc_files())
    for var in sorted(env_vars_read()):
        if var not in docs:
            problems.append(f"{var} is read by the code but appears in no doc")
    for p in problems:
        print(p)
    print(f"docs: {n_blocks} shell blocks, {n_checked} commands checked, {n_run} blocks run,"
          f" {len(problems)} stale")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
