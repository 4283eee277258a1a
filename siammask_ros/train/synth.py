"""Template/search pairs synthesised from real imagery, with exact masks and boxes.

A pair is made directly in crop space, as the tracker sees it: the template is the 127x127
exemplar crop of an object pasted over a real background, the search is a 255x255 crop at
the same image scale of the same scene a moment later, with the object moved, rescaled,
rotated and re-lit; sometimes with a partial occluder on top, a look-alike copy of the
object elsewhere, motion blur or padding where the crop would leave the frame. Objects
are real image regions cut out by a random blob, polygon or ellipse mask, or such shapes
filled with a synthetic texture.

Every random choice comes from the ``numpy.random.Generator`` passed in, so a pair is a
pure function of its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .sources import ImagePool

__all__ = [
    "PairSample",
    "SynthConfig",
    "SynthObject",
    "look_alike",
    "make_object",
    "paste",
    "random_shape_mask",
    "synthesise_pair",
]


@dataclass(frozen=True)
class SynthConfig:
    """Ranges of the random pair generator (crop pixels unless stated)."""

    exemplar_size: int = 127
    instance_size: int = 255
    context_amount: float = 0.5
    max_shift: float = 56.0  # target centre offset from the search centre, per axis
    log_scale_jitter: float = 0.25  # search size / template size, log-uniform +-
    log_aspect_jitter: float = 0.2
    max_rotation_deg: float = 20.0
    p_negative: float = 0.15  # search shows a different object: every anchor negative
    p_occluder: float = 0.25
    p_distractor: float = 0.3
    p_textured: float = 0.3  # synthetic texture instead of a real cut-out
    p_blur: float = 0.25
    p_gray: float = 0.05
    p_border: float = 0.1  # mean-colour padding, as when a crop leaves the frame
    # Another object touching the target from behind in template and search (a hand holding
    # a cup, a person beside a bike): the mask must stop at the target's edge.
    p_neighbour: float = 0.0
    # Of the negative pairs, the share whose search shows a look-alike of the template's
    # object instead of an unrelated one: confidence must stay low on a similar wrong object.
    p_hard_negative: float = 0.0

    def __post_init__(self) -> None:
        if (self.instance_size - self.exemplar_size) % 2:
            raise ValueError(
                f"instance_size - exemplar_size must be even, got {self.instance_size} - {self.exemplar_size}"
            )
        for name in ("p_negative", "p_occluder", "p_distractor", "p_textured", "p_blur", "p_gray", "p_border",
                     "p_neighbour", "p_hard_negative"):  # fmt: skip
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability, got {value}")


@dataclass(frozen=True)
class SynthObject:
    """An object sprite: BGR pixels and a float alpha mask of the same size (0..1)."""

    pixels: np.ndarray
    alpha: np.ndarray


@dataclass(frozen=True)
class PairSample:
    """One training pair.

    Attributes:
        template: (127, 127, 3) uint8 BGR exemplar crop.
        search: (255, 255, 3) uint8 BGR search crop.
        box: (x0, y0, x1, y1) float, the target's extent in search-crop pixel indices
            (inclusive, i.e. the bounding box of ``full_mask``); all zeros for a negative pair.
        mask: (255, 255) uint8 {0, 1}, the visible target pixels in the search crop.
        full_mask: (255, 255) uint8 {0, 1}, the whole target, occluded parts included.
        positive: False when the search does not contain the template's object.
    """

    template: np.ndarray
    search: np.ndarray
    box: tuple[float, float, float, float]
    mask: np.ndarray
    full_mask: np.ndarray
    positive: bool


# --------------------------------------------------------------------------------------
# Shapes, textures, objects
# --------------------------------------------------------------------------------------


def _largest_component(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask.astype(np.uint8)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == best).astype(np.uint8)


def random_shape_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A (height, width) uint8 {0, 1} mask: a smooth blob, a star-like polygon or an ellipse."""
    kind = rng.integers(3)
    mask = np.zeros((height, width), np.uint8)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    if kind == 0:  # blob: smoothed noise, thresholded, biased towards the centre
        noise = rng.random((max(height // 8, 3), max(width // 8, 3))).astype(np.float32)
        noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        ys, xs = np.mgrid[0:height, 0:width]
        radial = ((xs - cx) / (width / 2)) ** 2 + ((ys - cy) / (height / 2)) ** 2
        mask = (noise - 0.6 * radial > 0.05).astype(np.uint8)
        mask = _largest_component(mask)
    elif kind == 1:  # polygon around the centre with random radii
        vertices = int(rng.integers(5, 13))
        angles = np.sort(rng.uniform(0, 2 * math.pi, vertices))
        radii = rng.uniform(0.45, 1.0, vertices)
        pts = np.stack([cx + radii * np.cos(angles) * width / 2, cy + radii * np.sin(angles) * height / 2], axis=1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    else:
        axes = (max(int(width / 2 * rng.uniform(0.7, 1.0)), 2), max(int(height / 2 * rng.uniform(0.7, 1.0)), 2))
        cv2.ellipse(mask, (round(cx), round(cy)), axes, 0, 0, 360, 1, thickness=-1)
    if mask.sum() < 0.15 * height * width:  # degenerate draw: fall back to an ellipse
        mask[:] = 0
        cv2.ellipse(mask, (round(cx), round(cy)), (max(width // 2 - 1, 1), max(height // 2 - 1, 1)), 0, 0, 360, 1, -1)
    return mask


def _random_patch(rng: np.random.Generator, image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A random (height, width) region of ``image``, resized when the image is smaller."""
    ih, iw = image.shape[:2]
    need = max(height / ih, width / iw)
    # Below 1, shrink the image at random so that patches show more or less of the scene.
    scale = need if need >= 1 else rng.uniform(need, 1.0)
    if scale != 1:
        image = cv2.resize(image, (math.ceil(iw * scale), math.ceil(ih * scale)), interpolation=cv2.INTER_LINEAR)
        ih, iw = image.shape[:2]
    y = int(rng.integers(0, ih - height + 1))
    x = int(rng.integers(0, iw - width + 1))
    return image[y : y + height, x : x + width].copy()


def _synthetic_texture(rng: np.random.Generator, height: int, width: int, pool: ImagePool) -> np.ndarray:
    """Stripes, checkers, or a tinted real texture."""
    kind = rng.integers(3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    c1 = rng.integers(0, 256, 3).astype(np.float32)
    c2 = rng.integers(0, 256, 3).astype(np.float32)
    if kind == 0:
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(4, 20)
        t = (np.sin((xs * math.cos(theta) + ys * math.sin(theta)) * 2 * math.pi / period) > 0).astype(np.float32)
    elif kind == 1:
        cell = rng.uniform(4, 16)
        t = ((np.floor(xs / cell) + np.floor(ys / cell)) % 2).astype(np.float32)
    else:
        images = pool.images
        patch = _random_patch(rng, images[int(rng.integers(len(images)))], height, width)
        gray = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
        t = gray.astype(np.float32) / 255
    texture = c1 * (1 - t[..., None]) + c2 * t[..., None]
    return np.clip(texture, 0, 255).astype(np.uint8)


def make_object(
    rng: np.random.Generator, pool: ImagePool, min_side: int = 48, max_side: int = 160, p_textured: float = 0.3
) -> SynthObject:
    """A random object sprite cut out of the pool's imagery (or, with ``p_textured``, texture-filled)."""
    width = int(rng.integers(min_side, max_side + 1))
    height = int(np.clip(width * math.exp(rng.uniform(-0.7, 0.7)), min_side * 0.6, max_side * 1.4))
    mask = random_shape_mask(rng, height, width)
    if rng.random() < p_textured:
        pixels = _synthetic_texture(rng, height, width, pool)
    else:
        images = pool.images
        pixels = _random_patch(rng, images[int(rng.integers(len(images)))], height, width)
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    alpha = cv2.GaussianBlur(mask[y0:y1, x0:x1].astype(np.float32), (3, 3), 0.7)
    return SynthObject(pixels[y0:y1, x0:x1].copy(), alpha)


def look_alike(rng: np.random.Generator, obj: SynthObject, pool: ImagePool) -> SynthObject:
    """Another instance of the same "kind": the same silhouette (mirrored) with other colours or texture.

    An identical copy cannot be told apart from the target by appearance; a look-alike
    can, and teaches the heads to prefer the exact template over a similar object.
    """
    alpha = obj.alpha[:, ::-1].copy()
    h, w = alpha.shape
    if rng.random() < 0.5:
        hsv = cv2.cvtColor(obj.pixels[:, ::-1], cv2.COLOR_BGR2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(rng.integers(30, 150))) % 180
        pixels = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    else:
        pixels = _synthetic_texture(rng, h, w, pool)
    return SynthObject(np.ascontiguousarray(pixels), alpha)


# --------------------------------------------------------------------------------------
# Compositing
# --------------------------------------------------------------------------------------


def _object_affine(
    obj: SynthObject, center: tuple[float, float], size: tuple[float, float], angle_deg: float
) -> np.ndarray:
    """2x3 map from sprite pixels to canvas pixels: scale to ``size``, rotate, centre on ``center``."""
    h, w = obj.alpha.shape
    sx, sy = size[0] / w, size[1] / h
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    linear = np.array([[c, -s], [s, c]]) @ np.diag([sx, sy])
    src_centre = np.array([(w - 1) / 2, (h - 1) / 2])
    offset = np.asarray(center) - linear @ src_centre
    return np.hstack([linear, offset[:, None]]).astype(np.float64)


def paste(
    canvas: np.ndarray,
    obj: SynthObject,
    center: tuple[float, float],
    size: tuple[float, float],
    angle_deg: float = 0.0,
    gain: float = 1.0,
    bias: float = 0.0,
) -> np.ndarray:
    """Alpha-composite ``obj`` onto ``canvas`` in place; returns its coverage (float 0..1)."""
    height, width = canvas.shape[:2]
    matrix = _object_affine(obj, center, size, angle_deg)
    warped = cv2.warpAffine(obj.pixels, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    alpha = cv2.warpAffine(obj.alpha, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
    lit = np.clip(warped.astype(np.float32) * gain + bias, 0, 255)
    blended = canvas.astype(np.float32) * (1 - alpha[..., None]) + lit * alpha[..., None]
    canvas[:] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return alpha


def _view(rng: np.random.Generator, image: np.ndarray, side: int, region: tuple[float, float, float] | None = None):
    """A ``side``x``side`` view of a square region (x, y, length) of ``image``; random region when None."""
    ih, iw = image.shape[:2]
    if region is None:
        length = rng.uniform(0.35, 1.0) * min(ih, iw)
        region = (rng.uniform(0, iw - length), rng.uniform(0, ih - length), length)
    x, y, length = region
    scale = side / length
    matrix = np.array([[scale, 0, -x * scale], [0, scale, -y * scale]])
    view = cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return view, region


def _moved_region(rng: np.random.Generator, region: tuple[float, float, float], image: np.ndarray):
    x, y, length = region
    length2 = length * math.exp(rng.uniform(-0.1, 0.1))
    ih, iw = image.shape[:2]
    x2 = float(np.clip(x + rng.normal(0, 0.05) * length, 0, max(iw - length2, 0)))
    y2 = float(np.clip(y + rng.normal(0, 0.05) * length, 0, max(ih - length2, 0)))
    return (x2, y2, length2)


def _background_pair(rng: np.random.Generator, pool: ImagePool, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Two views of one scene: nearby frames of a clip, or a still seen twice with a small camera move."""
    use_clip = pool.clips and (not pool.stills or rng.random() < 0.5)
    if use_clip:
        clip = pool.clips[int(rng.integers(len(pool.clips)))]
        i = int(rng.integers(len(clip)))
        j = int(np.clip(i + rng.integers(-6, 7), 0, len(clip) - 1))
        first, second = clip[i], clip[j]
    else:
        first = second = pool.stills[int(rng.integers(len(pool.stills)))]
    template_view, region = _view(rng, first, side)
    search_view, _ = _view(rng, second, side, _moved_region(rng, region, second))
    return template_view, search_view


def _object_size_for_template(obj: SynthObject, exemplar: int, context: float) -> tuple[float, float]:
    """Sprite size whose context square (the tracker's s_z) is exactly ``exemplar`` pixels."""
    h, w = obj.alpha.shape
    p = context * (w + h)
    k = exemplar / math.sqrt((w + p) * (h + p))
    return w * k, h * k


def _photometric(rng: np.random.Generator) -> tuple[float, float]:
    return math.exp(rng.uniform(-0.25, 0.25)), rng.uniform(-25, 25)


def _motion_blur(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    length = int(rng.integers(3, 10))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    kernel /= max(kernel.sum(), 1e-6)
    return cv2.filter2D(image, -1, kernel)


def _border(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Fill a band along one edge with the mean colour, as the tracker pads crops leaving the frame.

    Returns the band as a boolean mask (nothing of the target is visible there).
    """
    side = image.shape[0]
    depth = int(rng.integers(side // 10, side // 3))
    colour = image.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    band = np.zeros(image.shape[:2], bool)
    edge = int(rng.integers(4))
    if edge == 0:
        band[:depth] = True
    elif edge == 1:
        band[-depth:] = True
    elif edge == 2:
        band[:, :depth] = True
    else:
        band[:, -depth:] = True
    image[band] = colour
    return band


def _distractor_centre(rng: np.random.Generator, target: tuple[float, float], size: tuple[float, float], side: int):
    """A centre at least one object size away from the target, inside the search crop."""
    for _ in range(20):
        c = (rng.uniform(size[0] / 3, side - size[0] / 3), rng.uniform(size[1] / 3, side - size[1] / 3))
        if abs(c[0] - target[0]) > 0.9 * size[0] or abs(c[1] - target[1]) > 0.9 * size[1]:
            return c
    return None


def _touching_offset(rng: np.random.Generator) -> tuple[float, float]:
    """Centre offset of a neighbour, in units of the target's size, so that the two touch or overlap."""
    direction = rng.uniform(0, 2 * math.pi)
    reach = rng.uniform(0.55, 0.85)
    return (reach * math.cos(direction), reach * math.sin(direction))


def synthesise_pair(rng: np.random.Generator, pool: ImagePool, config: SynthConfig | None = None) -> PairSample:
    """One random template/search pair (see the module docstring)."""
    cfg = config or SynthConfig()
    ex, inst = cfg.exemplar_size, cfg.instance_size
    centre = (inst - 1) / 2
    margin = (inst - ex) // 2
    template_view, search = _background_pair(rng, pool, inst)
    if rng.random() < cfg.p_gray:
        template_view = cv2.cvtColor(cv2.cvtColor(template_view, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        search = cv2.cvtColor(cv2.cvtColor(search, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)

    obj = make_object(rng, pool, p_textured=cfg.p_textured)
    size = _object_size_for_template(obj, ex, cfg.context_amount)
    # (A probability of 0 draws nothing, so pairs of earlier configurations stay as they were.)
    with_neighbour = cfg.p_neighbour > 0 and rng.random() < cfg.p_neighbour
    neighbour = make_object(rng, pool, p_textured=cfg.p_textured) if with_neighbour else None
    touch = _touching_offset(rng) if neighbour is not None else (0.0, 0.0)
    if neighbour is not None:
        paste(template_view, neighbour, (centre + touch[0] * size[0], centre + touch[1] * size[1]), size)
    paste(template_view, obj, (centre, centre), size)
    template = template_view[margin : margin + ex, margin : margin + ex].copy()

    scale = math.exp(rng.uniform(-cfg.log_scale_jitter, cfg.log_scale_jitter))
    aspect = math.exp(rng.uniform(-cfg.log_aspect_jitter, cfg.log_aspect_jitter))
    size2 = (size[0] * scale * math.sqrt(aspect), size[1] * scale / math.sqrt(aspect))
    shift = rng.uniform(-cfg.max_shift, cfg.max_shift, 2) * (rng.random() ** 0.5)
    target = (centre + shift[0], centre + shift[1])
    angle = rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg)

    positive = rng.random() >= cfg.p_negative
    if positive and rng.random() < cfg.p_distractor:
        where = _distractor_centre(rng, target, size2, inst)
        if where is not None:
            paste(search, look_alike(rng, obj, pool), where, size2, rng.uniform(-30, 30))
    gain, bias = _photometric(rng)
    if neighbour is not None and positive:
        paste(search, neighbour, (target[0] + touch[0] * size2[0], target[1] + touch[1] * size2[1]), size2, angle)
    if positive:
        placed = obj
    elif cfg.p_hard_negative > 0 and rng.random() < cfg.p_hard_negative:
        placed = look_alike(rng, obj, pool)
    else:
        placed = make_object(rng, pool, p_textured=cfg.p_textured)
    placed_size = size2 if positive else _object_size_for_template(placed, ex, cfg.context_amount)
    alpha = paste(search, placed, target, placed_size, angle, gain, bias)
    full_mask = (alpha > 0.5).astype(np.uint8)
    mask = full_mask.copy()
    if rng.random() < cfg.p_occluder:
        occluder = make_object(rng, pool, min_side=24, max_side=96, p_textured=cfg.p_textured)
        ys, xs = np.nonzero(full_mask) if full_mask.any() else (np.array([centre]), np.array([centre]))
        corner = (float(rng.choice(xs)), float(rng.choice(ys)))
        occ_size = (occluder.alpha.shape[1] * 0.8 * scale, occluder.alpha.shape[0] * 0.8 * scale)
        covered = paste(search, occluder, corner, occ_size)
        mask[covered > 0.5] = 0
    if rng.random() < cfg.p_blur:
        search = _motion_blur(rng, search)
    if rng.random() < cfg.p_border:
        mask[_border(rng, search)] = 0
    search = np.clip(search.astype(np.float32) + rng.normal(0, 3, search.shape), 0, 255).astype(np.uint8)

    if not positive or not full_mask.any():
        return PairSample(template, search, (0.0, 0.0, 0.0, 0.0), np.zeros_like(mask), np.zeros_like(mask), False)
    ys, xs = np.nonzero(full_mask)
    box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    return PairSample(template, search, box, mask, full_mask, True)
