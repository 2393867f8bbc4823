"""Figures with their peer, ratio and target, and the table bench/throughput.py prints."""

from __future__ import annotations

from typing import Any


def figure(
    name: str,
    value: float,
    unit: str,
    peer: float | None = None,
    *,
    ratio_at_least: float | None = None,
    ratio_at_most: float | None = None,
    at_most: float | None = None,
) -> dict[str, Any]:
    """One row: `value` (in `unit`), its `peer` (same unit) and their ratio, and at most one
    target, on the ratio or on the value; pass is None when there is no target."""
    ratio = value / peer if peer else None
    target, passed = None, None
    if ratio_at_least is not None:
        target = f"ratio >= {ratio_at_least:g}"
        passed = ratio is not None and ratio >= ratio_at_least
    elif ratio_at_most is not None:
        target = f"ratio <= {ratio_at_most:g}"
        passed = ratio is not None and ratio <= ratio_at_most
    elif at_most is not None:
        target, passed = f"<= {at_most:g} {unit}", value <= at_most
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "peer": peer,
        "ratio": ratio,
        "target": target,
        "pass": passed,
    }


def failed(name: str, error: BaseException) -> dict[str, Any]:
    """The row of a measurement that raised: a FAIL with the error for its target."""
    return {
        "name": name,
        "value": None,
        "unit": "",
        "peer": None,
        "ratio": None,
        "target": f"error: {type(error).__name__}: {error}"[:60],
        "pass": False,
    }


def number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(rows: list[dict[str, Any]]) -> str:
    width = max(len(row["name"]) for row in rows) + 2
    lines = [
        f"{'figure':<{width}}{'value':>9} {'unit':<9}{'peer':>9}{'ratio':>7}  {'target':<16}result"
    ]
    for row in rows:
        result = {True: "PASS", False: "FAIL", None: "-"}[row["pass"]]
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(
            f"{row['name']:<{width}}{number(row['value']):>9} {row['unit']:<9}"
            f"{number(row['peer']):>9}{ratio:>7}  {row['target'] or '-':<16}{result}"
        )
    return "\n".join(lines)
