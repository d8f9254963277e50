"""Shared fixtures: a random-weights ResNet18 (loaded once), the planted model, the preset folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from planted import planted_model
from reference import trainable_copy


@pytest.fixture(scope="session")
def resnet18_random():
    from explainers.engine.models import load_model

    return load_model("resnet18", "random", "cpu")


@pytest.fixture(scope="session")
def reference_module(resnet18_random):
    """An independent copy of the same network with trainable parameters, as grad-cam's users hold it."""
    return trainable_copy(resnet18_random.module)


@pytest.fixture(scope="session")
def planted():
    return planted_model()


@pytest.fixture(scope="session")
def photo_crop(resnet18_random):
    """A natural-looking test crop: smooth colour gradients plus blobs (no external image needed)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:224, 0:224] / 223.0
    image = np.stack([x, y, 1 - x * y], axis=2)
    for _ in range(6):
        cy, cx, r = rng.uniform(30, 194), rng.uniform(30, 194), rng.uniform(12, 40)
        image[(np.mgrid[0:224, 0:224][0] - cy) ** 2 + (np.mgrid[0:224, 0:224][1] - cx) ** 2 < r**2] = rng.uniform(
            0, 1, 3
        )
    return (image * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    folder = os.environ.get("XAI_LENS_EXAMPLES_DIR")
    if not folder:
        pytest.skip("XAI_LENS_EXAMPLES_DIR is not set: the ten preset images are not available (CI sets it)")
    return Path(folder)


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium per test module (tests/browser.py)."""
    from browser import launched_chromium

    with launched_chromium() as browser:
        yield browser
