"""Agents that retrieve: `python bench/agent_retrieval.py [--docs 2000] [--turns 20] [--url URL]`.

Stores --docs documents embedded with the offline `rxnb/embed` (a SQLite file in a
temporary folder unless --url is given), then answers --turns messages with an agent
on the offline `rxnb/scripted` model, first without `retrieve=`, then with
`retrieve=rx.agents.search(Doc.embedding, text=Doc.body, k=5)`, alternating so load
changes hit both alike. It prints the CPU time of this process per turn
(`time.process_time`, all threads) and the wall time per turn, p50, and the ratio of
the retrieving turns to the plain ones: the cost of the retrieval step (embedding the
question, the search, the context message) on top of a turn.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sqlmodel import Field, SQLModel

import rxnb as rx

parser = argparse.ArgumentParser()
parser.add_argument("--docs", type=int, default=2000)
parser.add_argument("--turns", type=int, default=20)
parser.add_argument("--url", default=None)
ARGS = parser.parse_args()

WORDS = [
    "bread",
    "river",
    "stock",
    "soup",
    "starter",
    "flour",
    "market",
    "sea",
    "stone",
    "garlic",
    "onion",
    "earnings",
]


class BenchDoc(SQLModel, table=True):
    __tablename__ = "bench_retrieval_doc"
    id: int | None = Field(default=None, primary_key=True)
    body: str
    embedding: list[float] | None = Field(default=None, sa_type=rx.Vector(384))


@rx.mutation
def add_docs(db: rx.Writer, bodies: list[str], vectors: list[list[float]]) -> None:
    db.add_all(BenchDoc(body=b, embedding=v) for b, v in zip(bodies, vectors, strict=True))


def main(url: str) -> None:
    store = rx.open(url)
    bodies = [
        " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(40)) + f" doc {i}"
        for i in range(ARGS.docs)
    ]
    for start in range(0, len(bodies), 500):
        chunk = bodies[start : start + 500]
        add_docs(bodies=chunk, vectors=rx.llm.embed(chunk))
    plain = rx.Agent("bench-plain", model="rxnb/scripted", script="ok")
    reader = rx.Agent(
        "bench-reader",
        model="rxnb/scripted",
        script="ok",
        retrieve=rx.agents.search(BenchDoc.embedding, text=BenchDoc.body, k=5),
    )
    reader.send("warm", "bread and river").result(timeout=60)  # loads the index
    plain.send("warm-plain", "bread and river").result(timeout=60)
    cpu: dict[str, list[float]] = {"plain": [], "retrieve": []}
    wall: dict[str, list[float]] = {"plain": [], "retrieve": []}
    for i in range(ARGS.turns):
        for name, agent in (("plain", plain), ("retrieve", reader)):
            c0, w0 = time.process_time(), time.perf_counter()
            agent.send(f"{name}-{i}", f"{WORDS[i % len(WORDS)]} and soup?").result(timeout=60)
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    store.close()
    print(f"{ARGS.docs} documents x 384, k=5, {ARGS.turns} turns each, p50 per turn")
    for name in ("plain", "retrieve"):
        print(
            f"  {name:9} cpu {statistics.median(cpu[name]) * 1e3:7.1f} ms"
            f"   wall {statistics.median(wall[name]) * 1e3:7.1f} ms"
        )
    ratio = statistics.median(cpu["retrieve"]) / statistics.median(cpu["plain"])
    print(f"  retrieve / plain: cpu {ratio:.2f}x")


if __name__ == "__main__":
    if ARGS.url:
        main(ARGS.url)
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(f"sqlite:///{Path(folder) / 'bench.db'}")
