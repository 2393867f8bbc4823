"""bench/throughput.py's rows: each target decides PASS/FAIL on the ratio or on the value,
a missing peer fails a ratio target, and the table has one line per figure."""

from __future__ import annotations

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
