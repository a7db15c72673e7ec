"""Files in an agent's chat, in a real JupyterLab: an image sent with a message shows
as an <img>, a PDF as a download link, a hostile SVG name as text, and the image a
tool returned under its card."""

from __future__ import annotations

import pytest
from agent_pages import TOOL, USER
from jupyter_pages import NotebookOpener, make_notebook
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror="window.pwned=1">.svg'

SETUP = f"""
import struct, zlib
import rxnb as rx

def png(size, rgb):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\\x00" + bytes(rgb) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))

store = rx.open()

@rx.tool
def chart() -> rx.File:
    \"\"\"Draw a chart.\"\"\"
    return rx.files.get(rx.files.put(png(32, (40, 40, 200)), name="chart.png"))

helper = rx.Agent("drawer", model="rxnb/scripted", tools=[chart], turns=[
    {{"tool_calls": [{{"name": "chart", "arguments": {{}}}}]}}, {{"script": "Here it is."}}])
photo = rx.files.put(png(48, (200, 40, 40)), name="dot.png")
pdf = rx.files.put(b"%PDF-1.4 hello", name="report.pdf")
svg = rx.files.put(b"<svg xmlns='http://www.w3.org/2000/svg' onload='window.pwned=2'/>",
                   name={HOSTILE!r})
helper.send("t1", "Plot this", files=[photo, pdf, svg]).result(timeout=60)
"""

CHAT = '.rxnb-live[data-kind="chat"] .rxnb-chat'


def test_an_agent_chat_shows_sent_and_returned_files(open_notebook: NotebookOpener) -> None:
    nb = open_notebook("agent_files.ipynb", make_notebook(SETUP, 'helper.chat("t1")'))
    run = nb.run_all()
    chat = nb.wait_for(CHAT, timeout=60)
    user = chat.locator(USER)
    image = user.locator("img.rxnb-file-image")
    expect(image).to_have_count(1, timeout=20_000)
    expect(image).to_have_attribute("alt", "dot.png")
    decoded = "img => img.decode().then(() => img.naturalWidth, () => 0)"
    assert image.evaluate(decoded) == 48
    links = user.locator("a.rxnb-file-link")
    expect(links).to_have_count(2, timeout=20_000)
    expect(links.nth(0)).to_have_text("report.pdf (14 B)")
    expect(links.nth(1)).to_contain_text(HOSTILE)
    with nb.page.expect_download(timeout=20_000) as download:
        links.nth(0).click()
    assert download.value.suggested_filename == "report.pdf"
    made = chat.locator(f"{TOOL} .rxnb-files img.rxnb-file-image")
    expect(made).to_have_count(1, timeout=20_000)
    expect(made).to_have_attribute("alt", "chart.png")
    assert made.evaluate(decoded) == 32
    assert chat.locator("[onerror], svg").count() == 0
    assert nb.page.evaluate("() => window.pwned") is None
    assert run.wait(60) is True
    nb.screenshot("agent-files")
    assert nb.unexpected_errors() == []
