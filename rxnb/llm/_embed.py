"""Embeddings: `embed` through litellm, and the offline model `rxnb/embed`.

`rxnb/embed` is a hashing-trick bag of words and character trigrams, L2-normalized:
deterministic, no download, no network, and meaningful enough for examples and tests
(texts that share words or word pieces are nearer). It is not a semantic model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, Final

from rxnb.errors import ArgumentError

OFFLINE_MODEL: Final = "rxnb/embed"
OFFLINE_DIMENSIONS: Final = 384
_WORDS: Final = re.compile(r"\w+")
_WORD_WEIGHT: Final = 1.0
_TRIGRAM_WEIGHT: Final = 0.5


def _bucket(feature: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dim, (1.0 if value >> 63 else -1.0)


def offline_embedding(text: str, dimensions: int = OFFLINE_DIMENSIONS) -> list[float]:
    """The `rxnb/embed` vector of `text`: `dimensions` floats of unit length (all
    zeros for a text without words)."""
    import numpy as np  # not at `import rxnb`: its import costs a tenth of a second

    vector = np.zeros(dimensions, dtype=np.float64)
    for word in _WORDS.findall(text.lower()):
        index, sign = _bucket("w:" + word, dimensions)
        vector[index] += sign * _WORD_WEIGHT
        padded = f"<{word}>"
        for start in range(len(padded) - 2):
            index, sign = _bucket("c:" + padded[start : start + 3], dimensions)
            vector[index] += sign * _TRIGRAM_WEIGHT
    norm = float(np.linalg.norm(vector))
    values: list[float] = (vector / norm if norm else vector).astype(np.float32).tolist()
    return values


def check_dimensions(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(f"rxnb/embed takes size= a positive int, not {value!r}")
    return value


def embed(
    texts: Sequence[str] | str, *, model: str = OFFLINE_MODEL, **litellm_kwargs: Any
) -> list[list[float]]:
    """The embedding of each text, through `litellm.embedding` (one request).

    `model` is any litellm embedding model ("text-embedding-3-small", with the
    provider's usual environment variable for its key) or the offline `rxnb/embed`
    (384 dimensions; `size=` changes it, as litellm refuses `dimensions=` for custom
    providers). A single string is a list of one.
    """
    from rxnb.llm._litellm import load_litellm

    batch = [texts] if isinstance(texts, str) else list(texts)
    if not all(isinstance(t, str) for t in batch):
        raise ArgumentError(
            f"rx.llm.embed takes a list of strings, not {texts!r:.80}; convert each to str"
        )
    if not batch:
        return []
    litellm = load_litellm()
    response = litellm.embedding(model=model, input=batch, **litellm_kwargs)
    items = sorted(response.data, key=lambda item: _field(item, "index"))
    return [[float(x) for x in _field(item, "embedding")] for item in items]


def _field(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, dict) else getattr(item, name)
