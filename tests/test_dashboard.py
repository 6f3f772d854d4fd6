"""The operator dashboard over real HTTP and in real headless Chromium.

One ``ladon-tasks serve`` - the shipped command line - serves the example services and
mounts the dashboard beside them, so both share the in-process store; it requires a
token, so every test also proves the token is honoured. Tasks are started through
JSON-WSP, as a client would, and every wait polls with a deadline.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from support.browser import chromium_path, launch_chromium
from support.jsonwsp import JsonWsp
from support.servers import SERVICES, RunningServer, free_port, launch, start_server, wait_until

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

    services = [str(SERVICES / name) for name in ("task_service.py", "report_service.py", "instance_service.py")]
    command = [sys.executable, "-m", "ladon_tasks", "serve", *services, "--port", str(port),
               "--dashboard-token", TOKEN, "--thread-workers", "8", "--process-workers", "4"]
    server = launch(command, port, output_dir / f"dashboard-server-{port}.log", answers, "dashboard server")
    yield server
    _cancel_unfinished(server)
    server.stop()


def api(server: RunningServer, path: str) -> str:
    return f"{server.url}{PREFIX}/api/{path}"


def _cancel_unfinished(server: RunningServer) -> None:
    """Leave no long task running behind the test (process children among them)."""
    try:
        listing = requests.get(
            api(server, "tasks"), params={"state": "queued,running", "limit": 500}, headers=AUTH, timeout=5
        )
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
    assert detail["args"] == [
        {"name": "session_id", "type": "str", "value": HOSTILE_TEXT},
        {"name": "counter", "type": "int", "value": 3},
    ], "arguments with their parameter names, in their declared types"
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
    first = session.get(
        f"{dash.url}{PREFIX}/", params={"token": TOKEN, "state": "running"}, allow_redirects=False, timeout=5
    )
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


@pytest.mark.parametrize("depth", [100_000, 2_000])
def test_a_body_nested_too_deep_is_a_bad_request(dash: RunningServer, depth: int) -> None:
    # Was: 500 from the JSON parser's RecursionError, on every API that reads a body.
    task_id = start(dash, "TaskService", "taskExample", session_id="deep", counter=1)
    body = b'{"task_ids": ' * depth + b"1" + b"}" * depth
    for path in ("cancel", "purge", f"tasks/{task_id}/retry"):
        response = requests.post(api(dash, path), data=body, timeout=10,
                                 headers={**AUTH, **CSRF, "Content-Type": "application/json"})
        assert response.status_code == 400, (path, response.status_code, response.text[:200])
        assert response.json()["message"] == "the body nests too deep to be read as JSON", path
    assert cancel(dash, task_id, **AUTH, **CSRF).status_code == 200, "the server answers on"


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


def test_browser_shows_live_progress_and_cancels(dash: RunningServer, output_dir: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium_path()  # skips before any task starts when there is no browser
    _cancel_unfinished(dash)  # a clean table for the screenshot
    report = start(dash, "ReportService", "buildReport", minutes=1)
    examples = [start(dash, "TaskService", "taskExample", session_id=f"session-{n}", counter=n) for n in range(2)]
    hostile = start(dash, "TaskService", "taskExample", session_id=HOSTILE_TEXT, counter=9)
    started = [report, *examples, hostile]

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
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
            expect(page.locator("#confirm")).to_contain_text(f"Cancel task {victim[:8]}")
            page.locator("#confirm-no").click()  # asked first: keeping it changes nothing
            expect(page.locator("#confirm")).to_be_hidden()
            assert JsonWsp(dash, "TaskService")("taskExample_progress", task_id=victim)["state"] == "running"
            page.locator(f'tr[data-task-id="{victim}"] button.cancel').click()
            page.locator("#confirm-yes").click()
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


def test_browser_loads_the_page_with_its_icon_and_nothing_missing(dash: RunningServer) -> None:
    """Was: a favicon.ico 404 on every load."""
    from playwright.sync_api import sync_playwright

    failed: list[str] = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            page.on("response", lambda response: failed.append(f"{response.status} {response.url}")
                    if response.status >= 400 else None)
            page.on("console", lambda message: failed.append(message.text) if message.type == "error" else None)
            with page.expect_response(lambda response: "favicon" in response.url, timeout=15_000) as icon:
                page.goto(f"{dash.url}{PREFIX}/?token={TOKEN}")
            assert icon.value.status == 200 and icon.value.url == f"{dash.url}{PREFIX}/static/favicon.svg"
            assert icon.value.header_value("content-type") == "image/svg+xml"
            page.wait_for_function("document.querySelector('#status').textContent.startsWith('tasks')", timeout=10_000)
        finally:
            browser.close()
    assert not failed, failed


def test_browser_shows_a_long_error_message_whole_on_a_wide_screen(dash: RunningServer) -> None:
    """Was: the message column cut error text at 200 px, however wide the screen."""
    from playwright.sync_api import expect, sync_playwright

    record = "x" * 120
    task_id = start(dash, "ReportService", "importRecords", records=["a=1", record])
    assert JsonWsp(dash, "ReportService")("importRecords_wait", task_id=task_id, seconds=20)["state"] == "failed"
    expected = f"ValueError: record 2 ('{record}') has no \"=\""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(f"{dash.url}{PREFIX}/?token={TOKEN}")
            message = page.locator(f'tr[data-task-id="{task_id}"] .message-text')
            expect(message).to_have_text(expected, timeout=10_000)
            cut = message.evaluate(
                "node => node.scrollWidth > node.clientWidth || node.scrollHeight > node.clientHeight"
            )
            assert cut is False, "the whole message is visible"
        finally:
            browser.close()


def test_browser_shows_arguments_by_name_in_their_declared_types(dash: RunningServer) -> None:
    """Was: a bare JSON list of strings ("7" for an int)."""
    from playwright.sync_api import expect, sync_playwright

    task_id = start(dash, "TaskService", "taskExample", session_id="typed", counter=7)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{dash.url}{PREFIX}/?token={TOKEN}")
            page.locator(f'tr[data-task-id="{task_id}"] button.link').click()
            expect(page.locator("#detail-args dt")).to_have_text(["session_id (str)", "counter (int)"], timeout=10_000)
            expect(page.locator("#detail-args dd")).to_have_text(['"typed"', "7"])
        finally:
            browser.close()
    requests.post(api(dash, f"tasks/{task_id}/cancel"), headers={**AUTH, **CSRF}, timeout=5)


#: A page an attacker serves from a name of theirs, which then resolves to 127.0.0.1:
#: it reads the task list, cancels what it finds and asks for a result - all same-origin
#: requests as far as the browser knows.
REBINDING_PAGE = """<!doctype html><meta charset="utf-8"><title>cute cats</title><script>
window.attack = (async () => {
  const seen = {};
  const list = await fetch("/_tasks/api/tasks");
  seen.list = [list.status, await list.text()];
  const cancel = await fetch("/_tasks/api/tasks/" + window.victim + "/cancel",
    {method: "POST", headers: {"X-Requested-By": "ladon-tasks"}});
  seen.cancel = [cancel.status, await cancel.text()];
  const result = await fetch("/TaskService/jsonwsp", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({methodname: "taskExample_progress", args: {task_id: window.victim}})});
  seen.progress = [result.status, await result.text()];
  return seen;
})();
</script>"""


def _serve_page(body: str):  # type: ignore[no-untyped-def]
    """A route handler that answers with ``body`` as HTML, never touching the network."""
    return lambda route: route.fulfill(body=body, content_type="text/html")


#: Chromium's own guard against pages reaching private addresses, off: the server must
#: hold without it (other browsers, older versions and intranet pages do not have it).
NO_PRIVATE_NETWORK_CHECKS = (
    "--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,"
    "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks"
)


def test_dns_rebinding_page_can_neither_read_nor_cancel_tasks(output_dir: Path) -> None:
    """Was: a page at rebind.example, resolved to 127.0.0.1, listed every task with its
    arguments and cancelled a running one, against a plain ``ladon-tasks serve``. The
    control: the same page against a server told ``--allowed-host rebind.example``
    does all that, so only the Host check stands in the way."""
    from playwright.sync_api import sync_playwright

    services = [str(SERVICES / "task_service.py")]
    guarded = start_server(services, output_dir)  # the defaults: loopback, no token
    trusting = start_server(services, output_dir, "--allowed-host", "rebind.example")
    try:
        victims = {
            server.port: JsonWsp(server, "TaskService")("taskExample", session_id="secret-session", counter=1)[
                "task_id"
            ]
            for server in (guarded, trusting)
        }
        seen = {}
        with sync_playwright() as playwright:
            browser = launch_chromium(
                playwright, "--host-resolver-rules=MAP rebind.example 127.0.0.1", NO_PRIVATE_NETWORK_CHECKS
            )
            try:
                page = browser.new_page()
                dashboard = page.goto(f"http://rebind.example:{guarded.port}/_tasks/")
                assert dashboard is not None and dashboard.status == 400, "the dashboard page itself is refused"
                for server in (guarded, trusting):
                    body = REBINDING_PAGE.replace(
                        "window.attack", f"window.victim = '{victims[server.port]}'; window.attack"
                    )
                    page.route("**/cats.html", _serve_page(body))
                    page.goto(f"http://rebind.example:{server.port}/cats.html")
                    seen[server.port] = page.evaluate("window.attack")
                    page.unroute("**/cats.html")
            finally:
                browser.close()
        attack, control = seen[guarded.port], seen[trusting.port]
        victim = victims[guarded.port]
        for step in ("list", "cancel", "progress"):
            status, body = attack[step]
            assert status == 400 and "does not answer for the host name 'rebind.example'" in body, (step, attack)
            assert victim not in body and "secret-session" not in body
        assert JsonWsp(guarded, "TaskService")("taskExample_progress", task_id=victim)["state"] == "running"
        assert control["list"][0] == 200 and victims[trusting.port] in control["list"][1], control
        assert control["cancel"][0] == 200
        assert (
            JsonWsp(trusting, "TaskService")("taskExample_progress", task_id=victims[trusting.port])["state"]
            == "cancelled"
        )
    finally:
        for server in (guarded, trusting):
            server.stop()
