"""rxnb as `pip install .` (and binder/postBuild) installs it: a wheel that holds the
widget bundle and the demo's files, and that streams a generation with the offline
model when it is imported away from the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

USE_THE_WHEEL = """
import sys
from pathlib import Path

from sqlmodel import Field, SQLModel

import rxnb as rx
from rxnb.cli import demo_sources
from rxnb.widgets._live import STATIC

site, here = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
assert Path(rx.__file__).resolve().is_relative_to(site), rx.__file__
assert (STATIC / "widget.js").is_file() and STATIC.resolve().is_relative_to(site), STATIC
assert demo_sources().resolve().is_relative_to(site), demo_sources()


class Note(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    content: str = ""
    status: str = "pending"


@rx.mutation
def add(db: rx.Writer) -> int:
    note = Note()
    db.add(note)
    db.flush()
    return note.id


@rx.action
def write(ctx: rx.ActionContext, note_id: int) -> str:
    return rx.llm.stream_into(
        ctx, Note, note_id, model="rxnb/echo", delay=0,
        messages=[{"role": "user", "content": "hello from a wheel"}],
    )


store = rx.open(f"sqlite:///{here / 'store.db'}")
print(write.start(note_id=add()).result(timeout=60))
store.close()
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
        check=True,
        timeout=600,
    )
    return next(out.glob("rxnb-*.whl"))


@pytest.mark.timeout(900)
def test_the_wheel_holds_the_widget_bundle_and_the_demo_and_no_sources(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "rxnb/static/widget.js",
        "rxnb/static/widget.css",
        "rxnb/_demo/01_chat.ipynb",
        "rxnb/_demo/chat_app.py",
        "rxnb/py.typed",
    ):
        assert name in names, f"{name} is missing from {wheel.name}"
    assert not [n for n in names if n.startswith(("tests/", "js/", "examples/", "bench/"))]


@pytest.mark.timeout(900)
def test_the_installed_wheel_streams_offline_away_from_the_source_tree(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), wheel],
        check=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(site), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [sys.executable, "-c", USE_THE_WHEEL, str(site), str(tmp_path)],
        check=False,
        cwd=tmp_path,  # not the source tree: rxnb comes from the wheel
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hello from a wheel"
