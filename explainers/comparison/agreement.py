"""How much methods agree: IoU and Dice between their masks, pair by pair."""

from __future__ import annotations

from itertools import combinations

import numpy as np


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """|a and b| / |a or b|; two empty masks agree fully (1.0)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """2|a and b| / (|a| + |b|); two empty masks agree fully (1.0)."""
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)


def pairwise(masks: dict[str, np.ndarray], metric=iou) -> dict[str, float]:
    """{'a|b': metric} for every unordered pair, in the order the methods were given."""
    return {f"{a}|{b}": metric(masks[a], masks[b]) for a, b in combinations(masks, 2)}


def matrix(masks: dict[str, np.ndarray], metric=iou) -> tuple[list[str], np.ndarray]:
    """Square symmetric matrix of the metric (1 on the diagonal) with its row/column names."""
    names = list(masks)
    values = np.ones((len(names), len(names)))
    for i, j in combinations(range(len(names)), 2):
        values[i, j] = values[j, i] = metric(masks[names[i]], masks[names[j]])
    return names, values
