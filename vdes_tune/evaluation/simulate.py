"""Simulated per-crop predictions with a known answer, to check the analysis (tests, benchmarks): patients with
1-3 crops sharing a patient effect, and per (architecture, repeat) a noisy model of one crop feature. With no
`effects` every architecture is the same model up to training noise (a null); an effect adds label
information to one architecture's scores."""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulated_study(rng: np.random.Generator, patients: int = 40, repeats: int = 5,
                    archs: tuple[int, ...] = (2, 3, 4), effects: dict[int, float] | None = None) -> pd.DataFrame:
    """A predictions.parquet-shaped frame (test split) of one simulated evaluation."""
    effects = effects or {}
    crops = []
    for p in range(patients):
        z = rng.normal()
        for k in range(rng.integers(1, 4)):
            y = int(rng.random() < 0.45)
            crops.append((f"p{p:04d}_c{k}", p, y, 0.9 * y + 0.5 * z + rng.normal()))
    cid, pid, lab, x = map(np.array, zip(*crops))
    rows = []
    for a in archs:
        for r in range(repeats):
            logit = rng.normal(1, 0.3) * x + rng.normal(0, 0.4) + effects.get(a, 0.0) * (lab - 0.5)
            score = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.7, len(x)))))
            rows.append(pd.DataFrame({"job_id": f"a{a}-r{r:03d}", "arch": a, "repeat": r, "crop_id": cid,
                                      "patient_id": pid, "split": "test", "label": lab,
                                      "score": score.astype(np.float32)}))
    return pd.concat(rows, ignore_index=True)
