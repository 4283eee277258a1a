"""Runs OpenCV's classical trackers (CSRT, KCF, MIL) for ``siammask_ros.eval.classical``.

Run by path with the Python of ``.venv-eval`` (``scripts/setup_eval_venv.sh``), never as
``python -m siammask_ros.eval...``: that venv has NumPy and OpenCV's contrib wheel only, and
importing the package would pull in torch. So this file imports nothing but the standard
library, NumPy and ``cv2``.

Usage: ``classical_worker.py JOB.json``. The job::

    {"trackers": ["csrt", "kcf", "mil"],
     "sequences": [{"name": "...", "frames": "/path/frames.npy", "init_box": [x, y, w, h]}],
     "out": "/path/result.json",
     "threads": 1}                      # optional: cv2.setNumThreads

``frames.npy`` holds uint8 N x H x W x 3 BGR frames. Each tracker is initialised on frame 0
with the box rounded to integers (OpenCV takes an integer rectangle) and updated on frames
1..N-1. The result::

    {"opencv_version": "5.0.0", "contrib_wheel": "opencv-contrib-python-headless 5.0.0.93",
     "runs": [{"tracker": "csrt", "sequence": "...", "boxes": [[x, y, w, h] | null, ...],
               "ms": [...]}]}

``null`` marks a frame where ``update`` reported failure; ``ms`` is the wall time of each
``update`` call. Bad input exits with status 2 and one line on stderr naming the value.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

CONTRIB_WHEEL = "opencv-contrib-python-headless"

TRACKER_FACTORIES: dict[str, Callable[[], Any]] = {
    "csrt": cv2.TrackerCSRT.create,
    "kcf": cv2.TrackerKCF.create,
    "mil": cv2.TrackerMIL.create,
}


class JobError(ValueError):
    """The job names something this worker cannot run; the text says which value."""


def integer_box(box: Any, sequence: str) -> tuple[int, int, int, int]:
    """``[x, y, w, h]`` rounded to OpenCV's integer rectangle; positive size required."""
    if not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, (int, float)) for v in box):
        raise JobError(f"sequence {sequence!r}: init_box must be [x, y, w, h] numbers, got {box!r}")
    if not all(math.isfinite(v) for v in box):
        raise JobError(f"sequence {sequence!r}: init_box has a non-finite value: {box!r}")
    x, y, w, h = (int(round(v)) for v in box)
    if w <= 0 or h <= 0:
        raise JobError(f"sequence {sequence!r}: init_box {box!r} rounds to an empty {w}x{h} box")
    return x, y, w, h


def load_frames(path: str, sequence: str) -> np.ndarray:
    """The memory-mapped N x H x W x 3 uint8 frames of one sequence (N >= 1)."""
    try:
        frames = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise JobError(f"sequence {sequence!r}: cannot read frames {path!r}: {exc}") from exc
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[0] < 1:
        raise JobError(
            f"sequence {sequence!r}: frames {path!r} must be uint8 N x H x W x 3, "
            f"got {frames.dtype} {frames.shape}"
        )
    return frames


def track(tracker_name: str, frames: np.ndarray, box: tuple[int, int, int, int]) -> dict[str, Any]:
    """Initialise one tracker on frame 0 and update it on every later frame."""
    tracker = TRACKER_FACTORIES[tracker_name]()
    try:
        tracker.init(np.ascontiguousarray(frames[0]), box)
    except cv2.error as exc:
        reason = " ".join(str(exc).split())  # OpenCV's text spans several lines
        raise JobError(f"{tracker_name} cannot start on init_box {list(box)}: {reason}") from exc
    boxes: list[list[int] | None] = []
    ms: list[float] = []
    for i in range(1, len(frames)):
        frame = np.ascontiguousarray(frames[i])  # read from the memory map outside the timing
        start = time.perf_counter()
        ok, rect = tracker.update(frame)
        ms.append((time.perf_counter() - start) * 1000.0)
        boxes.append([int(v) for v in rect] if ok else None)
    return {"boxes": boxes, "ms": ms}


def check_job(job: Any) -> None:
    """Validate the names and shape of the job before any tracking starts."""
    if not isinstance(job, dict):
        raise JobError(f"job must be a JSON object, got {type(job).__name__}")
    for key in ("trackers", "sequences", "out"):
        if key not in job:
            raise JobError(f"job lacks the key {key!r}")
    for name in job["trackers"]:
        if name not in TRACKER_FACTORIES:
            raise JobError(f"unknown tracker {name!r}; known: {', '.join(TRACKER_FACTORIES)}")
    threads = job.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise JobError(f"threads must be a positive integer, got {threads!r}")
    for seq in job["sequences"]:
        if not isinstance(seq, dict) or not {"name", "frames", "init_box"} <= seq.keys():
            raise JobError(f"each sequence needs name, frames and init_box, got {seq!r}")


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Every tracker on every sequence of a validated job."""
    if job.get("threads") is not None:
        cv2.setNumThreads(job["threads"])
    prepared = []
    for seq in job["sequences"]:  # all input checked before the first (slow) run
        name = str(seq["name"])
        prepared.append((name, load_frames(seq["frames"], name), integer_box(seq["init_box"], name)))
    runs = []
    for name, frames, box in prepared:
        for tracker_name in job["trackers"]:
            runs.append({"tracker": tracker_name, "sequence": name, **track(tracker_name, frames, box)})
    return {
        "opencv_version": cv2.__version__,
        "contrib_wheel": f"{CONTRIB_WHEEL} {metadata.version(CONTRIB_WHEEL)}",
        "runs": runs,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {Path(argv[0]).name} JOB.json", file=sys.stderr)
        return 2
    try:
        job = json.loads(Path(argv[1]).read_text())
        check_job(job)
        result = run_job(job)
    except OSError as exc:
        print(f"classical_worker: cannot read job {argv[1]!r}: {exc}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"classical_worker: job {argv[1]!r} is not JSON: {exc}", file=sys.stderr)
        return 2
    except JobError as exc:
        print(f"classical_worker: {exc}", file=sys.stderr)
        return 2
    Path(job["out"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
