"""`rxnb demo`: copies the chat demo and starts JupyterLab (and a worker) on it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from polling import until

from rxnb.cli import DEMO_FILES, copy_demo, demo_sources

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status)
    except urllib.error.HTTPError:
        return True  # JupyterLab is up (it asks for its token)
    except OSError:
        return False


def test_the_demo_files_are_the_examples_and_a_copy_keeps_the_users_notebook(
    tmp_path: Path,
) -> None:
    assert demo_sources() == EXAMPLES  # the source tree (an installed wheel has _demo/)
    notebook = copy_demo(tmp_path / "demo")
    assert notebook.name == "01_chat.ipynb"
    for name in DEMO_FILES:
        assert (tmp_path / "demo" / name).read_bytes() == (EXAMPLES / name).read_bytes()
    notebook.write_text("the user's own edits")
    copy_demo(tmp_path / "demo")
    assert notebook.read_text() == "the user's own edits"


def test_rxnb_demo_starts_jupyterlab_and_a_worker_on_the_chat_notebook(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    env.pop("RXNB_URL", None)
    command = [sys.executable, "-m", "rxnb", "demo", "--dir", str(tmp_path / "demo")]
    command += ["--worker", "--no-browser", "--port", str(port)]
    log = (tmp_path / "demo.log").open("w")
    demo = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        until(lambda: answers(f"http://127.0.0.1:{port}/lab"), timeout=60)
        until(lambda: "rxnb worker" in (tmp_path / "demo.log").read_text(), timeout=30)
        text = (tmp_path / "demo.log").read_text()
        assert f"rxnb demo: {tmp_path / 'demo' / '01_chat.ipynb'}" in text
        assert "actions: chat_app.generate" in text
        assert (tmp_path / "demo" / ".rxnb" / "rxnb.db").exists()  # the worker's store
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait(30)
        log.close()
