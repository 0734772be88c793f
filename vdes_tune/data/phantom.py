"""Drawing of the synthetic CESM phantom: breast anatomy, lesions and the LE / DES intensity mappings.

Everything is drawn on a *world* canvas a little larger than the images, so the LE and DES images of
one pair can be cut from it at different offsets (the misalignment) and with different fields of view.
Lengths are given at the `small` size and multiplied by `scale` for larger images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

LESION_KINDS = ("mass", "calcification", "non_mass")
REGION_SHAPES = ("polygon", "ellipse", "circle", "polyline", "point")
FINE_LE, FINE_DES, FINE_MID = 7.0, 6.0, 2.5


@dataclass(frozen=True)
class Tissue:
    """Per-patient intensity settings shared by all of the patient's images."""

    density: str
    gland_threshold: float
    fat: float
    gland_amp: float
    des_base: float
    bpe: float
    des_residual: float


@dataclass(frozen=True)
class Lesion:
    """One lesion of a breast; its shape is the same in both views, its position is not."""

    kind: str
    malignant: bool
    radius: float
    le_contrast: float
    des_enhancement: float
    pattern: str
    elong: float
    angle: float
    harmonics: tuple[tuple[int, float, float], ...]
    spicules: int
    seed: int

    def boundary(self, theta: np.ndarray) -> np.ndarray:
        """Boundary radius (px) at polar angle theta around the lesion centre."""
        t = theta - self.angle
        # Ellipse radius with semi-axes (radius*elong, radius/elong), rotated by angle.
        a, b = self.radius * self.elong, self.radius / self.elong
        r = a * b / np.sqrt((b * np.cos(t)) ** 2 + (a * np.sin(t)) ** 2)
        for k, amp, phase in self.harmonics:
            r = r * (1.0 + amp * np.cos(k * theta + phase))
        return r


@dataclass(frozen=True)
class BreastView:
    """Geometry of one view of one breast in world coordinates."""

    side: str
    view: str
    cw: float  # chest-wall x (world)
    cy: float
    a: float  # depth of the half-ellipse away from the chest wall
    b: float
    wobble: tuple[tuple[int, float, float], ...]
    pectoral: tuple[float, float, float] | None  # width at top, height, curvature exponent
    top: float  # world y of the LE top edge (pectoral anchor)
    scale: float

    @property
    def sign(self) -> int:
        return 1 if self.side == "L" else -1

    def rho(self, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
        """Normalised elliptical radius: < 1 inside the breast, 1 on the skin line."""
        dx = (wx - self.cw) * self.sign
        dy = wy - self.cy
        theta = np.arctan2(dy / self.b, dx / self.a)
        wob = 1.0
        for k, amp, phase in self.wobble:
            wob = wob + amp * np.sin(k * theta + phase)
        return np.sqrt((dx / self.a) ** 2 + (dy / self.b) ** 2) / wob

    def pectoral_depth(self, wy: np.ndarray) -> np.ndarray:
        """Depth (px from the chest wall) of the pectoral edge at world rows wy; 0 where there is none."""
        if self.pectoral is None:
            return np.zeros_like(np.asarray(wy, dtype=np.float32))
        pw, ph, gamma = self.pectoral
        frac = np.clip(1.0 - (np.asarray(wy, dtype=np.float32) - self.top) / ph, 0.0, 1.0)
        return pw * frac**gamma


def sample_tissue(rng: np.random.Generator, density: str) -> Tissue:
    """Draw a patient's tissue intensities for ACR density A-D."""
    # Thresholds are normal quantiles giving gland fractions of about 15/35/60/80 %.
    thr = {"A": 1.04, "B": 0.39, "C": -0.25, "D": -0.84}[density]
    amp = {"A": 18.0, "B": 30.0, "C": 45.0, "D": 60.0}[density]
    residual = float(rng.uniform(0.12, 0.3) * amp * rng.choice([-1.0, 1.0]))
    return Tissue(density=density, gland_threshold=thr, fat=float(rng.uniform(70, 110)),
                  gland_amp=float(amp * rng.uniform(0.85, 1.15)), des_base=float(rng.uniform(90, 110)),
                  bpe=float(rng.uniform(8, 35)), des_residual=residual)


def sample_view(rng: np.random.Generator, side: str, view: str, le_h: int, le_w: int,
                ox: int, oy: int, scale: float) -> BreastView:
    """Draw the breast outline (and the pectoral muscle on MLO) for an LE image cut at world (ox, oy)."""
    # The chest wall sits just outside the LE edge so tissue reaches the image border, as in real images.
    jitter = float(rng.uniform(0, 4))
    cw = ox - jitter if side == "L" else ox + le_w - 1 + jitter
    a = float(rng.uniform(0.74, 0.92) * le_w)
    wobble = tuple((k, float(rng.uniform(0.005, 0.025)), float(rng.uniform(0, 2 * math.pi))) for k in range(2, 7))
    if view == "CC":
        cy = oy + le_h * float(rng.uniform(0.46, 0.54))
        b = float(rng.uniform(0.40, 0.46) * le_h)
        pect = None
    else:
        cy = oy + le_h * float(rng.uniform(0.40, 0.46))
        b = float(rng.uniform(0.52, 0.58) * le_h)
        pect = (float(rng.uniform(0.28, 0.45) * le_w), float(rng.uniform(0.35, 0.55) * le_h),
                float(rng.uniform(0.8, 1.3)))
    return BreastView(side, view, float(cw), float(cy), a, b, wobble, pect, float(oy), scale)


def lesion_fits(bv: BreastView, wx: float, wy: float, radius: float) -> bool:
    """Whether a lesion at world (wx, wy) lies well inside the breast and clear of the pectoral muscle."""
    rho = float(bv.rho(np.float32(wx), np.float32(wy)))
    if rho > 0.72 - radius / bv.a:
        return False
    depth = (wx - bv.cw) * bv.sign
    return depth - 1.3 * radius > float(bv.pectoral_depth(np.float32(wy))) + 4 * bv.scale


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Unit-variance Gaussian noise smoothed at scale sigma (px), float32."""
    h, w = shape
    # Large sigmas are drawn on a coarse grid and upsampled: same look, a fraction of the cost.
    f = max(1.0, sigma / 2.0)
    gh, gw = int(math.ceil(h / f)) + 4, int(math.ceil(w / f)) + 4
    n = rng.standard_normal((gh, gw), dtype=np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigma / f)
    if f > 1:
        n = cv2.resize(n, (int(round(gw * f)), int(round(gh * f))), interpolation=cv2.INTER_LINEAR)
    n = n[:h, :w]
    return (n - n.mean()) / (n.std() + 1e-6)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur that downsamples first for large sigmas."""
    if sigma <= 4:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    h, w = img.shape
    f = sigma / 2.0
    small = cv2.resize(img, (max(1, int(w / f)), max(1, int(h / f))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 2.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def _vessels(rng: np.random.Generator, bv: BreastView, shape: tuple[int, int]) -> np.ndarray:
    """Bright meandering vessels running from the chest wall towards the nipple (DES only)."""
    canvas = np.zeros(shape, np.uint8)
    s = bv.scale
    for _ in range(int(rng.integers(3, 8))):
        depth = float(rng.uniform(0, 0.1) * bv.a)
        y = bv.cy + float(rng.uniform(-0.7, 0.7) * bv.b)
        heading = float(rng.normal(0, 0.3)) + 0.6 * math.atan2(bv.cy - y, bv.a)
        pts = []
        for _ in range(int(rng.integers(15, 35))):
            pts.append((bv.cw + bv.sign * depth, y))
            heading += float(rng.normal(0, 0.25))
            heading = max(-1.2, min(1.2, heading))
            depth += 6 * s * math.cos(heading)
            y += 6 * s * math.sin(heading)
        arr = np.round(np.array(pts) * 16).astype(np.int32)  # 4 fractional bits for sub-pixel AA lines
        cv2.polylines(canvas, [arr], False, int(rng.integers(120, 256)),
                      thickness=max(1, int(round(rng.uniform(0.8, 1.8) * s))), lineType=cv2.LINE_AA, shift=4)
    return blur(canvas.astype(np.float32), 0.6 * s) / 255.0


def render_world(rng: np.random.Generator, bv: BreastView, tissue: Tissue, shape: tuple[int, int],
                 lesions: list[tuple[Lesion, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Noiseless LE and DES world canvases (float32) of one breast view with its lesions drawn at world (x, y)."""
    h, w = shape
    s = bv.scale
    wy, wx = np.ogrid[0:h, 0:w]
    wx = wx.astype(np.float32)
    wy = wy.astype(np.float32)
    rho = bv.rho(wx, wy).astype(np.float32)
    inside_px = (1.0 - rho) * bv.a
    # Compressed-breast periphery: tissue thickness (and so signal) rolls off over the last few mm.
    thick = np.clip(inside_px / (0.08 * bv.a), 0.0, 1.0) ** 0.6
    skin = np.exp(-(((inside_px - 1.5 * s) / (1.0 * s)) ** 2)).astype(np.float32)

    n2 = smooth_noise(rng, shape, 2 * s)
    n8 = smooth_noise(rng, shape, 8 * s)
    n30 = smooth_noise(rng, shape, 30 * s)
    # Pixel-scale texture at every image size: fine trabecular detail shared by LE and DES; it is what
    # pins the mutual-information peak to the exact integer shift.
    # A 4-px texture on top widens the peak's basin so the 5-px coarse grid of the paper lands in it.
    fine = smooth_noise(rng, shape, 1.0) + FINE_MID * smooth_noise(rng, shape, 4.0)
    field = (0.5 * n30 + 0.35 * n8 + 0.15 * n2) / 0.628
    gland = _sigmoid((field - tissue.gland_threshold + 1.5 * (0.5 - rho)) / 0.45).astype(np.float32)

    depth = (wx - bv.cw) * bv.sign
    if bv.pectoral is not None:
        pect = _sigmoid((bv.pectoral_depth(wy) - depth) / (1.5 * s)) * (wy >= bv.top - 20 * s)
        pect = (pect * thick).astype(np.float32)
    else:
        pect = np.zeros(shape, np.float32)

    bg_le = 2.0
    le_tissue = tissue.fat + tissue.gland_amp * gland * (1.0 + 0.2 * n2) + 3.0 * n2
    le = bg_le + thick * (le_tissue - bg_le + FINE_LE * fine) + 18.0 * skin + 45.0 * pect

    # DES = iodine map: enhancement of smooth gland (BPE), residual anatomy, vessels; not a copy of LE.
    bg_des = 20.0
    lowfreq = smooth_noise(rng, shape, 40 * s)
    des_tissue = (tissue.des_base + tissue.bpe * blur(gland, 4 * s) + tissue.des_residual * gland
                  + 6.0 * lowfreq)
    des = bg_des + thick * (des_tissue - bg_des + FINE_DES * fine) + 14.0 * skin - 15.0 * pect
    des += float(rng.uniform(20, 45)) * _vessels(rng, bv, shape) * (thick > 0.2)

    for lesion, lx, ly in lesions:
        _draw_lesion(le, des, lesion, lx, ly, s)
    return le.astype(np.float32), des.astype(np.float32)


def _draw_lesion(le: np.ndarray, des: np.ndarray, les: Lesion, wx: float, wy: float, s: float) -> None:
    """Add one lesion to the LE and DES canvases in place."""
    rng = np.random.default_rng(les.seed + int(wx * 1000) + int(wy))
    reach = les.radius * (2.4 if les.spicules else 1.7) + 3
    y0, y1 = max(0, int(wy - reach)), min(le.shape[0], int(wy + reach) + 1)
    x0, x1 = max(0, int(wx - reach)), min(le.shape[1], int(wx + reach) + 1)
    py, px = np.ogrid[y0:y1, x0:x1]
    ddx, ddy = (px - wx).astype(np.float32), (py - wy).astype(np.float32)
    dist = np.sqrt(ddx**2 + ddy**2)
    d = dist / les.boundary(np.arctan2(ddy, ddx))
    ph, pw = y1 - y0, x1 - x0
    le_p, des_p = le[y0:y1, x0:x1], des[y0:y1, x0:x1]
    e = les.des_enhancement

    if les.kind == "mass":
        body = _sigmoid((1.0 - d) / (0.15 if les.malignant else 0.06))
        le_p += les.le_contrast * body
        if les.pattern == "rim":
            des_p += e * body * (0.45 + 0.55 * np.clip(d, 0, 1) ** 2)
        elif les.pattern == "heterogeneous":
            u = cv2.GaussianBlur(rng.standard_normal((ph, pw)).astype(np.float32), (0, 0), max(1.0, les.radius / 4))
            u = np.clip(0.7 + 0.3 * u / (u.std() + 1e-6), 0.2, 1.0)
            des_p += e * body * u
        else:
            des_p += e * body
        if les.spicules:
            sp = np.zeros((ph, pw), np.uint8)
            for ang in rng.uniform(0, 2 * math.pi, les.spicules):
                r0 = float(les.boundary(np.array([ang]))[0])
                r1 = r0 + les.radius * float(rng.uniform(0.4, 1.2))
                p0 = (wx - x0 + r0 * 0.8 * math.cos(ang), wy - y0 + r0 * 0.8 * math.sin(ang))
                p1 = (wx - x0 + r1 * math.cos(ang), wy - y0 + r1 * math.sin(ang))
                cv2.line(sp, tuple(int(round(v * 16)) for v in p0), tuple(int(round(v * 16)) for v in p1),
                         255, max(1, int(round(s))), cv2.LINE_AA, shift=4)
            spf = cv2.GaussianBlur(sp.astype(np.float32) / 255.0, (0, 0), 0.6 * s)
            le_p += 0.6 * les.le_contrast * spf
            des_p += 0.15 * e * spf
    elif les.kind == "calcification":
        dots = np.zeros((ph, pw), np.float32)
        n = int(rng.integers(6, 20))
        ang = rng.uniform(0, 2 * math.pi, n)
        rad = np.sqrt(rng.uniform(0, 1, n)) * 0.85 * les.boundary(ang)
        for a_, r_ in zip(ang, rad):
            cx, cy = wx + r_ * math.cos(a_), wy + r_ * math.sin(a_)
            sd = float(rng.uniform(0.5, 1.1)) * s
            dots += float(rng.uniform(0.6, 1.0)) * np.exp(-((px - cx) ** 2 + (py - cy) ** 2) / (2 * sd * sd))
        le_p += les.le_contrast * dots
        des_p += 0.1 * les.le_contrast * dots + e * _sigmoid((1.0 - d) / 0.3)
    else:  # non-mass enhancement: patchy, segmental, nearly invisible on LE
        u = cv2.GaussianBlur(rng.standard_normal((ph, pw)).astype(np.float32), (0, 0), max(1.0, les.radius / 5))
        u /= u.std() + 1e-6
        mask = _sigmoid((u + 0.3) / 0.4) * _sigmoid((1.0 - d) / 0.2)
        le_p += les.le_contrast * mask
        des_p += e * mask


def finish(rng: np.random.Generator, img: np.ndarray, gain: float) -> np.ndarray:
    """Add quantum-like (signal-dependent) noise and quantise to uint8."""
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    out = img + gain * np.sqrt(np.maximum(img, 0.0) + 1.0) * noise
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def region(rng: np.random.Generator, les: Lesion, cx: float, cy: float, shape: str, scale: float) -> dict:
    """A hand-drawn-looking VIA region around a lesion centred at image pixel (cx, cy)."""
    r = les.radius
    jx, jy = rng.normal(0, 0.04 * r, 2)
    if shape in ("polygon", "polyline"):
        n = int(rng.integers(12, 25))
        th = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * (2 * math.pi / n)
        rr = les.boundary(th) * 1.12 + 1.5 * scale + rng.normal(0, 0.03 * r, n)
        xs = np.rint(cx + rr * np.cos(th)).astype(int).tolist()
        ys = np.rint(cy + rr * np.sin(th)).astype(int).tolist()
        return {"name": shape, "all_points_x": xs, "all_points_y": ys}
    th = np.linspace(0, 2 * math.pi, 180, endpoint=False)
    rb = les.boundary(th)
    bx, by = rb * np.cos(th), rb * np.sin(th)
    ccx, ccy = cx + (bx.max() + bx.min()) / 2 + jx, cy + (by.max() + by.min()) / 2 + jy
    if shape == "ellipse":
        rx = (bx.max() - bx.min()) / 2 * 1.15 + scale
        ry = (by.max() - by.min()) / 2 * 1.15 + scale
        return {"name": "ellipse", "cx": int(round(ccx)), "cy": int(round(ccy)),
                "rx": round(float(rx), 1), "ry": round(float(ry), 1)}
    if shape == "circle":
        return {"name": "circle", "cx": int(round(ccx)), "cy": int(round(ccy)),
                "r": round(float(rb.max() * 1.1 + scale), 1)}
    return {"name": "point", "cx": int(round(cx + jx)), "cy": int(round(cy + jy))}
