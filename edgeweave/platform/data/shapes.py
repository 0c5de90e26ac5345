"""Colour images of two-part compositions drawn from a seed: data on which a model's capacity shows.

A class is two textured shapes in one arrangement; each sample moves, scales, turns and recolours it and adds
parts of random kinds, so no pixel, colour or template tells the class, only mid-level features (shape,
texture, where one part is from the other) bound together.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
from pydantic import Field

from edgeweave.platform.core.registry import Params
from edgeweave.platform.core.seeding import SERVER, Stream, rng
from edgeweave.platform.data.base import DATASETS, ArrayData, normalise_in_place

SHAPES = ("disc", "ring", "square", "frame", "triangle", "bar", "cross", "half_disc")
TEXTURES = ("plain", "stripes", "checker", "dots")
ARRANGEMENTS = ("beside", "above", "diagonal", "inside")
FACTORS = (len(SHAPES), len(TEXTURES), len(SHAPES), len(TEXTURES), len(ARRANGEMENTS))
COMPOSITIONS = int(np.prod(FACTORS))  # 4,096 classes at most
CHUNK = 256  # samples rendered at once: a chunk's planes stay in cache


class ShapesParams(Params):
    num_classes: int = Field(10, ge=2, le=COMPOSITIONS)  # classes, distinct compositions drawn from the seed
    train_samples: int = Field(10000, ge=2)  # training images, the classes balanced (to within one)
    test_samples: int = Field(2000, ge=1)  # test images, the classes balanced (to within one)
    image_size: int = Field(32, ge=8)  # side of the square colour images, in pixels
    distractors: int = Field(2, ge=0, le=4)  # parts of random kinds under and around each sample's pair
    noise: float = Field(0.04, ge=0)  # pixel noise std, on colours in [0, 1]
    augment: bool = False  # random crop (zero padding 4) and horizontal flip of every training mini-batch


def _distance(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside, roughly) to one of SHAPES of radius about 1; all of area about 2.2."""
    au, av = np.abs(u), np.abs(v)
    if shape == 0:  # disc
        return np.sqrt(u * u + v * v) - 0.85
    if shape == 1:  # ring
        return np.abs(np.sqrt(u * u + v * v) - 0.7) - 0.25
    if shape == 2:  # square
        return np.maximum(au, av) - 0.75
    if shape == 3:  # frame
        return np.abs(np.maximum(au, av) - 0.72) - 0.2
    if shape == 4:  # triangle
        return np.maximum(v, 0.866 * au - 0.5 * v) - 0.65
    if shape == 5:  # bar
        return np.maximum(au - 1.15, av - 0.45)
    if shape == 6:  # cross
        return np.minimum(np.maximum(au - 1.05, av - 0.3), np.maximum(au - 0.3, av - 1.05))
    w = v - 0.45  # half disc
    return np.maximum(np.sqrt(u * u + w * w) - 1.2, w)


def _texture(texture: int, a: np.ndarray, b: np.ndarray) -> Optional[np.ndarray]:
    """Weight of the part's first colour against its second at phases (a, b) in its frame; None: plain."""
    if texture == 0:
        return None
    if texture == 1:  # stripes
        t = np.sin(a)
    elif texture == 2:  # checker
        t = np.sin(a) * np.sin(b)
        t *= 2
    else:  # dots
        t = np.cos(a) + np.cos(b)
        t -= 0.8
    t *= 1.5
    t += 0.5
    return np.clip(t, 0, 1, out=t)


def _distinct(g: np.random.Generator, *others: np.ndarray, gap: float = 0.45) -> np.ndarray:
    """(n, 3) random colours at least `gap` (RGB distance) from each of `others` at the same row: a contrast
    of hue, of lightness or both, so that neither a colour nor a brightness stands for a part."""
    fg = g.uniform(0, 1, others[0].shape).astype(np.float32)
    bad = np.ones(len(fg), dtype=bool)
    while True:
        bad[:] = False
        for o in others:
            bad |= ((fg - o) ** 2).sum(axis=1) < gap**2
        if not bad.any():
            return fg
        fg[bad] = g.uniform(0, 1, (int(bad.sum()), 3))


def _by_kind(
    kind: Union[np.ndarray, int], fn: Callable[..., Optional[np.ndarray]], *planes: np.ndarray
) -> Optional[np.ndarray]:
    """fn(k, *planes) where every row has kind k, or row groups of each kind when `kind` differs by row."""
    if np.ndim(kind) == 0:
        return fn(int(kind), *planes)
    out = np.ones(planes[0].shape, dtype=np.float32)
    for k in np.unique(kind):
        rows = np.flatnonzero(kind == k)
        got = fn(int(k), *(p[rows] for p in planes))
        if got is not None:
            out[rows] = got
    return out


class _Renderer:
    """Draws samples of one class at a time: the class fixes the pair's kinds, the sample draws everything else.

    Every pixel is a mix of a few colours per sample (two for the background, two per part, grey noise): the
    mixing weights are computed as planes, and one batched matrix product colours them.
    """

    def __init__(self, size: int, noise: float, distractors: int) -> None:
        self.size, self.noise, self.distractors = size, noise, distractors
        grid = np.arange(size, dtype=np.float32) + 0.5 - size / 2
        self.x, self.y = grid[None, None, :], grid[None, :, None]

    def _part(
        self,
        shape: Union[np.ndarray, int],
        texture: Union[np.ndarray, int],
        cx: np.ndarray,
        cy: np.ndarray,
        s: np.ndarray,
        g: np.random.Generator,
    ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Coverage and texture weight planes (n, size, size) of one part centred at (cx, cy), radius s pixels."""
        n = len(cx)
        col = lambda a: np.asarray(a, dtype=np.float32)[:, None, None]  # noqa: E731
        theta = g.uniform(-np.pi, np.pi, n)  # any way round
        k = 2 * np.pi / g.uniform(3.4, 4.2, n)  # texture's angular frequency, radians per pixel
        phase = g.uniform(0, 2 * np.pi, (2, n))
        cos, sin = np.cos(theta), np.sin(theta)
        dx, dy = self.x - col(cx), self.y - col(cy)
        u = dx * col(cos / s) + dy * col(sin / s)  # the part's frame, in radii
        v = dy * col(cos / s) - dx * col(sin / s)
        d = _by_kind(shape, _distance, u, v)
        assert d is not None  # _distance always returns an array
        d *= col(-s)
        d += 0.5
        alpha = np.clip(d, 0, 1, out=d)  # anti-aliased coverage: distance in pixels, within half a pixel
        if np.ndim(texture) == 0 and texture == 0:
            return alpha, None
        a = dx * col(cos * k) + (dy * col(sin * k) + col(phase[0]))
        b = dy * col(cos * k) - (dx * col(sin * k) - col(phase[1]))
        return alpha, _by_kind(texture, _texture, a, b)

    def render(self, kinds: np.ndarray, n: int, g: np.random.Generator) -> np.ndarray:
        """n images (n, 3, size, size) of the composition `kinds` (shape, texture, shape, texture, arrangement)."""
        shape_a, tex_a, shape_b, tex_b, arrangement = (int(k) for k in kinds)
        size, parts = self.size, []
        base = 0.16 * size
        for _ in range(self.distractors):  # anywhere, under the pair
            cx, cy = g.uniform(-0.3, 0.3, (2, n)) * size
            parts.append(
                self._part(
                    g.integers(0, len(SHAPES), n),
                    g.integers(0, len(TEXTURES), n),
                    cx,
                    cy,
                    base * g.uniform(0.8, 1.2, n),
                    g,
                )
            )
        cx, cy = g.uniform(-0.12, 0.12, (2, n)) * size
        if arrangement == 3:  # inside: B small, over the middle of A
            sa = base * 1.55 * g.uniform(0.9, 1.1, n)
            sb = 0.5 * sa
            ox, oy = g.uniform(-0.1, 0.1, (2, n)) * sa
            centres = (cx, cy), (cx + ox, cy + oy)
        else:
            sa, sb = base * g.uniform(0.8, 1.2, (2, n))
            angle = np.deg2rad((0, 90, 45)[arrangement] + g.uniform(-15, 15, n))
            half = 0.5 * (1.15 * (sa + sb) + 1.0)
            ux, uy = np.cos(angle) * half, np.sin(angle) * half
            centres = (cx - ux, cy - uy), (cx + ux, cy + uy)
        parts.append(self._part(shape_a, tex_a, *centres[0], sa, g))
        parts.append(self._part(shape_b, tex_b, *centres[1], sb, g))

        m = len(parts)
        colours = np.empty((n, 3, 3 + 2 * m), dtype=np.float32)
        colours[:, :, :2] = g.uniform(0, 1, (n, 3, 2))  # the background's gradient, end to end
        background = colours[:, :, :2].mean(axis=2)
        under = background
        for j in range(m):  # each part stands out from the background, and B from A when inside it
            fg = _distinct(g, background if j < m - 1 or arrangement != 3 else under)
            colours[:, :, 2 + 2 * j] = _distinct(g, fg, background)  # the texture's second colour
            colours[:, :, 3 + 2 * j] = under = fg
        colours[:, :, -1] = self.noise * np.sqrt(12)  # uniform noise of std `noise`, the same in each channel

        planes = np.empty((n, 3 + 2 * m, size, size), dtype=np.float32)
        keep = np.ones((n, size, size), dtype=np.float32)  # how much of the layers below shows
        for j in reversed(range(m)):  # the top part first
            alpha, weight = parts[j]
            np.multiply(alpha, keep, out=planes[:, 3 + 2 * j])
            keep -= planes[:, 3 + 2 * j]
            if weight is None:
                planes[:, 2 + 2 * j] = 0
            else:
                planes[:, 2 + 2 * j] = planes[:, 3 + 2 * j]
                planes[:, 3 + 2 * j] *= weight
                planes[:, 2 + 2 * j] -= planes[:, 3 + 2 * j]
        phi = g.uniform(0, 2 * np.pi, n)
        ramp = self.x * (np.cos(phi) / size).astype(np.float32)[:, None, None] + (
            self.y * (np.sin(phi) / size).astype(np.float32)[:, None, None] + 0.5
        )
        np.multiply(keep, np.clip(ramp, 0, 1, out=ramp), out=planes[:, 1])
        np.subtract(keep, planes[:, 1], out=planes[:, 0])
        planes[:, -1] = g.random((n, size, size), dtype=np.float32)
        planes[:, -1] -= 0.5
        return (colours @ planes.reshape(n, planes.shape[1], -1)).reshape(n, 3, size, size)


@DATASETS.register("shapes", ShapesParams)
class Shapes:
    """Each class is two of SHAPES, each in one of TEXTURES, in one of ARRANGEMENTS, all drawn from the seed."""

    def __init__(self, params: ShapesParams) -> None:
        self.params = params

    def classes(self, g: np.random.Generator) -> np.ndarray:
        """(num_classes, 5) distinct compositions: shape A, texture A, shape B, texture B, arrangement."""
        codes = g.choice(COMPOSITIONS, size=self.params.num_classes, replace=False)
        return np.stack(np.unravel_index(codes, FACTORS), axis=1)

    def _draw(self, kinds: np.ndarray, n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        y = g.permutation(np.arange(n) % p.num_classes).astype(np.int64)  # balanced
        x = np.empty((n, 3, p.image_size, p.image_size), dtype=np.float32)
        x.fill(0)  # the memory taken in order: rows written in random order would take it five times slower
        renderer = _Renderer(p.image_size, p.noise, p.distractors)
        order = np.argsort(y, kind="stable")
        bounds = np.searchsorted(y[order], np.arange(p.num_classes + 1))
        for c in range(p.num_classes):
            rows = order[bounds[c] : bounds[c + 1]]
            for i in range(0, len(rows), CHUNK):
                x[rows[i : i + CHUNK]] = renderer.render(kinds[c], len(rows[i : i + CHUNK]), g)
        return x, y

    def load(self, seed: int) -> ArrayData:
        g = rng(seed, -1, SERVER, Stream.SHAPES_DATA)
        kinds = self.classes(g)
        x_train, y_train = self._draw(kinds, self.params.train_samples, g)
        x_test, y_test = self._draw(kinds, self.params.test_samples, g)
        x_train, x_test = normalise_in_place(x_train, x_test)  # `normalise`, without float64 copies
        return ArrayData(x_train, y_train, x_test, y_test, self.params.num_classes, augment=self.params.augment)
