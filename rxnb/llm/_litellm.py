"""Loading litellm for rxnb: imported on first use, with the offline cost map and
rxnb's offline models, and its own success logging off while nothing listens to it
(rxnb records usage and cost itself)."""

from __future__ import annotations

import os
from typing import Any


def load_litellm() -> Any:
    """litellm, imported on first use (seconds of CPU), offline cost map, rxnb models;
    its per-chunk logging off while nothing listens to it (`_quiet_logging`)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # litellm appends a link for reporting bugs to litellm to some errors: users of
    # rxnb see the error in a chat, where that link is noise.
    os.environ.setdefault("LITELLM_DISABLE_BUG_REPORT_LINK", "true")
    import litellm

    from rxnb.llm import _offline

    # litellm prints a "Give Feedback / Get Help" banner on every provider error: from
    # an executor thread it would land in whichever cell runs then. The error itself
    # is on the run and the generation.
    litellm.suppress_debug_info = True
    _offline.register()
    _quiet_logging(litellm)
    return litellm


_quieted = False
"""Whether rxnb turned litellm's per-chunk success logging off (`_quiet_logging`)."""


def _quiet_logging(litellm: Any) -> None:
    """litellm hands every chunk of a stream to a thread that runs its success logging
    (a new event loop each time) for callbacks and its own cache. rxnb records usage
    and cost itself: with no litellm callback or cache configured, that work is off
    (it took as much CPU as rxnb's own store work per agent step); once one is, it is
    on again, as litellm has it."""
    global _quieted
    listening = bool(
        litellm.success_callback
        or litellm._async_success_callback
        or litellm.callbacks
        or litellm.cache is not None
    )
    if not listening and not litellm.disable_streaming_logging:
        litellm.disable_streaming_logging, _quieted = True, True
    elif listening and _quieted:
        litellm.disable_streaming_logging, _quieted = False, False


def unlogged(response: Any) -> None:
    """While nothing listens to litellm's logging (`_quiet_logging`), its success
    handler for this stream is marked as run: at the stream's end litellm would run it
    on a thread of its own (pricing and assembling the answer again for no one), at the
    very moment rxnb records the answer, contending with that write for the GIL."""
    details = getattr(getattr(response, "logging_obj", None), "model_call_details", None)
    if _quieted and isinstance(details, dict):
        details["has_logged_sync_success"] = True
