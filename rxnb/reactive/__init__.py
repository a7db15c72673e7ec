"""The reactivity layer: subscriptions, the invalidation index, the re-run scheduler
(`Reactor`), the cross-process change feed, and `Store`, which ties them to a database.
"""

from rxnb.reactive._feed import ChangeFeed
from rxnb.reactive._index import SubscriptionId, SubscriptionIndex
from rxnb.reactive._reactor import Reactor
from rxnb.reactive._results import JSONValue, to_jsonable
from rxnb.reactive._store import Store, current_store, on_open, open, open_stores, redefined
from rxnb.reactive._subscription import Subscribable, Subscription
from rxnb.reactive._vector_indexes import index_for

__all__ = [
    "ChangeFeed",
    "JSONValue",
    "Reactor",
    "Store",
    "Subscribable",
    "Subscription",
    "SubscriptionId",
    "SubscriptionIndex",
    "current_store",
    "index_for",
    "on_open",
    "open",
    "open_stores",
    "redefined",
    "to_jsonable",
]
