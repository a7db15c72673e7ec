"""The runs layer: `@rx.action`, the `rx_runs` table, and the executor that claims and
runs queued runs (one per store and process), with heartbeats, cancellation, retries,
scheduling and orphan recovery."""

from rxnb.functions import registry
from rxnb.reactive import Store, on_open
from rxnb.runs._actions import (
    Action,
    RunHandle,
    action,
    cancel,
    cancel_run,
    executor_for,
    retry,
    retry_run,
    run_after,
    run_at,
)
from rxnb.runs._context import ActionContext
from rxnb.runs._executor import Executor
from rxnb.runs._model import TERMINAL, Owner, Run, RunStatus
from rxnb.runs._owners import recover_orphans


def _store_opened(store: Store) -> None:
    """Recover orphans at once; start the executor if this process defines actions."""
    if any(isinstance(f, Action) for f in registry.all()):
        executor = executor_for(store)
        for function in registry.all():
            if isinstance(function, Action):
                executor.register(function)
    else:
        store.database.write(recover_orphans)


on_open(_store_opened)

__all__ = [
    "TERMINAL",
    "Action",
    "ActionContext",
    "Executor",
    "Owner",
    "Run",
    "RunHandle",
    "RunStatus",
    "action",
    "cancel",
    "cancel_run",
    "executor_for",
    "recover_orphans",
    "retry",
    "retry_run",
    "run_after",
    "run_at",
]
