"""The browser harness itself: a plain ipywidgets notebook in JupyterLab and Notebook 7."""

from __future__ import annotations

import sys

import pytest
from jupyter_pages import JupyterServer, NotebookOpener, NotebookPage, make_notebook
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SLIDER = ".jp-OutputArea-output .widget-slider"


def wait_readout(nb: NotebookPage, value: str) -> None:
    """The slider in cell 0 shows `value` (widget messages may trail the execute reply)."""
    expect(nb.outputs(0).locator(".widget-readout")).to_have_text(value, timeout=10_000)


@pytest.mark.parametrize("jupyter_server", ["lab", "notebook"], indirect=True)
def test_widget_notebook_runs_reloads_and_shows_on_a_second_page(
    open_notebook: NotebookOpener, jupyter_server: JupyterServer
) -> None:
    nb = open_notebook(
        "slider.ipynb",
        make_notebook(
            "import ipywidgets as w; s = w.IntSlider(value=3); s",
            "import sys; print('kernel python:', sys.executable)",
            "s.value += 1",
        ),
    )
    assert nb.run_all().wait() is True
    nb.wait_for(SLIDER)
    wait_readout(nb, "4")
    # The kernel is this virtualenv's interpreter.
    nb.wait_text(f"kernel python: {sys.executable}")
    spec = jupyter_server.api("GET", "/api/kernelspecs")["kernelspecs"]
    assert list(spec) == ["python3"]
    assert spec["python3"]["spec"]["argv"][0] == sys.executable
    nb.screenshot("ran")

    nb.run_cell(2).wait()
    wait_readout(nb, "5")
    kernel = nb.kernel_id()
    assert kernel == jupyter_server.kernel_id("slider.ipynb")

    nb.save()
    saved = jupyter_server.read_notebook("slider.ipynb")
    assert "application/vnd.jupyter.widget-view+json" in saved.cells[0].outputs[0]["data"]

    nb.reload()
    wait_readout(nb, "5")
    assert nb.kernel_id() == kernel
    nb.screenshot("reloaded")

    second = open_notebook("slider.ipynb")
    second.wait_for(SLIDER)
    assert second.kernel_id() == kernel
    wait_readout(second, "5")
    # Both pages follow the one kernel.
    second.run_cell(2).wait()
    wait_readout(second, "6")
    wait_readout(nb, "6")
    second.screenshot("second-page")

    assert nb.unexpected_errors() == []
    assert second.unexpected_errors() == []

    # Kernel shut down, tabs closed, reopened without a kernel: the saved outputs show.
    nb.save()
    second.close()
    nb.shutdown_kernel()
    nb.close()
    assert jupyter_server.sessions() == []
    nokernel = open_notebook("slider.ipynb", kernel=False)
    nokernel.wait_text(f"kernel python: {sys.executable}")
    assert nokernel.panel("p.sessionContext.hasNoKernel") is True
    assert jupyter_server.sessions() == []
    nokernel.screenshot("no-kernel")
