"""When rxnb traces: with the standard variables and the extra, from `import rxnb`
on, in any process; never otherwise, and then without importing opentelemetry."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from collector import Collector
from polling import until
from procs import finish, python

OTEL = [name for name in os.environ if name.startswith("OTEL_")]


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def run_python(code: str, *args: str, **env: str) -> str:
    """`code` in a new process whose OTEL_ variables are `env`'s alone."""
    saved = {name: os.environ.pop(name) for name in OTEL}
    try:
        os.environ.update(env)
        proc = python(code, *args)
    finally:
        for name in env:
            os.environ.pop(name, None)
        os.environ.update(saved)
    return finish(proc, timeout=120)


SHOW = """
import sys, logging
logging.basicConfig()
import rxnb, rxnb.otel
print(rxnb.otel.enabled(), any(m.startswith("opentelemetry") for m in sys.modules))
"""


@pytest.mark.parametrize(
    ("env", "shown"),
    [
        ({}, "False False"),
        ({"OTEL_SERVICE_NAME": "x"}, "False False"),  # a name alone exports nothing
        ({"OTEL_TRACES_EXPORTER": "none"}, "False False"),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, "False False"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "True True"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, "True True"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"}, "True True"),
    ],
)
def test_import_rxnb_traces_only_when_the_environment_says_so(
    env: dict[str, str], shown: str
) -> None:
    assert run_python(SHOW, **env).split() == shown.split()


def test_a_misconfigured_exporter_is_said_and_import_rxnb_still_works() -> None:
    code = SHOW + "print('imported')"
    proc_out = run_python(code, OTEL_TRACES_EXPORTER="zipkin")
    assert proc_out.split() == ["False", "True", "imported"]


ACTION = """
import sys
import rxnb as rx

@rx.action
def add(ctx, a: int, b: int) -> int:
    return a + b

store = rx.open(sys.argv[1])
assert add.start(a=1, b=2).result(timeout=60) == 3
store.close()
"""


def test_the_variables_alone_export_a_run_to_the_collector_by_the_time_the_process_exits(
    url: str, collector: Collector
) -> None:
    run_python(ACTION, url, OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint)
    spans = until(lambda: len(collector.spans()) >= 2 and collector.spans(), timeout=10)
    by_name = {s.name: s for s in spans}
    start, run = by_name["start __main__.add"], by_name["action __main__.add"]
    assert start.parent_id == "" and run.parent_id == start.span_id
    assert run.trace_id == start.trace_id
    assert run.service == "rxnb"  # service.name, unless OTEL_SERVICE_NAME says another
    assert run.attributes["rxnb.run.outcome"] == "returned"
