"""The public surface is exactly `rxnb.__all__`: adding or removing a name is a decision."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import tomllib

import rxnb

PUBLIC = [
    "Action",
    "ActionContext",
    "Agent",
    "AgentError",
    "ArgumentError",
    "Cancelled",
    "DataProblem",
    "File",
    "FileRef",
    "FunctionError",
    "Hit",
    "Mutation",
    "NoStoreError",
    "NonDeterminismError",
    "NonRetryableError",
    "Page",
    "Query",
    "Queue",
    "ReadOnlyError",
    "Reader",
    "ResultError",
    "Run",
    "RunCancelledError",
    "RunError",
    "RunFailedError",
    "RunHandle",
    "RunNotFoundError",
    "RunStatus",
    "RxnbError",
    "SchemaMismatchError",
    "StepError",
    "Store",
    "StoreBusyError",
    "StoreClosedError",
    "StoreError",
    "StoreOpenError",
    "StoreUnavailableError",
    "Subscription",
    "Vector",
    "Workflow",
    "WorkflowContext",
    "WorkflowError",
    "Writer",
    "__version__",
    "action",
    "budget",
    "cancel",
    "chat",
    "cron",
    "crons",
    "current_store",
    "files",
    "fork",
    "mutation",
    "open",
    "pause",
    "prune",
    "query",
    "remove_cron",
    "restart",
    "resume",
    "retention",
    "retry",
    "run_after",
    "run_at",
    "runs",
    "send_event",
    "signal",
    "tool",
    "tracing",
    "workflow",
]


def test_all_is_pinned_and_sorted() -> None:
    assert rxnb.__all__ == PUBLIC
    assert rxnb.__all__ == sorted(rxnb.__all__)
    for name in rxnb.__all__:
        assert hasattr(rxnb, name), name


def test_public_names_not_in_all_are_modules() -> None:
    extra = {n for n in dir(rxnb) if not n.startswith("_") and n not in rxnb.__all__}
    # load_ipython_extension is IPython's hook for `%load_ext rxnb`, not an API.
    modules = {
        "errors",
        "functions",
        "reactive",
        "store",
        "widgets",
        "ipython",
        "execution",
        "llm",
        "workflows",
        "agents",
        "otel",  # rx.tracing's layer, imported by `import rxnb` (opentelemetry is not)
        "evals",  # rx.evals, imported on first use
        "cli",  # imported by `rxnb` the command (and by tests)
        "testing",  # the pytest plugin, loaded by pytest (and so in rxnb's own tests)
    }
    assert extra <= modules | {"load_ipython_extension"}


def test_no_public_name_shadows_a_module() -> None:
    """`rx.runs()` is a function: the package it would hide is `rxnb.execution`."""
    package = Path(rxnb.__file__).parent
    for name in rxnb.__all__:
        assert not (package / name).is_dir(), name
        assert not (package / f"{name}.py").is_file(), name


def test_errors_share_one_root() -> None:
    for name in rxnb.errors.__all__:
        if name == "Cancelled":  # a BaseException on purpose: `except Exception` lets it by
            assert issubclass(rxnb.Cancelled, BaseException)
            assert not issubclass(rxnb.Cancelled, Exception)
            continue
        assert issubclass(getattr(rxnb.errors, name), rxnb.RxnbError)


def test_version_matches_pyproject() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == rxnb.__version__


def test_version_matches_package_json() -> None:
    package = json.loads((Path(__file__).parents[1] / "package.json").read_text())
    assert package["version"] == rxnb.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", rxnb.__version__)


def test_import_is_light() -> None:
    """`import rxnb` must not pull litellm (seconds of CPU) or IPython."""
    code = "import sys, rxnb; print(sorted(m for m in ('litellm', 'IPython', 'anywidget') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
