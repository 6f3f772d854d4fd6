"""Ladon 1.0.7's sources hold string literals with escapes Python no longer accepts
quietly (``"\\d"`` in regular expressions): from 3.12 each one is a ``SyntaxWarning``
when the file is compiled. An installer that compiles at install time (pip) shows
them then; one that does not (uv) leaves them for the first import - about twenty
lines at a user's first ``ladon-tasks`` command, about code they cannot change.

They are silenced for Ladon's own files only, matched by its package directory: the
same warning from any other file (the user's services included) still shows. The
filter is set when ``ladon_tasks`` is imported, before it imports any of Ladon.
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings


def quiet_ladon_syntax_warnings() -> None:
    """Ignore "invalid escape sequence" while compiling files of the installed ``ladon``
    package (a warning at compile time names the file as its module): a
    ``SyntaxWarning`` from 3.12, a ``DeprecationWarning`` (hidden by default) before."""
    spec = importlib.util.find_spec("ladon")
    if spec is None or not spec.submodule_search_locations:
        return
    for directory in spec.submodule_search_locations:
        places = {os.path.join(directory, ""), os.path.join(os.path.realpath(directory), "")}
        module = "|".join(re.escape(place) for place in sorted(places))
        for category in (SyntaxWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", message="invalid escape sequence", category=category, module=module)
