"""What the tests and the benches need from the machine (redis-server, Apache,
mod_wsgi-express, Chromium), and what happens when it is missing.

In the suite a missing program skips the test - and fails it when ``CI`` is set, where
a missing program is a broken build, not a reason to pass quietly. A bench does not
run under pytest: it gets :class:`Missing`, and reports the rows it cannot measure.
pytest is imported only when it is already loaded, so a bench never pays for it.
"""

from __future__ import annotations

import os
import sys


class Missing(RuntimeError):
    """Something a bench needs is not installed; the message says what and how to get it."""


def require(condition: bool, message: str) -> None:
    """Go on if ``condition`` holds; otherwise skip the test (fail it under CI), or, outside
    pytest, raise :class:`Missing`."""
    if condition:
        return
    if "pytest" not in sys.modules:
        raise Missing(message)
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run this", pytrace=False)
    pytest.skip(message)
