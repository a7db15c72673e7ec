"""The llm layer: litellm streaming into the store, chunked and throttled, with usage
and cost on the run and in `rx_generations` (`Generation`), and embedded offline
models (`rxnb/echo`, `rxnb/scripted`).

litellm is imported on first use, not by `import rxnb`.
"""

from rxnb.llm._chunking import Chunker, Chunking
from rxnb.llm._model import Generation, end_generations, key_json, target_row
from rxnb.llm._stream import load_litellm, stream, stream_into
from rxnb.llm._usage import Usage, add_to_run

__all__ = [
    "Chunker",
    "Chunking",
    "Generation",
    "Usage",
    "add_to_run",
    "end_generations",
    "key_json",
    "load_litellm",
    "stream",
    "stream_into",
    "target_row",
]
