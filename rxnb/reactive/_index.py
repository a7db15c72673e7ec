"""`SubscriptionIndex`: from a written row to the subscriptions whose reads it touches.

Cost follows the subscriptions affected, not the total: each read of a table is
filed under one of its constraints (an `Equals` by value, a `Range` by column) or
under the whole table, and a row image looks up only its own values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, NewType

from rxnb.store import EVERYTHING, UNKNOWN, Equals, ReadSet, RowWrite, TableRead, Write

SubscriptionId = NewType("SubscriptionId", int)
Entry = tuple[SubscriptionId, TableRead]


def _choose(read: TableRead) -> Equals | TableRead | None:
    """The constraint to file a read under: the narrowest equality, else a range column."""
    equals = [c for c in read.constraints if isinstance(c, Equals)]
    if equals:
        return min(equals, key=lambda c: len(c.values))
    return read if read.constraints else None


class SubscriptionIndex:
    """Responsibilities: file each subscription's read set; answer which are affected."""

    def __init__(self) -> None:
        self._everything: set[SubscriptionId] = set()
        self._whole: dict[str, set[SubscriptionId]] = defaultdict(set)
        self._equal: dict[str, dict[str, dict[Hashable, set[Entry]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(set))
        )
        self._ranged: dict[str, set[Entry]] = defaultdict(set)
        self._filed: dict[SubscriptionId, list[tuple[Any, ...]]] = {}
        self._reads: dict[SubscriptionId, ReadSet] = {}

    def __len__(self) -> int:
        return len(self._reads)

    def record(self, sub: SubscriptionId, reads: ReadSet) -> None:
        """Replace what `sub` read with `reads`."""
        self.remove(sub)
        self._reads[sub] = reads
        filed: list[tuple[Any, ...]] = []
        if reads.everything:
            self._everything.add(sub)
            filed.append(("*",))
        for read in reads.reads:
            chosen = _choose(read)
            if chosen is None:
                self._whole[read.table].add(sub)
                filed.append(("whole", read.table))
            elif isinstance(chosen, Equals):
                by_value = self._equal[read.table][chosen.column]
                for value in chosen.values:
                    by_value[value].add((sub, read))
                    filed.append(("equal", read.table, chosen.column, value, read))
            else:
                self._ranged[read.table].add((sub, read))
                filed.append(("ranged", read.table, read))
        self._filed[sub] = filed

    def remove(self, sub: SubscriptionId) -> None:
        """Forget `sub`. Unknown ids are ignored."""
        self._reads.pop(sub, None)
        for place in self._filed.pop(sub, ()):
            match place:
                case ("*",):
                    self._everything.discard(sub)
                case ("whole", table):
                    self._whole[table].discard(sub)
                case ("equal", table, column, value, read):
                    by_value = self._equal[table][column]
                    entries = by_value.get(value)
                    if entries is not None:
                        entries.discard((sub, read))
                        if not entries:
                            del by_value[value]
                case ("ranged", table, read):
                    self._ranged[table].discard((sub, read))

    def all(self) -> set[SubscriptionId]:
        return set(self._reads)

    def affected(self, writes: Iterable[Write]) -> set[SubscriptionId]:
        """The subscriptions any of `writes` may change the result of."""
        found: set[SubscriptionId] = set()
        for write in writes:
            if isinstance(write, RowWrite):
                self._row(write, found)
            elif write.table == EVERYTHING:
                return self.all()
            else:
                self._table(write.table, found)
        return found

    def _table(self, table: str, found: set[SubscriptionId]) -> None:
        found |= self._everything
        found |= self._whole.get(table, set())
        for by_value in self._equal.get(table, {}).values():
            for entries in by_value.values():
                found.update(sub for sub, _ in entries)
        found.update(sub for sub, _ in self._ranged.get(table, ()))

    def _row(self, write: RowWrite, found: set[SubscriptionId]) -> None:
        found |= self._everything
        found |= self._whole.get(write.table, set())
        images = [i for i in (write.old, write.new) if i is not None]
        for column, by_value in self._equal.get(write.table, {}).items():
            for image in images:
                for sub, read in _candidates(by_value, image.get(column, UNKNOWN)):
                    if sub not in found and read.admits(image):
                        found.add(sub)
        for sub, read in self._ranged.get(write.table, ()):
            if sub not in found and any(read.admits(image) for image in images):
                found.add(sub)


def _candidates(by_value: Mapping[Hashable, set[Entry]], value: object) -> Iterable[Entry]:
    if value is None:
        return ()  # NULL equals nothing
    if value is UNKNOWN:
        return [e for entries in by_value.values() for e in entries]
    try:
        return by_value.get(value, ())
    except TypeError:  # unhashable: cannot look up, so consider all
        return [e for entries in by_value.values() for e in entries]
