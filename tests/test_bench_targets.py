"""bench/throughput.py's rows: each target decides PASS/FAIL on the ratio or on the value,
a missing peer fails a ratio target, and the table has one line per figure."""

from __future__ import annotations

import time

from bench.targets import failed, figure, table


def test_ratio_and_value_targets():
    assert figure("read", 900, "req/s", 1000, ratio_at_least=0.85)["pass"] is True
    assert figure("read", 800, "req/s", 1000, ratio_at_least=0.85)["pass"] is False
    assert figure("scale", 1.6, "ms", 1.0, ratio_at_most=1.5)["pass"] is False
    assert figure("p99", 40, "ms", at_most=50)["pass"] is True
    assert figure("p99", 60, "ms", at_most=50)["target"] == "<= 50 ms"
    assert figure("info", 5, "jobs/s", 10)["pass"] is None
    assert figure("echo", 5, "jobs/s", None, ratio_at_least=1.0)["pass"] is False


def test_table_has_a_line_per_figure_with_its_result():
    rows = [
        figure("read", 900, "req/s", 1000, ratio_at_least=0.85),
        figure("info", 5, "jobs/s"),
        failed("celery", RuntimeError("broker down")),
    ]
    lines = table(rows).splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("read") and "0.90" in lines[1] and lines[1].endswith("PASS")
    assert lines[2].endswith("-")
    assert "broker down" in lines[3] and lines[3].endswith("FAIL")


def test_paired_rounds_alternate_and_keep_the_median_pair():
    from bench.throughput import paired_rounds

    calls: list[str] = []
    peer_rates, mine_rates = iter([100, 100, 100]), iter([90, 120, 100])

    def peer() -> dict:
        calls.append("peer")
        return {"rate": next(peer_rates)}

    def mine() -> dict:
        calls.append("mine")
        return {"rate": next(mine_rates)}

    result = paired_rounds(3, peer, mine)
    assert calls == ["peer", "mine", "mine", "peer", "peer", "mine"]
    assert result["ratios"] == [0.9, 1.0, 1.2]
    assert result["mine"]["rate"] == 100 and result["peer"]["rate"] == 100


def test_paired_rounds_take_the_lower_middle_of_an_even_number():
    from bench.throughput import paired_rounds

    rates = iter([100, 80, 100, 120])  # peer, mine, mine, peer: ratios 0.8 and 0.83
    result = paired_rounds(2, lambda: {"rate": next(rates)}, lambda: {"rate": next(rates)})
    assert result["mine"]["rate"] == 80


def test_cpu_window_counts_each_role_once():
    """A child that burns CPU is its own role's, not the parent's that started it."""
    import os
    import subprocess
    import sys

    from bench import cpu

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nend = time.process_time() + 0.3\n"
            "while time.process_time() < end: pass\nsys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
    )
    try:
        window = cpu.Window({"child": [child.pid], "me": [os.getpid()]})
        assert child.pid not in window.start["me"] and child.pid in window.start["child"]
        deadline = time.monotonic() + 10
        while cpu.ticks(child.pid) - window.start["child"][child.pid] < 0.25 * cpu.HERTZ:
            assert time.monotonic() < deadline, "the child burnt no CPU"
            time.sleep(0.05)
        spent = window.per_job(2)
        assert spent["child"] >= 0.25 * 1000 / 2  # ms per job over 2 jobs
        assert spent["total"] == spent["child"] + spent["me"]
        assert "child" in cpu.described(spent)
    finally:
        child.stdin.close()
        child.wait(timeout=10)


def test_cpu_rows_budget_is_the_peer_per_task_over_the_target_less_the_rest():
    from bench.throughput import cpu_rows

    bare = {"total": 2.8}
    echo = {"pie serve": 2.0, "total": 2.3}
    handler = {
        "pie serve": 6.0,
        "celery consumer": 1.2,
        "celery pool": 0.8,
        "broker": 0.2,
        "client": 0.3,
        "total": 8.5,
    }
    rows = {row["name"]: row for row in cpu_rows(bare, echo, handler)}
    budget = rows["CPU per job: pie serve's budget for celery 0.7x"]
    assert abs(budget["value"] - (2.8 / 0.7 - 2.5)) < 1e-9
    assert budget["peer"] == 2.0 and budget["pass"] is None
    lenient = rows["CPU per job: the same if the pool cost nothing"]
    assert abs(lenient["value"] - (2.8 / 0.7 - 1.7)) < 1e-9
    assert abs(rows["CPU per job: PIE celery, the rest"]["value"] - 1.7) < 1e-9


def test_floor_app_inserts_through_flask_smorest(tmp_path, monkeypatch):
    monkeypatch.setenv("BARE_DB", str(tmp_path / "bare.sqlite"))
    import importlib

    import bench.bare_app

    importlib.reload(bench.bare_app)  # its database is bound to BARE_DB at import
    from bench import floor_app

    floor_app = importlib.reload(floor_app)
    floor_app.setup()
    answer = floor_app.app.test_client().post("/items", json={"name": "x", "body": {"a": 1}})
    assert answer.status_code == 201
    assert set(answer.get_json()) == {"id", "name"} and answer.get_json()["name"] == "x"
