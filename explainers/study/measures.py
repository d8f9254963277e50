"""Image measures the study correlates agreement with: how cluttered, how colourful, how big the object.

"Simple" and "complex" are not labels a data set carries, so each is measured on the crop the model
saw: edge density (the ten-preset report's own measure, so the two reports speak of the same thing),
colour entropy, and two readings of the object's size from the Grad-CAM map.
"""

from __future__ import annotations

import numpy as np

from explainers.comparison.masks import top_fraction_mask
from explainers.outputs.report import edge_density

COLOUR_LEVELS = 8  # per channel: 8*8*8 = 512 colour bins, so entropy runs from 0 to 9 bits
TOP_FRACTION = 0.10  # the mask rule the study's IoU uses by default
HALF_MAX = 0.5

# column name -> what it measures (the report's axis labels and its glossary)
MEASURES: dict[str, str] = {
    "edge_density": "share of Canny edge pixels in the crop (clutter)",
    "colour_entropy": "Shannon entropy of the crop's colours, 512 bins (bits)",
    "object_area": "share of the crop where Grad-CAM is at least half its maximum (object-area proxy)",
    "gradcam_top10_mass": "share of Grad-CAM's total weight inside its top-10% mask (how concentrated the evidence is)",
}


def colour_entropy(crop: np.ndarray) -> float:
    """Entropy in bits of the crop's colour histogram (each channel quantised to COLOUR_LEVELS levels)."""
    levels = (crop.astype(np.uint16) * COLOUR_LEVELS) // 256
    bins = (levels[..., 0] * COLOUR_LEVELS + levels[..., 1]) * COLOUR_LEVELS + levels[..., 2]
    counts = np.bincount(bins.ravel(), minlength=COLOUR_LEVELS**3)
    shares = counts[counts > 0] / counts.sum()
    return float(-(shares * np.log2(shares)).sum())


def object_area(gradcam_map: np.ndarray) -> float:
    """Share of pixels at or above half of the map's maximum: a large, spread object covers more.

    (The share of the top-10% mask itself would be 0.10 on every image by construction, so the
    area is read at half maximum, and the top-10% mask is used for concentration instead.)
    """
    peak = float(gradcam_map.max())
    return 0.0 if peak <= 0 else float((gradcam_map >= HALF_MAX * peak).mean())


def top_mass_share(gradcam_map: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Share of the map's total weight inside its top-`fraction` mask: near 1 a compact object, near 0.1 none."""
    total = float(gradcam_map.sum())
    if total <= 0:
        return float("nan")
    return float(gradcam_map[top_fraction_mask(gradcam_map, fraction)].sum() / total)


def image_measures(crop: np.ndarray, gradcam_map: np.ndarray) -> dict[str, float]:
    """Every measure in MEASURES for one crop and its Grad-CAM map."""
    return {
        "edge_density": edge_density(crop),
        "colour_entropy": colour_entropy(crop),
        "object_area": object_area(gradcam_map),
        "gradcam_top10_mass": top_mass_share(gradcam_map),
    }
