"""Tasks belong to their callers: a principal taken from the request by a hook is
recorded with the task, and through the wire another caller's task answers exactly as
an unknown id - progress, result, cancel, wait, wait_result - on every interface (SOAP
with zeep, JSON-WSP, JSON-RPC). ``_list`` lists the caller's own tasks, Idempotency-Keys
are scoped per caller, operators (``tasks``, ``inspect``, the dashboard API) see every
task with its principal, and a re-run keeps it.

Two deployments: ``ladon-tasks serve --principal callers:caller`` (a hook reading the
front proxy's ``X-Caller`` header), over the in-process and the Redis store; and real
Apache Basic authentication under mod_wsgi (``REMOTE_USER``, the default hook)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import zeep
import zeep.exceptions
from zeep.transports import Transport

from support.apache import ModWsgi, prepared_root
from support.jsonwsp import JsonWsp, WireFault, post_json
from support.redis_server import RedisServer
from support.servers import FIXTURE_SERVICES, ROOT, RunningServer, start_server, wait_until

PROBE = str(FIXTURE_SERVICES / "probe_service.py")
TOKEN = "principals-dashboard-token-0123456789"
INTERFACES = ("soap", "jsonwsp", "jsonrpc10")
#: Checks Apache's Basic authentication passwords (mod_wsgi's ``WSGIAuthUserScript``).
AUTH_SCRIPT = '''
USERS = {"alice": "alice-secret", "bob": "bob-secret"}

def check_password(environ, user, password):
    if user in USERS:
        return USERS[user] == password
    return None
'''


class Refused(Exception):
    """A fault answer, on any interface: its whole string (``Name: message``)."""

    def __init__(self, string: str) -> None:
        super().__init__(string)
        self.string = string
        self.name = string.split(":", 1)[0]


class Caller:
    """ProbeService called over one interface as one caller: ``headers`` (a front proxy's
    ``X-Caller``) or ``auth`` (HTTP Basic) go with every request."""

    def __init__(self, url: str, interface: str, headers: dict[str, str] | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        self.url, self.interface = url, interface
        self.headers, self.auth = dict(headers or {}), auth
        self._zeep: Any = None

    def call(self, method: str, *args: Any, key: str | None = None) -> Any:
        """The method's result, or :class:`Refused` with its fault string."""
        headers = {**self.headers, **({"Idempotency-Key": key} if key else {})}
        names = _argument_names(method)
        if self.interface == "jsonwsp":
            client = JsonWsp(self.url, "ProbeService")
            if self.auth:
                import base64

                token = base64.b64encode(":".join(self.auth).encode()).decode()
                headers["Authorization"] = f"Basic {token}"
            try:
                return client.call(method, dict(zip(names, args, strict=True)), headers)
            except WireFault as fault:
                raise Refused(fault.string) from None
            finally:
                client.close()
        if self.interface == "jsonrpc10":
            response = requests.post(f"{self.url}/ProbeService/jsonrpc10", auth=self.auth, timeout=60,
                                     data=json.dumps({"method": method, "params": list(args), "id": 1}),
                                     headers={"Content-Type": "application/json", **headers})
            answer = response.json()
            if answer.get("error"):
                raise Refused(answer["error"]["string"])
            return answer["result"]
        session = requests.Session()
        session.headers.update(headers)
        session.auth = self.auth
        client = zeep.Client(f"{self.url}/ProbeService/{self.interface}/description",
                             transport=Transport(session=session))
        try:
            answer = getattr(client.service, method)(**{name.replace("_", "-"): value
                                                         for name, value in zip(names, args, strict=True)})
        except zeep.exceptions.Fault as fault:
            raise Refused(fault.message) from None
        return zeep.helpers.serialize_object(answer, dict) if not isinstance(answer, (str, int, list)) else answer

    def start(self, method: str, *args: Any, key: str | None = None) -> str:
        answer = self.call(method, *args, key=key)
        return answer["task_id"] if "task_id" in answer else answer["task-id"]

    def refusal(self, method: str, *args: Any) -> str:
        with pytest.raises(Refused) as refused:
            self.call(method, *args)
        return refused.value.string

    def listed(self, method: str) -> set[str]:
        page = self.call(f"{method}_list", "", 500, 0)
        if isinstance(page, dict):  # zeep: the array's items
            page = page.get("item") or []
        return {item["task_id"] if "task_id" in item else item["task-id"] for item in page or []}


def _argument_names(method: str) -> tuple[str, ...]:
    if method.endswith(("_wait", "_wait_result")):
        return ("task_id", "seconds")
    if method.endswith("_list"):
        return ("state", "limit", "offset")
    if method.endswith(("_progress", "_result", "_cancel")):
        return ("task_id",)
    return {"gated": ("gate",), "echo": ("text",), "explode": ("text",)}[method]


def as_unknown(text: str, task_id: str) -> str:
    return text.replace(task_id, "<id>")


def assert_hidden_from(other: Caller, task_id: str) -> None:
    """Every companion answers ``other`` as it answers an id no store knows - a wait at
    once, not after its seconds (the task may still run: the wait would hold)."""
    unknown = secrets.token_hex(16)
    for suffix, extra in (("progress", ()), ("result", ()), ("cancel", ()), ("wait", (25,)), ("wait_result", (25,))):
        began = time.monotonic()
        seen = as_unknown(other.refusal(f"gated_{suffix}", task_id, *extra), task_id)
        assert time.monotonic() - began < 20, f"{suffix} held: it would tell the task exists"
        expected = as_unknown(other.refusal(f"gated_{suffix}", unknown, *extra), unknown)
        assert seen == expected and seen.startswith("UnknownTask:"), (suffix, seen)
    assert task_id not in other.listed("gated")


def check_two_callers(alice: Caller, bob: Caller, gate: Path) -> None:
    """Alice's running task is hers alone: Bob can neither see, wait on nor cancel it,
    and the same Idempotency-Key makes each of them a task of their own."""
    task_id = alice.start("gated", str(gate))
    assert_hidden_from(bob, task_id)
    assert task_id in alice.listed("gated")
    progress = alice.call("gated_progress", task_id)
    assert progress["state"] in ("queued", "running"), "Bob's cancel did not touch it"
    gate.touch()
    waited = alice.call("gated_wait", task_id, 30)
    assert waited["state"] == "succeeded"
    assert isinstance(alice.call("gated_result", task_id), int)
    assert_hidden_from(bob, task_id)  # finished, it stays hidden

    key = f"order-{secrets.token_hex(4)}"
    mine = alice.start("echo", "alice's order", key=key)
    theirs = bob.start("echo", "bob's order", key=key)  # another caller's key: no conflict, no task of hers
    assert theirs != mine
    assert alice.start("echo", "alice's order", key=key) == mine
    assert bob.start("echo", "bob's order", key=key) == theirs
    assert alice.call("echo_wait_result", mine, 30) == "alice's order"
    assert bob.call("echo_wait_result", theirs, 30) == "bob's order"


# -- serve with a principal hook -----------------------------------------------------------------


@pytest.fixture(scope="module", params=["memory", "redis"])
def hooked(request: pytest.FixtureRequest, output_dir: Path) -> Iterator[RunningServer]:
    """``serve --principal callers:caller``, over the in-process store and over Redis."""
    extra = ["--redis", request.getfixturevalue("redis_server").url] if request.param == "redis" else []
    server = start_server([PROBE], output_dir, "--principal", "callers:caller", "--dashboard-token", TOKEN, *extra)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def demanding(output_dir: Path) -> Iterator[RunningServer]:
    """``serve`` whose hook demands a principal (``--require-principal``)."""
    server = start_server([PROBE], output_dir, "--principal", "callers:caller", "--require-principal")
    yield server
    server.stop()


@pytest.mark.parametrize("interface", INTERFACES)
def test_two_callers_cannot_see_wait_on_cancel_or_collide_with_each_others_tasks(
        hooked: RunningServer, interface: str, tmp_path: Path) -> None:
    alice = Caller(hooked.url, interface, headers={"X-Caller": "alice"})
    bob = Caller(hooked.url, interface, headers={"X-Caller": "bob"})
    check_two_callers(alice, bob, tmp_path / "gate")


def test_a_task_without_a_principal_is_hidden_from_named_callers_and_theirs_from_it(
        hooked: RunningServer, tmp_path: Path) -> None:
    anonymous = Caller(hooked.url, "jsonwsp")
    alice = Caller(hooked.url, "jsonwsp", headers={"X-Caller": "alice"})
    hers = alice.start("gated", str(tmp_path / "gate"))
    assert anonymous.refusal("gated_progress", hers).startswith("UnknownTask:")
    assert anonymous.refusal("gated_list", "", 10, 0).startswith("Unauthenticated:"), \
        "a listing turned on by principals lists nobody's tasks to an anonymous caller"
    open_task = anonymous.start("echo", "open")
    assert alice.call("echo_wait_result", open_task, 30) == "open", "its id stays its credential"
    (tmp_path / "gate").touch()


@pytest.mark.parametrize("interface", INTERFACES)
def test_an_unauthenticated_call_is_refused_when_the_hook_demands_a_principal(
        demanding: RunningServer, interface: str) -> None:
    anonymous = Caller(demanding.url, interface)
    alice = Caller(demanding.url, interface, headers={"X-Caller": "alice"})
    started = alice.start("echo", "hello")
    for method, args in (("echo", ("hello",)), ("echo_progress", (started,)), ("echo_result", (started,)),
                         ("echo_wait", (started, 1)), ("echo_cancel", (started,)), ("echo_list", ("", 10, 0))):
        refused = anonymous.refusal(method, *args)
        assert refused.startswith("Unauthenticated: this service needs an authenticated caller"), (method, refused)
    assert alice.call("echo_wait_result", started, 30) == "hello"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ladon_tasks", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_operators_see_every_callers_tasks_with_their_principal_and_a_rerun_keeps_it(
        hooked: RunningServer) -> None:
    alice = Caller(hooked.url, "jsonwsp", headers={"X-Caller": "alice"})
    bob = Caller(hooked.url, "jsonwsp", headers={"X-Caller": "bob"})
    failed = alice.start("explode", "boom")
    mine = bob.start("echo", "bob's")
    wait_until(lambda: alice.call("explode_wait", failed, 5)["state"] == "failed", timeout=30, what="the failure")

    listed = run_cli("tasks", "--url", hooked.url, "--token", TOKEN, "--json", "--limit", "500")
    assert listed.returncode == 0, listed.stderr
    rows = {row["task_id"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert rows[failed]["principal"] == "alice" and rows[mine]["principal"] == "bob"
    table = run_cli("tasks", "--url", hooked.url, "--token", TOKEN, "--limit", "500").stdout.splitlines()
    header = table[0]
    column = slice(header.index("CALLER"), header.index("MESSAGE"))
    assert {line[column].strip() for line in table if failed in line} == {"alice"}
    inspected = run_cli("inspect", failed, "--url", hooked.url, "--token", TOKEN)
    assert json.loads(inspected.stdout)["principal"] == "alice", inspected.stdout

    for how in ([], ["--restart"]):
        rerun = run_cli("retry", failed, "--url", hooked.url, "--token", TOKEN, *how)
        assert rerun.returncode == 0, rerun.stderr
        new_id = rerun.stdout.strip()
        assert alice.call("explode_wait", new_id, 30)["state"] == "failed", "the re-run is Alice's"
        assert bob.refusal("explode_progress", new_id).startswith("UnknownTask:")
        assert new_id in alice.listed("explode") and new_id not in bob.listed("explode")


# -- Apache Basic authentication under mod_wsgi ----------------------------------------------------


@pytest.fixture(scope="module")
def basic_apache(output_dir: Path, redis_server: RedisServer) -> Iterator[ModWsgi]:
    """Two mod_wsgi daemons over Redis behind ``AuthType Basic`` (mod_wsgi-express
    ``--auth-user-script``); the deployment names ``REMOTE_USER`` as its principal."""
    root = prepared_root(output_dir / "apache-principals")
    script = root.parent / "apache-principals-auth.py"
    script.write_text(AUTH_SCRIPT)
    script.chmod(0o644)
    from support.apache import EXPRESS_OPTIONS

    server = ModWsgi(root / "basic", 2, {
        "LADON_TASKS_SERVICES": PROBE, "LADON_TASKS_REDIS_URL": redis_server.url,
        "LADON_TASKS_PRINCIPAL": "REMOTE_USER",
    }, express_options=(*EXPRESS_OPTIONS, "--auth-user-script", str(script), "--auth-type", "Basic")).start()
    yield server
    server.stop()


@pytest.mark.parametrize("interface", INTERFACES)
def test_apache_basic_authentication_keeps_callers_apart(basic_apache: ModWsgi, interface: str) -> None:
    gate = basic_apache.server_root / f"gate-{interface}"  # where the daemons (www-data) can look
    gate.unlink(missing_ok=True)
    alice = Caller(basic_apache.url, interface, auth=("alice", "alice-secret"))
    bob = Caller(basic_apache.url, interface, auth=("bob", "bob-secret"))
    check_two_callers(alice, bob, gate)


def test_apache_refuses_a_call_without_valid_credentials(basic_apache: ModWsgi) -> None:
    body = {"methodname": "echo", "args": {"text": "x"}}
    status, _ = post_json(f"{basic_apache.url}/ProbeService/jsonwsp", body)
    assert status == 401
    wrong = requests.post(f"{basic_apache.url}/ProbeService/jsonwsp", json=body, auth=("alice", "guess"), timeout=10)
    assert wrong.status_code == 401
