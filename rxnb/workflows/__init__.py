"""The workflows layer: `@rx.workflow`, its journal (`rx_journal`), deterministic
replay, durable sleep and events (`rx_events`), and restarts.

A workflow's run is an `rx_runs` row like an action's; the executor of the runs layer
claims it, and `WorkflowContext` replays its journal.
"""

from rxnb.execution import delete_with_runs, keep_while_parent
from rxnb.workflows._context import WorkflowContext
from rxnb.workflows._fork import fork, fork_in, fork_step
from rxnb.workflows._model import ChildLink, Event, JournalEntry
from rxnb.workflows._workflow import (
    RESUMES,
    Workflow,
    advance_clock,
    restart,
    send_event,
    send_event_in,
    workflow,
)

# Retention (`rx.retention`) deletes a pruned run's journal, events and child links
# with it, and keeps a child workflow while its parent run exists.
delete_with_runs(
    JournalEntry.__table__.c.run_id,  # type: ignore[attr-defined]
    Event.__table__.c.run_id,  # type: ignore[attr-defined]
    ChildLink.__table__.c.child_id,  # type: ignore[attr-defined]
    ChildLink.__table__.c.parent_id,  # type: ignore[attr-defined]
)
keep_while_parent(
    ChildLink.__table__.c.child_id,  # type: ignore[attr-defined]
    ChildLink.__table__.c.parent_id,  # type: ignore[attr-defined]
)

__all__ = [
    "RESUMES",
    "ChildLink",
    "Event",
    "JournalEntry",
    "Workflow",
    "WorkflowContext",
    "advance_clock",
    "fork",
    "fork_in",
    "fork_step",
    "restart",
    "send_event",
    "send_event_in",
    "workflow",
]
