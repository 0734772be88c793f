"""Leave-one-table-out (`benchmarks/replays.py`) on a hand-built matrix: the choice is the best worst case within
grid-2's cost, never the best mean, and a held-out table never informs its own choice."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "bench_replays", Path(__file__).resolve().parents[2] / "benchmarks" / "replays.py")
rp = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(rp)

TABLES = ["a", "b", "c"]
GRID2 = 200.0


def _cells(p: dict[str, float], cost: float = GRID2) -> dict[str, dict]:
    return {t: {"p_within": p[t], "seed_epochs": cost, "of_grid1": cost / 100, "grid2_seed_epochs": GRID2,
                "grid2_p_within": 0.9, "ci_low": 0, "ci_high": 1, "p_within_truth_boot": p[t],
                "versus_grid2": {"only_reference": 0, "only_other": 0, "p": 1.0}} for t in TABLES}


MATRIX = {
    "steady": _cells({"a": 0.93, "b": 0.92, "c": 0.94}),  # best worst case (0.92)
    "peaky": _cells({"a": 1.00, "b": 1.00, "c": 0.80}),  # best mean (0.93), bad on c
    "cheap": _cells({"a": 0.95, "b": 0.95, "c": 0.95}, cost=GRID2 * 1.2),  # over grid-2's cost
    "b-lover": _cells({"a": 0.90, "b": 0.99, "c": 0.90}),
}


def test_the_choice_is_the_best_worst_case_within_grid2s_cost_not_the_best_mean():
    assert rp.choose(MATRIX, list(MATRIX), TABLES) == "steady"
    assert not rp.eligible(MATRIX["cheap"], TABLES)


def test_each_held_out_table_is_scored_with_a_choice_made_without_it():
    found = {r["held_out"]: r for r in rp.leave_one_out(MATRIX, list(MATRIX), TABLES)}
    # Without c, "peaky" has the best worst case (1.00 on a and b); it is then scored on c, where it is poor.
    assert found["c"]["chosen"] == "peaky" and found["c"]["p_within"] == pytest.approx(0.80)
    assert found["c"]["worst_on_others"] == pytest.approx(1.00)
    assert found["a"]["chosen"] == "steady" and found["b"]["chosen"] == "steady"
    assert rp.leave_one_out(MATRIX, list(MATRIX), ["a"]) == []


def test_mcnemar_counts_discordant_replays_and_gives_the_exact_binomial_p():
    from scipy import stats

    ref = {i: i < 30 for i in range(40)}
    other = {i: i < 20 or 35 <= i for i in range(40)}  # 10 only the reference hit, 5 only the other
    found = rp.mcnemar(ref, other)
    assert (found["only_reference"], found["only_other"], found["replays"]) == (10, 5, 40)
    assert found["p"] == pytest.approx(stats.binomtest(10, 15, 0.5).pvalue)
