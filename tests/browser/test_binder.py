"""Binder, reproduced: the environment repo2docker builds from binder/ (its Python
buildpack, in its order), made fresh from those files alone, serves JupyterLab, and
the course's first three notebooks run there in a real browser.

repo2docker's order for a `binder/` folder with runtime.txt and requirements.txt:
1. runtime.txt names the Python (`python-3.11`);
2. its base environment for that Python (repo2docker/buildpacks/conda/
   environment.py-3.11.yml: Python 3.11, Node.js 20, jupyterlab 4.*, notebook 7.*,
   ipywidgets 8.*, jupyter_server 2.*) is installed;
3. `pip install -r binder/requirements.txt`;
4. `binder/postBuild` runs from the repository's root.
Here step 2 is a new virtualenv with those Python packages; Node.js is this machine's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import nbformat
import pytest
from jupyter_pages import NotebookOpener, artifact_name, start_server
from playwright.sync_api import BrowserContext

ROOT = Path(__file__).resolve().parents[2]
BASE_ENV = ["jupyterlab==4.*", "notebook==7.*", "ipywidgets==8.*", "jupyter_server==2.*"]
FIRST_THREE = ["00_live_queries.ipynb", "01_chat.ipynb", "02_background_actions.ipynb"]
LEFT_OUT = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "test-artifacts", ".rxnb", "site", ".cache", "__pycache__"
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1200)]


def sh(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> None:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def binder_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Python of a fresh environment built from binder/ as repo2docker builds it."""
    base = tmp_path_factory.mktemp("binder")
    repo = base / "repo"
    shutil.copytree(ROOT, repo, ignore=LEFT_OUT, symlinks=True)
    runtime = (repo / "binder" / "runtime.txt").read_text().strip()
    assert runtime == f"python-{sys.version_info.major}.{sys.version_info.minor}", runtime
    env_dir = base / "env"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    env = {**os.environ, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    env["VIRTUAL_ENV"] = str(env_dir)
    sh([python, "-m", "pip", "install", "-q", *BASE_ENV], repo, env)
    sh([python, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], repo, env)
    assert not (repo / "binder" / "environment.yml").exists()  # it would win over the above
    sh(["bash", "binder/postBuild"], repo, env, timeout=900)
    return python


def test_the_course_runs_in_the_environment_binder_builds(
    binder_python: str, browser_context: BrowserContext, tmp_path: Path
) -> None:
    server = start_server("lab", tmp_path / "jupyter", timeout=60, python=binder_python)
    try:
        opener = NotebookOpener(browser_context, server, artifact_name("binder"))
        for module in (ROOT / "examples").glob("*.py"):
            shutil.copy(module, server.root / module.name)
        for name in FIRST_THREE:
            server.put_notebook(name, ROOT / "examples" / name)
            nb = opener(name)
            assert nb.run_all().wait(timeout=240) is not False, name
            nb.save()
            saved = server.read_notebook(name)
            errors = [
                o
                for c in saved.cells
                if c.cell_type == "code"
                for o in c.get("outputs", [])
                if o.get("output_type") == "error"
            ]
            assert errors == [], (name, errors)
            checks = [c for c in saved.cells if "check" in c.get("metadata", {}).get("tags", [])]
            said = "".join(o.get("text", "") for o in checks[0].outputs)
            assert said.startswith("not yet:"), (name, said)
            assert nbformat.validate(saved) is None
            nb.shutdown_kernel()  # from the page: this server's API refuses a bare DELETE
            nb.close()
    finally:
        server.stop()
