"""`Chunker`: where streamed text may be flushed to the store.

Flushing at boundaries keeps the number of store writes low (one per clause, not
one per token) and makes every stored prefix readable: words are never cut, except
a run of `MAX_HELD` characters with no space at all. Inside a fenced code block
(```), only line ends are boundaries, so code arrives a line at a time. Chinese and
Japanese punctuation (the ideographic comma and full stop, fullwidth ! ? ; : and
closing brackets) ends a clause or a sentence as it stands: those scripts put no
space after it.
"""

from __future__ import annotations

import re
from typing import Literal

Chunking = Literal["word", "clause", "sentence", "line"]

_BOUNDARY = {
    "word": re.compile(r"\s"),
    "clause": re.compile(
        r"[,;:.!?)\]](?=\s)|[\uff0c\u3001\uff1b\uff1a\u3002\uff01\uff1f\uff09\u300d\u300f\u3011]|\n"
    ),
    "sentence": re.compile(r"[.!?](?=\s)|[\u3002\uff01\uff1f]|\n"),
    "line": re.compile(r"\n"),
}
_LINE = _BOUNDARY["line"]
_SPACE = re.compile(r"\s")
_FENCE = "```"

MAX_HELD = 120
"""Characters held without a boundary before a word boundary will do (text with no
punctuation, such as a long list or code without fences, still streams), or, when
the held text has no space at all (a long URL, text in a script without spaces),
any character boundary."""


class Chunker:
    """Takes text as it streams; gives back the part that ends at a boundary."""

    def __init__(self, chunking: Chunking = "clause") -> None:
        if chunking not in _BOUNDARY:
            raise ValueError(
                f"chunking={chunking!r}: use one of {', '.join(repr(k) for k in _BOUNDARY)}"
            )
        self.chunking = chunking
        self._held = ""
        self._fences = 0
        """Fences seen in text already given back: odd means inside a code block."""

    def push(self, text: str) -> str:
        """Add `text`; return everything up to (and including) the last boundary."""
        self._held += text
        cut = self._last_boundary(self._held)
        if cut == 0 and len(self._held) > MAX_HELD:
            spaces = [m.end() for m in _SPACE.finditer(self._held)]
            # No space at all: any character will do, but not inside a fence mark.
            cut = spaces[-1] if spaces else len(self._held.rstrip("`"))
        if cut == 0:
            return ""
        ready, self._held = self._held[:cut], self._held[cut:]
        self._fences += ready.count(_FENCE)
        return ready

    def passed(self, text: str) -> None:
        """`text` went out without waiting for a boundary (the first chunk)."""
        self._fences += text.count(_FENCE)

    def rest(self) -> str:
        """What is held back (at the end of the stream: flush it too)."""
        rest, self._held = self._held, ""
        return rest

    def _last_boundary(self, text: str) -> int:
        """The end of the last boundary in `text` (0 if none), given the fence state."""
        inside = self._fences % 2 == 1
        last = 0
        position = 0
        for part in re.split(f"({re.escape(_FENCE)})", text):
            if part == _FENCE:
                inside = not inside
                position += len(part)
                continue
            pattern = _LINE if inside else _BOUNDARY[self.chunking]
            for match in pattern.finditer(part):
                last = position + match.end()
            position += len(part)
        return last
