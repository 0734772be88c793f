import math

import numpy as np
import pytest
from scipy import stats

from vdes_tune.evaluation.power import (Components, assurance, cheapest, components, decisive, degrees_of_freedom,
                                        frontier, half_width, patients_needed, standard_error, verdict_chances)


def test_projection_matches_hand_computed_width():
    # var(d̄) = 0.04 / 4 + 0.09 / 9 = 0.02; df = 3 * (0.02 / 0.01)^2 = 12; t(0.975, 12) = 2.1788128
    comp = Components(diff=0.1, per_repeat=0.04, per_patient=0.09)
    assert standard_error(comp, 9, 4) == pytest.approx(math.sqrt(0.02))
    assert degrees_of_freedom(comp, 9, 4) == pytest.approx(12.0)
    assert half_width(comp, 9, 4) == pytest.approx(2.1788128 * math.sqrt(0.02), rel=1e-6)


def test_patients_needed_with_only_a_patient_part_is_the_normal_sample_size_formula():
    # No repeat part: d̄ ~ N(Δ, σ_p² / P), df infinite; power 0.8 at two-sided 0.05 needs
    # P = σ_p² (z_0.975 + z_0.8)² / Δ² = 0.25 x 7.849 / 0.01 = 196.2 -> 197 patients.
    comp = Components(diff=0.1, per_repeat=0.0, per_patient=0.25)
    expected = math.ceil(0.25 * (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) ** 2 / 0.1 ** 2)
    assert expected == 197
    assert patients_needed(comp, 5, "none", power=0.8) == expected


def test_assurance_averages_power_over_the_pilots_uncertainty_in_closed_form():
    # Normal case (no repeat part): power(Δ) = Φ(Δ/se - z) + Φ(-Δ/se - z); with Δ ~ N(d, s0²) its mean is
    # Φ((d/se - z) / k) + Φ((-d/se - z) / k), k = sqrt(1 + s0² / se²). Here se = 0.05 at 100 patients.
    comp = Components(diff=0.1, per_repeat=0.0, per_patient=0.25)
    z, k = stats.norm.ppf(0.975), math.sqrt(1 + 0.04 ** 2 / 0.05 ** 2)
    expected = stats.norm.cdf((2 - z) / k) + stats.norm.cdf((-2 - z) / k)
    assert assurance(comp, 0.04, 100, 5, "none") == pytest.approx(expected, abs=2e-3)
    assert assurance(comp, 1e-9, 100, 5, "none") == pytest.approx(decisive(verdict_chances(comp, 100, 5, "none")))


def test_patients_needed_finds_the_first_size_when_the_chance_is_not_monotone():
    # At 2 repeats the chance rises to 0.787 at 5 patients, then falls (the Welch df drops towards 1 as the
    # patient part shrinks) to 0.31 with endless patients: the first size with 75% is 4.
    comp = Components(diff=0.2, per_repeat=0.003, per_patient=0.01)
    chance = [decisive(verdict_chances(comp, p, 2, "none")) for p in range(1, 41)]
    first = 1 + next(i for i, c in enumerate(chance) if c >= 0.75)
    assert first == 4 and chance[-1] < 0.75  # a bisection from 100,000 down would have said "none"
    assert patients_needed(comp, 2, "none", power=0.75) == first


def test_the_frontier_and_the_cheapest_point_that_fits_the_test_split():
    # No patient part: patients do not matter, so each number of repeats either decides from the first size or
    # never; R repeats give power with d̄ / (σ_r / √R) as noncentral t(R - 1).
    comp = Components(diff=0.07, per_repeat=0.01, per_patient=0.0)
    points = frontier(comp, "none", power=0.8, fewest=7, repeats=(3, 10, 20, 30))
    enough = {r: stats.nct.sf(stats.t.ppf(0.975, r - 1), r - 1, 0.07 / math.sqrt(0.01 / r)) >= 0.8
              for r in (3, 10, 20, 30)}
    assert enough == {3: False, 10: False, 20: True, 30: True}
    assert [p["patients"] for p in points] == [7 if enough[r] else None for r in (3, 10, 20, 30)]
    assert cheapest(points, 49) == {"repeats": 20, "patients": 7} and cheapest(points, 6) is None
    # With a patient part the test split must hold the frontier's patients: the fewest repeats that fit.
    hand = [{"repeats": 3, "patients": None}, {"repeats": 10, "patients": 120}, {"repeats": 30, "patients": 40}]
    assert cheapest(hand, 49) == {"repeats": 30, "patients": 40} and cheapest(hand, 200)["repeats"] == 10
    assert cheapest(hand, 39) is None


def test_components_read_the_answers_variance_parts_per_unit():
    comp = components({"diff": -0.01, "se_repeats": 0.05, "se_patients": 0.1, "repeats": 4}, patients=9)
    assert (comp.diff, comp.per_repeat, comp.per_patient) == pytest.approx((-0.01, 0.01, 0.09))
    # At the pilot's own size the projection gives back the pilot's standard error.
    assert standard_error(comp, 9, 4) == pytest.approx(math.hypot(0.05, 0.1))


def test_more_repeats_cannot_narrow_the_patient_part():
    comp = Components(diff=0.02, per_repeat=0.01, per_patient=0.5)
    floor = 1.959964 * math.sqrt(0.5 / 20)  # the patient part alone, df -> infinity
    assert half_width(comp, 20, 10**6) == pytest.approx(floor, rel=1e-3)
    assert half_width(comp, 80, 6) < half_width(comp, 20, 10**6)  # four times the patients halve it


def test_known_power_without_a_patient_part_is_the_noncentral_t():
    # No patient part: d̄ / se is exactly noncentral t(R - 1, Δ / (σ_r / sqrt(R))).
    comp = Components(diff=0.05, per_repeat=0.01, per_patient=0.0)
    chances = verdict_chances(comp, 10, 9, "none")
    q = stats.t.ppf(0.975, 8)
    assert chances["better"] == pytest.approx(stats.nct.sf(q, 8, 0.05 / math.sqrt(0.01 / 9)))
    assert sum(chances.values()) == pytest.approx(1.0)


def _simulate(comp: Components, patients: int, repeats: int, reference: str, margin: float, runs: int,
              seed: int) -> float:
    """The answer's procedure on simulated studies: the rate of decisive verdicts."""
    rng = np.random.default_rng(seed)
    var_p = comp.per_patient / patients
    shared = rng.normal(0.0, math.sqrt(var_p), runs)  # the test patients' effect, shared by every repeat
    d = comp.diff + shared[:, None] + rng.normal(0.0, math.sqrt(comp.per_repeat), (runs, repeats))
    mean, var_r = d.mean(axis=1), d.var(axis=1, ddof=1) / repeats
    se = np.sqrt(var_r + var_p)
    df = (repeats - 1) * ((var_r + var_p) / var_r) ** 2
    q = stats.t.ppf(0.975, df)
    bound = -margin if reference == "real" else 0.0
    return float(np.mean((mean - q * se > bound) | (mean + q * se < bound)))


@pytest.mark.parametrize("patients, repeats", [(6, 3), (13, 6), (60, 30)])  # undecidable, borderline, decided
def test_projected_power_matches_simulated_studies(patients, repeats):
    # The CPU study's gain of real DES over no DES: +0.16 F1, se from patients 0.108 on 13, from repeats 0.048 on 6.
    comp = Components(diff=0.16, per_repeat=6 * 0.048 ** 2, per_patient=13 * 0.108 ** 2)
    runs = 20_000
    observed = _simulate(comp, patients, repeats, "none", 0.0, runs, seed=patients)
    projected = decisive(verdict_chances(comp, patients, repeats, "none"))
    # Monte Carlo SE is at most 0.0036 at 20,000 runs (4 SE = 0.015); measured gaps are under 0.003.
    assert observed == pytest.approx(projected, abs=0.015)


def test_patients_needed_is_the_first_size_with_the_power_and_none_on_the_bound():
    comp = Components(diff=0.16, per_repeat=6 * 0.048 ** 2, per_patient=13 * 0.108 ** 2)
    need = patients_needed(comp, 30, "none", power=0.8)
    assert need is not None
    assert decisive(verdict_chances(comp, need, 30, "none")) >= 0.8 > decisive(verdict_chances(comp, need - 1, 30,
                                                                                                "none"))
    on_bound = Components(diff=-0.02, per_repeat=0.01, per_patient=0.5)  # virtual DES exactly at -margin
    assert patients_needed(on_bound, 30, "real", margin=0.02, power=0.8) is None


def test_the_plan_of_an_answer_projects_each_comparison_and_the_real_datasets_horizon():
    from vdes_tune.evaluation.power import study_plan, split_test_patients

    # The CPU study's shape: 13 test patients, 6 repeats; real DES (#3) against no DES (#2) and a virtual (#6)
    # against real DES at a 0.02 margin.
    gain = {"metric": "f1", "arch": 3, "reference": 2, "diff": 0.161, "se_repeats": 0.048, "se_patients": 0.108,
            "repeats": 6}
    virtual = {"metric": "f1", "arch": 6, "reference": 3, "diff": -0.05, "se_repeats": 0.03, "se_patients": 0.09,
               "repeats": 6}
    answer = {"patients": 13, "repeats": 6, "real": 3, "margin": 0.02, "auc_margin": 0.02, "margins": {"f1": 0.02, "roc_auc": 0.02},
              "comparisons": [gain, virtual]}
    rows = study_plan(answer, power=0.8, repeats=30)
    assert split_test_patients(326) == 49 and all(r["horizon_patients"] == 49 for r in rows)
    first, second = rows
    comp = components(gain, 13)
    assert first["half_width"] == pytest.approx(half_width(comp, 13, 6))
    assert first["patients_needed_at_30"] == patients_needed(comp, 30, "none", power=0.8)
    assert first["patients_needed"] is None and not first["repeats_alone_enough"]  # 6 repeats never reach 80%
    # The virtual DES sits 0.05 below real DES: deciding it against the 0.02 margin needs the "inferior" verdict.
    assert second["kind"] == "real" and second["margin"] == 0.02
    assert second["horizon_verdicts"]["inferior"] > second["horizon_verdicts"]["non-inferior"]
    assert second["decisive_at_horizon_30"] == pytest.approx(decisive(second["horizon_verdicts"]))


def test_the_repeat_by_patient_interaction_shrinks_with_patients_and_leaves_the_pilot_unchanged():
    # s² = 4 x 0.05² = 0.01 of which w = 0.06² = 0.0036 moves with the test sample (10 patients).
    comp = components({"diff": 0.1, "se_repeats": 0.05, "se_patients": 0.02, "se_interaction": 0.06,
                       "repeats": 4}, patients=10)
    assert (comp.per_repeat, comp.per_interaction) == pytest.approx((0.0064, 0.036))
    assert comp.variances(10, 4) == pytest.approx((0.05 ** 2, 0.02 ** 2))  # the pilot's own parts
    assert comp.variances(20, 4) == pytest.approx(((0.0064 + 0.0018) / 4, 0.004 / 20))
    assert comp.variances(5, 8) == pytest.approx(((0.0064 + 0.0072) / 8, 0.004 / 5))


def test_power_curves_are_the_projection_on_a_grid_and_rise_with_patients():
    from vdes_tune.report import figures
    from vdes_tune.evaluation.power import power_curves

    gain = {"metric": "f1", "arch": 3, "reference": 2, "diff": 0.161, "se_repeats": 0.048, "se_patients": 0.108,
            "repeats": 6}
    other = {**gain, "reference": 1}  # against #1: not one of the study's two questions, left out
    answer = {"patients": 13, "repeats": 6, "real": 3, "no_des": 2, "margin": 0.02, "auc_margin": 0.02, "margins": {"f1": 0.02, "roc_auc": 0.02},
              "names": {"3": "#3", "2": "#2"}, "comparisons": [gain, other]}
    rows = power_curves(answer)
    assert {(r["comparison"], r["repeats"]) for r in rows} == {("#3 vs #2", 6), ("#3 vs #2", 30)}
    comp = components(gain, 13)
    for r in rows[::7]:
        assert r["decisive"] == pytest.approx(decisive(verdict_chances(comp, r["patients"], r["repeats"], "none")))
    at_30 = [r["decisive"] for r in rows if r["repeats"] == 30]
    assert at_30 == sorted(at_30) and at_30[-1] > 0.99  # 196 test patients at 30 repeats decide it
    assert figures.power_curves(rows, 13, 49)[:8] == b"\x89PNG\r\n\x1a\n"
