"""A synthetic RGB-D camera with two objects on known paths (node tests).

Two differently textured ellipses cross a textured background on Lissajous paths, each at
a known distance; ``render`` gives the colour frame, both objects' masks, and a registered
depth image (metres) in which the objects stand at their distances in front of a wall.
Either object can be hidden (fully occluded). The intrinsics are those of a pinhole camera
whose optical axis goes through the image centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from calibrated_network import texture

WALL_M = 6.0


@dataclass(frozen=True)
class SceneObject:
    name: str
    axes: tuple[int, int]  # ellipse half-axes, pixels
    distance_m: float
    phase: float  # of the Lissajous path, radians
    seed: int


class TwoObjectScene:
    def __init__(self, width: int = 320, height: int = 240, period: int = 160) -> None:
        self.width, self.height, self.period = width, height, period
        self.fx = self.fy = 0.9 * width
        self.cx, self.cy = (width - 1) / 2, (height - 1) / 2
        self.objects = (
            SceneObject("near", (round(width * 0.07), round(height * 0.13)), 2.0, 0.0, 11),
            SceneObject("far", (round(width * 0.08), round(height * 0.08)), 3.5, np.pi, 23),
        )
        # A muted background and two loud, differently striped objects.
        self._background = (texture(height, width, seed=1, cell=16) // 2 + 64).astype(np.uint8)
        self._textures = {
            o.name: _striped(2 * max(o.axes) + 2, colors, o.seed)
            for o, colors in zip(self.objects, (((30, 60, 230), (240, 240, 40)), ((40, 200, 40), (200, 40, 200))))
        }

    def center(self, name: str, i: int) -> tuple[float, float]:
        obj = next(o for o in self.objects if o.name == name)
        t = 2 * np.pi * i / self.period + obj.phase
        side = -1 if obj.phase == 0 else 1  # one object in each half of the image
        cx = self.width / 2 + side * self.width / 4 + self.width / 8 * np.sin(t)
        cy = self.height / 2 + (self.height / 2 - obj.axes[1] - 6) * 0.6 * np.sin(2 * t)
        return float(cx), float(cy)

    def box(self, name: str, i: int) -> tuple[float, float, float, float]:
        obj = next(o for o in self.objects if o.name == name)
        cx, cy = self.center(name, i)
        a, b = obj.axes
        return cx - a, cy - b, 2.0 * a, 2.0 * b

    def render(self, i: int, hidden: frozenset[str] = frozenset()) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """(BGR frame, {name: bool mask}, depth in metres as float32)."""
        frame = self._background.copy()
        depth = np.full((self.height, self.width), WALL_M, np.float32)
        masks = {}
        for obj in sorted(self.objects, key=lambda o: -o.distance_m):  # far first, near drawn over it
            mask = np.zeros((self.height, self.width), np.uint8)
            if obj.name not in hidden:
                cx, cy = self.center(obj.name, i)
                cv2.ellipse(mask, (round(cx), round(cy)), obj.axes, 0, 0, 360, 1, -1)
                tex = self._textures[obj.name]
                size = tex.shape[0]
                x0, y0 = round(cx) - size // 2, round(cy) - size // 2
                placed = np.zeros_like(frame)
                xs = slice(max(x0, 0), min(x0 + size, self.width))
                ys = slice(max(y0, 0), min(y0 + size, self.height))
                placed[ys, xs] = tex[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
                frame[mask == 1] = placed[mask == 1]
                depth[mask == 1] = obj.distance_m
            masks[obj.name] = mask.astype(bool)
        for name, mask in masks.items():  # what the nearer object covers is not visible
            for other in self.objects:
                if other.name != name and other.distance_m < self._distance(name):
                    masks[name] = mask & ~masks[other.name]
        return frame, masks, depth

    def _distance(self, name: str) -> float:
        return next(o.distance_m for o in self.objects if o.name == name)

    def true_point(self, name: str, i: int) -> np.ndarray:
        """The object's centre in the optical frame (metres)."""
        u, v = self.center(name, i)
        z = self._distance(name)
        return np.array([(u - self.cx) * z / self.fx, (v - self.cy) * z / self.fy, z])


def _striped(size: int, colors: tuple[tuple[int, int, int], tuple[int, int, int]], seed: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = ((xx + (seed % 3 + 1) * yy) // 4) % 2
    image = np.empty((size, size, 3), np.uint8)
    image[stripes == 0], image[stripes == 1] = colors
    noise = np.random.default_rng(seed).integers(0, 15, image.shape, dtype=np.uint8)
    return image + noise
