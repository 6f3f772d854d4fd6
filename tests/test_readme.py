"""Every fenced block of README.md and deploy/apache/README.md, run as written.

Each block has a marker on the line before it: ``<!-- install: ... -->`` (run by
tests/install-check, from .ci/run), ``<!-- test: NAME -->`` (run here by the runner of
that name, which reads the block's text from the file, so a changed block is tested in
its new form) or ``<!-- not run here: WHY -->``. A block with none fails
:func:`test_every_block_is_run_or_says_why_not`.

What a block cannot hold as written is substituted, and only that: the test's Redis
for ``redis://...`` and ``redis://127.0.0.1:6379/0``, the test's server for
``http://127.0.0.1:8080``, free ports for fixed ones, temporary directories for
``/srv/app``. One Redis, one ``serve`` of the example services (started by the
Scale-out block itself) and its worker serve every block that talks to a server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.jsonwsp import JsonWsp
from support.processes import spawn, stop_process_group
from support.redis_server import RedisServer, start_redis
from support.servers import ROOT, RunningServer, free_port, launch, serves_catalogue, wait_until

FILES = (ROOT / "README.md", ROOT / "deploy" / "apache" / "README.md")
BIN = Path(sys.executable).parent
#: The environment blocks run in: this interpreter's ``ladon-tasks``, ``pip`` and
#: ``mod_wsgi-express`` first on PATH, as in the environment the README installs.
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
README_URL = "http://127.0.0.1:8080"
MARKER = re.compile(r"^<!-- (install|test|not run here):\s*(.*?)\s*-->$")
TASK_ID = re.compile(r"\b[0-9a-f]{32}\b")


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    marker: str  # install, test, not run here, or ""
    value: str  # the marker's text
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path``, each with the marker on the line before it."""
    found: list[Block] = []
    lines = path.read_text().splitlines()
    inside: tuple[int, str, str] | None = None
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        if inside is None and line.startswith("```"):
            previous = lines[number - 2] if number > 1 else ""
            match = MARKER.match(previous.strip())
            inside = (number, match.group(1) if match else "", match.group(2) if match else "")
            body = []
        elif inside is not None and line.startswith("```"):
            found.append(Block(path, inside[0], inside[1], inside[2], "\n".join(body) + "\n"))
            inside = None
        elif inside is not None:
            body.append(line)
    assert inside is None, f"{path}: a block opened at line {inside[0]} is never closed"
    return found


def block(name: str) -> str:
    """The text of the block marked ``<!-- test: name -->``."""
    (found,) = [b for path in FILES for b in blocks(path) if b.marker == "test" and b.value == name]
    return found.text


def shell(command: str, *, timeout: float = 120, check: bool = True, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``command`` as a user's shell runs it, in the README's environment."""
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=ENV,
                         stdin=subprocess.DEVNULL)  # no terminal to ask on, as in CI
    if check:
        assert out.returncode == 0, f"$ {command}\n{out.stdout}\n{out.stderr}"
    return out


def commands(text: str) -> list[str]:
    """A shell block's commands: continuation lines joined, comments and ``$`` prompts dropped."""
    joined = text.replace("\\\n", " ")
    lines = [re.sub(r"\s+#\s.*$", "", line.removeprefix("$ ")).strip() for line in joined.splitlines()]
    return [line for line in lines if line]


def substituted(text: str, redis: RedisServer, url: str = README_URL) -> str:
    return (text.replace("redis://127.0.0.1:6379/0", redis.url).replace("redis://...", redis.url)
            .replace(README_URL, url))


class Follower:
    """A long-running command (``events``, ``dashboard``, a worker) whose output lines
    are collected as they come."""

    def __init__(self, command: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(["bash", "-c", command], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=ENV,
                                        start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def first(self, containing: str, timeout: float = 30) -> str:
        def seen() -> str | None:
            if self.process.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"exited with {self.process.returncode}:\n" + "\n".join(self.lines))
            return next((line for line in self.lines if containing in line), None)

        return wait_until(seen, timeout=timeout, what=f"a line with {containing!r}")

    def stop(self) -> None:
        stop_process_group(self.process)
        self._reader.join(timeout=10)


# -- the markers -------------------------------------------------------------------------------

RUNNERS = {
    "call-wait", "task-service", "zeep", "ladon-application", "make-application", "steps", "scale-out",
    "seeing-it", "sentinel-url", "cluster-url", "python-client", "apache", "tree",
    "deploy-apache-config", "deploy-express", "deploy-checkout", "deploy-worker",
    "delayed-call",  # tests/test_delayed.py
}


def test_every_block_is_run_or_says_why_not():
    unmarked, unknown, named = [], [], []
    for path in FILES:
        for found in blocks(path):
            if not found.marker:
                unmarked.append(found.where)
            elif found.marker == "test":
                named.append(found.value)
                if found.value not in RUNNERS:
                    unknown.append(f"{found.where}: {found.value}")
            elif found.marker == "not run here":
                assert len(found.value) > 20, f"{found.where}: say why the block cannot run here"
    assert not unmarked, f"blocks neither run nor marked <!-- not run here: why -->: {unmarked}"
    assert not unknown, f"blocks whose runner does not exist: {unknown}"
    assert sorted(named) == sorted(RUNNERS), "each runner runs exactly one block"


# -- one deployment for every block that talks to a server -------------------------------------


WORKER_ID = re.compile(r"ladon-tasks worker (\S+): \d+ slot\(s\) on")


@dataclass
class Deployment:
    redis: RedisServer
    server: RunningServer
    worker_command: str
    worker: Follower | None = None
    worker_id: str = ""

    @property
    def url(self) -> str:
        return self.server.url

    def start_worker(self) -> None:
        self.worker = Follower(self.worker_command)
        self.worker_id = WORKER_ID.search(self.worker.first("ladon-tasks worker ")).group(1)

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.worker = None


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, output_dir):
    """The Scale-out block's ``serve`` and worker, as written (with the test's Redis and
    a free port for the server)."""
    redis = start_redis(tmp_path_factory.mktemp("redis-readme"))
    serve, worker, _burst, _call = commands(block("scale-out"))
    assert serve.startswith("ladon-tasks serve ") and worker.startswith("ladon-tasks worker ")
    port = free_port()
    server = launch(["bash", "-c", f"exec {substituted(serve, redis)} --port {port}"], port,
                    output_dir / f"readme-serve-{port}.log", serves_catalogue, "serve of the Scale-out block", ENV)
    deployment = Deployment(redis, server, substituted(worker, redis))
    deployment.start_worker()
    yield deployment
    deployment.stop_worker()
    server.stop()
    redis.stop()


def test_scale_out_runs_the_queued_method_on_the_worker(deployment):
    _serve, _worker, burst, call = commands(block("scale-out"))
    assert "ReportService.publishReport" in call
    called = shell(substituted(call, deployment.redis, deployment.url))
    assert json.loads(called.stdout) == "published q3"
    task_id = TASK_ID.search(called.stderr).group(0)
    report = JsonWsp(deployment.url, "ReportService")
    assert report("publishReport_progress", task_id=task_id)["worker"] == deployment.worker_id

    # the burst worker, while no other runs: runs what is queued, then returns
    deployment.stop_worker()
    try:
        queued = report("publishReport", title="burst")["task_id"]
        out = shell(substituted(burst, deployment.redis), timeout=60)
    finally:
        deployment.start_worker()
    final = report("publishReport_progress", task_id=queued)
    assert (final["state"], final["worker"]) == ("succeeded", WORKER_ID.search(out.stderr).group(1))


def test_call_wait_prints_the_result_the_readme_shows(deployment):
    (command, *shown) = block("call-wait").split("\n$ ", 1)[-1].replace("\\\n", " ").splitlines()
    command = command.removeprefix("$ ")
    program, rest = command.split(" ", 1)
    assert program.endswith("/ladon-tasks") or program == "ladon-tasks", program
    out = shell(f"ladon-tasks {substituted(rest, deployment.redis, deployment.url)}", timeout=60)
    result_at = next(n for n, line in enumerate(shown) if line.startswith("{"))
    assert json.loads(out.stdout) == json.loads("\n".join(shown[result_at:]))
    assert re.match(r"task [0-9a-f]{32}\n", out.stderr) and shown[0].startswith("task ")
    last = shown[result_at - 1]
    assert last.startswith("cloneInstance: 100%") and last.endswith(", succeeded")
    assert "cloneInstance: 100%, succeeded" in out.stderr


def run_python(code: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    script = tmp_path / f"block_{free_port()}.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout,
                         cwd=tmp_path, env=ENV)
    assert out.returncode == 0, f"{code}\n{out.stdout}\n{out.stderr}"
    return out


def test_zeep_snippet_follows_the_task_to_its_result(deployment, tmp_path):
    out = run_python(substituted(block("zeep"), deployment.redis, deployment.url), tmp_path, timeout=180)
    assert out.stdout.split() == ["succeeded", "5"]


def test_python_client_snippet_runs(deployment, tmp_path):
    code = substituted(block("python-client"), deployment.redis, deployment.url)
    run_python(code + "\nprint(info['name'], status.state)\n", tmp_path)


def test_seeing_it_every_line(deployment, tmp_path, output_dir):
    lines = [line for line in commands(block("seeing-it"))]
    by_command = {line.split()[1]: line for line in lines}
    assert len(by_command) == len(lines) - 1  # events twice: --redis and --url
    token = "readme-secret"
    instance = JsonWsp(deployment.url, "InstanceService")
    report = JsonWsp(deployment.url, "ReportService")

    def run(line: str, **fill: str) -> subprocess.CompletedProcess:
        for placeholder, value in fill.items():
            line = line.replace(placeholder, value)
        return shell(substituted(line, deployment.redis, deployment.url), check=False, timeout=60)

    seen = set()
    for line in lines:
        command = line.split()[1]
        seen.add(command)
        if command == "tasks":
            assert run(line).returncode == 0
        elif command == "inspect":
            task_id = instance("cloneInstance", instance_id="vm-7", new_instance_name="i")["task_id"]
            out = run(line, TASK_ID=task_id)
            assert out.returncode == 0 and json.loads(out.stdout)["task_id"] == task_id
        elif command == "cancel":
            long = report("buildReport", minutes=1)["task_id"]
            out = run(line, TASK_ID=long)
            assert out.returncode == 0 and out.stdout.split() == [long, "cancelled"], out
        elif command == "retry":
            out = run(line, TASK_ID=long)  # the task cancelled above
            assert out.returncode == 0 and TASK_ID.fullmatch(out.stdout.strip()), out
            report("buildReport_cancel", task_id=out.stdout.strip())
        elif command == "events":
            follower = Follower(substituted(line, deployment.redis, deployment.url))
            try:
                def reported(follower: Follower = follower) -> bool:
                    instance("cloneInstance", instance_id="vm-7", new_instance_name="e")
                    return any("InstanceService.cloneInstance" in seen_line for seen_line in follower.lines)

                wait_until(reported, timeout=60, interval=1.0, what=f"a line of {line!r}")
            finally:
                follower.stop()
        elif command in ("status", "workers"):
            out = run(line)
            assert out.returncode == 0, out
            if command == "workers":
                assert deployment.worker_id in out.stdout
        elif command == "purge":
            failed = report("importRecords", records=["no equals sign"])["task_id"]
            assert report("importRecords_wait", task_id=failed, seconds=20)["state"] == "failed"
            asked = run(line)  # no terminal to ask on: refused
            assert asked.returncode == 2 and "--yes" in asked.stderr, asked
            assert run(line + " --yes").stdout.startswith("purged ")
        elif command == "ping":
            out = run(line)
            assert out.returncode == 0 and out.stdout.startswith("ok"), out
        elif command == "dashboard":
            port = free_port()
            follower = Follower(substituted(line.replace("SECRET", token), deployment.redis) + f" --port {port}")
            try:
                follower.first(f"dashboard on http://127.0.0.1:{port}/")
                wait_until(lambda port=port: shell(f"ladon-tasks ping http://127.0.0.1:{port} --token {token}",
                                              check=False).returncode == 0, timeout=30, what="the dashboard's health")
            finally:
                follower.stop()
        elif command == "call":
            out = run(line)
            assert out.returncode == 0 and TASK_ID.fullmatch(out.stdout.strip()), out
            called = out.stdout.strip()
        elif command == "wait":
            out = run(line, TASK_ID=called)
            assert out.returncode == 0 and json.loads(out.stdout)["name"] == "b", out
        else:
            raise AssertionError(f"no runner for the line {line!r}")
    assert seen == set(by_command)


# -- blocks without a server -------------------------------------------------------------------


def test_task_service_snippet_imports_as_a_task_service(tmp_path):
    (tmp_path / "readme_tasks.py").write_text(block("task-service"))
    out = run_python("import ladon_tasks, readme_tasks\n"
                     "print(sorted(name for name in dir(readme_tasks.TaskService) if name.startswith('task')))\n",
                     tmp_path)
    # every method of the README's table but _list, which needs listing=True or principals
    table = re.findall(r"^\| `(taskExample\w*)\(", (ROOT / "README.md").read_text(), re.M)
    assert len(table) >= 8 and "taskExample_list" in table
    assert out.stdout.strip() == str(sorted(set(table) - {"taskExample_list"}))


def test_steps_snippet_is_the_example_services_code():
    def code(text: str) -> str:  # comments, docstrings and layout left out
        text = re.sub(r'"""[\s\S]*?"""', "", text)
        return "".join("".join(line.split("#", 1)[0].split()) for line in text.splitlines())

    assert code(block("steps")) in code((ROOT / "services" / "instance_service.py").read_text())


@pytest.mark.parametrize("name", ["ladon-application", "make-application"])
def test_wsgi_handler_snippets_serve_a_service(name, tmp_path):
    services = tmp_path / "services"
    services.mkdir()
    shutil.copy(ROOT / "tests" / "service_fixtures" / "legacy_service.py", services / "my_service.py")
    code = block(name).replace("/srv/app/services", str(services))
    port = free_port()
    handler = tmp_path / "handler.py"
    handler.write_text(code + textwrap.dedent(f"""
        from ladon_tasks.serving import make_server
        make_server('127.0.0.1', {port}, application).run()
    """))
    process = spawn([sys.executable, str(handler)], tmp_path / "handler.log", tmp_path, ENV)
    try:
        def description() -> dict | None:
            if process.poll() is not None:
                raise AssertionError((tmp_path / "handler.log").read_text())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/LegacyService/jsonwsp/description",
                                            timeout=2) as response:
                    return json.loads(response.read())
            except OSError:
                return None

        methods = wait_until(description, timeout=30, what="the handler to serve")["methods"]
        task_methods = [name for name in methods if name + "_wait" in methods]
        assert task_methods, methods  # the plugin is active: the service's task methods have companions
    finally:
        stop_process_group(process)


@pytest.mark.parametrize("name, parse", [("sentinel-url", "SentinelURL"), ("cluster-url", "ClusterURL")])
def test_url_forms_parse(name, parse):
    from ladon_tasks.redis import cluster, sentinel

    parser = getattr(sentinel if parse == "SentinelURL" else cluster, parse).parse
    (form,) = block(name).split()
    bare = re.sub(r"\[[^\]]*\]", "", form)
    full = re.sub(r"\[([^\]]*)\]", r"\1", form).replace("/DB", "/2").replace("SERVICE", "mymaster")
    for url in (bare.replace("SERVICE", "mymaster"), full):
        parsed = parser(url)
        hosts = getattr(parsed, "sentinels", None) or parsed.nodes
        assert [host for host, _ in hosts] == ["host1", "host2", "host3"], url
    assert parser(full).password == "password"


def test_tree_names_only_paths_that_exist():
    missing, current = [], ROOT
    for line in block("tree").splitlines():
        entry = re.match(r"^( *)(\S+)", line)
        if entry is None:
            continue
        indent, name = len(entry.group(1)), entry.group(2)
        if indent in (0, 2):  # an entry; deeper lines go on describing the one above
            base = ROOT if indent == 0 else ROOT / "ladon_tasks"
            if not (base / name.rstrip("/")).exists():
                missing.append(name)
            if indent == 0:
                current = ROOT / name.rstrip("/")
            elif name.endswith("/"):
                current = ROOT / "ladon_tasks" / name.rstrip("/")
            else:
                current = ROOT / "ladon_tasks"
            described = line[indent + len(name):]
        else:
            described = line
        for mentioned in re.findall(r"[\w*]+(?:/[\w*.]+)*\.(?:py|lua)\b", described):
            if not list(current.glob(mentioned)):
                missing.append(f"{current.relative_to(ROOT)}/{mentioned}")
    assert not missing, f"the tree names what does not exist: {missing}"


# -- Apache --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def apache_dir(output_dir):
    """A directory the Apache daemons (``www-data`` when started as root) can read."""
    from support.apache import traversable_by_others
    from support.needs import require

    require(shutil.which("apache2") is not None or Path("/usr/sbin/apache2").exists(), "Apache is not installed")
    require((BIN / "mod_wsgi-express").exists(), "mod_wsgi-express is not installed")
    require(traversable_by_others(Path(os.path.realpath(sys.base_prefix))), "the Python installation is private")
    root = output_dir / "readme-apache"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    require(traversable_by_others(root), f"{root} cannot be reached by the Apache user")
    return root


def start_express(command: str, port: int, directory: Path) -> Follower:
    """``mod_wsgi-express start-server`` as written: Apache in the foreground, stopped by
    its process group; returns once the example service answers."""
    express = Follower(command)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/InstanceService/jsonwsp/description"), timeout=60,
                   what=f"Apache on {port}")
    except BaseException:
        express.stop()
        raise AssertionError("\n".join(express.lines)) from None
    return express


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def clone_through(port: int) -> None:
    instance = JsonWsp(f"http://127.0.0.1:{port}", "InstanceService")
    task_id = instance("cloneInstance", instance_id="vm", new_instance_name="apache")["task_id"]
    assert instance("cloneInstance_wait_result", task_id=task_id, seconds=30)["instance_id"] == "vm-apache"


def apache_paths(text: str, site: Path, redis: RedisServer, port: int) -> str:
    """The block with the test's paths, Redis and port."""
    return substituted(text, redis).replace("/srv/app/services", str(site / "services")) \
        .replace("/srv/app/apache", str(site / "apache")).replace("--port 8080", f"--port {port}")


def make_site(root: Path, name: str) -> Path:
    site = root / name
    (site / "services").mkdir(parents=True)
    shutil.copy(ROOT / "services" / "instance_service.py", site / "services" / "orders.py")
    for directory in (site, site / "services"):
        directory.chmod(0o755)
    return site


def test_apache_block_serves_the_services(apache_dir, deployment):
    site, port = make_site(apache_dir, "readme"), free_port()
    configure, start = commands(apache_paths(block("apache"), apache_dir / "readme", deployment.redis, port))
    shell(configure)
    assert os.geteuid() != 0 or "--user www-data" in start  # Apache refuses to run daemons as root
    express = start_express(start.split("#", 1)[0], port, apache_dir)
    try:
        clone_through(port)
    finally:
        express.stop()
    assert site.exists()


def test_deploy_readme_blocks_serve_the_services(apache_dir, deployment):
    site, port = make_site(apache_dir, "deploy"), free_port()
    (configure,) = commands(apache_paths(block("deploy-apache-config"), site, deployment.redis, port))
    out = shell(configure)
    assert "ServerName api.example.org" in out.stdout and (site / "apache" / "handler.wsgi").exists()
    (start,) = commands(apache_paths(block("deploy-express"), site, deployment.redis, port))
    express = start_express(start.split("#", 1)[0], port, apache_dir)
    try:
        clone_through(port)
    finally:
        express.stop()


def test_deploy_readme_checkout_block_serves_the_example(apache_dir, deployment):
    port = free_port()
    text = apache_paths(block("deploy-checkout"), apache_dir, deployment.redis, port)
    install, start = commands(text)
    assert install.split("#", 1)[0].split() == ["pip", "install", "mod_wsgi"]
    shell(install.split("#", 1)[0] + " --no-index")  # present already: nothing fetched
    express = start_express(start.split("#", 1)[0], port, apache_dir)
    try:
        clone_through(port)
    finally:
        express.stop()


def test_deploy_readme_worker_block_serves_the_queue(deployment, output_dir):
    (line,) = commands(block("deploy-worker"))
    worker = Follower(substituted(line, deployment.redis))
    try:
        assert "4 slot(s) on default" in worker.first("ladon-tasks worker ")
    finally:
        worker.stop()
