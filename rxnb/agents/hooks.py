"""A hook around each tool call an agent's turn runs in its own process (a plain
function, a query or a mutation; a tool run as a child run is a run of its own),
for a later layer (the `otel` extra's tracing). Empty unless that layer fills it:
`run_call` checks that first. A hook that raises is logged, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("rxnb.agents")

ToolEnd = Callable[[dict[str, Any] | None, BaseException | None], None]
"""Called with the call's outcome (`status`, `text`, `error`, ...), or what it raised."""

TOOL_CALLING: list[Callable[[str, dict[str, str]], ToolEnd]] = []
"""Called with (agent name, call: `call_id`, `name`, `arguments` as JSON text) in the
step thread about to run the call; each returns the function called once it ends."""


def calling(agent: str, call: dict[str, str], run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`run()` (the call), with the `TOOL_CALLING` hooks told around it."""
    ends: list[ToolEnd] = []
    for hook in list(TOOL_CALLING):
        try:
            ends.append(hook(agent, call))
        except Exception:
            log.exception("rxnb: a tool-call hook failed")
    result: dict[str, Any] | None = None
    raised: BaseException | None = None
    try:
        result = run()
        return result
    except BaseException as exc:
        raised = exc
        raise
    finally:
        for end in reversed(ends):
            try:
                end(result, raised)
            except Exception:
                log.exception("rxnb: a tool-call hook failed at the call's end")
