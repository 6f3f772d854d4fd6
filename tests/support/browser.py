"""Headless Chromium for the tests: Debian's own browser, driven by Playwright (its
bundled browser download is not used). Missing under CI is a failure, elsewhere a skip."""

from __future__ import annotations

import importlib.util
import os
import shutil

from .needs import require

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str:
    """Debian's Chromium; missing in CI is a failure, elsewhere a skip."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    problem = ""
    if importlib.util.find_spec("playwright") is None:
        problem = "playwright is not installed (pip install playwright)"
    elif not os.path.exists(path):
        problem = "Chromium is not installed (apt-get install chromium)"
    require(not problem, problem)
    return path


def launch_chromium(playwright, *extra_args: str):  # type: ignore[no-untyped-def]
    """A headless Chromium from a ``sync_playwright()`` context, with ``extra_args``."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=[*CHROMIUM_ARGS, *extra_args])
