"""The twins the bindings declare once (bindings/python/src/macros.rs) are twins in the stub too:
every `<name>_async` has its blocking `<name>` with the same parameters, at run time and in
_native.pyi, and the stub types it as `Future[...]` of the blocking method's return type.
(stubtest checks that the stub and the module agree name by name; this checks the pairs.) Those
stub lines are generated from the signatures declared next to the operations
(scripts/gen-stubs.py, `make python-stubs`); the last test checks the stub is current."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import trainyard._native as native

STUB = Path(native.__file__).with_name("_native.pyi")


def _stub_scopes() -> dict[str, dict[str, Any]]:
    """{scope ("" for the module, else a class name): {function name: its def}}."""
    tree = ast.parse(STUB.read_text())
    scopes: dict[str, dict[str, Any]] = {"": {}}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            scopes[""][node.name] = node
        elif isinstance(node, ast.ClassDef):
            scopes[node.name] = {
                f.name: f for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
    return scopes


def _runtime_scopes() -> dict[str, dict[str, Any]]:
    scopes: dict[str, dict[str, Any]] = {"": {}}
    for name, obj in vars(native).items():
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            scopes[name] = {k: getattr(obj, k) for k in vars(obj) if callable(getattr(obj, k))}
        elif callable(obj):
            scopes[""][name] = obj
    return scopes


def _twins(scopes: dict[str, dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    """(where, blocking, awaitable) of every `<name>_async` of every scope; asserts the blocking
    twin exists."""
    found = []
    for scope, members in scopes.items():
        for name in sorted(members):
            if name.endswith("_async"):
                where = f"{scope or 'module'}.{name}"
                blocking = name[: -len("_async")]
                assert blocking in members, f"{where} has no blocking twin"
                found.append((where, members[blocking], members[name]))
    # The services, Platform.open/init and predict: a lost pair shows here.
    assert len(found) >= 50, len(found)
    return found


def test_every_stubbed_async_method_is_the_twin_of_a_blocking_one() -> None:
    for where, sync, aw in _twins(_stub_scopes()):
        assert ast.dump(sync.args) == ast.dump(aw.args), f"{where}: parameters differ"
        assert [ast.dump(d) for d in sync.decorator_list] == [ast.dump(d) for d in aw.decorator_list], where
        assert sync.returns is not None and aw.returns is not None, where
        expected = f"Future[{ast.unparse(sync.returns)}]"
        assert ast.unparse(aw.returns) == expected, f"{where} returns {ast.unparse(aw.returns)}, not {expected}"


def test_every_runtime_async_method_has_a_blocking_twin_with_the_same_signature() -> None:
    for where, sync, aw in _twins(_runtime_scopes()):
        sync_sig = getattr(sync, "__text_signature__", None)
        assert sync_sig is not None and sync_sig == getattr(aw, "__text_signature__", None), where


def _gen_stubs() -> Any:
    """scripts/gen-stubs.py, which writes the generated sections of the stub."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "gen-stubs.py"
    spec = importlib.util.spec_from_file_location("gen_stubs", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_twins_stub_lines_are_generated_from_the_declarations() -> None:
    gen = _gen_stubs()
    sections = gen.sections()
    # Every service with declared operations, the Platform's static ones and predict.
    assert {"TrainingService", "ScheduleService", "RegistryService", "DeploymentService",
            "InsightsService", "Platform", "module"} <= set(sections), sorted(sections)
    text = STUB.read_text()
    assert gen.rewrite(text, sections) == text, "the stub is stale: run `make python-stubs`"
    # A hand edit inside a section is rewritten; a section gone is an error.
    edited = text.replace("    def get_async(self, id: int) -> Future[Run]: ...\n", "", 1)
    assert edited != text and gen.rewrite(edited, sections) == text
    without = text.replace("    # <generated: InsightsService>\n", "", 1)
    try:
        gen.rewrite(without, sections)
    except SystemExit as e:
        assert "InsightsService" in str(e), e
    else:
        raise AssertionError("a missing section was not reported")
    # Every generated twin: `x_async(same params) -> Future[x's return]`, static ones static.
    for scope, kind, name, params, returns in native._stubs():
        owner = native if scope == "" else getattr(native, scope)
        assert callable(getattr(owner, name)) and callable(getattr(owner, f"{name}_async")), (scope, name)
        assert kind in ("method", "static", "function"), kind
