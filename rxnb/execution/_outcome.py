"""How an action's body ended, as the executor records it, and the backoff between
attempts."""

from __future__ import annotations

import json
import logging
import random
from typing import TYPE_CHECKING, Any

from rxnb.errors import Cancelled, NonRetryableError, ResultError
from rxnb.execution._context import ActionContext, Parked
from rxnb.execution._failures import Failure
from rxnb.reactive import to_jsonable

if TYPE_CHECKING:
    from rxnb.execution._actions import Action

log = logging.getLogger("rxnb.runs")


def outcome(action: Action[Any, Any], ctx: ActionContext, args: dict[str, Any]) -> tuple[str, Any]:
    """How the action ended: ("returned", json) / ("cancelled", why) / ("parked",
    (status, due)) / ("raised" or "final", `Failure`). Whatever it raises, even a
    BaseException, ends up here."""
    try:
        # Stored arguments are JSON: checking them again makes a datetime, a UUID or
        # a model arrive as one, as it does when the action is called inline.
        value = action.fn(ctx, **action.arguments.check(args))
    except Cancelled as exc:
        return ("cancelled", str(exc))
    except Parked as parked:
        return ("parked", (parked.status, parked.due_at))
    except NonRetryableError as exc:
        return ("final", Failure.of(exc))
    except Exception as exc:
        log.debug("rxnb: run %s raised", ctx.run_id, exc_info=True)
        return ("raised" if action.retry_on_raise else "final", Failure.of(exc))
    except BaseException as exc:  # KeyboardInterrupt, SystemExit in a pool thread
        return ("final", Failure.of(exc, "the action raised "))
    try:
        encoded = to_jsonable(value, where=f"Action `{action.name}`")
        json.dumps(encoded, allow_nan=False)
    except ResultError as exc:  # it ran to the end: running it again cannot help
        return ("final", Failure.of(exc))
    except (ValueError, RecursionError, UnicodeError) as exc:
        return ("final", Failure.of(exc, "ResultError: the result cannot be stored as JSON: "))
    return ("returned", encoded)


def backoff_delay(attempt: int, base: float, factor: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with ±50% jitter: ~base, ~2·base, ~4·base, … up to `cap`."""
    return min(cap, base * factor ** max(0, attempt - 1)) * random.uniform(0.5, 1.5)
