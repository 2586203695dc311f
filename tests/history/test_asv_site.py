"""The published site in a real browser (tests/browsing.py), served from 127.0.0.1 by ``asv preview``."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browsing import ARTIFACTS, NO_BROWSER, have_browser

NODE_MODULES = Path(sys.prefix) / "node" / "node_modules"  # the running venv's, installed by the Makefile

pytestmark = [pytest.mark.slow, pytest.mark.alone, pytest.mark.timeout(900), pytest.mark.skipif(
    not (have_browser() and (NODE_MODULES / "flot").is_dir()),
    reason=f"{NO_BROWSER}, and the site's npm libraries (make install)",
)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(history_repo):
    """The published site made self-contained (no CDN here), served by ``asv preview`` on a free
    loopback port and stopped by its own process id."""
    offline = subprocess.run([sys.executable, "-m", "pytest_inferlab.cli", "asv-offline", ".asv/html",
                              "--node-modules", str(NODE_MODULES)], cwd=history_repo["repo"], capture_output=True, text=True)
    assert offline.returncode == 0, offline.stderr
    assert "10 libraries served locally" in offline.stdout
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "asv", "preview", "--port", str(port)], cwd=history_repo["repo"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"asv preview did not answer on {url}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def wait_for(browser, script: str, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = browser.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for: {script}")


def test_a_benchmark_graph_renders_every_commit_and_is_saved_as_a_screenshot(site, browser, history_repo):
    browser.get(site + "#test_suite.test_slow.tpot_ms")
    counts = wait_for(browser, """
        var plot = window.jQuery && jQuery('#main-graph').data('plot');
        if (!plot) return null;
        return plot.getData().map(function (s) { return s.data.filter(function (p) { return p[1] != null; }).length; });
    """)
    assert max(counts) == len(history_repo["commits"]), counts
    canvas_has_ink = browser.execute_script("""
        var c = document.querySelector('#main-graph canvas.flot-base');
        var d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        var ink = 0;
        for (var i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 200 || d[i + 1] < 200)) ink++;
        return ink;
    """)
    assert canvas_has_ink > 100
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "asv-graph-tpot_ms.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_hostile_test_parameters_are_shown_as_text_never_run(site, browser):
    browser.get(site + "#test_suite.test_fast.tpot_ms")
    text = wait_for(browser, "return document.body && document.body.innerText.indexOf('<script>') >= 0 "
                             "? document.body.innerText : null")
    assert "<script>window.__pwned = 1</script>" in text
    assert "it's \"quoted\"" in text or "it\\'s \"quoted\"" in text
    assert browser.execute_script("return window.__pwned") is None


def test_regressions_page_lists_the_planted_regression(site, browser):
    browser.get(site + "#regressions")
    text = wait_for(browser, "return document.body.innerText.indexOf('test_slow') >= 0 ? document.body.innerText : null")
    assert "test_suite.test_slow.tpot_ms" in text
    assert "test_fast" not in text
