"""Generated probe images (coloured shapes on grey), for offline demos, the benchmark and tests.

Shapes of one size index have the same area whatever their kind, so "most red pixels" never
means "always the square": a neuron that tracks colour sees every shape among its top images.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {"red": (220, 30, 30), "green": (30, 190, 40), "blue": (30, 60, 220)}
SHAPES = ("circle", "square", "triangle")
BACKGROUND = (128, 128, 128)


def shape_mask(shape: str, radius: float, size: int) -> np.ndarray:
    """Boolean size x size mask of a centred shape whose area is pi * radius^2."""
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    c = size / 2
    if shape == "circle":
        draw.ellipse([c - radius, c - radius, c + radius, c + radius], fill=1)
    elif shape == "square":
        half = radius * math.sqrt(math.pi) / 2
        draw.rectangle([c - half, c - half, c + half, c + half], fill=1)
    elif shape == "triangle":
        side = math.sqrt(4 * math.pi * radius**2 / math.sqrt(3))
        height = side * math.sqrt(3) / 2
        draw.polygon([(c - side / 2, c + height / 3), (c + side / 2, c + height / 3), (c, c - 2 * height / 3)], fill=1)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.asarray(image, dtype=bool)


def shape_image(colour: str, shape: str, radius: float, size: int) -> Image.Image:
    pixels = np.empty((size, size, 3), dtype=np.uint8)
    pixels[:] = BACKGROUND
    pixels[shape_mask(shape, radius, size)] = COLOURS[colour]
    return Image.fromarray(pixels)


def shape_radii(size: int, count: int) -> list[float]:
    """`count` radii growing slowly (largest area about 1.5x the smallest), filling up to ~60% of the side."""
    largest = 0.3 * size
    return [largest * (0.8 + 0.2 * i / max(1, count - 1)) for i in range(count)]


def write_shape_probe_set(directory: Path, size: int = 64, sizes_per_shape: int = 4) -> list[Path]:
    """Write colour x shape x size PNGs named `<colour>_<shape>_<k>.png`; returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for colour in COLOURS:
        for shape in SHAPES:
            for k, radius in enumerate(shape_radii(size, sizes_per_shape)):
                path = directory / f"{colour}_{shape}_{k}.png"
                shape_image(colour, shape, radius, size).save(path)
                paths.append(path)
    return paths


def write_noise_probe_set(directory: Path, count: int, size: int = 256, seed: int = 0) -> list[Path]:
    """`count` smooth random-colour JPEGs (the benchmark's stand-in for 1000 photos: same pixel count)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        path = directory / f"noise_{i:04d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths
