"""The widgets layer: live views of queries (anywidget), their static snapshots, and
the dispatcher that sends their updates from one thread per store.

The browser side lives in `js/` and is bundled into `rxnb/static/`; the messages
between the two are described in `docs/widget-protocol.md`.
"""

from rxnb.widgets._agent_chat import agent_chat
from rxnb.widgets._cells import CellOwners, CellRun, current_cell, owners
from rxnb.widgets._chat import ChatWidget, chat
from rxnb.widgets._compare import compare, compare_rows
from rxnb.widgets._dispatcher import Dispatcher
from rxnb.widgets._live import LiveWidget, dispatcher_for, live, live_widgets, settle
from rxnb.widgets._models import comparison_columns, comparison_view, models_view
from rxnb.widgets._payload import Payload, encode, message
from rxnb.widgets._runs import follow, runs, runs_table
from rxnb.widgets._timeline import timeline, timeline_rows

__all__ = [
    "CellOwners",
    "CellRun",
    "ChatWidget",
    "Dispatcher",
    "LiveWidget",
    "Payload",
    "agent_chat",
    "chat",
    "compare",
    "compare_rows",
    "comparison_columns",
    "comparison_view",
    "current_cell",
    "dispatcher_for",
    "encode",
    "follow",
    "live",
    "live_widgets",
    "message",
    "models_view",
    "owners",
    "runs",
    "runs_table",
    "settle",
    "timeline",
    "timeline_rows",
]
