"""The workflows layer: `@rx.workflow`, its journal (`rx_journal`), deterministic
replay, durable sleep and events (`rx_events`), and restarts.

A workflow's run is an `rx_runs` row like an action's; the executor of the runs layer
claims it, and `WorkflowContext` replays its journal.
"""

from rxnb.workflows._context import WorkflowContext
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

__all__ = [
    "RESUMES",
    "ChildLink",
    "Event",
    "JournalEntry",
    "Workflow",
    "WorkflowContext",
    "advance_clock",
    "restart",
    "send_event",
    "send_event_in",
    "workflow",
]
