"""The answer of a finished evaluation: from its per-crop predictions (repeats and patients), or from the
per-repeat results alone for a run that predates them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from vdes_tune.config import AnalysisConfig, analysis_config
from vdes_tune.errors import BadInputError
from vdes_tune.evaluation import paired, stats
from vdes_tune.models.architectures import virtual_architectures


def study_answer(results: pd.DataFrame, predictions: pd.DataFrame | None,
                 cfg: AnalysisConfig = AnalysisConfig()) -> dict[str, Any]:
    """The answer from per-crop predictions (repeats and patients), or, for a run that predates them, from the
    per-repeat results alone (real DES's gain over no DES and the share each virtual DES recovers)."""
    names = {int(a): f"#{int(a)} {n}" for a, n in results.groupby("arch")["arch_name"].first().items()}
    note = "per-crop predictions are missing (the run predates them)"
    if predictions is not None and len(predictions):
        try:
            return {"method": "repeats and patients", **paired.analyse(predictions, cfg, names)}
        except BadInputError as exc:
            note = str(exc)
    gain = stats.des_gain(results, le=cfg.no_des, real=cfg.real, virtual=cfg.virtual or virtual_architectures(), boot=cfg.bootstrap,
                          seed=cfg.seed, confidence=cfg.confidence)
    return {"method": "repeats only", **gain,
            "sentence": stats.answer_sentence(gain, names) + f" (Intervals over repeats only: {note}.)"}


def answer_of(eval_dir: Path, cfg: AnalysisConfig | None = None) -> dict[str, Any]:
    """The answer of the evaluation in `eval_dir` (results.parquet and predictions.parquet)."""
    results = pd.read_parquet(eval_dir / "results.parquet")
    path = eval_dir / "predictions.parquet"
    predictions = pd.read_parquet(path) if path.is_file() else None
    if cfg is None:
        plan = eval_dir / "plan.json"
        data = json.loads(plan.read_text())["config"].get("analysis") if plan.is_file() else None
        cfg = analysis_config(data)
    return study_answer(results, predictions, cfg)
