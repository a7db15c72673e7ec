"""What the chat page tests share: the chat notebook, its reply, a kernel restart."""

from __future__ import annotations

from pathlib import Path

import nbformat
from jupyter_pages import NotebookPage, wait_until
from playwright.sync_api import Locator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOK = "01_chat.ipynb"
CHAT = '.rxnb-live[data-kind="chat"] .rxnb-chat'
ASSISTANT = '.rxnb-msg[data-role="assistant"]'

# JavaScript: the kernel statuses the notebook's session goes through, from now on.
RECORD_STATUSES = """(() => {
  const seen = (window.__rxnbStatuses = []);
  p.sessionContext.statusChanged.connect((_, s) => { seen.push(s); });
})()"""


def chat_notebook() -> nbformat.NotebookNode:
    """01_chat.ipynb's cells up to and including the `rx.chat("demo", ...)` cell."""
    nb = nbformat.read(EXAMPLES / NOTEBOOK, as_version=4)
    last = next(i for i, c in enumerate(nb.cells) if c.source.startswith('rx.chat("demo"'))
    nb.cells = nb.cells[: last + 1]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def reply(nb: NotebookPage) -> Locator:
    """The chat's assistant messages in the notebook's page."""
    return nb.root().locator(f"{CHAT} {ASSISTANT}")


def restart_kernel(nb: NotebookPage, timeout: float = 30) -> None:
    """Kernel → Restart Kernel…, accepting its confirmation; waits for the new kernel."""
    nb.panel(RECORD_STATUSES)
    command = nb.command("kernelmenu:restart")
    nb.page.locator(".jp-Dialog button.jp-mod-accept").click(timeout=10_000)
    command.wait(timeout)
    wait_until(
        lambda: "restarting" in nb.page.evaluate("() => window.__rxnbStatuses"),
        "the kernel to restart",
        timeout,
    )
    nb.wait_kernel_idle(timeout)
