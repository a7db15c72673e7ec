"""Where streamed text may be cut for a store write."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from rxnb.llm import Chunker


@dataclass
class Case:
    name: str
    chunking: str
    pushes: list[str]
    given: list[str]


CASES = [
    Case("words wait for a space", "word", ["Hel", "lo wor", "ld "], ["", "Hello ", "world "]),
    Case(
        "clauses end at punctuation before a space",
        "clause",
        ["Well, that", " is it. And", " then"],
        ["Well,", " that is it.", ""],
    ),
    Case("a decimal point is no clause end", "clause", ["pi is 3.14 ok, yes"], ["pi is 3.14 ok,"]),
    Case(
        "sentences end at . ! ? before a space",
        "sentence",
        ["One, two. Three! Fo", "ur"],
        ["One, two. Three!", ""],
    ),
    Case("lines end at newlines", "line", ["a b, c.\nd e", "\n"], ["a b, c.\n", "d e\n"]),
    Case(
        "inside a code fence only newlines count",
        "clause",
        ["Code:\n```py\nx = f(a, b)", "\ny = 1. ok\n```\nDone, yes"],
        ["Code:\n```py\n", "x = f(a, b)\ny = 1. ok\n```\nDone,"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_chunker(case: Case) -> None:
    chunker = Chunker(case.chunking)  # type: ignore[arg-type]
    given = [chunker.push(text) for text in case.pushes]
    assert given == case.given
    assert "".join(given) + chunker.rest() == "".join(case.pushes), "nothing is lost"


def test_text_without_boundaries_is_let_out_at_a_word_after_a_while() -> None:
    chunker = Chunker("clause")
    given = "".join(chunker.push(f"t{i} ") for i in range(100))
    assert given and given.endswith(" ") and len(given) > 120
    assert given + chunker.rest() == "".join(f"t{i} " for i in range(100))


def test_unknown_chunking_is_refused() -> None:
    with pytest.raises(ValueError, match="'word', 'clause', 'sentence', 'line'"):
        Chunker("paragraph")  # type: ignore[arg-type]
