"""The docs site (mkdocs.yml): it builds in strict mode, every link in the built pages
resolves, and a broken link or API reference fails the build."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
COURSE = sorted(p.stem for p in (ROOT / "examples").glob("[0-9][0-9]_*.ipynb"))

pytestmark = pytest.mark.timeout(300)


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def broken_links(site: Path) -> list[tuple[str, str]]:
    """Every href or src in the built pages that points at no file of the site."""
    bad = []
    for page in site.rglob("*.html"):
        for link in re.findall(r'(?:href|src)="([^"#][^"]*)"', page.read_text(errors="replace")):
            url = urlparse(link)
            if url.scheme or link.startswith(("mailto:", "//", "data:")) or not url.path:
                continue
            path = unquote(url.path)
            target = site / path.lstrip("/") if path.startswith("/") else page.parent / path
            target = target / "index.html" if target.is_dir() else target
            if not target.exists():
                bad.append((str(page.relative_to(site)), link))
    return bad


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = build(ROOT / "mkdocs.yml", out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_the_site_builds_strict_and_every_link_resolves(site: Path) -> None:
    assert broken_links(site) == []


def test_it_holds_the_course_the_concepts_and_the_api(site: Path) -> None:
    for stem in COURSE:
        assert (site / "course" / f"{stem}.html").is_file(), stem
    runs = (site / "concepts" / "runs.html").read_text()
    assert "Cancellation is a write" in runs and "--8&lt;--" not in runs  # the README section
    api = (site / "reference" / "api.html").read_text()
    for name in ("rxnb.Agent.send", "rxnb.Query.live", "rxnb.testing.scripted"):
        assert f'id="{name}"' in api, name
    assert "Request that run" in api  # rx.cancel's docstring


@pytest.mark.parametrize(
    ("page", "problem"),
    [
        ("See [the guide](no-such-page.md).", "no-such-page.md"),
        ("::: rxnb.NoSuchThing", "rxnb.NoSuchThing"),
        ('--8<-- "README.md:no-such-section"', "no-such-section"),
    ],
)
def test_a_broken_link_or_reference_fails_the_build(
    tmp_path: Path, page: str, problem: str
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(f"# Broken\n\n{page}\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"INHERIT: {ROOT / 'mkdocs.yml'}\ndocs_dir: {docs}\nnav:\n  - index.md\n")
    done = build(config, tmp_path / "site")
    assert done.returncode != 0
    assert problem in done.stdout + done.stderr
