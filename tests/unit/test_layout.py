"""The house rules a newcomer can rely on, kept by reading the code: outside `sources/` nothing
branches on which source it handles; one clock; errors share one base. Who may import whom is
import-linter's (pyproject.toml, run by `make lint`)."""

from __future__ import annotations

import ast
from pathlib import Path

from functions.core.errors import ServiceError
from functions.core.sources.registry import Sources

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = [ROOT / "function_app.py", *sorted((ROOT / "functions").rglob("*.py"))]
SOURCES_PACKAGE = ROOT / "functions" / "core" / "sources"


def source_names() -> set[str]:
    names: set[str] = set()
    for package in SOURCES_PACKAGE.iterdir():
        if (package / "__init__.py").exists():
            names.add(package.name)
    return names


def outside_sources() -> list[Path]:
    return [path for path in DEPLOYED if SOURCES_PACKAGE not in path.parents]


def branch_points(path: Path, names: set[str]) -> list[str]:
    """Comparisons, `match` cases and membership tests against a source's name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        values: list[ast.expr] = []
        if isinstance(node, ast.Compare):
            values = [node.left, *node.comparators]
        elif isinstance(node, ast.MatchValue):
            values = [node.value]
        for value in values:
            for constant in ast.walk(value):
                if isinstance(constant, ast.Constant) and constant.value in names:
                    found.append(f"{path.name}:{getattr(node, 'lineno', 0)}: {ast.unparse(node)}")
    return found


def defines(path: Path) -> bool:
    """A module with a function or class of its own, not one that only re-exports."""
    return any(
        isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        for node in ast.parse(path.read_text()).body
    )


def test_the_sources_are_the_registrys_packages():
    assert source_names() == {"sharepoint", "graph", "teams"}
    assert SOURCES_PACKAGE.joinpath("registry.py").exists()
    assert Sources.__module__ == "functions.core.sources.registry"


def test_nothing_outside_sources_branches_on_a_source_name():
    names = source_names()
    found = [hit for path in outside_sources() for hit in branch_points(path, names)]
    assert found == []


def test_the_checkers_find_what_they_look_for(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        'if record.source == "sharepoint":\n    pass\nmatch source:\n    case "graph":\n        pass\n'
    )
    assert len(branch_points(probe, {"sharepoint", "graph"})) == 2


def test_one_clock_helper():
    defined = [
        str(path.relative_to(ROOT))
        for path in DEPLOYED
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name == "utc_now"
    ]
    assert defined == ["functions/core/clock.py"]


def test_every_error_a_caller_can_act_on_shares_the_base():
    from functions.core.intake import BadNotificationRequest
    from functions.core.outbound import UpstreamError
    from functions.core.sinks.record import InvalidSink
    from functions.core.sinks.service import SinkNotFound
    from functions.core.sinks.store import SinkChanged
    from functions.core.storage import StorageUnavailable
    from functions.core.subscriptions import (
        InvalidSubscriptionRequest,
        SubscriptionConflict,
        SubscriptionNotFound,
    )
    from functions.core.validation import InvalidValidationToken

    for error in (
        BadNotificationRequest,
        UpstreamError,
        InvalidSink,
        SinkNotFound,
        SinkChanged,
        StorageUnavailable,
        InvalidSubscriptionRequest,
        SubscriptionConflict,
        SubscriptionNotFound,
        InvalidValidationToken,
    ):
        assert issubclass(error, ServiceError), error


def test_the_core_imports_at_the_top_and_only_the_triggers_import_lazily():
    """One boundary for lazy imports: the trigger modules, which keep the validation echo free of
    the SDKs. Inside the core every import is at the top, where a reader looks for it."""
    core = ROOT / "functions" / "core"
    inside_functions = [
        f"{path.relative_to(ROOT)}:{inner.lineno}"
        for path in sorted(core.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for inner in ast.walk(node)
        if isinstance(inner, ast.Import | ast.ImportFrom)
    ]
    assert inside_functions == []


def test_every_deployed_module_is_in_the_test_map_and_every_test_file_it_names_exists():
    """docs/testing.md says where each module's tests are: a module added without a row, or a test
    file renamed without its rows, fails here."""
    mapped: dict[str, list[str]] = {}
    for line in (ROOT / "docs" / "testing.md").read_text().splitlines():
        if line.startswith("| `") and "` | `" in line:
            module, tests = line.strip("| ").split(" | ", 1)
            mapped[module.strip("`")] = [name.strip("` ") for name in tests.split(",")]
    deployed = {
        str(path.relative_to(ROOT)) for path in DEPLOYED if path.name != "__init__.py" or defines(path)
    }
    assert sorted(deployed - set(mapped)) == [], "modules without a row in docs/testing.md"
    assert sorted(set(mapped) - deployed) == [], "rows naming modules that are gone"
    missing = [name for names in mapped.values() for name in names if not (ROOT / name).exists()]
    assert missing == []
