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

from vdes_tune.phantom.signal import Lesion

LESION_KINDS = ("mass", "calcification", "non_mass")
REGION_SHAPES = ("polygon", "ellipse", "circle", "polyline", "point")
# Fine texture shared by LE and DES: (1-px grain, 4-px mottle) amplitudes. The grain pins the mutual-
# information peak to the exact shift; the mottle widens its basin for the 5-px coarse grid. On LE the
# mottle is kept low: it is the clutter a lesion must stand out from.
FINE_LE, FINE_DES = (6.0, 11.0), (6.0, 15.0)


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
    foci: int  # background-enhancement foci per view: enhance on DES like small lesions, invisible on LE


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
    # Dense tissue still masks lesions somewhat (as in real LE), but a mass stands out of it.
    amp = {"A": 12.0, "B": 18.0, "C": 24.0, "D": 30.0}[density]
    residual = float(rng.uniform(0.12, 0.3) * amp * rng.choice([-1.0, 1.0]))
    bpe = float(rng.uniform(8, 35))
    return Tissue(density=density, gland_threshold=thr, fat=float(rng.uniform(70, 110)),
                  gland_amp=float(amp * rng.uniform(0.85, 1.15)), des_base=float(rng.uniform(90, 110)),
                  bpe=bpe, des_residual=residual, foci=int(rng.poisson(bpe / 2.5)))


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
    grain, mottle = smooth_noise(rng, shape, 1.0), smooth_noise(rng, shape, 4.0)
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
    le = bg_le + thick * (le_tissue - bg_le + FINE_LE[0] * grain + FINE_LE[1] * mottle) + 18.0 * skin + 45.0 * pect

    # DES = iodine map: enhancement of smooth gland (BPE), residual anatomy, vessels; not a copy of LE.
    bg_des = 20.0
    lowfreq = smooth_noise(rng, shape, 40 * s)
    des_tissue = (tissue.des_base + tissue.bpe * blur(gland, 4 * s) + tissue.des_residual * gland
                  + 6.0 * lowfreq)
    des = bg_des + thick * (des_tissue - bg_des + FINE_DES[0] * grain + FINE_DES[1] * mottle) + 14.0 * skin - 15.0 * pect
    des += float(rng.uniform(20, 45)) * _vessels(rng, bv, shape) * (thick > 0.2)

    _draw_foci(rng, des, gland * (thick > 0.5), tissue.foci, s)
    for lesion, lx, ly in lesions:
        _draw_lesion(le, des, lesion, lx, ly, s)
    return le.astype(np.float32), des.astype(np.float32)


def _draw_foci(rng: np.random.Generator, des: np.ndarray, gland: np.ndarray, count: int, s: float) -> None:
    """Background parenchymal enhancement foci: small enhancing spots in the gland, on the DES only."""
    ys, xs = np.nonzero(gland > 0.5)
    if len(ys) == 0:
        return
    for i in rng.choice(len(ys), size=count):
        cy, cx, r = float(ys[i]), float(xs[i]), float(rng.uniform(2.0, 5.0)) * s
        reach = int(3 * r) + 2
        y0, x0 = max(0, int(cy) - reach), max(0, int(cx) - reach)
        py, px = np.ogrid[y0:min(des.shape[0], int(cy) + reach + 1), x0:min(des.shape[1], int(cx) + reach + 1)]
        d = np.sqrt((px - cx) ** 2 + (py - cy) ** 2) / r
        des[py, px] += float(rng.uniform(15, 45)) * _sigmoid((1.0 - d) / 0.25)


def _draw_lesion(le: np.ndarray, des: np.ndarray, les: Lesion, wx: float, wy: float, s: float) -> None:
    """Add one lesion to the LE and DES canvases in place."""
    rng = np.random.default_rng(les.seed + int(wx * 1000) + int(wy))
    reach = les.radius * (2.4 if les.spicules else 1.8) + 3
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
        body = _sigmoid((1.0 - d) / les.margin_blur)
        le_p += les.le_contrast * body
        des_p += e * body * _pattern(rng, les, d, (ph, pw))
        if les.spicules:
            spf = _spicules(rng, les, wx - x0, wy - y0, (ph, pw), s)
            le_p += 0.9 * les.le_contrast * spf
            des_p += 0.15 * e * spf
    elif les.kind == "calcification":
        dots = _calcifications(rng, les, wx, wy, px, py, (ph, pw), s)
        le_p += les.le_contrast * dots
        des_p += 0.1 * les.le_contrast * dots + e * _sigmoid((1.0 - d) / 0.3)
    else:  # non-mass enhancement: patchy, segmental; on LE a faint asymmetry at most
        u = cv2.GaussianBlur(rng.standard_normal((ph, pw)).astype(np.float32), (0, 0), max(1.0, les.radius / 5))
        u /= u.std() + 1e-6
        mask = _sigmoid((u + 0.3) / 0.4) * _sigmoid((1.0 - d) / 0.2)
        le_p += les.le_contrast * blur(mask.astype(np.float32), 1.5 * s)
        des_p += e * mask


def _pattern(rng: np.random.Generator, les: Lesion, d: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Enhancement pattern inside a mass: rim, heterogeneous or homogeneous (1)."""
    if les.pattern == "rim":
        return 0.45 + 0.55 * np.clip(d, 0, 1) ** 2
    if les.pattern == "heterogeneous":
        u = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), max(1.0, les.radius / 4))
        return np.clip(0.7 + 0.3 * u / (u.std() + 1e-6), 0.2, 1.0)
    return np.ones(shape, np.float32)


def _spicules(rng: np.random.Generator, les: Lesion, cx: float, cy: float, shape: tuple[int, int],
              s: float) -> np.ndarray:
    """Straight radiating lines from a mass's margin, [0, 1]; wider and longer for more suspicious looks."""
    sp = np.zeros(shape, np.uint8)
    width = max(1, int(round((1.0 + les.look) * s)))
    for ang in rng.uniform(0, 2 * math.pi, les.spicules):
        r0 = float(les.boundary(np.array([ang]))[0])
        r1 = r0 + les.radius * float(rng.uniform(0.5, 1.3))
        p0 = (cx + r0 * 0.8 * math.cos(ang), cy + r0 * 0.8 * math.sin(ang))
        p1 = (cx + r1 * math.cos(ang), cy + r1 * math.sin(ang))
        cv2.line(sp, tuple(int(round(v * 16)) for v in p0), tuple(int(round(v * 16)) for v in p1),
                 255, width, cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(sp.astype(np.float32) / 255.0, (0, 0), 0.6 * s)


def _calcifications(rng: np.random.Generator, les: Lesion, wx: float, wy: float, px: np.ndarray, py: np.ndarray,
                    shape: tuple[int, int], s: float) -> np.ndarray:
    """A cluster of calcifications, [0, ~1]: fine linear / branching segments along a tight, elongated
    cluster for suspicious looks; round, coarser dots scattered over a wider region for benign ones."""
    dots = np.zeros(shape, np.float32)
    lines = np.zeros(shape, np.uint8)
    x0, y0 = int(px[0, 0]), int(py[0, 0])
    axis = les.angle
    for _ in range(max(3, les.calc_count)):
        # Suspicious clusters lie along an axis (linear / segmental distribution).
        along = float(rng.normal(0, 0.6)) * les.radius
        across = float(rng.normal(0, 0.6)) * les.radius * les.calc_spread
        cx = wx + along * math.cos(axis) - across * math.sin(axis)
        cy = wy + along * math.sin(axis) + across * math.cos(axis)
        if rng.random() < les.calc_linear:
            ang = axis + float(rng.normal(0, 0.6))
            half = float(rng.uniform(1.5, 3.5)) * s
            p0 = (cx - x0 - half * math.cos(ang), cy - y0 - half * math.sin(ang))
            p1 = (cx - x0 + half * math.cos(ang), cy - y0 + half * math.sin(ang))
            cv2.line(lines, tuple(int(round(v * 16)) for v in p0), tuple(int(round(v * 16)) for v in p1),
                     int(rng.integers(150, 256)), 1, cv2.LINE_AA, shift=4)
        else:
            sd = float(rng.uniform(0.6, 1.3)) * s * (1.3 - 0.5 * les.look)
            dots += float(rng.uniform(0.6, 1.0)) * np.exp(-((px - cx) ** 2 + (py - cy) ** 2) / (2 * sd * sd))
    dots += cv2.GaussianBlur(lines.astype(np.float32) / 255.0, (0, 0), 0.5 * s)
    return np.clip(dots, 0.0, 1.2)


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
