"""The playground in a real headless Chromium against a real `nlp-rnn serve` (shipped models): translate with its
heat map, suggestions while typing, streamed generation. NLP_RNN_SCREENSHOT=PATH also saves the screenshot there
(the README's docs/playground.png is made this way)."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

from test_server import start_server

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    """Debian's chromium (never a browser downloaded at test time); missing is a failure, not a skip."""
    path = os.environ.get("NLP_RNN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("the browser test needs Chromium: apt-get install -y chromium (or set NLP_RNN_CHROMIUM)")
    return path


@pytest.fixture(scope="module")
def server():
    proc, url, lines = start_server("--no-access-log")
    yield url
    proc.terminate()
    proc.wait(30)


def test_playground_in_a_real_browser(server, tmp_path):
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("the browser test needs the playwright package: pip install -e '.[test]'")
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server)
            expect(page.locator("#server-status")).to_contain_text("Ready", timeout=20_000)

            # streamed generation: text arrives in several pieces while the stop button is live
            page.click("#tab-generate")
            page.fill("#generate-prompt", "The train ")
            page.fill("#generate-length", "2000")
            page.eval_on_selector("#generate-output", """node => {
                window.pieces = 0;
                new MutationObserver(() => window.pieces++).observe(node, {subtree: true, characterData: true,
                                                                           childList: true});
            }""")
            page.click("#generate-start")
            expect(page.locator("#generate-meta")).to_contain_text("characters in", timeout=30_000)
            assert page.locator("#generate-echo").text_content() == "The train "
            assert len(page.locator("#generate-output").text_content()) == 2000
            assert page.evaluate("window.pieces") >= 3

            # suggestions while typing, key by key
            page.click("#tab-complete")
            page.locator("#complete-input").press_sequentially("The network learns from exam", delay=15)
            chips = page.locator('#complete-suggestions .suggestion[data-kind="completion"]')
            expect(chips.first).to_have_attribute("data-text", re.compile("^exam"), timeout=10_000)
            expect(page.locator("#complete-latency")).to_contain_text("round trip")

            # translation with its attention heat map (last: the screenshot shows it)
            page.click("#tab-translate")
            page.select_option("#translate-direction", "en|es")
            page.fill("#translate-input", "Where is the train station?")
            page.check("#translate-attention")
            page.click("#translate-button")
            expected = httpx.post(server + "v1/translate", json={"text": "Where is the train station?", "src": "en",
                                                                 "tgt": "es", "beam": 5, "n_best": 3}).json()
            expect(page.locator("#translate-output")).to_have_text(expected["translations"][0]["translation"],
                                                                   timeout=20_000)
            expect(page.locator("#nbest-list li")).to_have_count(3)
            rows = page.locator("#attention-heatmap tbody tr")
            expect(rows.first).to_be_visible()
            assert rows.count() >= 2 and rows.first.locator("td").count() >= 2
            expect(page.locator("#translate-meta")).to_contain_text("mt-en-es")
            assert page.locator("#error").text_content().strip() == ""

            shot = tmp_path / "playground.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get("NLP_RNN_SCREENSHOT"):
                target = Path(os.environ["NLP_RNN_SCREENSHOT"])
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, target)
        finally:
            browser.close()
    assert errors == []


def test_the_page_shows_a_server_error_message(server):
    """A 4xx from the real server reaches the page as its one-line message."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(server)
            expect(page.locator("#server-status")).to_contain_text("Ready", timeout=20_000)
            page.fill("#translate-input", "x" * 1001)  # past the server's --max-chars
            page.click("#translate-button")
            expect(page.locator("#error")).to_contain_text(re.compile(r"at most 1000 characters.*HTTP 422"))
        finally:
            browser.close()
