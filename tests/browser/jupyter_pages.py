"""A real Jupyter server and Chromium pages driving its notebooks, for browser tests.

`start_server` runs JupyterLab or Notebook 7 in its own process session with fresh
config, data and runtime directories, so nothing from the machine's Jupyter setup leaks
in; its only kernelspec is this interpreter (`sys.executable`). `NotebookPage` drives one
notebook in one browser page through `window.jupyterapp` (the server is started with
`--expose-app-in-browser`, which both front ends honour) and waits on conditions with
deadlines, never on bare sleeps.

Facts this relies on, checked on the test machines: Debian's `/usr/bin/chromium`
(`apt-get install -y chromium`; `playwright install` cannot download here), launched
with `--no-sandbox --disable-gpu`; the server started in its own session with fresh
config and runtime directories, no token, `--ServerApp.port_retries=0`, and stopped
with SIGTERM to its pid (`POST /api/shutdown` answers 403); `notebook:run-all-cells`
resolves only when every cell has ended, so it is not awaited; a page is saved
(`docmanager:save`) before a reload, or no widget output is on disk to restore.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import nbformat
from ipykernel.kernelspec import write_kernel_spec
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Locator, Page, Playwright

Flavor = Literal["lab", "notebook"]
T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
KERNEL_NAME = "python3"
KERNEL_DISPLAY_NAME = "Python 3 (rxnb tests)"
OUTPUT = ".jp-OutputArea-output"  # one rendered output, in Lab and Notebook 7

# Page errors the front ends raise on their own, even on an empty notebook.
KNOWN_PAGE_ERRORS = (
    # Notebook 7.6.5, at start-up.
    "Cannot read properties of undefined (reading 'schema')",
)

# JavaScript run in the page: the document widget showing notebook `path`, or null.
_FIND_PANEL = """
function rxnbPanel(path) {
  const app = window.jupyterapp;
  if (!app) return null;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.content && w.content.widgets) return w;
  }
  return null;
}
"""


def wait_until(
    condition: Callable[[], T | None], what: str, timeout: float = 30, interval: float = 0.05
) -> T:
    """Poll `condition` until it returns something truthy, or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_notebook(*sources: str) -> nbformat.NotebookNode:
    """A notebook of code cells (markdown if a source starts with "# md\\n"), this kernel."""
    nb = nbformat.v4.new_notebook()
    for source in sources:
        if source.startswith("# md\n"):
            nb.cells.append(nbformat.v4.new_markdown_cell(source.removeprefix("# md\n")))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source))
    nb.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": KERNEL_DISPLAY_NAME,
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    return nb


@dataclass
class JupyterServer:
    """A running `jupyter lab` / `jupyter notebook` and its REST API."""

    flavor: Flavor
    url: str
    root: Path
    home: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def notebook_url(self, name: str, workspace: str | None = None) -> str:
        """The page URL for notebook `name`; in Lab, in `workspace` if given.

        Lab restores a workspace's open documents on load: a workspace per page keeps
        notebooks opened by earlier pages out of this one.
        """
        if self.flavor == "notebook":
            return f"{self.url}/notebooks/{name}"
        if workspace:
            return f"{self.url}/lab/workspaces/{workspace}/tree/{name}"
        return f"{self.url}/lab/tree/{name}"

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        """Call the REST API (no token needed); returns the decoded JSON or None."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def put_notebook(self, name: str, nb: nbformat.NotebookNode | Path) -> str:
        """Write a notebook (or copy a notebook file) into the server's root; returns name."""
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(nb, Path):
            shutil.copyfile(nb, target)  # byte for byte: keeps its signature, if any
        else:
            nbformat.write(nb, target)
        return name

    def read_notebook(self, name: str) -> nbformat.NotebookNode:
        return nbformat.read(self.root / name, as_version=4)

    def sessions(self, name: str | None = None) -> list[dict[str, Any]]:
        sessions: list[dict[str, Any]] = self.api("GET", "/api/sessions")
        return [s for s in sessions if name is None or s["path"] == name]

    def kernel_id(self, name: str, timeout: float = 30) -> str:
        """The id of the kernel of notebook `name`, waiting for its session to exist."""
        return wait_until(
            lambda: next((s["kernel"]["id"] for s in self.sessions(name) if s["kernel"]), None),
            f"a kernel session for {name}",
            timeout,
        )

    def shutdown_kernels(self, name: str | None = None, timeout: float = 15) -> None:
        """Delete the sessions (and so shut the kernels down) of `name`, or of everything."""
        for s in self.sessions(name):
            self.api("DELETE", f"/api/sessions/{s['id']}")
        wait_until(lambda: not self.sessions(name), "sessions to be gone", timeout)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the server (it shuts its kernels down), kill it if it does not stop."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # Its process group only: kernels run in sessions of their own and
                # exit when their parent is gone (ipykernel's parent poller).
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)


def start_server(
    flavor: Flavor, base: Path, timeout: float = 30, python: str = sys.executable
) -> JupyterServer:
    """Start a server for `flavor` under `base` (root at base/root) and wait until it serves.

    Config, data, runtime and IPython dirs are fresh under `base`; the data dir holds the
    only kernelspec, `python3` running `python` (the server runs on it too; by default
    this interpreter).
    """
    root, home = base / "root", base / "jupyter"
    config, data, runtime = home / "config", home / "data", home / "runtime"
    for d in (root, config, data, runtime):
        d.mkdir(parents=True, exist_ok=True)
    # ipykernel's own spec (protocol version, interrupt mode, logos), for this interpreter.
    write_kernel_spec(
        data / "kernels" / KERNEL_NAME,
        overrides={"display_name": KERNEL_DISPLAY_NAME},
    )
    spec = data / "kernels" / KERNEL_NAME / "kernel.json"
    kernel = json.loads(spec.read_text())
    kernel["argv"][0] = python
    spec.write_text(json.dumps(kernel))
    # No "Jupyter news" toast over the page.
    settings = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(data),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "IPYTHONDIR": str(home / "ipython"),
        # In a virtualenv Jupyter looks in sys.prefix before JUPYTER_DATA_DIR; our
        # kernelspec must win over the environment's (or ~/.local's) `python3`.
        "JUPYTER_PREFER_ENV_PATH": "0",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    port = free_port()
    module = "jupyterlab" if flavor == "lab" else "notebook"
    log = home / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                python,
                "-m",
                module,
                "--no-browser",
                "--ip=127.0.0.1",
                f"--port={port}",
                "--ServerApp.port_retries=0",
                "--ServerApp.token=",
                "--ServerApp.password=",
                "--allow-root",
                "--expose-app-in-browser",
                f"--ServerApp.root_dir={root}",
                f"--MultiKernelManager.default_kernel_name={KERNEL_NAME}",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = JupyterServer(flavor, f"http://127.0.0.1:{port}", root, home, proc, log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter {flavor} exited ({proc.returncode}):\n{server.log_tail()}")
        try:
            server.api("GET", "/api/status", timeout=2)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return True

    try:
        wait_until(ready, f"jupyter {flavor} on {server.url}", timeout)
    except BaseException:
        server.stop()
        raise
    return server


def launch_browser(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )


def artifact_name(test_name: str) -> str:
    """`test_x[lab-2]` -> `test_x-lab-2`, safe as a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name).strip("-")


@dataclass
class Run:
    """A command started in the page without awaiting it (e.g. run-all-cells)."""

    page: Page
    index: int

    def done(self) -> bool:
        """Whether the command resolved (False after a reload: its page is gone)."""
        return bool(
            self.page.evaluate(
                f"() => !!window.__rxnbRuns && window.__rxnbRuns[{self.index}] !== 'running'"
            )
        )

    def wait(self, timeout: float = 30) -> Any:
        """Wait until the command resolved; returns its result (False: a cell failed)."""
        self.page.wait_for_function(
            f"() => window.__rxnbRuns && window.__rxnbRuns[{self.index}] !== 'running'",
            timeout=timeout * 1000,
        )
        result = self.page.evaluate(f"() => window.__rxnbRuns[{self.index}]")
        if isinstance(result, dict) and "error" in result:
            raise RuntimeError(f"command failed in the page: {result['error']}")
        return result


@dataclass
class NotebookPage:
    """One notebook open in one browser page, driven through `window.jupyterapp`.

    Collects the page's uncaught errors (`page_errors`) and console errors and warnings
    (`console`), and saves screenshots under test-artifacts/browser/.
    """

    page: Page
    server: JupyterServer
    name: str
    artifact_prefix: str
    workspace: str | None = None
    page_errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("console", self._on_console)
        # "Leave site?" on reload with unsaved changes: leave.
        self.page.on("dialog", lambda d: d.accept())

    def _on_console(self, msg: ConsoleMessage) -> None:
        if msg.type in ("error", "warning"):
            self.console.append(f"{msg.type}: {msg.text}")

    # -- opening ----------------------------------------------------------------------

    def open(self, kernel: bool = True, timeout: float = 30) -> NotebookPage:
        """Load the notebook's URL and wait until it is shown (and its kernel idle).

        With `kernel=False` the page is told there are no kernelspecs, so the front end
        asks which kernel to use and the helper answers "No Kernel": the notebook shows
        its saved outputs with no kernel, as after choosing "No Kernel" by hand. The page
        keeps seeing no kernelspecs, also after `reload(kernel=False)`.
        """
        if not kernel:
            self.page.route(
                "**/api/kernelspecs*",
                lambda route: route.fulfill(
                    status=200,
                    content_type="application/json",
                    body=json.dumps({"default": KERNEL_NAME, "kernelspecs": {}}),
                ),
            )
        self.page.goto(self.server.notebook_url(self.name, self.workspace))
        if kernel:
            self.wait_ready(timeout)
        else:
            self.page.locator(".jp-Dialog button", has_text="No Kernel").click(
                timeout=timeout * 1000
            )
            self.wait_shown(timeout)
        return self

    def wait_shown(self, timeout: float = 30) -> None:
        """Wait until the notebook's cells are in the page."""
        self.page.wait_for_function(
            f"""() => {{ {_FIND_PANEL}
              const p = rxnbPanel({json.dumps(self.name)});
              return p !== null && p.context.isReady && p.content.widgets.length > 0;
            }}""",
            timeout=timeout * 1000,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until the notebook is shown and its kernel connected and idle."""
        self.wait_shown(timeout)
        self.wait_kernel_idle(timeout)

    def wait_kernel_idle(self, timeout: float = 30) -> None:
        self.page.wait_for_function(
            f"""() => {{ {_FIND_PANEL}
              const p = rxnbPanel({json.dumps(self.name)});
              const k = p && p.sessionContext.session && p.sessionContext.session.kernel;
              return !!k && p.sessionContext.isReady && k.status === 'idle'
                && k.connectionStatus === 'connected';
            }}""",
            timeout=timeout * 1000,
        )

    def panel(self, expression: str) -> Any:
        """Evaluate JS `expression` with `p` bound to the notebook panel."""
        return self.page.evaluate(
            f"""() => {{ {_FIND_PANEL}
              const p = rxnbPanel({json.dumps(self.name)});
              if (p === null) throw new Error('notebook not open: ' + {json.dumps(self.name)});
              return {expression};
            }}"""
        )

    def kernel_id(self) -> str | None:
        return self.panel("p.sessionContext.session?.kernel?.id ?? null")  # type: ignore[no-any-return]

    # -- commands ---------------------------------------------------------------------

    def command(self, command: str, args: dict[str, Any] | None = None) -> Run:
        """Start a JupyterLab command on this notebook without awaiting it."""
        self.panel("window.jupyterapp.shell.activateById(p.id)")
        index = self.page.evaluate(
            """([command, args]) => {
              const runs = (window.__rxnbRuns = window.__rxnbRuns || []);
              const i = runs.length;
              runs.push('running');
              window.jupyterapp.commands.execute(command, args).then(
                (r) => { runs[i] = r === undefined ? null : r; },
                (e) => { runs[i] = {error: String(e)}; },
              );
              return i;
            }""",
            [command, args or {}],
        )
        return Run(self.page, index)

    def run_all(self) -> Run:
        """Run every cell; `.wait()` on the result returns when the last one ended."""
        return self.command("notebook:run-all-cells")

    def run_cell(self, index: int) -> Run:
        """Run cell `index` (0-based) alone, again if it ran before."""
        self.panel(f"(p.content.deselectAll(), p.content.activeCellIndex = {index})")
        return self.command("notebook:run-cell")

    def save(self, timeout: float = 15) -> None:
        """Save through the UI (`docmanager:save`) and wait until it is on disk.

        On disk means the server answered this save: the document's `last_modified`
        moved. Not that the document is clean: a live widget's snapshot output, refreshed
        each second, marks it dirty again right after a save, so a test that waited for
        a clean moment could miss it (under load) and time out with the file saved.
        """
        saved = f"""{_FIND_PANEL}
          const p = rxnbPanel({json.dumps(self.name)});
          const m = p && p.context.contentsModel;
          return m ? m.last_modified : null;"""
        before = self.page.evaluate(f"() => {{ {saved} }}")
        self.command("docmanager:save").wait(timeout)
        self.page.wait_for_function(
            f"""(before) => {{
              const now = (() => {{ {saved} }})();
              return now !== null && now !== before;
            }}""",
            arg=before,
            timeout=timeout * 1000,
        )

    def reload(self, kernel: bool = True, timeout: float = 30) -> None:
        """Reload the page and wait until the notebook is back (on the same kernel)."""
        self.page.reload()
        if kernel:
            self.wait_ready(timeout)
        else:
            self.wait_shown(timeout)

    def shutdown_kernel(self, timeout: float = 15) -> None:
        """Shut the kernel down from the page (as Kernel > Shut Down Kernel does)."""
        self.panel("p.sessionContext.shutdown()")
        wait_until(lambda: not self.server.sessions(self.name), "the kernel to stop", timeout)

    def close(self) -> None:
        """Close the page (the browser tab), keeping the kernel."""
        self.page.close()

    def record_messages(self) -> None:
        """Start keeping every message this page's kernel connection sends or receives.

        Read them with `recorded_messages()`; a reload starts afresh (call again).
        """
        self.panel(
            """(() => {
              const log = (window.__rxnbMessages = window.__rxnbMessages || []);
              p.sessionContext.session.kernel.anyMessage.connect((_, a) => {
                const m = a.msg;
                log.push({direction: a.direction, channel: m.channel,
                  msg_type: m.header.msg_type, msg_id: m.header.msg_id,
                  parent_msg_id: (m.parent_header || {}).msg_id || null,
                  parent_msg_type: (m.parent_header || {}).msg_type || null,
                  content: m.content, t: performance.now()});
              });
            })()"""
        )

    def recorded_messages(self) -> list[dict[str, Any]]:
        """Messages since `record_messages()`: direction ("send"/"recv"), channel,
        msg_type, msg_id, parent_msg_id, parent_msg_type, content, t (page ms)."""
        return self.page.evaluate("() => window.__rxnbMessages || []")  # type: ignore[no-any-return]

    # -- reading ----------------------------------------------------------------------

    def root(self) -> Locator:
        """This notebook's panel (Lab may show other documents in the same page)."""
        return self.page.locator(f"[id={json.dumps(self.panel('p.id'))}]")

    def cell(self, index: int) -> Locator:
        return self.root().locator(".jp-Notebook .jp-Cell").nth(index)

    def outputs(self, index: int) -> Locator:
        """The output areas' children of cell `index`."""
        return self.cell(index).locator(OUTPUT)

    def wait_for(self, selector: str, timeout: float = 15, state: str = "visible") -> Locator:
        """The first element in this notebook matching `selector` once it reaches `state`."""
        locator = self.root().locator(selector).first
        locator.wait_for(state=state, timeout=timeout * 1000)  # type: ignore[arg-type]
        return locator

    def wait_text(
        self, text: str, timeout: float = 15, cell: int | None = None, within: str = OUTPUT
    ) -> Locator:
        """The first output (of cell `cell`, or any) containing `text`, once visible.

        Only outputs by default: a cell's source often holds the same text. Pass
        `within=".jp-Cell"` (or another selector) to search elsewhere.
        """
        scope = self.root() if cell is None else self.cell(cell)
        locator = scope.locator(within).filter(has_text=text).first
        locator.wait_for(state="visible", timeout=timeout * 1000)
        return locator

    def screenshot(self, step: str) -> Path:
        """Save a screenshot as test-artifacts/browser/<test>-<step>.png."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.artifact_prefix}-{artifact_name(step)}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def unexpected_errors(self, allowed: Iterable[str] = ()) -> list[str]:
        """Page errors other than the known harmless ones and `allowed` substrings."""
        known = (*KNOWN_PAGE_ERRORS, *allowed)
        return [e for e in self.page_errors if not any(k in e for k in known)]


@dataclass
class NotebookOpener:
    """Opens notebooks of one server in pages of one browser context (one test)."""

    context: BrowserContext
    server: JupyterServer
    artifact_prefix: str
    pages: list[NotebookPage] = field(default_factory=list)

    def __call__(
        self,
        name: str,
        nb: nbformat.NotebookNode | Path | None = None,
        *,
        kernel: bool = True,
        timeout: float = 30,
    ) -> NotebookPage:
        """Open notebook `name` (written first from `nb` if given) in a new page.

        Calling it again with the same name opens a second page on the same kernel.
        """
        if nb is not None:
            self.server.put_notebook(name, nb)
        workspace = f"rxnb-{len(self.pages)}-{uuid.uuid4().hex[:8]}"
        page = NotebookPage(
            self.context.new_page(), self.server, name, self.artifact_prefix, workspace
        )
        self.pages.append(page)
        return page.open(kernel=kernel, timeout=timeout)

    def screenshot_all(self, step: str) -> list[Path]:
        paths = []
        for i, p in enumerate(self.pages):
            if not p.page.is_closed():
                paths.append(p.screenshot(f"{step}-page{i}"))
        return paths
