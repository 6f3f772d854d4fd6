"""What a packager or an operator gets: the source distribution as ``python -m build``
makes it (its metadata, its licence, no half test suite), and the systemd units as
``systemd-analyze verify`` judges them."""

from __future__ import annotations

import email
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from support.servers import ROOT

UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> tarfile.TarFile:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(out), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (archive,) = out.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        yield tar


def test_sdist_ships_the_package_and_licence_but_no_test_suite(sdist):
    names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {
        "LICENSE",
        "COPYING",
        "README.md",
        "ladon_tasks/cli/__init__.py",
        "ladon_tasks/redis/scripts/create.lua",
        "ladon_tasks/dashboard/static/index.html",
        "deploy/systemd/ladon-tasks-worker.service",
        "deploy/apache/handler.wsgi",
    } <= names
    assert not [name for name in names if name.startswith("tests/")]  # none of it, not half
    root = sdist.getnames()[0].split("/")[0]
    licence = sdist.extractfile(f"{root}/LICENSE").read().decode()
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in licence and "Version 3" in licence


def test_sdist_metadata(sdist):
    root = sdist.getnames()[0].split("/")[0]
    metadata = email.message_from_bytes(sdist.extractfile(f"{root}/PKG-INFO").read())
    assert metadata["License-Expression"] == "LGPL-3.0-or-later"
    assert set(metadata.get_all("License-File")) == {"LICENSE", "COPYING"}
    classifiers = metadata.get_all("Classifier")
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert metadata["Author"] and metadata.get_all("Project-URL")


@pytest.mark.parametrize("unit", UNITS, ids=[unit.name for unit in UNITS])
def test_systemd_units_verify(unit, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The unit as an operator installs it, with its command pointing at this environment.
    text = unit.read_text().replace(
        "/srv/ladon-tasks/venv/bin/ladon-tasks", str(Path(sys.executable).parent / "ladon-tasks")
    )
    installed = tmp_path / unit.name
    installed.write_text(text)
    out = subprocess.run([analyze, "verify", str(installed)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    assert "Restart=always" in text and "KillSignal=SIGTERM" in text
    if "worker" in unit.name:
        grace = float(text.split("--grace ", 1)[1].split()[0])
        assert float(text.split("TimeoutStopSec=", 1)[1].split()[0]) > grace  # SIGKILL never cuts the grace


def test_make_serve_has_runtime_dependencies_only_on_3_13(output_dir):
    """``make serve`` on a machine whose only Python is 3.13 (the route for 3.12+)."""
    from support.servers import free_port, launch

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    port = free_port()

    def answers(server) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{server.url}/TaskService/jsonwsp/description", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    server = launch(["make", "serve", f"PORT={port}"], port, output_dir / "make-serve.log", answers, "make serve",
                    env={"LADON_TASKS_PYTHONS": "3.13"}, timeout=600)
    try:
        venv = ROOT / ".venv" / "serve"  # the same path whichever version was picked
        installed = {
            path.name.split("-")[0].lower()
            for path in (venv / "lib" / "python3.13" / "site-packages").glob("*.dist-info")
        }
        assert {"ladon", "ladon_tasks", "werkzeug", "redis", "tqdm"} <= installed
        assert not installed & {"pytest", "zeep", "playwright", "mod_wsgi", "hypothesis", "suds_community"}
    finally:
        os.killpg(server.process.pid, signal.SIGTERM)  # make and the server it started
        server.process.wait(timeout=30)


def test_ladons_invalid_escapes_are_not_shown_at_first_use(tmp_path):
    """An installer that does not compile at install time (uv) leaves Ladon's files to be
    compiled at the first import, each invalid escape a warning line (a
    ``SyntaxWarning`` from 3.12, a ``DeprecationWarning`` before: shown here with
    ``-W always``). Importing ladon_tasks first silences Ladon's, and only Ladon's."""
    ladon_modules = ["ladon.server.wsgi_application", "ladon.interfaces.soap11", "ladon.clients.jsonwsp",
                     "ladon.ladonizer.collection", "ladon.types.attachment"]
    own = tmp_path / "own_module.py"
    own.write_text("PATTERN = '\\d+'\n")

    def first_use(*modules: str) -> str:
        cache = tmp_path / f"pycache-{len(list(tmp_path.iterdir()))}"  # nothing compiled yet
        code = "".join(f"import {module}\n" for module in modules)
        out = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True,
                             timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPYCACHEPREFIX": str(cache)})
        assert out.returncode == 0, out.stderr
        return out.stderr

    import ladon

    ladon_files = os.path.join(os.path.dirname(os.path.realpath(ladon.__file__)), "")
    loud = first_use(*ladon_modules)
    assert "invalid escape sequence" in loud and ladon_files in loud  # what a user would see without it
    quiet = first_use("ladon_tasks", *ladon_modules, "own_module")
    assert ladon_files not in quiet, quiet
    assert "own_module.py" in quiet and "invalid escape sequence" in quiet, quiet  # others' still show
