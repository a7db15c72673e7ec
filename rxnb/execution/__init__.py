"""The execution layer: `@rx.action`, the `rx_runs` table, and the executor that claims
and runs queued runs (one per store and process), with heartbeats, cancellation,
retries, scheduling, orphan recovery and the hand-over of runs when a process stops.

Other layers use the names below and nothing else of this package.
"""

from rxnb.execution import _clock as clock
from rxnb.execution import _ties as ties
from rxnb.execution import files
from rxnb.execution._actions import Action, action, insert_run, run_after, run_at
from rxnb.execution._arguments import SECRET_ARGUMENT, encode_args
from rxnb.execution._context import ActionContext, Parked
from rxnb.execution._control import (
    cancel,
    cancel_in,
    cancel_run,
    pause,
    pause_in,
    pause_run,
    resume,
    resume_in,
    resume_run,
    retry,
    retry_in,
    retry_run,
    signal,
    signal_in,
)
from rxnb.execution._cron import Cron, CronAction, CronInfo, cron, crons, remove_cron
from rxnb.execution._executor import Executor, executor_for
from rxnb.execution._failures import Failure, error_details, error_line, one_line
from rxnb.execution._file_store import File, FileRef, FileRefList
from rxnb.execution._handles import RunHandle, run_note, set_follower
from rxnb.execution._lifecycle import process_stopping
from rxnb.execution._model import (
    PROGRESSED,
    RUN_ENDED,
    RUN_REQUEUED,
    TERMINAL,
    Owner,
    Run,
    RunStatus,
)
from rxnb.execution._owners import recover_orphans
from rxnb.execution._queues import Queue, QueueLimits, save_defined, waits
from rxnb.execution._retention import (
    DAY,
    PASS_TASKS,
    Pruned,
    Retention,
    delete_with_runs,
    keep_while_parent,
    prune,
    read_retention,
    retention,
)
from rxnb.execution._secrets import SECRET_NAME, redact, scrub, secrets_of
from rxnb.functions import registry
from rxnb.reactive import Store, on_open


def _store_opened(store: Store) -> None:
    """Recover orphans at once; start the executor if this process defines actions."""
    if any(isinstance(f, Action) for f in registry.all()):
        executor = executor_for(store)
        for function in registry.all():
            if isinstance(function, Action):
                executor.register(function)
    else:
        store.database.write(recover_orphans)
    save_defined(store)


on_open(_store_opened)

__all__ = [
    "DAY",
    "PASS_TASKS",
    "PROGRESSED",
    "RUN_ENDED",
    "RUN_REQUEUED",
    "SECRET_ARGUMENT",
    "SECRET_NAME",
    "TERMINAL",
    "Action",
    "ActionContext",
    "Cron",
    "CronAction",
    "CronInfo",
    "Executor",
    "Failure",
    "File",
    "FileRef",
    "FileRefList",
    "Owner",
    "Parked",
    "Pruned",
    "Queue",
    "QueueLimits",
    "Retention",
    "Run",
    "RunHandle",
    "RunStatus",
    "action",
    "cancel",
    "cancel_in",
    "cancel_run",
    "clock",
    "cron",
    "crons",
    "delete_with_runs",
    "encode_args",
    "error_details",
    "error_line",
    "executor_for",
    "files",
    "insert_run",
    "keep_while_parent",
    "one_line",
    "pause",
    "pause_in",
    "pause_run",
    "process_stopping",
    "prune",
    "read_retention",
    "recover_orphans",
    "redact",
    "remove_cron",
    "resume",
    "resume_in",
    "resume_run",
    "retention",
    "retry",
    "retry_in",
    "retry_run",
    "run_after",
    "run_at",
    "run_note",
    "scrub",
    "secrets_of",
    "set_follower",
    "signal",
    "signal_in",
    "ties",
    "waits",
]
