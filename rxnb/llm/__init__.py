"""The llm layer: litellm streaming into the store, chunked and throttled, with usage
and cost on the run and in `rx_generations` (`Generation`), an answer cache
(`configure(cache=True)`, `clear_cache`), and embedded offline
models (`rxnb/echo`, `rxnb/scripted`, `rxnb/embed`); embeddings (`embed`); model
limits (`limit`) and the store's budget (`budget`, also `rx.budget`), which
generations wait for.

litellm is imported on first use, not by `import rxnb`.
"""

from rxnb.execution import delete_with_runs
from rxnb.llm._budget import SCOPES, Scope, budget, spent_since
from rxnb.llm._cache import CacheEntry, CacheSettings, clear_cache, configure
from rxnb.llm._chunking import Chunker, Chunking
from rxnb.llm._compare import (
    Comparison,
    ComparisonColumn,
    LiveComparison,
    as_messages,
    check_parameters,
    column_action,
    compare,
    compare_in,
    set_comparison_view,
)
from rxnb.llm._embed import OFFLINE_MODEL, embed, offline_embedding
from rxnb.llm._limits import limit
from rxnb.llm._litellm import load_litellm
from rxnb.llm._model import Generation, end_generations, key_json, target_row
from rxnb.llm._observe import GenerationEvent, on_generation
from rxnb.llm._row_writer import PAUSED_REASON
from rxnb.llm._stream import stream, stream_into
from rxnb.llm._usage import Usage, add_to_run

# Retention (`rx.retention`) deletes a pruned run's generations with it.
delete_with_runs(Generation.__table__.c.run_id)  # type: ignore[attr-defined]

__all__ = [
    "OFFLINE_MODEL",
    "PAUSED_REASON",
    "SCOPES",
    "CacheEntry",
    "CacheSettings",
    "Chunker",
    "Chunking",
    "Comparison",
    "ComparisonColumn",
    "Generation",
    "GenerationEvent",
    "LiveComparison",
    "Scope",
    "Usage",
    "add_to_run",
    "as_messages",
    "budget",
    "check_parameters",
    "clear_cache",
    "column_action",
    "compare",
    "compare_in",
    "configure",
    "embed",
    "end_generations",
    "key_json",
    "limit",
    "load_litellm",
    "offline_embedding",
    "on_generation",
    "set_comparison_view",
    "spent_since",
    "stream",
    "stream_into",
    "target_row",
]
