"""Shared fixtures.

``smoke_root`` / ``smoke_profile`` / ``smoke_corpus``: the smoke corpus is built ONCE per test
session (``corpus.build_corpus``) into a temporary root and shared by every test module that
asks for it (data, training, corpus tests). Tests must not modify it.
"""
from __future__ import annotations

import pytest

from guitarsep.config import load_profile


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory):
    """A temporary project root holding the session's smoke corpus under data/smoke/corpus."""
    return tmp_path_factory.mktemp("smoke_root")


@pytest.fixture(scope="session")
def smoke_profile(smoke_root):
    return load_profile("smoke", root=smoke_root)


@pytest.fixture(scope="session")
def smoke_corpus(smoke_profile):
    """The smoke corpus (``corpus.build_corpus(load_profile("smoke", root=tmp))``), built once."""
    corpus = pytest.importorskip("guitarsep.corpus")
    return corpus.build_corpus(smoke_profile, progress=False)


def headless_chromium(profile_dir, window: str, *extra_args: str):
    """A selenium driver for headless Chromium with the flags this machine needs (no
    background networking: the network is closed), its console log kept; skips the test when
    chromium / chromedriver are missing. Used by the demo-page and JupyterLab browser tests."""
    import shutil

    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser",
                                                  "google-chrome", "google-chrome-stable")) if p),
                   None)
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("chromium / chromedriver not installed (Debian: apt-get install chromium "
                    "chromium-driver; scripts/setup.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", f"--window-size={window}",
                f"--user-data-dir={profile_dir}", *extra_args):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)
