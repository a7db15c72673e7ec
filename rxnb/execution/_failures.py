"""Errors as people read them: one line, with the details kept beside it.

A stored error (a run's, a journaled step's, a generation's) is shown in every
window's chat, runs view and timeline, and printed by `rxnb runs`. So it is one line,
`Type: message`, of at most `MAX_LINE` characters, pointing at the user's code; the
traceback is stored in a field of its own and shown folded away. Text that a library
adds for its own maintainers (litellm's "Give Feedback / Get Help" and bug-report
links, terminal colours) is dropped, and secrets are redacted from both parts.
"""

from __future__ import annotations

import os
import re
import sysconfig
import traceback

from rxnb.execution._secrets import scrub

MAX_LINE = 300
"""Longest stored error line, in characters."""
MAX_DETAILS = 20_000
"""Longest stored traceback, in characters (its end, where the error is, is kept)."""

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NOT_THEIRS = tuple(
    {_PACKAGE + os.sep}
    | {os.path.abspath(p) + os.sep for k, p in sysconfig.get_paths().items() if "lib" in k}
)
"""Where rxnb, the standard library and installed packages live: not the user's code."""

_NOISE = [
    re.compile(r"\x1b\[[0-9;]*m"),  # terminal colours
    re.compile(r"\s*Give Feedback / Get Help:?\s*\S*", re.IGNORECASE),
    re.compile(r"\s*This looks like a bug in LiteLLM rather than in your request\.?[^\n]*"),
    re.compile(r"\s*LiteLLM\.Info: If you need to debug this error[^\n]*"),
    re.compile(r"\s*(?:File an issue|Please file a bug|Report it)\b[^\n]*github\.com\S*", re.I),
    re.compile(r"\s*https?://github\.com/BerriAI/litellm/issues\S*"),
]
"""What libraries add to their errors for their own maintainers."""


def error_line(exc: BaseException, *, where: bool = True) -> str:
    """`Type: message (at file:line)`, one line of at most `MAX_LINE` characters; the
    place is the last frame in the user's code (an error raised by rxnb on a wrong
    argument points at the call)."""
    try:
        message = str(exc)
    except Exception:  # an exception whose __str__ raises
        message = f"<{type(exc).__name__} that cannot be shown>"
    # An error that carries another's line (a step's, a child run's) has its place.
    at = _where(exc) if where and " (at " not in message else ""
    return one_line(f"{type(exc).__name__}: {_without_own_prefix(exc, message)}", at)


def error_details(exc: BaseException) -> str:
    """The traceback of `exc` (with its causes), secrets redacted, at most `MAX_DETAILS`
    characters (the end kept)."""
    try:
        text = "".join(traceback.format_exception(exc))
    except Exception:  # a broken exception: its line says what can be said
        text = error_line(exc)
    text = scrub(_clean(text, keep_lines=True))
    return text if len(text) <= MAX_DETAILS else "…" + text[-MAX_DETAILS:]


def one_line(text: str, suffix: str = "") -> str:
    """`text` (an error message) on one line of at most `MAX_LINE` characters,
    `suffix` kept whole at its end, secrets redacted and libraries' notes dropped.
    A longer message loses its middle, not its end: messages say what happened
    first and what to do last."""
    line = scrub(" ".join(_clean(text).split()))
    room = MAX_LINE - len(suffix)
    if len(line) > room:
        head = max(0, room * 3 // 5)
        tail = max(0, room - head - 3)
        line = f"{line[:head].rstrip()} … {line[len(line) - tail :].lstrip()}"
    return line + suffix


def _clean(text: str, keep_lines: bool = False) -> str:
    text = text.replace("\x00", "\ufffd")  # PostgreSQL's text cannot hold a NUL
    for pattern in _NOISE:
        text = pattern.sub("", text)
    # litellm repeats the type inside its messages: "APIConnectionError: APIConnectionError:"
    text = re.sub(r"\b(?:litellm\.)?(\w+Error|\w+Exception): (?:litellm\.)?\1: ", r"\1: ", text)
    return text if keep_lines else text.replace("\n", " ")


def _without_own_prefix(exc: BaseException, message: str) -> str:
    """The message without a leading `Type:` or `module.Type:` naming `exc`'s own type
    (litellm's messages start with "litellm.RateLimitError: ...")."""
    name = re.escape(type(exc).__name__)
    return re.sub(rf"^\s*(?:[\w.]+\.)?{name}:\s*", "", message)


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    theirs = [f for f in frames if not os.path.abspath(f.filename).startswith(_NOT_THEIRS)]
    last = (theirs or frames)[-1:]
    if not last:
        return ""
    # The file's name only (the traceback has the path); a notebook cell's file is
    # a temporary one of ipykernel's, whose name says nothing.
    name = os.path.basename(last[0].filename)
    if "ipykernel_" in last[0].filename:
        return f" (at line {last[0].lineno} of a notebook cell)"
    return f" (at {name}:{last[0].lineno})"


class Failure:
    """A stored error: its line (`Run.error`) and its details (`Run.traceback`)."""

    __slots__ = ("details", "line")

    def __init__(self, line: str, details: str | None = None) -> None:
        self.line, self.details = line, details

    @classmethod
    def of(cls, exc: BaseException, prefix: str = "") -> Failure:
        """The failure `exc` is, its line after `prefix` (e.g. "the action raised ")."""
        return cls(one_line(prefix + error_line(exc)), error_details(exc))

    def __repr__(self) -> str:
        return f"Failure({self.line!r})"
