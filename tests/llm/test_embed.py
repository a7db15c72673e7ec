"""`rx.llm.embed` through litellm's real embedding path, with the offline `rxnb/embed`."""

from __future__ import annotations

import numpy as np
import pytest

import rxnb as rx
from rxnb.llm import OFFLINE_MODEL, embed, load_litellm, offline_embedding


def test_offline_embeddings_are_deterministic_unit_vectors() -> None:
    texts = ["The cat sat on the mat", "", "the cat sat on the mat"]
    vectors = embed(texts)
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert vectors[0] == vectors[2] == offline_embedding("the cat sat on the mat")
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-6)
    assert not any(vectors[1])  # no words: the zero vector
    assert embed(texts) == vectors  # the same in another call
    assert len(embed("one text", size=16)[0]) == 16
    assert embed([]) == []


def test_texts_sharing_words_are_nearer() -> None:
    query, near, also_near, far = embed(
        [
            "how to bake sourdough bread",
            "baking bread with sourdough starter",
            "bread baking at home",
            "quarterly earnings of the stock market",
        ]
    )
    cos = [float(np.dot(query, v)) for v in (near, also_near, far)]
    assert cos[0] > cos[2] and cos[1] > cos[2]
    assert cos[2] < 0.2


def test_litellm_embedding_reports_usage_and_order() -> None:
    litellm = load_litellm()
    response = litellm.embedding(model=OFFLINE_MODEL, input=["a b c", "d e"])
    assert [item["index"] for item in response.data] == [0, 1]
    assert response.usage.prompt_tokens == 5
    assert response.data[1]["embedding"] == offline_embedding("d e")


def test_bad_input_names_the_fix() -> None:
    with pytest.raises(rx.ArgumentError, match="a list of strings"):
        embed(["ok", 3])  # type: ignore[list-item]
    litellm = load_litellm()
    with pytest.raises(litellm.BadRequestError, match="size= a positive int, not 0"):
        embed(["x"], size=0)
    with pytest.raises(litellm.NotFoundError, match="use rxnb/embed"):
        embed(["x"], model="rxnb/nothing")
