"""What every bench script prints the same way: percentiles, the load, the table."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import rxnb as rx


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def load_average() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain text table, columns padded to their widest cell."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))

    print()
    print(line(headers))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def print_summary(met: int, judged: int, quick: bool, seconds: float) -> None:
    """The last line of a bench run: targets met, time taken, and the machine's load."""
    print(
        f"\n{met}/{judged} targets met{' (quick run: small sizes)' if quick else ''}; "
        f"total {seconds:.1f} s; load average now {load_average()} "
        "(other busy processes skew these figures)"
    )


class Judged(Protocol):
    """What a figure has for its progress line and the summary."""

    @property
    def key(self) -> str: ...
    @property
    def measured(self) -> str: ...
    @property
    def passed(self) -> bool | None: ...


@dataclass(frozen=True)
class Figure:
    """A figure beside its baseline from the same run; `passed` None: only reported."""

    key: str
    name: str
    baseline: str
    measured: str
    target: str
    passed: bool | None


@dataclass(frozen=True)
class Measured:
    """A figure judged by its target alone (no baseline); `passed` None: only reported."""

    key: str
    name: str
    measured: str
    target: str
    passed: bool | None


def print_measured(figures: Sequence[Measured]) -> None:
    print_table(
        ("", "figure", "measured", "target", "result"),
        [(f.key, f.name, f.measured, f.target, verdict(f.passed)) for f in figures],
    )


def verdict(passed: bool | None) -> str:
    return "-" if passed is None else "PASS" if passed else "FAIL"


def announce(figure: Judged) -> None:
    """The progress line of a figure as soon as it is measured."""
    judged = "" if figure.passed is None else f"  [{verdict(figure.passed)}]"
    print(f"  -> {figure.key} {figure.measured}{judged}", flush=True)


def print_header(quick: bool) -> None:
    """The first line of a bench run: versions, CPUs and the machine's load."""
    print(
        f"rxnb {rx.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {load_average()}{', QUICK run' if quick else ''}"
    )


def print_figures(figures: Sequence[Figure]) -> None:
    headers = ("", "figure", "baseline (same run)", "measured", "target", "result")
    print_table(
        headers,
        [(f.key, f.name, f.baseline, f.measured, f.target, verdict(f.passed)) for f in figures],
    )


def print_outcome(figures: Sequence[Judged], quick: bool, started: float) -> None:
    """The summary of the figures with a target (`started`: `time.perf_counter()`)."""
    judged = [f for f in figures if f.passed is not None]
    met = sum(bool(f.passed) for f in judged)
    print_summary(met, len(judged), quick, time.perf_counter() - started)
