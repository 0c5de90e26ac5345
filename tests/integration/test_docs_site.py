"""The documentation site: built offline with --strict, its config reference is the schema's, and in a real
headless browser it renders and its search finds a config key."""

from __future__ import annotations

import functools
import html
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edgeweave.platform.config.reference import keys, sweep_keys

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    return out


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("page, rows", [("reference/config", keys), ("reference/sweep", sweep_keys)])
def test_the_reference_pages_list_exactly_the_schemas_keys(site, page, rows):
    text = (site / page / "index.html").read_text()
    listed = [
        html.unescape(re.sub(r"<[^>]+>", "", cell))
        for cell in re.findall(r"<tr>\s*<td><code>(.*?)</code></td>", text, re.S)
    ]
    expected = [k.path for k in rows()]
    assert sorted(listed) == sorted(expected) and len(set(listed)) == len(listed)


def browser() -> str:
    found = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if found is None:
        if os.environ.get("EDGEWEAVE_REQUIRE_BROWSER"):
            pytest.fail("no chromium on PATH, and EDGEWEAVE_REQUIRE_BROWSER is set (CI installs it)")
        pytest.skip("no chromium on PATH (apt install chromium)")
    return found


def test_in_a_headless_browser_the_site_renders_and_its_search_finds_a_config_key(served):
    executable = browser()
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright  # in the dev extra
    key = "aggregation.staleness"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = chromium.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            page.goto(f"{served}/reference/config/")
            assert page.locator("h1").first.inner_text().rstrip("¶") == "Config reference"
            assert page.locator("nav.md-nav--primary").count() == 1
            assert page.locator(f"td code:text-is('{key}')").count() == 1
            page.click("input.md-search__input")
            page.keyboard.type(key)
            page.wait_for_selector(".md-search-result__item", timeout=20_000)
            links = [
                page.locator(".md-search-result__link").nth(i).get_attribute("href")
                for i in range(page.locator(".md-search-result__link").count())
            ]
            assert any("reference/config/" in (link or "") for link in links), links
            assert errors == []
        finally:
            chromium.close()
