"""The phantom's signal model: how a breast's pathology shows in its LE and DES pixels.

Every lesion has a hidden *suspicion* z (a real number; larger = more suspicious). Its class shifts z
(malignant +separation/2, benign -separation/2), and z, not the class, decides what the LE shows: the
BI-RADS descriptors of masses (irregular shape, indistinct margin, spicules, high density), of
calcifications (fine linear / branching in a tight cluster vs few round scattered dots) and a faint
asymmetry for non-mass enhancement. The DES enhancement is a part LE predicts (from z), plus a class part
LE does not show, plus noise, so the classes overlap on both images and real DES adds information that
no LE -> DES generator can recover. docs/phantom.md documents every parameter.

Presets (`vdes-tune synth --signal`):
- paper: the default, as above.
- null: every breast has a finding drawn from one class-free distribution and a coin-flip pathology, so
  no pixel of any crop depends on its label (a check that the statistics do not invent effects).
- des-only: LE shows whether a lesion is there, never its class; the class is in the DES enhancement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

KINDS = ("mass", "calcification", "non_mass")


@dataclass(frozen=True)
class Signal:
    """Parameters of one signal preset (see the module docstring and docs/phantom.md)."""

    name: str
    normal: float  # P(a breast has no finding)
    malignant: float  # P(malignant | the breast has a finding)
    kinds_malignant: tuple[float, float, float]  # P(mass, calcification, non_mass) of a malignant finding
    kinds_benign: tuple[float, float, float]
    extra_malignant: float  # P(a malignant breast also has a benign lesion): its crops carry label noise
    extra_benign: float  # P(a benign breast has a second benign finding)
    separation: float  # class shift of the suspicion z (malignant +s/2, benign -s/2; z noise sd 1)
    le_follows_suspicion: bool  # False: LE morphology is drawn from a class-free z of its own
    des_base: float  # DES enhancement = base + des_suspicion * sigmoid(z) + des_class * malignant + noise
    des_suspicion: float
    des_class: float
    des_noise: float
    pattern_class: float  # extra P(rim / heterogeneous enhancement) of malignant lesions (LE-invisible)


PRESETS: dict[str, Signal] = {
    "paper": Signal("paper", normal=0.28, malignant=0.64, kinds_malignant=(0.6, 0.2, 0.2),
                    kinds_benign=(0.6, 0.3, 0.1), extra_malignant=0.05, extra_benign=0.10, separation=3.0,
                    le_follows_suspicion=True, des_base=8.0, des_suspicion=45.0, des_class=22.0, des_noise=12.0,
                    pattern_class=0.45),
    "null": Signal("null", normal=0.0, malignant=0.40, kinds_malignant=(0.6, 0.25, 0.15),
                   kinds_benign=(0.6, 0.25, 0.15), extra_malignant=0.08, extra_benign=0.08, separation=0.0,
                   le_follows_suspicion=True, des_base=8.0, des_suspicion=40.0, des_class=0.0, des_noise=12.0,
                   pattern_class=0.0),
    "des-only": Signal("des-only", normal=0.28, malignant=0.64, kinds_malignant=(0.6, 0.2, 0.2),
                       kinds_benign=(0.6, 0.3, 0.1), extra_malignant=0.05, extra_benign=0.10, separation=2.2,
                       le_follows_suspicion=False, des_base=15.0, des_suspicion=0.0, des_class=55.0,
                       des_noise=12.0, pattern_class=0.45),
}


def preset(name: str) -> Signal:
    """The signal preset called `name`."""
    if name not in PRESETS:
        raise ValueError(f"unknown signal preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]


def sigmoid(x: float) -> float:
    """Logistic function of a scalar."""
    return 1.0 / (1.0 + math.exp(-x))


@dataclass(frozen=True)
class Lesion:
    """One lesion of a breast; its shape is the same in both views, its position is not.

    `suspicion` is the hidden z; `look` = sigmoid(z_le) in (0, 1) is what drives the LE morphology
    (z_le = z, except in des-only where it is an independent class-free draw).
    """

    kind: str
    malignant: bool
    radius: float
    suspicion: float
    look: float
    le_contrast: float
    margin_blur: float  # edge width as a fraction of the radius: circumscribed ~0.05, indistinct ~0.3
    des_enhancement: float
    des_predicted: float  # the part of des_enhancement that the LE morphology predicts
    pattern: str
    elong: float
    angle: float
    harmonics: tuple[tuple[int, float, float], ...]
    spicules: int
    calc_count: int  # calcifications: particles in the cluster
    calc_linear: float  # calcifications: fraction of particles that are fine linear segments
    calc_spread: float  # calcifications: cluster width across its axis / along it (small: linear, segmental)
    seed: int

    @property
    def irregularity(self) -> float:
        """Summed amplitude of the margin harmonics (0: a smooth ellipse)."""
        return float(sum(a for _, a, _ in self.harmonics))

    def boundary(self, theta: np.ndarray) -> np.ndarray:
        """Boundary radius (px) at polar angle theta around the lesion centre."""
        t = theta - self.angle
        # Ellipse radius with semi-axes (radius*elong, radius/elong), rotated by angle.
        a, b = self.radius * self.elong, self.radius / self.elong
        r = a * b / np.sqrt((b * np.cos(t)) ** 2 + (a * np.sin(t)) ** 2)
        for k, amp, phase in self.harmonics:
            r = r * (1.0 + amp * np.cos(k * theta + phase))
        return r


# Radii at the `small` image size (512 x 320): the largest lesion with its margin fits a 64-px crop
# there, and a 224-px crop at the full size (x4.6).
RADIUS = {"mass": (6.0, 16.0), "calcification": (6.0, 13.0), "non_mass": (10.0, 18.0)}


def new_lesion(rng: np.random.Generator, sig: Signal, kind: str, malignant: bool, scale: float) -> Lesion:
    """Draw one lesion's hidden suspicion and everything the pixels show of it."""
    z = float(rng.normal((1 if malignant else -1) * sig.separation / 2, 1.0))
    z_le = z if sig.le_follows_suspicion else float(rng.normal(0.0, 1.0 + sig.separation / 4))
    look = sigmoid(1.6 * z_le)  # ~ the normal CDF of z_le
    lo, hi = RADIUS[kind]
    radius = float(rng.uniform(lo, hi) * scale)
    # Margins: irregular (harmonics) and indistinct (blur) with suspicion, each with its own noise.
    irr = max(0.0, 0.02 + 0.20 * look + float(rng.normal(0, 0.03)))
    amps = rng.dirichlet(np.ones(3)) * irr if kind != "calcification" else np.full(3, 0.02)
    harm = tuple((int(k), float(a), float(rng.uniform(0, 2 * math.pi)))
                 for k, a in zip(rng.choice(np.arange(3, 9), 3, replace=False), amps))
    blur = float(np.clip(0.05 + 0.28 * look + rng.normal(0, 0.04), 0.03, 0.45))
    spicules = 0
    if kind == "mass" and rng.random() < float(np.clip(2.5 * (look - 0.4), 0.0, 0.95)):
        spicules = int(rng.integers(6, 14))
    if kind == "mass":
        le_c = 34.0 + 34.0 * look + float(rng.normal(0, 4))  # high density is a suspicious descriptor
    elif kind == "calcification":
        le_c = float(rng.uniform(70, 110))
    else:  # non-mass: a faint asymmetry on LE at most
        le_c = 3.0 + 12.0 * look + float(rng.normal(0, 1.5))
    predicted = sig.des_base + sig.des_suspicion * look
    enh = predicted + sig.des_class * malignant + float(rng.normal(0, sig.des_noise))
    p_pattern = 0.15 + sig.pattern_class * malignant
    pattern = "homogeneous" if rng.random() >= p_pattern else str(rng.choice(["rim", "heterogeneous"]))
    return Lesion(kind=kind, malignant=malignant, radius=radius, suspicion=z, look=look,
                  le_contrast=float(max(le_c, 0.0)), margin_blur=blur, des_enhancement=float(max(enh, 0.0)),
                  des_predicted=float(predicted), pattern=pattern,
                  elong=float(rng.uniform(1.0, 1.35)), angle=float(rng.uniform(0, math.pi)), harmonics=harm,
                  spicules=spicules, calc_count=int(round(5 + 22 * look + rng.normal(0, 2))) if kind ==
                  "calcification" else 0,
                  calc_linear=float(np.clip(look + rng.normal(0, 0.1), 0, 1)) if kind == "calcification" else 0.0,
                  calc_spread=float(np.clip(1.0 - 0.75 * look + rng.normal(0, 0.08), 0.15, 1.0)),
                  seed=int(rng.integers(0, 2**31)))


def plan_breast(rng: np.random.Generator, sig: Signal, scale: float) -> tuple[str, list[tuple[Lesion, int]]]:
    """A breast's pathology and its lesions with their BI-RADS."""
    if rng.random() < sig.normal:
        return "Normal", []
    malignant = bool(rng.random() < sig.malignant)
    kinds = sig.kinds_malignant if malignant else sig.kinds_benign
    kind = str(rng.choice(KINDS, p=kinds))
    lesion = new_lesion(rng, sig, kind, malignant, scale)
    if malignant:
        # BI-RADS 6 = biopsy-proven, else 5 for the more suspicious-looking lesions.
        birads = 6 if rng.random() < 0.15 else (5 if lesion.look > 0.6 else 4)
    else:
        birads = 3 if rng.random() < 0.15 else 2
    out = [(lesion, birads)]
    if rng.random() < (sig.extra_malignant if malignant else sig.extra_benign):
        extra_kind = "calcification" if kind != "calcification" else "mass"
        out.append((new_lesion(rng, sig, extra_kind, False, scale), 2))
    return ("Malignant" if malignant else "Benign"), out


def descriptors(les: Lesion) -> dict[str, str]:
    """BI-RADS words for a lesion, read off the parameters its pixels were drawn with."""
    if les.kind == "mass":
        shape = "irregular" if les.irregularity > 0.12 else ("oval" if les.elong > 1.15 else "round")
        margin = ("spiculated" if les.spicules else "indistinct" if les.margin_blur > 0.2
                  else "circumscribed")
        density = "high density" if les.le_contrast > 52 else "equal density"
        return {"shape": shape, "margin": margin, "density": density, "tag": f"{shape} {margin} mass"}
    if les.kind == "calcification":
        morph = ("fine linear branching" if les.calc_linear > 0.6 else "pleomorphic" if les.calc_linear > 0.35
                 else "punctate")
        dist = "linear" if les.calc_spread < 0.45 else "grouped" if les.calc_spread < 0.8 else "scattered"
        return {"tag": f"{morph} {dist} calcifications"}
    dist = "segmental" if les.look > 0.5 else "regional"
    return {"tag": f"{dist} non-mass enhancement"}
