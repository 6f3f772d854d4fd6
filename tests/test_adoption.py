"""Zero-edit adoption: a service importing ``ladonize`` from Ladon itself, with
``tasktype=True``, gets ladon-tasks when the application activates it in one place."""

from __future__ import annotations

import pytest

from support.jsonwsp import JsonWsp
from support.servers import FIXTURE_SERVICES, start_server

pytestmark = pytest.mark.smoke


@pytest.fixture(scope="module")
def legacy_server(output_dir):
    running = start_server([str(FIXTURE_SERVICES / "legacy_service.py")], output_dir)
    yield running
    running.stop()


def test_legacy_service_runs_on_ladon_tasks_unchanged(legacy_server):
    legacy = JsonWsp(legacy_server, "LegacyService")
    started = legacy("countTo", session_id="s", counter=0)  # 0: a falsy result Ladon would lose
    assert len(started["task_id"]) == 32
    final = legacy("countTo_wait", task_id=started["task_id"], seconds=20)
    assert final["state"] == "succeeded"
    assert legacy("countTo_result", task_id=started["task_id"]) == 0
    assert legacy("countTo_result", task_id=started["task_id"]) == 0  # Ladon's deleted it
    assert legacy("hello", name="plain") == "hello plain"


def test_make_application_is_the_one_place_that_activates(tmp_path):
    """In a fresh interpreter: without activation Ladon's own tasktype would be used;
    make_application swaps the decorator in before it imports the services."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import json
        from werkzeug.test import Client
        from ladon_tasks.wsgi import make_application
        app = make_application([{str(FIXTURE_SERVICES / "legacy_service.py")!r}])
        client = Client(app)
        body = json.dumps({{"methodname": "countTo_wait", "args": {{"task_id": "0" * 32, "seconds": 0}}}})
        reply = client.post("/LegacyService/jsonwsp", data=body, content_type="application/json")
        print(json.loads(reply.data)["fault"]["string"].split(":")[0])
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "UnknownTask"  # _wait exists: ladon-tasks is serving it
