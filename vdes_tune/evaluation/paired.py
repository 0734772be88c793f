"""The study's answer from per-crop predictions: each virtual DES against real DES and against no DES, paired by
repeat, with intervals that count both sources of variance (training repeats and test patients), a
non-inferiority verdict against a margin, and the fraction of the real-DES gain each virtual DES recovers.

Interval of a paired difference d (architecture minus reference, a metric over the test crops):
  - repeats: d_r for each repeat r; its mean d̄ and the variance of that mean, s²/R;
  - patients: B cluster-bootstrap draws of the test patients (a patient's crops go together), the same draw
    for every architecture and repeat; the variance v of d̄ over the draws;
  - d̄ ± t(df) · sqrt(s²/R + v), df by Welch-Satterthwaite (R - 1 for the repeat part, the bootstrap part
    counted as known). The test crops of every repeat are the same, so the patient part is shared by all
    repeats and does not shrink with R; adding the two is slightly conservative (checked in the tests).
The fraction recovered, (virtual - no DES) / (real - no DES), is a ratio: its interval is the percentile
interval of a two-level bootstrap (repeats, then patients), defined only when real DES gains clearly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vdes_tune.config import AnalysisConfig
from vdes_tune.errors import BadInputError
from vdes_tune.models.architectures import virtual_architectures

METRICS = ("f1", "roc_auc", "sensitivity", "specificity")
METRIC_NAMES = {"f1": "F1", "roc_auc": "ROC-AUC", "sensitivity": "sensitivity", "specificity": "specificity"}
OPERATING_POINT = ("sensitivity", "specificity")  # at the threshold, as F1: what a clinical reader asks first
PLANNED_REPEATS = 30  # the paper's repeats: what the advice of an undecided answer also projects to


@dataclass(frozen=True)
class ScoreTable:
    """Test scores as arrays: scores[a, r, c] of architecture archs[a], repeat repeats[r], crop c."""

    archs: tuple[int, ...]
    repeats: tuple[int, ...]
    crop_ids: tuple[str, ...]
    labels: np.ndarray  # (C,) 0/1
    patient_index: np.ndarray  # (C,) index into `patients`
    patients: np.ndarray
    scores: np.ndarray  # (A, R, C)

    def index(self, arch: int) -> int:
        """Row of an architecture."""
        return self.archs.index(arch)


def score_table(predictions: pd.DataFrame, split: str = "test") -> ScoreTable:
    """The split's scores of the repeats every architecture finished, on the crops they all scored."""
    part = predictions[predictions["split"] == split]
    if part.empty:
        raise BadInputError(f"no {split} predictions to analyse")
    archs = tuple(sorted(int(a) for a in part["arch"].unique()))
    per_arch = [set(part.loc[part["arch"] == a, "repeat"]) for a in archs]
    repeats = tuple(sorted(set.intersection(*per_arch)))
    if not repeats:
        raise BadInputError("no repeat was finished by every architecture: nothing to pair")
    part = part[part["repeat"].isin(repeats)]
    crops = part.drop_duplicates("crop_id").sort_values("crop_id")
    wide = part.pivot_table(index=["arch", "repeat"], columns="crop_id", values="score", aggfunc="first")
    if wide.isna().any().any():
        arch, rep = wide.index[wide.isna().any(axis=1)][0]
        raise BadInputError(f"predictions of #{arch} repeat {rep} lack some {split} crops the others scored")
    wide = wide[crops["crop_id"].tolist()]
    patients, patient_index = np.unique(crops["patient_id"].to_numpy(), return_inverse=True)
    scores = wide.to_numpy(np.float64).reshape(len(archs), len(repeats), len(crops))
    return ScoreTable(archs, repeats, tuple(crops["crop_id"]), crops["label"].to_numpy().astype(int),
                      patient_index, patients, scores)


def weighted_f1(labels: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Binary F1 (positive class 1) of K prediction rows (K x C, 0/1) under B weightings (B x C) -> B x K."""
    y, yhat = labels.astype(float), predicted.astype(float)
    tp = weights @ (yhat * y).T
    fp = weights @ (yhat * (1 - y)).T
    fn = weights @ ((1 - yhat) * y).T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)


def weighted_recall(labels: np.ndarray, predicted: np.ndarray, weights: np.ndarray, cls: int) -> np.ndarray:
    """The share of class `cls` crops predicted as `cls` (sensitivity for 1, specificity for 0) of K prediction
    rows (K x C, 0/1) under B weightings (B x C) -> B x K; NaN for a weighting without that class."""
    y = (labels == cls).astype(float)
    hit = (predicted == cls).astype(float) * y
    total = (weights @ y)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (weights @ hit.T) / total, np.nan)


def weighted_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC (ties count one half) of K score rows (K x C) under B weightings (B x C) -> B x K; NaN for a
    weighting without both classes."""
    pos, neg = labels == 1, labels == 0
    wp, wn = weights[:, pos], weights[:, neg]
    denominator = wp.sum(axis=1) * wn.sum(axis=1)
    out = np.empty((weights.shape[0], scores.shape[0]))
    for k, s in enumerate(scores):
        sp, sn = s[pos][:, None], s[neg][None, :]
        wins = (sp > sn) + 0.5 * (sp == sn)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, k] = ((wp @ wins) * wn).sum(axis=1) / denominator
    return out


def metric_values(table: ScoreTable, metric: str, weights: np.ndarray, threshold: float) -> np.ndarray:
    """The metric of every (architecture, repeat) under each weighting of the crops: B x A x R."""
    flat = table.scores.reshape(-1, table.scores.shape[-1])
    if metric == "f1":
        values = weighted_f1(table.labels, flat >= threshold, weights)
    elif metric == "roc_auc":
        values = weighted_auc(table.labels, flat, weights)
    elif metric in OPERATING_POINT:
        values = weighted_recall(table.labels, (flat >= threshold).astype(int), weights,
                                 1 if metric == "sensitivity" else 0)
    else:
        raise ValueError(f"unknown metric {metric!r}")
    return values.reshape(weights.shape[0], *table.scores.shape[:2])


def patient_weights(table: ScoreTable, draws: int, rng: np.random.Generator) -> np.ndarray:
    """B x C crop weights: each draw resamples the patients with replacement, a patient's crops together."""
    n = len(table.patients)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=draws)
    return counts[:, table.patient_index].astype(float)


def difference(point: np.ndarray, boot: np.ndarray, a: int, b: int, confidence: float) -> dict[str, float]:
    """Paired difference a - b (rows of point: A x R, boot: B x A x R) with its repeats + patients interval."""
    from scipy import stats

    d = point[a] - point[b]
    keep = ~np.isnan(d)
    d = d[keep]
    r = len(d)
    if r == 0:  # no repeat with both values (e.g. a one-class test split's ROC-AUC)
        nan = math.nan
        return {"diff": nan, "ci_low": nan, "ci_high": nan, "se": nan, "se_repeats": nan, "se_patients": nan,
                "se_interaction": nan, "df": nan, "p_value": nan, "repeats": 0}
    mean = float(d.mean())
    var_repeats = float(d.var(ddof=1)) / r if r > 1 else 0.0
    per_repeat = boot[:, a, keep] - boot[:, b, keep]  # B x R
    per_repeat = per_repeat[np.isfinite(per_repeat).all(axis=1)]
    var_patients = _shared_variance(per_repeat)
    var_interaction = _interaction_variance(per_repeat, var_patients)
    se = math.sqrt(var_repeats + var_patients)
    df = math.inf if var_repeats == 0 or r < 2 else (r - 1) * ((var_repeats + var_patients) / var_repeats) ** 2
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    if se > 0:
        p = float(2 * stats.t.sf(abs(mean) / se, df))
    else:
        p = 1.0 if mean == 0 else 0.0
    return {"diff": mean, "ci_low": mean - q * se, "ci_high": mean + q * se, "se": se,
            "se_repeats": math.sqrt(var_repeats), "se_patients": math.sqrt(var_patients),
            "se_interaction": math.sqrt(var_interaction), "df": df,
            "p_value": p, "repeats": r}


def _shared_variance(per_repeat: np.ndarray) -> float:
    """The patient-sampling variance of the difference that every repeat shares: the mean covariance between
    two different repeats' bootstrap differences (B x R). Each repeat's own sensitivity to the test sample
    is already in the spread between repeats; counting it again would make the interval too wide. With one
    repeat, the whole bootstrap variance."""
    draws, r = per_repeat.shape
    if draws < 2 or r == 0:
        return 0.0
    cov = np.atleast_2d(np.cov(per_repeat, rowvar=False))
    if r == 1:
        return float(cov[0, 0])
    return max(0.0, float((cov.sum() - np.trace(cov)) / (r * (r - 1))))


def _interaction_variance(per_repeat: np.ndarray, shared: float) -> float:
    """How much one repeat's difference moves with the test sample beyond what all repeats share: the mean
    bootstrap variance of a single repeat's difference minus the shared part. It is part of the spread between
    repeats here, but shrinks with more test patients, which a plan for another size must know
    (evaluation/power.py). Not identifiable from one repeat (0)."""
    draws, r = per_repeat.shape
    if draws < 2 or r < 2:
        return 0.0
    return max(0.0, float(np.var(per_repeat, axis=0, ddof=1).mean()) - shared)


def versus_real(c: dict[str, float], margin: float) -> str:
    """Non-inferiority to real DES: the interval's lower end above -margin, or its upper end below it."""
    if c["ci_low"] > -margin:
        return "non-inferior"
    if c["ci_high"] < -margin:
        return "inferior"
    return "inconclusive"


def versus_none(c: dict[str, float]) -> str:
    """Against no DES: better or worse when the interval excludes 0."""
    if c["ci_low"] > 0:
        return "better"
    if c["ci_high"] < 0:
        return "worse"
    return "no clear difference"


def recovered(point: np.ndarray, boot: np.ndarray, v: int, base: int, real: int, confidence: float,
              rng: np.random.Generator) -> dict[str, float]:
    """(virtual - no DES) / (real - no DES) with a two-level (repeats, patients) percentile interval."""
    gain, got = point[real] - point[base], point[v] - point[base]
    fraction = float(np.nanmean(got) / np.nanmean(gain)) if np.nanmean(gain) != 0 else math.nan
    draws, repeats = boot.shape[0], boot.shape[2]
    idx = rng.integers(0, repeats, size=(draws, repeats))
    rows = np.arange(draws)[:, None]
    g = (boot[rows, real, idx] - boot[rows, base, idx]).mean(axis=1)
    x = (boot[rows, v, idx] - boot[rows, base, idx]).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = x / g
    ratios = ratios[np.isfinite(ratios)]
    lo, hi = (np.percentile(ratios, [50 * (1 - confidence), 50 * (1 + confidence)]) if len(ratios)
              else (math.nan, math.nan))
    return {"fraction": fraction, "ci_low": float(lo), "ci_high": float(hi)}


def analyse(predictions: pd.DataFrame, cfg: AnalysisConfig = AnalysisConfig(),
            names: dict[int, str] | None = None) -> dict[str, Any]:
    """The answer: every comparison, verdicts, fractions recovered and the sentence (JSON-ready)."""
    table = score_table(predictions)
    names = names or {}
    rng = np.random.default_rng(cfg.seed)
    weights = patient_weights(table, cfg.bootstrap, rng)
    unit = np.ones((1, len(table.crop_ids)))
    have = set(table.archs)
    refs = [a for a in (cfg.real, 1, 2) if a in have]
    virtual = [a for a in cfg.virtual or virtual_architectures() if a in have]
    out: dict[str, Any] = {
        "split": "test", "metrics": list(METRICS), "primary": "f1", "margin": cfg.margin,
        "auc_margin": cfg.auc_margin, "margins": {m: cfg.margin_for(m) for m in METRICS}, "no_des": cfg.no_des, "real": cfg.real,
        "confidence": cfg.confidence, "bootstrap": cfg.bootstrap, "seed": cfg.seed, "threshold": cfg.threshold,
        "repeats": len(table.repeats), "patients": len(table.patients), "crops": len(table.crop_ids),
        "positives": int(table.labels.sum()), "names": {str(a): names.get(a, f"#{a}") for a in table.archs},
        "means": {}, "comparisons": [], "real_gain": {}, "recovered": {}, "verdicts": {},
    }
    for metric in METRICS:
        point = metric_values(table, metric, unit, cfg.threshold)[0]  # A x R
        boot = metric_values(table, metric, weights, cfg.threshold)
        out["means"][metric] = {str(a): float(np.nanmean(point[table.index(a)])) for a in table.archs}
        for arch in [cfg.real, *virtual] if cfg.real in have else virtual:
            for ref in refs:
                if ref == arch or (arch == cfg.real and ref == cfg.real):
                    continue
                c = difference(point, boot, table.index(arch), table.index(ref), cfg.confidence)
                verdict = versus_real(c, cfg.margin_for(metric)) if ref == cfg.real else versus_none(c)
                out["comparisons"].append({"metric": metric, "arch": arch, "reference": ref, **c,
                                           "verdict": verdict})
                if arch == cfg.real and ref == cfg.no_des:
                    out["real_gain"][metric] = {"metric": metric, "arch": arch, "reference": ref, **c,
                                                "verdict": verdict}
        if cfg.real in have and cfg.no_des in have:
            for arch in virtual:
                out["recovered"].setdefault(str(arch), {})[metric] = recovered(
                    point, boot, table.index(arch), table.index(cfg.no_des), table.index(cfg.real),
                    cfg.confidence, rng)
    for c in out["comparisons"]:
        if c["metric"] == "f1" and c["arch"] in virtual and c["reference"] in (cfg.real, cfg.no_des):
            key = "vs_real" if c["reference"] == cfg.real else "vs_no_des"
            out["verdicts"].setdefault(str(c["arch"]), {})[key] = c["verdict"]
    out["sentence"] = sentence(out)
    return out


def comparisons_frame(answer: dict[str, Any]) -> pd.DataFrame:
    """The comparisons as a table (one row per metric, architecture and reference)."""
    cols = ["metric", "arch", "reference", "diff", "ci_low", "ci_high", "p_value", "verdict", "se", "se_repeats",
            "se_patients", "se_interaction", "df", "repeats"]
    frame = pd.DataFrame(answer.get("comparisons", []), columns=cols)
    frame.insert(2, "architecture", [answer["names"].get(str(a), f"#{a}") for a in frame["arch"]])
    return frame


def percent(x: float, sign: str = "%") -> str:
    """A fraction as a whole percentage ("41%"; never "-0%")."""
    return "n/a" if not math.isfinite(x) else f"{int(round(100 * x)) + 0}{sign}"


def _pts(x: float) -> str:
    return f"{round(100 * x, 1) + 0.0:+.1f}"  # + 0.0: no "-0.0"


def _ci(c: dict[str, float]) -> str:
    return f"{_pts(c['ci_low'])} to {_pts(c['ci_high'])}"


def sentence(answer: dict[str, Any], metric: str = "f1") -> str:
    """The answer to "can a virtual DES replace the real one?" on the primary metric, then real DES's effect
    on sensitivity and specificity at the operating point."""
    return " ".join(part for part in (_headline(answer, metric), operating_point(answer)) if part)


def operating_point(answer: dict[str, Any]) -> str:
    """Real DES's paired change in sensitivity and specificity at the threshold, with intervals and verdicts."""
    found = [(m, answer["real_gain"][m]) for m in OPERATING_POINT if m in answer["real_gain"]]
    found = [(m, c) for m, c in found if math.isfinite(c["diff"])]
    if not found:
        return ""
    parts = [f"{METRIC_NAMES[m]} by {_pts(c['diff'])} points (95% CI {_ci(c)}, {c['verdict']})" for m, c in found]
    return (f"At probability {answer['threshold']:g}, real DES changes {' and '.join(parts)} against no DES "
            f"#{answer['no_des']}.")


def _headline(answer: dict[str, Any], metric: str) -> str:
    names = {int(k): v for k, v in answer["names"].items()}
    label, base, real = METRIC_NAMES[metric], answer["no_des"], answer["real"]
    gain = answer["real_gain"].get(metric)
    if gain is None:
        return (f"No answer: the run lacks real-DES (#{real}) or no-DES (#{base}) results on every repeat.")
    pct = round(100 * answer["margins"][metric], 2)
    found = [c for c in answer["comparisons"] if c["metric"] == metric and c["arch"] != real]
    vs_real = {c["arch"]: c for c in found if c["reference"] == real}
    vs_none = {c["arch"]: c for c in found if c["reference"] == base}
    size = (f"On {answer['crops']} test crops of {answer['patients']} patients over {answer['repeats']} "
            f"repeat{'s' if answer['repeats'] != 1 else ''}, ")
    gain_text = f"{_pts(gain['diff'])} {label} points over no DES #{base} (95% CI {_ci(gain)})"
    other = "roc_auc" if metric == "f1" else "f1"
    second = answer["real_gain"].get(other)
    aside = (f"; {METRIC_NAMES[other]} {_pts(second['diff'])} points (95% CI {_ci(second)}, {second['verdict']})"
             if second is not None and second["verdict"] != gain["verdict"] else "")
    if gain["verdict"] != "better":
        head = (f"{size}real DES makes no clear difference in {label}: {gain_text}{aside}" if gain["verdict"] ==
                "no clear difference" else f"{size}real DES scores below no DES in {label}: {gain_text}{aside}")
        clear = [a for a, c in vs_none.items() if c["verdict"] != "no clear difference"]
        tail = ("no virtual DES differs clearly from no DES either" if not clear else
                "; ".join(f"{names[a]} is {vs_none[a]['verdict']} than no DES ({_pts(vs_none[a]['diff'])}, "
                          f"95% CI {_ci(vs_none[a])})" for a in clear))
        decide = " " + what_would_decide(answer, gain) if gain["verdict"] == "no clear difference" else ""
        return f"{head}, so there is no {label} gain for a virtual DES to recover; {tail}.{decide}"
    good = [a for a, c in vs_real.items() if c["verdict"] == "non-inferior"]
    fractions = answer["recovered"]
    share = ", ".join(f"{names[a]} {percent(fractions[str(a)][metric]['fraction'])} (95% CI "
                      f"{percent(fractions[str(a)][metric]['ci_low'], '')} to "
                      f"{percent(fractions[str(a)][metric]['ci_high'])})"
                      for a in vs_real if str(a) in fractions)
    if good:
        which = " and ".join(f"{names[a]} ({_pts(vs_real[a]['diff'])} vs real DES, 95% CI {_ci(vs_real[a])})"
                             for a in good)
        return (f"{size}{which} can replace the real DES at a {pct:g}-point {label} margin; real DES adds "
                f"{gain_text}{aside}, and the virtual DES recover: {share}.")
    verdicts = ", ".join(f"{names[a]} {c['verdict']}" for a, c in vs_real.items())
    # The closest undecided virtual DES: what would decide it at the margin.
    undecided = sorted((c for c in vs_real.values() if c["verdict"] == "inconclusive"), key=lambda c: -c["diff"])
    decide = "" if not undecided else " " + what_would_decide(
        answer, undecided[0], subject=f"{names[undecided[0]['arch']]} at the {pct:g}-point margin")
    return (f"{size}no virtual DES is shown to replace the real DES at a {pct:g}-point {label} margin "
            f"({verdicts}): real DES adds {gain_text}{aside}, and the virtual DES recover: {share}.{decide}")


def what_would_decide(answer: dict[str, Any], c: dict[str, float], power: float = 0.8, subject: str = "it") -> str:
    """What would decide an undecided comparison (80% power, the observed difference taken as the truth): test
    patients at this run's repeats and at the paper's 30, and whether more repeats alone could (evaluation/power)."""
    from vdes_tune.evaluation import power as planner

    found = planner.planned(answer, c)
    if found is None:
        return ""
    kind, margin, comp = found
    patients, repeats = int(answer["patients"]), int(answer["repeats"])
    sizes = [repeats] + ([PLANNED_REPEATS] if repeats < PLANNED_REPEATS else [])
    needed = {r: planner.patients_needed(comp, r, kind, margin, power=power, fewest=patients) for r in sizes}
    alone = planner.decisive(planner.verdict_chances(comp, patients, planner.MANY_REPEATS, kind, margin)) >= power
    sizes_text = [f"{r} repeats with this run's {patients} test patients" if n == patients else
                  f"about {n} test patients at {r} repeats" for r, n in needed.items() if n is not None]
    truth = "this difference taken as the truth" if subject == "it" else "its difference taken as the truth"
    if not sizes_text and alone:  # the repeats' spread dominates: more than the planned repeats would do it
        return (f"To decide {subject} with {power:.0%} power ({truth}) even {max(sizes)} repeats are too few at any "
                f"number of test patients; more repeats could (`vdes-tune plan-study`).")
    if not sizes_text:
        bound = "0" if kind == "none" else f"the -{round(100 * margin, 2):g}-point margin"
        return (f"{'A difference' if subject == 'it' else subject[0].upper() + subject[1:] + ', a difference'} of "
                f"{_pts(c['diff'])} points is too close to {bound} to decide with {power:.0%} power at any number of "
                f"test patients with up to {max(sizes)} repeats (`vdes-tune plan-study`).")
    had = f"; this run had {patients} test patients" if any(n not in (None, patients) for n in needed.values()) else ""
    return (f"To decide {subject} with {power:.0%} power ({truth}) you need {' or '.join(sizes_text)}{had}; more "
            f"repeats alone {'could' if alone else 'cannot'} get there (`vdes-tune plan-study`).")
