"""The `pie` client verbs against a real `pie serve`: login and profiles, every verb, the
output formats, exit codes per error class, and progress while waiting."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from pie_client import Client
from pie_client.cli.progress import Progress
from pie_client.types import Job

from tests.client.conftest import ECHO, SLOW, active_model, unique
from tests.helpers import ADMIN, scoped
from tests.server import ServerProcess, free_port

PIE = str(Path(sys.executable).with_name("pie"))


class Run:
    """`pie …` in a subprocess, with its own config file and no PIE_URL/PIE_TOKEN."""

    def __init__(self, tmp_path: Path, server: ServerProcess) -> None:
        self.config = tmp_path / "config" / "pie.json"
        self.server = server
        self.env = {k: v for k, v in os.environ.items() if k not in ("PIE_URL", "PIE_TOKEN")}
        self.env["PIE_CONFIG"] = str(self.config)
        self.cwd = tmp_path

    def __call__(self, *args: str, code: int = 0, **env: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [PIE, *args],
            env={**self.env, **env},
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == code, (args, result.stdout, result.stderr)
        return result

    def json(self, *args: str, **env: str) -> Any:
        return json.loads(self(*args, "-o", "json", **env).stdout)


@pytest.fixture
def pie(tmp_path: Path, server: ServerProcess) -> Run:
    run = Run(tmp_path, server)
    run("login", "--url", server.url, "--token", ADMIN)
    return run


def test_login_saves_profiles_readable_by_the_owner_only(tmp_path: Path, server: ServerProcess):
    run = Run(tmp_path, server)
    saved = run("login", "--url", server.url, "--token", ADMIN).stdout
    assert "saved profile 'default'" in saved
    assert stat.S_IMODE(run.config.stat().st_mode) == 0o600
    assert stat.S_IMODE(run.config.parent.stat().st_mode) == 0o700
    run("login", "--profile", "reader", "--url", server.url, "--token", scoped("read_models"))
    stored = json.loads(run.config.read_text())
    assert stored["current"] == "reader" and set(stored["profiles"]) == {"default", "reader"}
    model_id = unique("m")
    body = tmp_path / "model.json"
    body.write_text(
        json.dumps(
            {
                "id": model_id,
                "name": "n",
                "description": "",
                "handlers": {"training": ECHO, "inference": ECHO},
            }
        )
    )
    run("models", "create", "-f", str(body), code=4)  # the current profile only reads
    run("models", "create", "-f", str(body), "--profile", "default")
    assert run.json("models", "get", model_id)["id"] == model_id  # reads as `reader`
    run("models", "list", "--profile", "absent", code=1)
    # PIE_URL and PIE_TOKEN win over the profile; --url and --token over both
    run("models", "get", model_id, PIE_URL=f"http://127.0.0.1:{free_port()}", code=7)
    run("models", "get", model_id, "--url", server.url, PIE_URL="http://127.0.0.1:1")
    run("models", "get", model_id, "--token", "nonsense", code=4)


def test_login_refuses_a_server_that_does_not_answer(tmp_path: Path, server: ServerProcess):
    run = Run(tmp_path, server)
    result = run("login", "--url", f"http://127.0.0.1:{free_port()}", "--token", "t", code=7)
    assert result.stderr.startswith("error: ") and not run.config.exists()


def test_login_refuses_no_token_and_a_token_the_server_refuses(
    tmp_path: Path, server: ServerProcess
):
    run = Run(tmp_path, server)
    result = run("login", "--url", server.url, "--token", "", code=2)
    assert "no token" in result.stderr
    result = run("login", "--url", server.url, "--token", "garbage", code=4)
    assert result.stderr.startswith("error: 401") and not run.config.exists()
    # a token piped in is read from stdin; a valid one that may not read models is kept
    piped = subprocess.run(
        [PIE, "login", "--url", server.url],
        input=scoped("run_inference") + "\n",
        env=run.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0, piped.stderr
    assert json.loads(run.config.read_text())["profiles"]["default"]["token"]


def test_a_body_file_missing_a_required_field_is_a_validation_error(pie: Run, tmp_path: Path):
    (tmp_path / "partial.json").write_text(json.dumps({"id": unique("m"), "name": "n"}))

    result = pie("models", "create", "-f", "partial.json", code=5)

    assert result.stderr.strip() == "error: partial.json: missing field(s) description, handlers"


def test_models_verbs(pie: Run, tmp_path: Path) -> None:
    model_id = unique("m")
    body = {
        "id": model_id,
        "name": "n",
        "description": "",
        "handlers": {"training": ECHO, "inference": ECHO},
    }
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(body))
    assert pie.json("models", "create", "-f", "m.yaml")["status"] == "pending"
    body["name"] = "renamed"
    changed = subprocess.run(
        [PIE, "models", "update", model_id, "-f", "-", "-o", "json"],
        input=json.dumps(body),
        env=pie.env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(changed.stdout)["name"] == "renamed"
    (tmp_path / "policy.json").write_text('{"inference": {"max_attempts": 2}}')
    policy = pie.json("models", "job-policy", model_id, "-f", "policy.json")["job_policy"]
    assert policy["inference"]["max_attempts"] == 2
    assert model_id in [m["id"] for m in pie.json("models", "list", "--page-size", "1")]
    assert len(pie.json("models", "list", "--limit", "1")) == 1
    pie("models", "delete", model_id)
    pie("models", "get", model_id, code=3)


def test_versions_verbs(pie: Run) -> None:
    model_id = active_model(Client(pie.server.url, ADMIN))
    made = pie.json("versions", "create", model_id, "--description", "retrained")
    assert (made["version"], made["status"]) == ("2", "pending")
    moved = pie.json("versions", "set-status", model_id, "2", "training")
    assert moved["version"]["status"] == "training"
    assert [v["version"] for v in pie.json("versions", "list", model_id)] == ["2", "1"]
    assert pie.json("versions", "get", model_id, "2")["description"] == "retrained"
    pie("versions", "set-status", model_id, "1", "pending", code=5)  # active is final: 422
    pie("versions", "set-status", model_id, "1", "bogus", code=2)  # click's usage error


def test_jobs_verbs(pie: Run, tmp_path: Path) -> None:
    api = Client(pie.server.url, ADMIN)
    model_id = active_model(api)
    (tmp_path / "input.json").write_text('{"text": "from a file"}')
    done = pie.json("jobs", "run", model_id, "--input", "@input.json", "--wait")
    assert (done["status"], done["output"]) == ("success", {"text": "from a file"})
    started = pie.json("jobs", "run", f"{model_id}@1", "--input", '{"n": 2}')
    assert started["model_version"] == "1"
    api.jobs.wait(started["job_id"], timeout=30)
    assert pie.json("jobs", "get", started["job_id"])["output"] == {"n": 2}
    listed = pie.json("jobs", "list", "--model", model_id, "--page-size", "1")
    assert [j["job_id"] for j in listed] == [started["job_id"], done["job_id"]]
    assert pie.json("jobs", "list", "--model", f"{model_id}@1", "--status", "failure") == []
    assert len(pie.json("jobs", "list", "--limit", "1")) == 1
    assert len(pie.json("jobs", "list", "--model", model_id, "--limit", "0")) == 2
    api.versions.create(model_id)
    trained = pie.json("jobs", "train", f"{model_id}@2", "--input", "{}")
    assert trained["job_type"] == "training"
    pie("jobs", "train", model_id, "--input", "{}", code=2)
    pie("jobs", "run", model_id, "--input", "[1]", code=2)  # not an object


def test_cancel_and_watch_with_plain_progress_lines(pie: Run) -> None:
    api = Client(pie.server.url, ADMIN)
    model_id = active_model(api, SLOW)
    job_id = api.jobs.infer(model_id, "1", {"seconds": 30}).inference_job_id
    while api.jobs.get(job_id).status == "pending":
        pass
    api.jobs.heartbeat(model_id, "1", job_id, progress=0.5, message="half")
    timer = threading.Timer(1.0, api.jobs.cancel, [job_id])
    timer.start()
    watched = pie("jobs", "watch", job_id, "-o", "json", code=8)  # it ends `failure`
    timer.join()
    lines = watched.stderr.splitlines()
    assert lines[0] == f"job {job_id} status=started progress=0.5 message='half'"
    assert lines[-1].startswith(f"job {job_id} status=failure")
    assert json.loads(watched.stdout)["error"]["type"] == "Cancelled"
    assert pie("jobs", "cancel", job_id, code=6).stderr.startswith("error: 409: ")


def test_wait_exit_codes(pie: Run) -> None:
    api = Client(pie.server.url, ADMIN)
    slow = active_model(api, SLOW)
    pie("jobs", "run", slow, "--input", '{"seconds": 5}', "--wait", "--timeout", "0.3", code=9)
    broken = active_model(api, {"type": "in_process", "value": "slow"})
    api.models.delete(broken)
    pie("jobs", "run", broken, "--input", "{}", code=3)
    failing = active_model(api, {"type": "in_process", "value": "slow"})
    failed = pie("jobs", "run", failing, "--input", '{"seconds": "x"}', "--wait", code=8)
    assert '"status": "failure"' in failed.stdout


def test_terminal_progress_redraws_one_line() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = Progress(stream)
    base = dict(
        job_id="j1",
        job_type="inference",
        model_id="m",
        model_version="1",
        input={},
        output=None,
        error=None,
        warnings=[],
        assignment_id=None,
        client_id=None,
        domain_id=None,
        service_id=None,
        trigger=None,
        handler_type="in_process",
        external_id=None,
        created_at="t",
        started_at=None,
        completed_at=None,
    )
    progress(Job(status="started", progress=0.25, progress_message="a quarter", **base))
    progress(Job(status="started", progress=0.25, progress_message="a quarter", **base))
    progress(Job(status="success", **base))
    frames = stream.getvalue().split("\r\x1b[K")
    assert frames == [
        "",
        "j1 started  [#####...............]  25% a quarter",
        "j1 success  [####################] 100%\n",
    ]
    progress(Job(status="started", progress=0.5, **base))
    Progress.end_line()  # what an error (a --timeout) does before its message
    assert stream.getvalue().endswith(" 50%\n") and Progress.unfinished is None


def test_output_formats(pie: Run) -> None:
    model_id = active_model(Client(pie.server.url, ADMIN))
    as_yaml = yaml.safe_load(pie("models", "get", model_id, "-o", "yaml").stdout)
    assert as_yaml == pie.json("models", "get", model_id)
    table = pie("versions", "list", model_id, "-o", "table").stdout.splitlines()
    assert table[0].split() == ["MODEL_ID", "VERSION", "STATUS", "DESCRIPTION", "UPDATED_AT"]
    assert table[1].split()[:3] == [model_id, "1", "active"]
    details = pie("models", "get", model_id, "-o", "table").stdout
    assert f"id                 {model_id}\n" in details
    assert json.loads(pie("models", "get", model_id).stdout)["id"] == model_id  # piped: JSON


def test_subscriptions_verbs(pie: Run, tmp_path: Path) -> None:
    api = Client(pie.server.url, ADMIN)
    source, target = active_model(api), active_model(api)
    (tmp_path / "s.json").write_text(
        json.dumps(
            {
                "trigger_event": "inference_complete",
                "target_model_id": target,
                "target_action": "inference",
                "input_source": "trigger_output",
            }
        )
    )
    made = pie.json("subscriptions", "create", source, "-f", "s.json")
    assert made["status"] == "active"
    assert pie.json("subscriptions", "get", source, made["id"])["target_model_id"] == target
    assert [s["id"] for s in pie.json("subscriptions", "list", source)] == [made["id"]]
    paused = pie.json("subscriptions", "update", source, made["id"], "--status", "paused")
    assert paused["status"] == "paused"
    pie("subscriptions", "delete", source, made["id"])
    assert pie.json("subscriptions", "list", source) == []


def test_tenancy_verbs(pie: Run, tmp_path: Path) -> None:
    model_id = active_model(Client(pie.server.url, ADMIN))
    client_id = unique("c")
    assert pie.json("clients", "create", client_id, "--name", "Acme")["status"] == "active"
    pie("clients", "create", client_id, "--name", "Acme", code=6)
    assert pie.json("clients", "update", client_id, "--name", "Acme Ltd")["name"] == "Acme Ltd"
    assert pie.json("clients", "get", client_id)["name"] == "Acme Ltd"
    assert client_id in [c["client_id"] for c in pie.json("clients", "list")]
    (tmp_path / "f.json").write_text(
        json.dumps([{"name": "size", "json_schema": {"type": "integer"}, "mandatory": True}])
    )
    pie.json("domains", "create", client_id, "shops", "-f", "f.json")
    assert pie.json("domains", "update", client_id, "shops", "--status", "active")["status"] == (
        "active"
    )
    assert pie.json("domains", "get", client_id, "shops")["features"][0]["name"] == "size"
    assert [d["domain_id"] for d in pie.json("domains", "list", client_id)] == ["shops"]
    assert pie.json("features", "list", client_id, "shops")[0]["mandatory"] is True
    report = pie.json("features", "replace", client_id, "shops", "-f", "f.json")
    assert report["unchanged_services"] == []
    pie.json("assignments", "set", client_id, "shops", "default", f"{model_id}@1")
    pie("services", "init", client_id, "shops", "s1", "--features", '{"size": "x"}', code=5)
    service = pie.json(
        "services", "init", client_id, "shops", "s1", "--features", '{"size": 3}', "--wait"
    )
    assert (service["status"], service["resolved_features"]) == ("available", {"size": 3})
    assert pie.json("services", "get", client_id, "shops", "s1")["service_id"] == "s1"
    updated = pie.json("services", "update", client_id, "shops", "s1", "--features", '{"size": 4}')
    assert updated["resolved_features"] == {"size": 4}
    assert [s["service_id"] for s in pie.json("services", "list", client_id, "shops")] == ["s1"]
    assert pie.json("services", "reinit", client_id, "shops")["dispatched_services"] == ["s1"]
    again = pie.json(
        "assignments", "set", client_id, "shops", "default", f"{model_id}@1", "--role", "main"
    )
    assert pie.json("assignments", "get", client_id, "shops", "default")["role"] == "main"
    assert again["assignment_key"] == "default"
    revisions = pie.json("assignments", "revisions", client_id, "shops", "default")
    assert len(revisions) == 2
    assert len(pie.json("assignments", "list", client_id, "shops", "--all")) == 2
    ran = pie.json("assignments", "run", client_id, "shops", "default", "--input", "{}", "--wait")
    assert ran["status"] == "success" and ran["client_id"] == client_id
    pie.json("assignments", "set", client_id, "shops", "own", f"{model_id}@1", "--service", "s1")
    own = pie.json("assignments", "list", client_id, "shops", "--service", "s1")
    assert [a["assignment_key"] for a in own] == ["own"]
    pie("services", "delete", client_id, "shops", "s1")
    pie("services", "get", client_id, "shops", "s1", code=3)


@pytest.mark.parametrize("args", [["--help"], ["models", "--help"], ["jobs", "run", "--help"]])
def test_help_loads_no_http_machinery(args: list[str], tmp_path: Path) -> None:
    """What keeps help instant (the timing itself is bench/client_cli.py's job)."""
    probe = (
        "import sys\n"
        "from pie.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m in ('http.client', 'pie_client.client',"
        " 'dataclasses', 'yaml')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_the_client_alone_names_its_version(flag: str, tmp_path: Path) -> None:
    """`python -m pie_client` (a client-only install's command) says which release it is,
    as the server's `pie --version` does, and builds no client for it."""
    from importlib.metadata import version

    result = subprocess.run(
        [sys.executable, "-m", "pie_client", flag],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ("PIE_URL", "PIE_TOKEN")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"pie-client {version('pie-client')}\n"
    assert result.stderr == ""


def test_the_readme_lists_every_verb() -> None:
    import click
    from pie_client.cli import COMMANDS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `pie ")]
    missing = []
    for command in COMMANDS:
        subcommands = command.commands if isinstance(command, click.Group) else {"": command}
        for name in subcommands:
            row = " ".join(
                r for r in rows if f"`pie {command.name} " in r or f"`pie {command.name}`" in r
            )
            if not row or not re.search(rf"(^|[\s`|\\]){re.escape(name)}(\s|\\|\||`|$)", row):
                missing.append(f"{command.name} {name}".strip())
    assert missing == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("jobs", "run", "m", "--input", "not json"),
            "'--input': expected a JSON object, got text that is not JSON",
        ),
        (
            ("jobs", "train", "m@1", "--input", "[1]"),
            "'--input': expected a JSON object, got a JSON array",
        ),
        (
            ("services", "init", "c", "d", "s", "--features", "3"),
            "'--features': expected a JSON object, got a JSON number",
        ),
    ],
)
def test_an_option_that_is_no_json_object_is_named_with_what_it_held(pie: Run, args, message):
    result = pie(*args, code=2)

    assert f"Invalid value for {message}" in result.stderr


def test_a_body_file_that_cannot_be_read_is_named_with_the_reason(pie: Run) -> None:
    result = pie("models", "create", "-f", "absent.json", code=1)

    assert result.stderr.strip() == "error: absent.json: No such file or directory"


def test_bad_json_input_says_what_is_wrong_as_json(pie: Run) -> None:
    result = pie("jobs", "run", "m@1", "--input", "{bad json", code=2)

    assert "the argument is not valid JSON: Expecting property name" in result.stderr
    assert "flow mapping" not in result.stderr  # not YAML's parser error
