"""How a taught object's colour looks to a camera, and the lookup table that sorts pixels by it.

A matte surface of colour c shows g * c, g being how brightly it is lit and how long the camera
exposes, clipped at full scale by the sensor, plus a little white where it glints. Clipping moves the
chromaticity: a brightly lit orange face saturates red and looks yellowish while a shaded yellow face
does not, so colours are compared in RGB against everything an object's colour can look like:

    taught pixels -> base_colour (unclipped, full brightness) + colour_samples (the commonest colours)
                  -> shown_colours: clip(g * base + glint) for a range of g, and the samples
    ColourLUT([(shown, tol) per colour class]) -> (64^3) table: the nearest class within its tol
    pixels (N, 3) uint8 -> ColourLUT.classify -> (N,) class or -1       (one table look-up per pixel)

The table is built once per tracker (0.1-0.3 s for six colours on a laptop core); the tracker then
classifies only the pixels that stand above the table, a few thousand a frame, in well under a
millisecond. `nearest_colour_name` uses the same model to name a colour after scene.COLOURS.
"""
from __future__ import annotations

import numpy as np

from recorders.cell.scene import COLOURS

GAINS = np.geomspace(0.12, 2.5, 48)  # how much darker or brighter than its base a face may look
GLINTS = (0.0, 0.08, 0.16)  # white added where a lit surface reflects the light
GLINT_MIN_GAIN = 0.5  # only lit faces glint
CLIPPED = 250  # a channel at or above this is saturated: it says nothing of the hue
MIN_SHOWN_BRIGHTNESS = 0.06  # r + g + b (0..3) below which a colour is too dark to tell
MIN_SPREAD = 24  # max - min channel (0..255) below which a pixel is grey: no hue to match
COLOUR_TOL = 0.07  # RGB distance (0..1 per channel) within which a pixel shows a colour
LUT_BITS = 6  # bits per channel of the look-up table (64 levels, 4 units of 0..255 each)
N_SAMPLES = 24


def base_colour(pixels: np.ndarray, seed: np.ndarray | None = None) -> np.ndarray:
    """(3,) 0..1, max channel 1: the hue of uint8 `pixels` (N, 3), from those with no saturated channel.

    With `seed` (an RGB 0..255 the object is known to show, e.g. under the click), only pixels whose
    hue can look like the seed count: a clipped seed still fixes the ratios of its unclipped channels,
    so the hue of an object's shaded faces is found even when the clicked face is saturated, and a
    touching object of another colour is left out."""
    px = np.asarray(pixels, dtype=float).reshape(-1, 3)
    unclipped = px[(px.max(axis=1) < CLIPPED) & (px.sum(axis=1) > 30)]
    dirs = unclipped / np.maximum(unclipped.max(axis=1, keepdims=True), 1.0)  # (N, 3)
    if seed is not None and len(dirs):
        looks = np.clip(GAINS[None, :, None] * dirs[:, None, :], 0.0, 1.0)  # (N, G, 3)
        miss = np.linalg.norm(looks - np.asarray(seed, dtype=float) / 255.0, axis=2).min(axis=1)  # (N,)
        dirs = dirs[miss < COLOUR_TOL]
    if not len(dirs):
        use = px if seed is None else np.asarray(seed, dtype=float).reshape(1, 3)
        dirs = use / np.maximum(use.max(axis=1, keepdims=True), 1.0)
    base = np.median(dirs, axis=0)
    return base / max(float(base.max()), 1e-6)


def colour_samples(pixels: np.ndarray, n: int = N_SAMPLES) -> tuple[tuple[int, int, int], ...]:
    """The `n` commonest colours of uint8 `pixels` (N, 3), quantised to 8 levels of 0..255."""
    q = (np.asarray(pixels, dtype=np.int32).reshape(-1, 3) // 8) * 8 + 4
    colours, counts = np.unique(q, axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:n]
    return tuple(tuple(int(v) for v in colours[i]) for i in order)


def shown_colours(base: np.ndarray, samples=()) -> np.ndarray:
    """(P, 3) 0..1: what a surface of colour `base` looks like lit more or less brightly, clipped, with
    a glint; and the `samples` (0..255) seen of it."""
    base = np.asarray(base, dtype=float)
    shown = np.concatenate([np.clip(GAINS[GAINS >= (GLINT_MIN_GAIN if glint else 0.0), None] * base[None] + glint,
                                    0.0, 1.0) for glint in GLINTS])
    spread = shown.max(axis=1) - shown.min(axis=1)
    shown = shown[(shown.sum(axis=1) >= MIN_SHOWN_BRIGHTNESS) & (spread >= MIN_SPREAD / 255.0)]
    if len(samples):
        shown = np.concatenate([shown, np.asarray(samples, dtype=float).reshape(-1, 3) / 255.0])
    return shown


def colour_distance(pixels: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """(N,) RGB distance (0..1) of uint8 `pixels` (N, 3) to the nearest of the `shown` colours (P, 3)."""
    px = np.asarray(pixels, dtype=np.float32).reshape(-1, 3) / 255.0
    d2 = ((px[:, None, :] - shown[None, :, :].astype(np.float32)) ** 2).sum(axis=2)  # (N, P)
    return np.sqrt(d2.min(axis=1))


def nearest_colour_name(pixels) -> str:
    """The name of the scene colour (recorders/cell/scene.py COLOURS) `pixels` show ((N, 3) uint8, or
    one colour in 0..1): the one whose shown colours lie nearest on average."""
    px = np.asarray(pixels, dtype=float).reshape(-1, 3)
    px = px if px.max() > 1.0 else px * 255.0
    if len(px) > 256:
        px = px[np.linspace(0, len(px) - 1, 256).astype(int)]
    errs = {name: float(colour_distance(px, shown_colours(np.asarray(c) / max(c))).mean())
            for name, c in COLOURS.items()}
    return min(errs, key=errs.get)


class ColourLUT:
    """A 64^3 table from a pixel's RGB to the colour class it shows (-1: none)."""

    def __init__(self, classes: list[tuple[np.ndarray, float]]):
        """`classes`: per colour class, its shown colours (P, 3) in 0..1 and its tolerance."""
        levels = 1 << LUT_BITS
        step = 256 // levels
        best = np.full(levels ** 3, np.inf, dtype=np.float32)
        self.table = np.full(levels ** 3, -1, dtype=np.int16)
        for k, (shown, tol) in enumerate(classes):
            r = int(np.ceil(tol * 255 / step))
            grid = np.arange(-r, r + 1)
            offsets = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)  # (O, 3)
            cells = np.round(shown * 255 / step - 0.5).astype(np.int32)  # (P, 3) the cell each colour is in
            near = cells[:, None, :] + offsets[None]  # (P, O, 3)
            inside = np.all((near >= 0) & (near < levels), axis=2)
            centre = (near + 0.5) * step / 255.0
            dist = np.linalg.norm(centre - shown[:, None, :], axis=2).astype(np.float32)  # (P, O)
            keep = inside & (dist < tol)
            flat = (near[..., 0] * levels + near[..., 1]) * levels + near[..., 2]
            mine = np.full(levels ** 3, np.inf, dtype=np.float32)
            np.minimum.at(mine, flat[keep], dist[keep])
            better = mine < best
            best[better] = mine[better]
            self.table[better] = k

    def classify(self, pixels: np.ndarray) -> np.ndarray:
        """(N,) int16 colour class of uint8 `pixels` (N, 3), -1 where none (or grey)."""
        p = pixels.astype(np.int32)
        q = p >> (8 - LUT_BITS)
        cls = self.table[(q[:, 0] << (2 * LUT_BITS)) | (q[:, 1] << LUT_BITS) | q[:, 2]]
        return np.where(p.max(axis=1) - p.min(axis=1) >= MIN_SPREAD, cls, -1).astype(np.int16)
