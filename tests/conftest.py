import multiprocessing
import os

import pytest

from pytest_inferlab.engines.sources import cache_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# pytester gives every run it starts a HOME of its own (the test's folder), so the lab's cache under
# ~/.cache would start empty in each: converted tokenizers, GGUF headers and rungs, reference
# log-probabilities and lm-eval references were prepared again in every run on the embedded model. One
# cache for the whole test session, the lab's own (entries are published whole, so workers may share
# it); a test that checks a build sets an empty one of its own.
os.environ.setdefault("INFERLAB_CACHE_DIR", str(cache_dir()))

pytest_plugins = ["pytester"]


# No test can hang: past this bound pytest-timeout fails the test with the traceback of where it
# waited (the slowest test takes about a minute here). --timeout or PYTEST_TIMEOUT overrides it.
TEST_TIMEOUT_S = 300


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if config.getvalue("timeout") is None and not os.environ.get("PYTEST_TIMEOUT") and not config.getini("timeout"):
        config.option.timeout = TEST_TIMEOUT_S
    config.addinivalue_line("filterwarnings", "error")
    # gguf and transformers' GGUF loader emit deprecation noise we do not own
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def no_xdist_environment(monkeypatch):
    """A pytest that a test starts (pytester, the tools) is not an xdist worker, whatever runs this test:
    pytest-benchmark turns itself off where it sees PYTEST_XDIST_WORKER."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def run_in_processes():
    """Run ``target(*args)`` in one spawned process per args tuple, concurrently; all must exit 0."""
    def run(target, arg_tuples, timeout=120):
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=target, args=args) for args in arg_tuples]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout)
            assert proc.exitcode == 0
    return run


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (tests/browsing.py), one per module; skips with the reason where it is absent."""
    from browsing import NO_BROWSER, have_browser, open_browser

    if not have_browser():
        pytest.skip(NO_BROWSER)
    driver = open_browser()
    try:
        yield driver
    finally:
        driver.quit()
