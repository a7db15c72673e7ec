"""Stored files in a chat, in a real JupyterLab: images inline, other files as downloads,
hostile names and types inert."""

from __future__ import annotations

import pytest
from jupyter_pages import NotebookOpener, make_notebook
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror="window.pwned=1">.svg'

SETUP = f"""
import struct, zlib
import rxnb as rx
from sqlmodel import SQLModel, Field, col, select

class Note(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(index=True)
    role: str = "user"
    content: str = ""
    status: str = "done"
    attachment: str | None = Field(default=None, sa_type=rx.FileRef)

@rx.query
def notes(db: rx.Reader, thread_id: str) -> list[Note]:
    return list(db.exec(select(Note).where(Note.thread_id == thread_id).order_by(col(Note.id))))

@rx.mutation
def send(db: rx.Writer, thread_id: str, text: str, attachment: str | None = None) -> None:
    db.add(Note(thread_id=thread_id, content=text, attachment=attachment))

@rx.query
def stored(db: rx.Reader) -> list[rx.File]:
    return list(db.exec(select(rx.File).where(rx.File.content_type == "image/png")))

def png(size, rgb):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\\x00" + bytes(rgb) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))

store = rx.open()
png = rx.files.put(png(48, (200, 40, 40)), name="dot.png")
pdf = rx.files.put(b"%PDF-1.4 hello", name="report.pdf")
svg = rx.files.put(b"<svg xmlns='http://www.w3.org/2000/svg' onload='window.pwned=2'/>",
                   name={HOSTILE!r})
for file_id, text in ((png, "an image"), (pdf, "a report"), (svg, "a trap")):
    send(thread_id="t", text=text, attachment=file_id)
"""

CHAT = '.rxnb-live[data-kind="chat"] .rxnb-chat'


def test_an_image_shows_a_pdf_downloads_and_a_hostile_file_stays_inert(
    open_notebook: NotebookOpener,
) -> None:
    nb = open_notebook(
        "files.ipynb",
        make_notebook(
            SETUP, 'rx.chat("t", send=send, messages=notes, files="attachment")', "stored.live()"
        ),
    )
    run = nb.run_all()
    chat = nb.wait_for(CHAT, timeout=60)
    image = chat.locator("img.rxnb-file-image")
    expect(image).to_have_count(1, timeout=20_000)
    expect(image).to_have_attribute("alt", "dot.png")
    decoded = "img => img.decode().then(() => img.naturalWidth, () => 0)"
    assert image.evaluate(decoded) == 48
    links = chat.locator("a.rxnb-file-link")
    expect(links).to_have_count(2, timeout=20_000)
    expect(links.nth(0)).to_have_text("report.pdf (14 B)")
    expect(links.nth(1)).to_contain_text(HOSTILE)
    with nb.page.expect_download(timeout=20_000) as download:
        links.nth(0).click()
    assert download.value.suggested_filename == "report.pdf"
    assert chat.locator("[onerror], svg").count() == 0
    assert nb.page.evaluate("() => window.pwned") is None
    assert run.wait(60) is True
    cell = nb.outputs(2).locator('.rxnb-live td[data-col="id"] img.rxnb-file-image')
    expect(cell).to_have_count(1, timeout=20_000)
    assert cell.evaluate(decoded) == 48
    nb.screenshot("files")
    assert nb.unexpected_errors() == []
