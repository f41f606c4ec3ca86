"""Writes the generated sections of python/trainyard/_native.pyi: the stub lines of every
operation the bindings declare through `service_methods!` / `function_twins!`
(bindings/python/src/macros.rs), each blocking method and its `<name>_async` twin (same
parameters, returning `Future[...]` of the blocking method's type), from the signatures declared
next to the operations (`as stub("params" -> "return type")`), read from the installed wheel:
trainyard._native._stubs().

    python scripts/gen-stubs.py STUB            # (re)write the generated sections of STUB
    python scripts/gen-stubs.py --check STUB    # exit 1 with a diff when STUB is stale

Run it with the Python that has the freshly built wheel (`make python-stubs` does; `make
test-python` runs the --check). A section is the lines between

    # <generated: NAME>        (NAME: a class, or `module` for the module's functions)
    # </generated>

at the class body's (or the module's) indentation; everything else in the stub is written by
hand. Every scope _stubs() names must have its section, and every section a scope.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import re
import sys
from pathlib import Path

import trainyard._native as native

WIDTH = 100
BEGIN = re.compile(r"^(?P<indent>\s*)# <generated: (?P<scope>\w+)>\s*$")
END = "# </generated>"


def split_params(params: str) -> list[str]:
    """The parameters of a declared signature, split at its top-level commas."""
    parts: list[str] = []
    depth = 0
    cur = ""
    for ch in params:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def render_def(indent: str, name: str, params: list[str], returns: str) -> list[str]:
    one = f"{indent}def {name}({', '.join(params)}) -> {returns}: ..."
    if len(one) <= WIDTH or not params:
        return [one]
    return (
        [f"{indent}def {name}("]
        + [f"{indent}    {p}," for p in params]
        + [f"{indent}) -> {returns}: ..."]
    )


def sections() -> dict[str, list[str]]:
    """{scope ("module" for the module): its generated lines, without indentation}."""
    out: dict[str, list[str]] = {}
    for scope, kind, name, params, returns in native._stubs():
        where = f"{scope or 'module'}.{name}"
        # A declared signature that is not Python is an error here, not a broken stub.
        try:
            ast.parse(f"def f({params}) -> {returns}: ...")
        except SyntaxError as e:
            raise SystemExit(f"{where}: the declared stub signature is not Python: {e}")
        ps = split_params(params)
        if kind == "method":
            ps = ["self", *ps]
        lines = out.setdefault(scope or "module", [])
        for twin, ret in ((name, returns), (f"{name}_async", f"Future[{returns}]")):
            if kind == "static":
                lines.append("@staticmethod")
            lines.extend(render_def("", twin, ps, ret))
    return out


def rewrite(text: str, gen: dict[str, list[str]]) -> str:
    lines = text.splitlines()
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(lines):
        m = BEGIN.match(lines[i])
        out.append(lines[i])
        i += 1
        if not m:
            continue
        scope, indent = m["scope"], m["indent"]
        if scope not in gen:
            raise SystemExit(f"section {scope!r} in the stub, but the bindings declare no operation there")
        if scope in seen:
            raise SystemExit(f"section {scope!r} twice in the stub")
        seen.add(scope)
        while i < len(lines) and lines[i].strip() != END:
            i += 1
        if i == len(lines):
            raise SystemExit(f"section {scope!r} has no end marker ({END})")
        out.extend(f"{indent}{line}" for line in gen[scope])
        out.append(lines[i])
        i += 1
    missing = sorted(set(gen) - seen)
    if missing:
        raise SystemExit(f"no generated section in the stub for {', '.join(missing)} (add `# <generated: NAME>` / `{END}`)")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    ap.add_argument("stub", type=Path)
    args = ap.parse_args()
    old = args.stub.read_text()
    new = rewrite(old, sections())
    if args.check:
        if old != new:
            sys.stdout.writelines(
                difflib.unified_diff(
                    old.splitlines(True), new.splitlines(True), str(args.stub), "generated"
                )
            )
            print(f"\n{args.stub} is stale: run `make python-stubs`", file=sys.stderr)
            return 1
        print(f"{args.stub}: the generated sections are current")
        return 0
    args.stub.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
