"""Plan a study from a finished one: how the answer's interval and the chance of each verdict change with the
number of test patients and of training repeats.

The answer (`paired.difference`) estimates, for each paired difference d̄, its variance parts: between repeats
(s²/R), from the test patients shared by every repeat (v), and how far one repeat's difference moves with the
test sample beyond that shared part (the repeat x patient interaction, w per repeat). The spread between
repeats holds the interaction, s² = σ_r² + σ_rp² / P₀, so at the pilot's size (P₀ patients, R₀ repeats)

    σ_rp² = P₀ · w,   σ_r² = R₀ · se_repeats² - w,   σ_p² = P₀ · se_patients²,

and at any other size var(d̄; P, R) = (σ_r² + σ_rp² / P) / R + σ_p² / P. Without the interaction term a plan
for fewer patients than the pilot's is far too hopeful: with few crops, each repeat's own test noise is most
of the spread between repeats. The interval is d̄ ± t(df) · se with the answer's Welch-Satterthwaite df. A
verdict is the interval clearing a bound: non-inferiority, ci_low > -margin; a gain, ci_low > 0. With the
pilot's difference Δ taken as the truth, d̄ / se is close to a noncentral t with df degrees of freedom and
noncentrality Δ / se (exact when the patient part is zero), so each verdict's chance is that distribution's
tail beyond t(df). More repeats shrink only the repeat part: when σ_p² / P dominates, only more patients can
narrow the interval.

A plan is a frontier (for each number of repeats, the fewest test patients with the wanted power) and its
cheapest point: the fewest repeats, each of which trains every architecture, whose test patients the planned
dataset's test split holds. Since a plan built on the pilot's difference is as lucky as the pilot, the
assurance averages the chance over the pilot's own uncertainty about that difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

# The verdicts of each kind of comparison (as `paired.versus_real` and `paired.versus_none` word them).
VERSUS_REAL = ("non-inferior", "inferior", "inconclusive")
VERSUS_NONE = ("better", "worse", "no clear difference")


@dataclass(frozen=True)
class Components:
    """A paired difference and its variance per repeat and per test patient."""

    diff: float
    per_repeat: float  # σ_r²: one repeat's variance that no number of test patients removes
    per_patient: float  # σ_p²: the shared patient part's variance times the number of test patients
    per_interaction: float = 0.0  # σ_rp²: one repeat's own test-sample variance times the number of patients

    def variances(self, patients: int, repeats: int) -> tuple[float, float]:
        """The repeat and patient parts of var(d̄) at a size."""
        if patients < 1 or repeats < 1:
            raise ValueError(f"a study needs at least one test patient and one repeat, got {patients} and {repeats}")
        return (self.per_repeat + self.per_interaction / patients) / repeats, self.per_patient / patients


def components(comparison: dict[str, float], patients: int) -> Components:
    """Per-unit variance parts of one comparison of the answer (`paired.difference`'s dict) on `patients`."""
    repeats = int(comparison["repeats"])
    interaction = float(comparison.get("se_interaction", 0.0)) ** 2  # absent from answers that predate it
    spread = repeats * float(comparison["se_repeats"]) ** 2
    # With one repeat there is no spread to split; the interaction is then 0 (not identifiable) as well.
    inside = min(interaction, spread) if repeats > 1 else 0.0
    return Components(diff=float(comparison["diff"]), per_repeat=spread - inside,
                      per_patient=patients * float(comparison["se_patients"]) ** 2,
                      per_interaction=patients * inside)


def standard_error(comp: Components, patients: int, repeats: int) -> float:
    """The projected standard error of d̄."""
    return math.sqrt(sum(comp.variances(patients, repeats)))


def degrees_of_freedom(comp: Components, patients: int, repeats: int) -> float:
    """Welch-Satterthwaite df as the answer computes it (R - 1 for the repeat part, the patient part known)."""
    var_r, var_p = comp.variances(patients, repeats)
    if var_r == 0 or repeats < 2:
        return math.inf
    return (repeats - 1) * ((var_r + var_p) / var_r) ** 2


def half_width(comp: Components, patients: int, repeats: int, confidence: float = 0.95) -> float:
    """The projected half-width of the answer's interval."""
    from scipy import stats

    df = degrees_of_freedom(comp, patients, repeats)
    return float(stats.t.ppf(0.5 + confidence / 2, df)) * standard_error(comp, patients, repeats)


def _beyond(bound: float, comp: Components, patients: int, repeats: int, confidence: float, upper: bool) -> float:
    """P(the interval lies wholly above `bound`), or wholly below it when `upper`."""
    from scipy import stats

    se = standard_error(comp, patients, repeats)
    df = degrees_of_freedom(comp, patients, repeats)
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    gap = bound - comp.diff if upper else comp.diff - bound
    if se == 0:  # no variance at all: the interval is the point, beyond the bound only when strictly past it
        return 1.0 if gap > 0 else 0.0
    shift = gap / se
    if math.isinf(df):
        return float(stats.norm.sf(q - shift))
    return float(stats.nct.sf(q, df, shift))


def verdict_chances(comp: Components, patients: int, repeats: int, reference: str, margin: float = 0.0,
                    confidence: float = 0.95) -> dict[str, float]:
    """The chance of each verdict at a size: against real DES (non-inferiority at `margin`) or no DES (a gain
    or a loss), the pilot's difference taken as the truth."""
    if reference not in ("real", "none"):
        raise ValueError(f"reference must be 'real' or 'none', got {reference!r}")
    bound, names = (-margin, VERSUS_REAL) if reference == "real" else (0.0, VERSUS_NONE)
    good = _beyond(bound, comp, patients, repeats, confidence, upper=False)
    bad = _beyond(bound, comp, patients, repeats, confidence, upper=True)
    return {names[0]: good, names[1]: bad, names[2]: max(0.0, 1.0 - good - bad)}


def decisive(chances: dict[str, float]) -> float:
    """The chance that the verdict is not the undecided one."""
    return 1.0 - chances.get("inconclusive", chances.get("no clear difference", 0.0))


def patients_needed(comp: Components, repeats: int, reference: str, margin: float = 0.0, power: float = 0.8,
                    confidence: float = 0.95, most: int = 100_000, fewest: int = 1) -> int | None:
    """The fewest test patients (from `fewest` up) that give a decisive verdict with chance `power` at `repeats`
    repeats, or None when no number up to `most` does (the repeats' part alone is too wide, or the difference
    sits on the bound)."""
    def enough(p: int) -> bool:
        return decisive(verdict_chances(comp, p, repeats, reference, margin, confidence)) >= power

    # Scan up in steps of a quarter, then bisect the last step: at few repeats the chance is not monotone in
    # patients (as the patient part shrinks, the Welch df falls towards R - 1 and the t quantile grows), so a
    # bisection over the whole range could skip the first size that is enough.
    previous, p = fewest - 1, fewest
    while not enough(p):
        if p >= most:
            return None
        previous, p = p, min(most, max(p + 1, int(p * 1.25)))
    low, high = previous + 1, p
    while low < high:
        mid = (low + high) // 2
        if enough(mid):
            high = mid
        else:
            low = mid + 1
    return low


def assurance(comp: Components, pilot_se: float, patients: int, repeats: int, reference: str,
              margin: float = 0.0, confidence: float = 0.95) -> float:
    """The decisive chance averaged over what the pilot knows of the true difference, N(d̄, pilot_se²)
    (O'Hagan's assurance): a plan that takes the pilot's difference as the truth is as lucky as the pilot."""
    from scipy import stats

    z = np.linspace(-4, 4, 33)
    weights = stats.norm.pdf(z) / stats.norm.pdf(z).sum()
    return float(sum(w * decisive(verdict_chances(replace(comp, diff=comp.diff + x * pilot_se), patients, repeats,
                                                  reference, margin, confidence)) for x, w in zip(z, weights)))


REPEAT_LADDER = (2, 3, 5, 10, 20, 30, 50, 100)  # the repeats a plan's frontier is drawn at


def frontier(comp: Components, reference: str, margin: float = 0.0, power: float = 0.8, fewest: int = 1,
             repeats: tuple[int, ...] = REPEAT_LADDER) -> list[dict]:
    """For each number of repeats, the fewest test patients that decide with chance `power` (None: none do)."""
    return [{"repeats": r, "patients": patients_needed(comp, r, reference, margin, power, fewest=fewest)}
            for r in sorted(set(repeats))]


def cheapest(points: list[dict], available: int) -> dict | None:
    """The frontier point with the fewest repeats (the GPU cost: every repeat trains every architecture) whose
    test patients fit in `available` (a test split is data, not compute); None when none fits."""
    return next((p for p in sorted(points, key=lambda p: p["repeats"])
                 if p["patients"] is not None and p["patients"] <= available), None)


FIRM_PILOT_PATIENTS = 25  # below this a pilot's patient part projects widths within 30% only about half the time
CDD_CESM_PATIENTS = 326  # the real dataset's patients; the paper splits them 70/15/15
PAPER_TEST_FRACTION = 0.15
MANY_REPEATS = 10**6  # "as many repeats as you like": only the patient part is left


def split_test_patients(dataset_patients: int, test_fraction: float = PAPER_TEST_FRACTION) -> int:
    """Test patients of a patient-level split of a dataset of this size."""
    return max(1, round(dataset_patients * test_fraction))


def estimable(comparison: dict) -> bool:
    """Whether a comparison has the finite estimates a plan needs (not, e.g., a one-class test split's ROC-AUC)."""
    return comparison["repeats"] >= 1 and all(math.isfinite(float(comparison[k]))
                                              for k in ("diff", "se_repeats", "se_patients"))


def planned(answer: dict, comparison: dict) -> tuple[str, float, Components] | None:
    """A comparison of an answer as the planner reads it: its kind ('real' or 'none'), the bound's margin and its
    variance parts; None when it is not estimable."""
    if not estimable(comparison):
        return None
    kind = "real" if comparison["reference"] == answer["real"] else "none"
    margin = 0.0 if kind == "none" else answer["margins"][comparison["metric"]]
    return kind, margin, components(comparison, int(answer["patients"]))


def study_plan(answer: dict, power: float = 0.8, repeats: int = 30, dataset_patients: int = CDD_CESM_PATIENTS,
               test_fraction: float = PAPER_TEST_FRACTION, metrics: tuple[str, ...] = ()) -> list[dict]:
    """For each comparison of a finished answer: the pilot's size and decisive chance, the test patients needed
    for `power` at the pilot's repeats and at `repeats`, whether more repeats alone could get there, the chance
    of a decisive verdict on a dataset of `dataset_patients` (the CDD-CESM's 326 by default), the frontier of
    (repeats, test patients) that decide it, and the cheapest point whose test split that dataset can give.
    `metrics`: only these metrics' comparisons (default all)."""
    patients0, repeats0 = int(answer["patients"]), int(answer["repeats"])
    horizon = split_test_patients(dataset_patients, test_fraction)
    rows = []
    for c in answer["comparisons"]:
        found = planned(answer, c) if not metrics or c["metric"] in metrics else None
        if found is None:
            continue
        kind, margin, comp = found

        def chance(p: int, r: int) -> float:
            return decisive(verdict_chances(comp, p, r, kind, margin))

        # Down to the planned dataset's test split when that is smaller than the pilot's: the user asked.
        points = frontier(comp, kind, margin, power, fewest=min(patients0, horizon),
                          repeats=(*REPEAT_LADDER, repeats0, repeats))

        rows.append({
            "metric": c["metric"], "arch": c["arch"], "reference": c["reference"], "kind": kind, "margin": margin,
            "diff": comp.diff, "patients": patients0, "repeats": repeats0,
            "half_width": half_width(comp, patients0, repeats0), "decisive_now": chance(patients0, repeats0),
            # Never below the pilot's test patients: a smaller test split is an extrapolation the pilot cannot
            # back (a patient part estimated on P0 patients says little about 1 or 2).
            "patients_needed": patients_needed(comp, repeats0, kind, margin, power, fewest=patients0),
            f"patients_needed_at_{repeats}": patients_needed(comp, repeats, kind, margin, power, fewest=patients0),
            "repeats_alone_enough": chance(patients0, MANY_REPEATS) >= power,
            "horizon_patients": horizon, f"decisive_at_horizon_{repeats}": chance(horizon, repeats),
            "horizon_verdicts": verdict_chances(comp, horizon, repeats, kind, margin),
            f"assurance_at_horizon_{repeats}": assurance(comp, standard_error(comp, patients0, repeats0),
                                                         horizon, repeats, kind, margin),
            "frontier": points, "cheapest": cheapest(points, horizon),
        })
    return rows


def power_curves(answer: dict, repeats: tuple[int, ...] = (), most_patients: int = 0) -> list[dict]:
    """The chance of a decisive F1 verdict against the number of test patients, for real DES's gain and each
    virtual DES against real and no DES, at the pilot's repeats and at 30: rows for the report's figure."""
    patients0, repeats0 = int(answer["patients"]), int(answer["repeats"])
    repeats = repeats or tuple(sorted({repeats0, 30}))
    top = max(most_patients or 4 * split_test_patients(CDD_CESM_PATIENTS), 2 * patients0)
    grid = sorted({int(round(x)) for x in np.geomspace(max(2, patients0 // 2), top, 40)} | {patients0})
    names = answer["names"]
    rows = []
    for c in answer["comparisons"]:
        found = planned(answer, c) if c["metric"] == "f1" else None
        # The figure keeps the study's two questions: against real DES and against no DES.
        if found is None or found[0] == "none" and c["reference"] != answer["no_des"]:
            continue
        kind, margin, comp = found
        label = f"{names.get(str(c['arch']), c['arch'])} vs {names.get(str(c['reference']), c['reference'])}"
        for r in repeats:
            for p in grid:
                rows.append({"comparison": label, "kind": kind, "repeats": r, "patients": p,
                             "decisive": decisive(verdict_chances(comp, p, r, kind, margin))})
    return rows
