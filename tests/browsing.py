"""Debian's headless Chromium driven by Selenium through Debian's chromedriver (nothing is
downloaded): the pages the lab writes are checked in a real browser. ``.ci/run`` installs both."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Screenshots the browser tests take, for a person to look at (CI uploads the folder).
ARTIFACTS = Path(os.environ.get("INFERLAB_TEST_ARTIFACTS", Path(__file__).parents[1] / ".test-artifacts"))
NO_BROWSER = ("needs Debian's chromium and chromium-driver (.ci/run installs them: "
              "apt-get install chromium chromium-driver)")


def have_browser() -> bool:
    return bool(shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER))


def open_browser():
    """A headless Chromium whose console messages are kept (``driver.get_log('browser')``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
