"""`rxnb worker` started without the user's module says so, although rxnb's own
actions (a comparison's columns) are always registered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_a_worker_with_no_user_action_says_to_import_the_module(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "rxnb", "worker", "--url", url],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done
    assert "no @rx.action found; pass --import MODULE" in done.stderr
