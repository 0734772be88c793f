"""LED: OpenCV non-local-means denoising of the LE, computed on a crop plus the margin it depends on."""

from __future__ import annotations

import cv2
import numpy as np


def nlm_margin(template: int, search: int) -> int:
    """Pixels beyond a crop that NL-means reads: half the search window plus half the template."""
    return search // 2 + template // 2


def denoise(image: np.ndarray, h: float = 10.0, template: int = 7, search: int = 21) -> np.ndarray:
    """`cv2.fastNlMeansDenoising` with the paper's parameters as defaults."""
    return cv2.fastNlMeansDenoising(np.ascontiguousarray(image), None, h=h, templateWindowSize=template,
                                    searchWindowSize=search)


def denoise_crop(image: np.ndarray, x0: int, y0: int, size: int, h: float = 10.0, template: int = 7,
                 search: int = 21) -> np.ndarray:
    """LED inside one crop, equal to denoising the whole image and then cropping."""
    # Denoising only the crop would change its border pixels; the margin window does not, and costs a
    # fraction of the whole image. The window is clipped at the image edge, where OpenCV's own
    # border padding then sees exactly what it sees on the whole image.
    m = nlm_margin(template, search)
    hgt, wid = image.shape
    wy0, wx0 = max(0, y0 - m), max(0, x0 - m)
    wy1, wx1 = min(hgt, y0 + size + m), min(wid, x0 + size + m)
    window = denoise(image[wy0:wy1, wx0:wx1], h, template, search)
    return window[y0 - wy0:y0 - wy0 + size, x0 - wx0:x0 - wx0 + size]
