"""Headless Chromium for the browser tests (Debian's chromium + chromium-driver, driven by
Selenium): the JupyterLab tests here and the documentation site's (docs/site/test_site.py).

The flags keep it off the network (this machine has none but its package registries) and
out of the user's profile. A missing browser is an error that says how to install it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def start(profile: Path) -> Any:
    """A headless Chromium window of 1400 x 1000 with ``profile`` as its user data dir."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        raise RuntimeError(f"{CHROMIUM} or {CHROMEDRIVER} is missing: apt-get install chromium "
                           "chromium-driver (make test and make docs-test do it through "
                           "scripts/setup-system.sh)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1400,1000", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
