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
        # A role of the child and a process outside this one's tree (an orphan, as a broker
        # would be) overlaps "me" only in part: the child still counts once, for the smaller
        orphan = int(
            subprocess.run(
                ["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        try:
            overlapping = cpu.Window({"me": [os.getpid()], "both": [child.pid, orphan]})
            assert orphan in overlapping.start["both"]
            assert child.pid in overlapping.start["both"]
            assert child.pid not in overlapping.start["me"]
        finally:
            os.kill(orphan, 15)
        deadline = time.monotonic() + 10
        while cpu.ticks(child.pid) - window.start["child"][child.pid][0] < 0.25 * cpu.HERTZ:
            assert time.monotonic() < deadline, "the child burnt no CPU"
            time.sleep(0.05)
        spent = window.per_job(2)
        assert spent["child"] >= 0.25 * 1000 / 2  # ms per job over 2 jobs
        assert spent["total"] == spent["child"] + spent["me"]
        assert "child" in cpu.described(spent)
    finally:
        child.stdin.close()
        child.wait(timeout=10)


def test_rounds_of_turn_the_order_and_keep_each_figures_median_round():
    from bench.throughput import rounds_of

    calls: list[str] = []
    rates = {"peer": iter([100, 100, 100]), "a": iter([90, 120, 100]), "b": iter([50, 40, 60])}

    def measure(name: str):
        def run() -> dict:
            calls.append(name)
            return {"rate": next(rates[name])}

        return run

    result = rounds_of(3, measure("peer"), {"a": measure("a"), "b": measure("b")})
    assert calls == ["peer", "a", "b", "a", "b", "peer", "b", "peer", "a"]
    assert result["a"]["ratios"] == [0.9, 1.0, 1.2] and result["a"]["figure"]["rate"] == 100
    assert result["b"]["ratios"] == [0.4, 0.5, 0.6] and result["b"]["figure"]["rate"] == 50
    assert len(result["rounds"]) == 3


def test_cpu_rows_budget_is_the_peer_per_task_over_the_target_less_the_rest():
    from bench.throughput import celery_budget, cpu_rows

    def one(bare: float, echo: float) -> dict:
        return {
            "peer": {"cpu_ms": {"total": bare}},
            "echo": {"cpu_ms": {"pie serve": echo, "client": 0.3, "total": echo + 0.3}},
            "celery": {
                "cpu_ms": {
                    "pie serve": 6.0,
                    "celery consumer": 1.2,
                    "celery pool": 0.8,
                    "broker": 0.2,
                    "client": 0.3,
                    "total": 8.5,
                }
            },
        }

    assert abs(celery_budget(one(2.8, 2.0)) - (2.8 / 0.7 - 2.5)) < 1e-9
    assert abs(celery_budget(one(2.8, 2.0), ("celery pool",)) - (2.8 / 0.7 - 1.7)) < 1e-9
    # The round of the median budget ratio: budgets 1.5, 1.0 and 3.0 against echo's 2.0
    rounds = [one(2.8, 2.0), one(2.45, 2.0), one(3.85, 2.0)]
    rows = {row["name"].split(" (")[0]: row for row in cpu_rows(rounds)}
    budget = rows["CPU per job: pie serve's budget for celery 0.7x"]
    assert abs(budget["value"] - 1.5) < 1e-9 and budget["peer"] == 2.0
    assert budget["pass"] is None
    assert abs(rows["CPU per job: PIE celery, the rest"]["value"] - 1.7) < 1e-9
    names = [row["name"] for row in cpu_rows(rounds)]
    assert "(ratios 0.50-1.50)" in names[6] and "(ratios 0.90-1.90)" in names[7]


def test_floor_app_inserts_through_flask_smorest(tmp_path):
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json\n"
        "from bench.floor_app import app, setup\n"
        "setup()\n"
        "answer = app.test_client().post('/items', json={'name': 'x', 'body': {'a': 1}})\n"
        "print(json.dumps([answer.status_code, answer.get_json()]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "BARE_DB": str(tmp_path / "bare.sqlite")},
        capture_output=True,
        text=True,
        check=True,
    )
    status, body = json.loads(done.stdout)
    assert status == 201
    assert set(body) == {"id", "name"} and body["name"] == "x"
