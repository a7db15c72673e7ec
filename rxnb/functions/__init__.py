"""The functions layer: `@rx.query`, `@rx.mutation`, and their registry."""

from rxnb.functions._arguments import ArgumentSpec
from rxnb.functions._functions import (
    Mutation,
    Query,
    StoreFunction,
    mutation,
    query,
    registry,
    set_live_view,
)

__all__ = [
    "ArgumentSpec",
    "Mutation",
    "Query",
    "StoreFunction",
    "mutation",
    "query",
    "registry",
    "set_live_view",
]
