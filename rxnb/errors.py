"""Every error rxnb raises on purpose.

The tree::

    RxnbError
    ├── StoreError                  the store could not do what was asked
    │   ├── StoreOpenError          the URL or file cannot be opened as a store
    │   ├── SchemaMismatchError     tables differ from their SQLModel classes
    │   ├── NoStoreError            a function was called with no store open
    │   ├── StoreClosedError        the store was closed
    │   ├── StoreBusyError          a write could not get the lock after retries
    │   ├── StoreUnavailableError   the database stayed unreachable past the reconnect budget
    │   └── ReadOnlyError           a query tried to write
    ├── FunctionError               a query or mutation was misused
    │   ├── ArgumentError           an argument is missing, unexpected or of the wrong type
    │   └── ResultError             a result cannot be serialized
    ├── RunError                    a run did not give a result
    │   ├── RunFailedError          it failed (its last error is in the message)
    │   ├── RunCancelledError       it was cancelled
    │   └── RunNotFoundError        no run has that id
    ├── WorkflowError               a workflow cannot go on as written
    │   ├── NonDeterminismError     its code no longer matches the run's journal
    │   └── StepError               a step failed after its retries (replayed as recorded)
    ├── AgentError                  an agent's turn cannot go on (max_steps, an answer
    │                               that did not validate as output_type)
    └── NonRetryableError           raised by an action: fail now, do not retry

    Cancelled (a BaseException)     raised by ctx.check_cancelled() inside an action, so
                                    that `except Exception` in user code cannot swallow it

Each message says what was wrong, the value seen, and what to do about it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AgentError",
    "ArgumentError",
    "Cancelled",
    "FunctionError",
    "NoStoreError",
    "NonDeterminismError",
    "NonRetryableError",
    "ReadOnlyError",
    "ResultError",
    "RunCancelledError",
    "RunError",
    "RunFailedError",
    "RunNotFoundError",
    "RxnbError",
    "SchemaMismatchError",
    "StepError",
    "StoreBusyError",
    "StoreClosedError",
    "StoreError",
    "StoreOpenError",
    "StoreUnavailableError",
    "WorkflowError",
]


class RxnbError(Exception):
    """Root of every error rxnb raises on purpose."""


class StoreError(RxnbError):
    """The store could not do what was asked."""


class StoreOpenError(StoreError):
    """The URL or file cannot be opened as a store."""


class SchemaMismatchError(StoreError):
    """Tables in the database differ from their SQLModel classes.

    ``differences`` lists one human-readable line per difference.
    """

    def __init__(self, url: str, differences: Sequence[str]) -> None:
        self.url = url
        self.differences = list(differences)
        lines = "\n".join(f"  - {d}" for d in self.differences)
        super().__init__(
            f"The store at {url} does not match your SQLModel classes "
            f"({len(self.differences)} difference(s)); nothing was written:\n{lines}"
        )


class NoStoreError(StoreError):
    """A query or mutation was called while no store is open."""


class StoreClosedError(StoreError):
    """The store was used after `Store.close()`."""


class StoreBusyError(StoreError):
    """A mutation could not get the write lock within its retries."""


class StoreUnavailableError(StoreError):
    """The database server could not be reached for longer than the reconnect budget."""


class ReadOnlyError(StoreError):
    """A query (read-only) tried to write."""


class FunctionError(RxnbError):
    """A query or mutation was defined or called wrongly."""


class ArgumentError(FunctionError, TypeError):
    """An argument is missing, unexpected, or does not match its type hint."""


class ResultError(FunctionError, TypeError):
    """A function returned a value rxnb cannot serialize."""


class RunError(RxnbError):
    """A run did not give a result (see the subclasses)."""


class RunFailedError(RunError):
    """The run failed after its last attempt; the message holds its last error."""


class RunCancelledError(RunError):
    """The run was cancelled."""


class RunNotFoundError(RunError, LookupError):
    """No run in the store has that id."""


class NonRetryableError(RxnbError):
    """Raise it in an action to fail the run at once, whatever its `retries=`."""


class Cancelled(BaseException):
    """Raised by `ctx.check_cancelled()` when the run was cancelled.

    A BaseException, so that `except Exception` in user code lets it through; the
    executor catches it and records the run as cancelled.
    """


class WorkflowError(RxnbError):
    """A workflow cannot go on as written."""


class AgentError(RxnbError):
    """An agent's turn cannot go on: it reached `max_steps`, or its answer did not
    validate as the agent's `output_type`."""


class NonDeterminismError(WorkflowError):
    """A workflow's code no longer matches the journal of a run in flight."""


class StepError(WorkflowError):
    """A workflow step failed after its retries; replayed as recorded."""
