"""The single binary (issue 8): dist/pie runs `serve`, `worker`, `token`, `db upgrade` and
`plugins` with no Python on the machine, and loads a third-party plugin from PIE_PLUGINS_PATH.

Opt-in, because it builds the binary: `PIE_TEST_BINARY=build python3 -m pytest -q
tests/test_binary.py` runs packaging/build first (about 30 s); `PIE_TEST_BINARY=/path/to/pie`
tests that binary as it is. Every command runs with a minimal environment (no PYTHONPATH, PATH
an empty folder) and, where `unshare --mount` is allowed (root), in a mount namespace where
every Python install on the machine and this source tree are hidden under empty mounts.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from tests.server import free_port

REGION = "us-east-1"

ROOT = Path(__file__).resolve().parent.parent
REQUESTED = os.environ.get("PIE_TEST_BINARY", "")

pytestmark = pytest.mark.skipif(
    not REQUESTED, reason="set PIE_TEST_BINARY=build (or a path to a built binary)"
)

# A third-party plugin for the plugins folder. It imports standard-library modules PIE itself
# never uses, which the binary carries for such plugins.
PLUGIN = """
import graphlib
import statistics
import tomllib

import marshmallow as ma
from pie import HandlerType, hookimpl


class OutboxSchema(ma.Schema):
    outbox = ma.fields.String(required=True)


class OutboxHandlerType(HandlerType):
    name = "outbox"
    schema = OutboxSchema

    def dispatch(self, handler, job, payload):
        return f"outbox:{job.job_id}"


@hookimpl
def pie_register_handler_types(app):
    return [OutboxHandlerType]


@hookimpl
def pie_register_in_process_handlers(app):
    return {"mean": lambda job_input: {"mean": statistics.fmean(job_input["values"])}}
"""


def python_installs() -> list[str]:
    """Every Python on this machine (the one running the tests included), to hide."""
    found = {sys.prefix, sys.base_prefix, sys.exec_prefix} - {"/", "/usr", "/usr/local"}
    for pattern in (
        "/usr/lib/python3*",
        "/usr/local/lib/python3*",
        "/usr/lib/*/libpython3*",
        "/usr/bin/python3*",
        "/usr/local/bin/python3*",
    ):
        found.update(glob.glob(pattern))
    paths = sorted({os.path.realpath(path) for path in found if os.path.exists(path)})
    # Whatever lies inside a hidden folder is hidden with it (and could not be mounted over).
    return [p for p in paths if not any(p.startswith(f"{q}/") for q in paths if q != p)]


def hiding_prefix() -> list[str]:
    """A command prefix that runs its command with the Python installs and the source tree
    covered by empty mounts, or [] where mount namespaces are not allowed."""
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if not (unshare and mount):
        return []
    mounts = []
    for path in [*python_installs(), str(ROOT)]:
        kind = "-t tmpfs none" if os.path.isdir(path) else "--bind /dev/null"
        mounts.append(f"{mount} {kind} {shlex.quote(path)}")
    script = " && ".join([*mounts, 'exec "$@"'])
    prefix = [unshare, "--mount", "--", "/bin/sh", "-c", script, "-"]
    try:
        probe = subprocess.run([*prefix, "/bin/true"], capture_output=True, timeout=30, env={})
    except (OSError, subprocess.TimeoutExpired):
        return []
    return prefix if probe.returncode == 0 else []


class Sandbox:
    """The binary, a working folder, an instance folder, a plugins folder, a minimal env."""

    def __init__(self, binary: Path, home: Path, aws_endpoint: str) -> None:
        self.home = home
        (home / "bin").mkdir()  # PATH: an empty folder, so no python3 can be found
        (home / "plugins").mkdir()
        (home / "plugins" / "outbox_plugin.py").write_text(PLUGIN)
        self.binary = home / "pie"
        shutil.copy2(binary, self.binary)  # outside the source tree, which gets hidden
        self.env = {
            "PATH": str(home / "bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "PIE_INSTANCE_PATH": str(home / "instance"),
            "PIE_PLUGINS_PATH": str(home / "plugins"),
            # The built-in AWS types talk to moto on loopback, with fake credentials only.
            "PIE_AWS_ENDPOINT_URL": aws_endpoint,
            "PIE_AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        self.prefix = hiding_prefix()

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, str(self.binary), *args]

    def run(self, *args: str, cwd: Path | None = None, **env: str | None) -> Any:
        """Run a command to completion; an env value of None removes that variable."""
        merged = {**self.env, **env}
        return subprocess.run(
            self.argv(*args),
            env={name: value for name, value in merged.items() if value is not None},
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self, *args: str, log: Path) -> subprocess.Popen:
        with open(log, "wb") as out:
            return subprocess.Popen(
                self.argv(*args),
                env=self.env,
                cwd=self.home,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


def stop(proc: subprocess.Popen) -> int:
    """SIGTERM the process group (bootloader, server, workers); the exit code."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def wait_for_text(log: Path, text: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"exited {proc.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log.read_text()}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def binary() -> Path:
    if REQUESTED != "build":
        return Path(REQUESTED).resolve()
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run([str(ROOT / "packaging" / "build")], cwd=ROOT, env=env, check=True, timeout=1200)
    return ROOT / "dist" / "pie"


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    """moto's server on loopback with its docker-free Lambda backend (accepts every invoke)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    requests.post(f"{url}/moto-api/config", json={"lambda": {"use_docker": False}}, timeout=30)
    yield url
    server.stop()


@pytest.fixture(scope="module")
def sandbox(binary: Path, moto: str, tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    return Sandbox(binary, tmp_path_factory.mktemp("binary"), moto)


@pytest.fixture(scope="module")
def server(sandbox: Sandbox) -> Iterator[str]:
    port = free_port()
    log = sandbox.home / "serve.log"
    proc = sandbox.start("serve", "--port", str(port), "--workers", "2", log=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{url}/v2/health", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert proc.poll() is None, f"pie serve exited {proc.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"pie serve never became healthy:\n{log.read_text()}"
        time.sleep(0.2)
    yield url
    assert stop(proc) == 0, log.read_text()
    assert "Shutting down: Master" in log.read_text()


@pytest.fixture(scope="module")
def session(sandbox: Sandbox, server: str) -> requests.Session:
    minted = sandbox.run("token", "--admin")
    assert minted.returncode == 0, minted.stderr
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {minted.stdout.strip()}"
    return http


def test_no_python_is_reachable_from_the_sandbox(sandbox):
    assert shutil.which("python3", path=sandbox.env["PATH"]) is None
    if not sandbox.prefix:
        pytest.skip("mount namespaces not allowed: only the environment is minimal")
    hidden = subprocess.run(
        [*sandbox.prefix, sys.executable, "-c", "import os"], capture_output=True, timeout=30
    )
    assert hidden.returncode != 0  # the Python running these tests cannot start in there


def test_db_upgrade_creates_the_database_in_the_instance_folder(sandbox):
    upgraded = sandbox.run("db", "upgrade")
    version = sandbox.run("db", "version")

    assert upgraded.returncode == 0, upgraded.stderr
    assert (sandbox.home / "instance" / "pie.sqlite").is_file()
    assert version.returncode == 0 and int(version.stdout.strip()) >= 1, version


def test_the_default_instance_folder_is_in_the_working_directory(sandbox):
    workdir = sandbox.home / "elsewhere"
    workdir.mkdir()

    upgraded = sandbox.run("db", "upgrade", cwd=workdir, PIE_INSTANCE_PATH=None)

    assert upgraded.returncode == 0, upgraded.stderr
    assert (workdir / "instance" / "pie.sqlite").is_file()
    assert (workdir / "instance" / "pie-jwt-secret").is_file()


def test_version_help_and_token_create_nothing(sandbox):
    from importlib.metadata import version

    workdir = sandbox.home / "quiet"
    workdir.mkdir()
    shown = sandbox.run("--version", cwd=workdir, PIE_INSTANCE_PATH=None)
    helped = sandbox.run("--help", cwd=workdir, PIE_INSTANCE_PATH=None)
    refused = sandbox.run("token", "--admin", cwd=workdir, PIE_INSTANCE_PATH=None)

    assert shown.returncode == 0 and shown.stdout == f"pie {version('pie-registry')}\n"
    assert helped.returncode == 0 and "--app" not in helped.stdout, helped.stdout
    assert refused.returncode == 1 and "no token secret at" in refused.stderr  # none made yet
    assert list(workdir.iterdir()) == []


def test_plugins_lists_the_built_ins_and_the_folder_plugin(sandbox):
    listed = sandbox.run("plugins")

    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert {p["name"] for p in report["plugins"]} == {
        "lambda",
        "ecs_task",
        "in_process",
        "http",
        "celery",
        "outbox_plugin",
    }
    assert report["handler_types"] == ["ecs_task", "http", "in_process", "lambda", "outbox"]
    # The binary is built without the celery extra: the plugin says so instead of a type.
    assert report["unavailable"] == {"celery": "not available - install pie-registry[celery]"}
    assert report["in_process_handlers"] == ["echo", "mean"]


def test_a_broken_folder_plugin_stops_start_up_naming_the_file(sandbox, tmp_path):
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('broken on purpose')\n")

    listed = sandbox.run("plugins", PIE_PLUGINS_PATH=str(tmp_path))

    assert listed.returncode != 0
    assert str(tmp_path / "broken_plugin.py") in listed.stderr
    assert "broken on purpose" in listed.stderr


def run_job(
    session: requests.Session,
    url: str,
    model_id: str,
    handler: dict[str, str],
    data: dict[str, Any],
    until: tuple[str, ...] = ("success", "failure"),
) -> dict[str, Any]:
    """Create a model on `handler`, activate version 1, run an inference, return the job."""
    body = {
        "id": model_id,
        "name": model_id,
        "description": "a smoke-test model",
        "handlers": {"training": handler, "inference": handler},
    }
    r = session.post(f"{url}/v2/models", json=body, timeout=30)
    assert r.status_code == 201, r.text
    for status in ("training", "active"):
        path = f"{url}/v2/models/{model_id}/versions/1/new_status"
        r = session.post(path, json={"status": status}, timeout=30)
        assert r.status_code == 200, r.text
    path = f"{url}/v2/models/{model_id}/versions/1/inference"
    r = session.post(path, json={"input": data}, timeout=30)
    assert r.status_code == 202, r.text
    job_url = f"{url}/v2/jobs/{r.json()['inference_job_id']}"
    deadline = time.monotonic() + 30
    while (job := session.get(job_url, timeout=30).json())["status"] not in until:
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    return job


def test_serve_runs_an_in_process_echo_job(session, server):
    echo = {"type": "in_process", "value": "echo"}

    job = run_job(session, server, "sentiment", echo, {"text": "hello"})

    assert job["status"] == "success", job
    assert job["output"] == {"text": "hello"}


def test_serve_runs_a_job_of_the_folder_plugin(session, server):
    mean = {"type": "in_process", "value": "mean"}

    job = run_job(session, server, "averages", mean, {"values": [1, 2, 6]})

    assert job["status"] == "success", job
    assert job["output"] == {"mean": 3.0}


def test_serve_checks_models_against_the_folder_plugins_schema(session, server):
    handlers = {"training": {"type": "outbox"}, "inference": {"type": "outbox"}}
    r = session.post(f"{server}/v2/models", json={"name": "x", "handlers": handlers}, timeout=30)

    assert r.status_code == 400 and "outbox" in r.json()["message"], r.text


def test_serve_invokes_a_lambda_function_through_boto3(session, server):
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:scorer"
    handler = {"type": "lambda", "arn": arn}

    job = run_job(session, server, "on-lambda", handler, {"x": 1}, until=("started", "failure"))

    assert job["status"] == "started" and job["external_id"], job


def test_serve_runs_an_ecs_task_through_boto3(session, server, moto):
    ecs = boto3.client(
        "ecs",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    ecs.create_cluster(clusterName="ml")
    container = {"name": "model", "image": "example.org/scorer:1", "memory": 256}
    ecs.register_task_definition(family="scorer", containerDefinitions=[container])
    handler = {"type": "ecs_task", "value": "ml/scorer:1"}

    job = run_job(session, server, "on-ecs", handler, {"x": 1}, until=("started", "failure"))

    assert job["status"] == "started", job
    assert job["external_id"].startswith(f"arn:aws:ecs:{REGION}:"), job


def test_serve_serves_the_docs_page_and_its_assets(server):
    page = requests.get(f"{server}/docs", timeout=30)
    assets = {
        name: requests.get(f"{server}/docs/assets/{name}", timeout=30)
        for name in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css")
    }
    document = requests.get(f"{server}/openapi.json", timeout=30)

    assert page.status_code == 200
    for name, asset in assets.items():
        assert f"/docs/assets/{name}" in page.text
        assert asset.status_code == 200 and len(asset.content) > 100_000, name
    # Swagger UI 5, the first to render the OpenAPI 3.1 document.
    assert b'PACKAGE_VERSION:"5.' in assets["swagger-ui-bundle.js"].content
    assert document.status_code == 200 and document.json()["info"]["title"] == "PIE"
    assert "outbox" in json.dumps(document.json()["components"]["schemas"])


def test_serve_serves_the_console(session, server):
    """Sign in to /ui with a token `pie token` minted, and open a page: its templates and
    files are in the binary."""
    token = session.headers["Authorization"].removeprefix("Bearer ")
    browser = requests.Session()
    sign_in = browser.get(f"{server}/ui/sign-in", timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', sign_in.text).group(1)
    form = {"token": token, "csrf_token": csrf, "next": "/ui/models"}
    page = browser.post(f"{server}/ui/sign-in", data=form, timeout=30)
    htmx = requests.get(f"{server}/ui/static/htmx.min.js", timeout=30)

    assert page.status_code == 200 and page.url.endswith("/ui/models"), page.text
    assert "<h1>Models</h1>" in page.text and "htmx.min.js" in page.text
    assert htmx.status_code == 200 and b"htmx" in htmx.content[:2000]
    assert browser.get(f"{server}/ui/graph", timeout=30).status_code == 200


def test_a_token_needs_the_servers_secret(server):
    r = requests.get(
        f"{server}/v2/models", headers={"Authorization": "Bearer not.a.token"}, timeout=30
    )

    assert r.status_code == 401


def test_worker_starts_and_stops_on_sigterm(sandbox):
    log = sandbox.home / "worker.log"
    proc = sandbox.start("worker", "--interval", "0.2", log=log)

    wait_for_text(log, "recovery loop running", proc)
    time.sleep(1)  # a few recovery passes against the database
    assert proc.poll() is None, log.read_text()

    assert stop(proc) == 0, log.read_text()
