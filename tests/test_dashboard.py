"""The operator dashboard over real HTTP and in real headless Chromium.

One server (``tests/dashboard_server.py``) serves the example services and the dashboard
in one WSGI application, so both share the in-process store; it requires a token, so
every test also proves the token is honoured. Tasks are started through JSON-WSP, as a
client would, and every wait polls with a deadline.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from conftest import JsonWsp
from server_support import ROOT, RunningServer, free_port, launch, wait_until

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CSRF = {"X-Requested-By": "ladon-tasks"}
PREFIX = "/_tasks"
HOSTILE_TEXT = "<img src=x onerror=\"document.title='owned'\"><script>document.title='owned'</script>"


@pytest.fixture(scope="module")
def dash(output_dir: Path) -> Iterator[RunningServer]:
    port = free_port()

    def answers(server: RunningServer) -> bool:
        try:
            return requests.get(api(server, "tasks"), headers=AUTH, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    server = launch([sys.executable, str(ROOT / "tests" / "dashboard_server.py"), str(port), "--token", TOKEN],
                    port, output_dir / f"dashboard-server-{port}.log", answers, "dashboard server")
    yield server
    _cancel_unfinished(server)
    server.stop()


def api(server: RunningServer, path: str) -> str:
    return f"{server.url}{PREFIX}/api/{path}"


def _cancel_unfinished(server: RunningServer) -> None:
    """Leave no long task running behind the test (process children among them)."""
    try:
        listing = requests.get(api(server, "tasks"), params={"state": "queued,running", "limit": 500}, headers=AUTH, timeout=5)
        for task in listing.json()["tasks"]:
            requests.post(api(server, f"tasks/{task['task_id']}/cancel"), headers={**AUTH, **CSRF}, timeout=5)
    except requests.RequestException:
        pass


def start(server: RunningServer, service: str, method: str, **args: object) -> str:
    return JsonWsp(server, service)(method, **args)["task_id"]


def listing(server: RunningServer, **params: object) -> dict:
    response = requests.get(api(server, "tasks"), params=params, headers=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def ids(body: dict) -> list[str]:
    return [task["task_id"] for task in body["tasks"]]


def cancel(server: RunningServer, task_id: str, **headers: str) -> requests.Response:
    return requests.post(api(server, f"tasks/{task_id}/cancel"), headers=headers, timeout=5)


# -- the JSON API ---------------------------------------------------------------------


def test_list_filter_and_detail(dash: RunningServer) -> None:
    running = start(dash, "TaskService", "taskExample", session_id=HOSTILE_TEXT, counter=3)
    done = start(dash, "ReportService", "importRecords", records=["a=1", "b=2"])
    final = JsonWsp(dash, "ReportService")("importRecords_wait", task_id=done, seconds=20)
    assert final["state"] == "succeeded"
    wait_until(lambda: running in ids(listing(dash, state="running")), what="the task to run")

    everything = listing(dash)
    assert ids(everything).index(done) < ids(everything).index(running), "newest first"
    row = next(task for task in everything["tasks"] if task["task_id"] == running)
    assert (row["service"], row["method"], row["state"]) == ("TaskService", "taskExample", "running")
    assert row["age"] >= row["duration"] >= 0 and row["attempts"] == 1 and "args" not in row

    assert done in ids(listing(dash, state="succeeded"))
    assert running not in ids(listing(dash, state="succeeded"))
    both = ids(listing(dash, state="succeeded,running"))
    assert {done, running} <= set(both)
    assert ids(listing(dash, state=["succeeded", "running"])) == both
    assert running in ids(listing(dash, method="taskExample"))
    assert done not in ids(listing(dash, method="taskExample"))

    one = listing(dash, limit=1)
    assert len(one["tasks"]) == 1 and one["has_more"] is True
    assert ids(listing(dash, limit=1, offset=1)) == ids(everything)[1:2]

    detail = requests.get(api(dash, f"tasks/{running}"), headers=AUTH, timeout=5).json()["task"]
    assert detail["args"] == [HOSTILE_TEXT, "3"], "arguments in their stored JSON form"
    assert detail["submitted_at"] <= detail["started_at"] and detail["finished_at"] == 0
    assert "error_traceback" not in detail and "result" not in detail


@pytest.mark.parametrize(
    "params", [{"state": "sleeping"}, {"limit": "0"}, {"limit": "many"}, {"offset": "-1"}]
)
def test_list_rejects_bad_parameters(dash: RunningServer, params: dict) -> None:
    response = requests.get(api(dash, "tasks"), params=params, headers=AUTH, timeout=5)
    assert response.status_code == 400 and response.json()["error"] == "BadRequest"


def test_detail_shows_the_error_of_a_failed_task(dash: RunningServer) -> None:
    task_id = start(dash, "ReportService", "importRecords", records=["a=1", "broken"])
    final = JsonWsp(dash, "ReportService")("importRecords_wait", task_id=task_id, seconds=20)
    assert final["state"] == "failed"
    detail = requests.get(api(dash, f"tasks/{task_id}"), headers=AUTH, timeout=5).json()["task"]
    assert detail["error_type"] == "ValueError" and "has no" in detail["error_message"]
    assert detail["attempts"] == detail["max_attempts"] == 3
    assert task_id in ids(listing(dash, state="failed"))


@pytest.mark.parametrize("task_id, fault", [("0" * 32, "UnknownTask"), ("not-an-id", "MalformedTaskId")])
def test_detail_of_unknown_or_malformed_id_is_404(dash: RunningServer, task_id: str, fault: str) -> None:
    response = requests.get(api(dash, f"tasks/{task_id}"), headers=AUTH, timeout=5)
    assert response.status_code == 404 and response.json()["error"] == fault
    assert cancel(dash, task_id, **AUTH, **CSRF).status_code == 404


@pytest.mark.parametrize("service, method, args", [
    ("TaskService", "taskExample", {"session_id": "s", "counter": 1}),   # thread: cooperative
    ("ReportService", "buildReport", {"minutes": 1}),                    # process: enforced
])
def test_cancel_really_cancels(dash: RunningServer, service: str, method: str, args: dict) -> None:
    wire = JsonWsp(dash, service)
    task_id = start(dash, service, method, **args)
    wait_until(lambda: wire(f"{method}_progress", task_id=task_id)["state"] == "running", what="the task to run")

    response = cancel(dash, task_id, **AUTH, **CSRF, Origin=dash.url)
    assert response.status_code == 200, response.text
    assert response.json()["task"]["state"] == "cancelled"
    progress = wire(f"{method}_progress", task_id=task_id)
    assert progress["state"] == "cancelled" and progress["finished"] is True
    assert cancel(dash, task_id, **AUTH, **CSRF).status_code == 409, "a finished task cannot be cancelled again"


# -- access: token, cross-site requests, host --------------------------------------------


def test_token_is_required_everywhere(dash: RunningServer) -> None:
    some_id = "0" * 32
    for path in ("/", "/static/dashboard.js", "/api/tasks", f"/api/tasks/{some_id}"):
        assert requests.get(f"{dash.url}{PREFIX}{path}", timeout=5).status_code == 401, path
        wrong = {"Authorization": "Bearer not-the-token"}
        assert requests.get(f"{dash.url}{PREFIX}{path}", headers=wrong, timeout=5).status_code == 401, path
    assert cancel(dash, some_id, **CSRF, Origin=dash.url).status_code == 401
    assert requests.get(f"{dash.url}{PREFIX}/", params={"token": "wrong"}, timeout=5).status_code == 401


def test_token_in_the_page_url_becomes_a_strict_http_only_cookie(dash: RunningServer) -> None:
    session = requests.Session()
    first = session.get(f"{dash.url}{PREFIX}/", params={"token": TOKEN, "state": "running"}, allow_redirects=False, timeout=5)
    assert first.status_code == 303
    location = urlsplit(first.headers["Location"])
    assert location.path == f"{PREFIX}/" and "token" not in location.query and "state=running" in location.query
    cookie = first.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and f"Path={PREFIX}/" in cookie
    assert TOKEN not in cookie, "the cookie holds a value derived from the token, not the token"
    assert session.get(f"{dash.url}{PREFIX}/", timeout=5).status_code == 200
    assert session.get(api(dash, "tasks"), timeout=5).status_code == 200


def test_cross_site_posts_are_refused(dash: RunningServer) -> None:
    task_id = start(dash, "TaskService", "taskExample", session_id="csrf", counter=1)
    foreign = "http://evil.example"
    refused = [
        cancel(dash, task_id, **AUTH),                                          # no custom header
        cancel(dash, task_id, **AUTH, **{"X-Requested-By": "someone-else"}),
        cancel(dash, task_id, **AUTH, **CSRF, Origin=foreign),
        cancel(dash, task_id, **AUTH, **CSRF, Origin="null"),
        cancel(dash, task_id, **AUTH, **CSRF, Referer=f"{foreign}/page"),
    ]
    assert [response.status_code for response in refused] == [403] * len(refused)
    # a form-style POST straight to the API, as a cross-site page could send
    form = requests.post(api(dash, f"tasks/{task_id}/cancel"), data={"x": "1"}, headers=AUTH, timeout=5)
    assert form.status_code == 403
    assert requests.get(api(dash, f"tasks/{task_id}/cancel"), headers={**AUTH, **CSRF}, timeout=5).status_code == 405
    assert JsonWsp(dash, "TaskService")("taskExample_progress", task_id=task_id)["state"] != "cancelled"
    assert cancel(dash, task_id, **AUTH, **CSRF, Referer=f"{dash.url}{PREFIX}/").status_code == 200


def test_unknown_host_header_is_refused(dash: RunningServer) -> None:
    """A rebinding attack's requests carry the attacker's host name."""
    response = requests.get(api(dash, "tasks"), headers={**AUTH, "Host": f"evil.example:{dash.port}"}, timeout=5)
    assert response.status_code == 400
    assert requests.get(api(dash, "tasks"), headers={**AUTH, "Host": f"localhost:{dash.port}"}, timeout=5).ok


def test_page_is_served_with_a_strict_content_security_policy(dash: RunningServer) -> None:
    page = requests.get(f"{dash.url}{PREFIX}/", headers=AUTH, timeout=5)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert requests.get(f"{dash.url}{PREFIX}/static/nothing.js", headers=AUTH, timeout=5).status_code == 404
    bare = requests.get(f"{dash.url}{PREFIX}", headers=AUTH, allow_redirects=False, timeout=5)
    assert bare.status_code == 303 and bare.headers["Location"].endswith(f"{PREFIX}/")


def test_services_still_answer_beside_the_dashboard(dash: RunningServer) -> None:
    assert requests.get(f"{dash.url}/TaskService/jsonwsp/description", timeout=5).status_code == 200


# -- functions for the CLI and make_application ----------------------------------------


def test_standalone_server_refuses_a_network_address_without_token() -> None:
    from ladon_tasks.dashboard import serve_dashboard

    with pytest.raises(ValueError, match="token"):
        serve_dashboard(host="0.0.0.0", port=free_port())


@pytest.mark.parametrize("prefix", ["", "/", "_tasks", "/_tasks/"])
def test_mount_rejects_malformed_prefixes(prefix: str) -> None:
    from ladon_tasks.dashboard import DashboardApp, mount

    with pytest.raises(ValueError, match="prefix"):
        mount(lambda environ, start_response: [], DashboardApp(), prefix=prefix)


# -- the page in real headless Chromium ------------------------------------------------


def chromium_path() -> str:
    """Debian's Chromium; missing in CI is a failure, elsewhere a skip."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    problem = ""
    if importlib.util.find_spec("playwright") is None:
        problem = "playwright is not installed (pip install playwright)"
    elif not os.path.exists(path):
        problem = "Chromium is not installed (apt-get install chromium)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    return path


CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def test_browser_shows_live_progress_and_cancels(dash: RunningServer, output_dir: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    executable = chromium_path()
    _cancel_unfinished(dash)  # a clean table for the screenshot
    report = start(dash, "ReportService", "buildReport", minutes=1)
    examples = [start(dash, "TaskService", "taskExample", session_id=f"session-{n}", counter=n) for n in range(2)]
    hostile = start(dash, "TaskService", "taskExample", session_id=HOSTILE_TEXT, counter=9)
    started = [report, *examples, hostile]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 820})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{dash.url}{PREFIX}/?token={TOKEN}")
            assert "token" not in page.url, "the token leaves the address bar at once"
            page.evaluate("window.__notReloaded = true")

            for task_id in started:
                expect(page.locator(f'tr[data-task-id="{task_id}"]')).to_be_visible(timeout=10_000)
            bar = page.locator(f'tr[data-task-id="{examples[0]}"] .bar')
            before = int(bar.get_attribute("aria-valuenow") or "0")
            page.wait_for_function(
                """([id, before]) => {
                    const bar = document.querySelector(`tr[data-task-id="${id}"] .bar`);
                    return bar && Number(bar.getAttribute('aria-valuenow')) > before;
                }""",
                arg=[examples[0], before],
                timeout=15_000,
            )

            victim = examples[1]
            page.locator(f'tr[data-task-id="{victim}"] button.cancel').click()
            expect(page.locator(f'tr[data-task-id="{victim}"] .badge')).to_have_text("cancelled", timeout=10_000)
            expect(page.locator(f'tr[data-task-id="{victim}"] button.cancel')).to_be_hidden()
            assert JsonWsp(dash, "TaskService")("taskExample_progress", task_id=victim)["state"] == "cancelled"

            page.locator("label.chip", has_text="running").click()
            expect(page.locator(f'tr[data-task-id="{victim}"]')).to_have_count(0, timeout=10_000)
            expect(page.locator(f'tr[data-task-id="{report}"]')).to_be_visible()
            page.locator("label.chip", has_text="running").click()
            expect(page.locator(f'tr[data-task-id="{victim}"]')).to_be_visible(timeout=10_000)

            page.locator(f'tr[data-task-id="{hostile}"] button.link').click()
            expect(page.locator("#detail-args")).to_contain_text("<img src=x", timeout=10_000)
            expect(page.locator("#detail-fields")).to_contain_text(hostile)
            assert page.locator("#detail img, #detail script, #tasks img").count() == 0
            assert page.title() != "owned"
            page.wait_for_function(
                """(id) => {
                    const bar = document.querySelector(`tr[data-task-id="${id}"] .bar`);
                    return bar && Number(bar.getAttribute('aria-valuenow')) > 0;
                }""",
                arg=report,
                timeout=15_000,
            )

            assert page.evaluate("window.__notReloaded") is True, "updates arrive without a reload"
            assert not errors, errors
            page.screenshot(path=str(output_dir / "dashboard.png"), full_page=True)
        finally:
            browser.close()
