"""OpenCV's classical trackers (CSRT, KCF, MIL) as baselines, run in ``.venv-eval``.

Their implementations live in OpenCV's contrib wheel, which cannot share ``.venv`` with
``opencv-python-headless`` (both install ``cv2``). ``scripts/setup_eval_venv.sh`` builds a
second small venv, ``.venv-eval`` (NumPy and the contrib wheel only); :func:`run_classical`
writes the frames and a JSON job to a temporary folder and runs ``classical_worker.py``
with that venv's Python in a subprocess. This module needs neither the contrib wheel nor
torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "CLASSICAL_TRACKERS",
    "ClassicalResult",
    "ClassicalRun",
    "ClassicalUnavailable",
    "eval_python",
    "run_classical",
    "run_classical_job",
]

CLASSICAL_TRACKERS: tuple[str, ...] = ("csrt", "kcf", "mil")
EVAL_PYTHON_ENV = "SIAMMASK_EVAL_PYTHON"
WORKER = Path(__file__).with_name("classical_worker.py")
REPO_ROOT = Path(__file__).resolve().parents[2]

Box = tuple[float, float, float, float]


class ClassicalUnavailable(RuntimeError):
    """No ``.venv-eval`` Python to run OpenCV's contrib trackers with."""


@dataclass(frozen=True)
class ClassicalRun:
    """One classical tracker on one sequence.

    ``boxes`` and ``ms`` have one entry per frame after the first (frames 1..N-1);
    a box is (x, y, w, h) in pixels, ``None`` where the tracker reported failure.
    """

    tracker: str
    sequence: str
    boxes: list[Box | None]
    ms: list[float]


@dataclass(frozen=True)
class ClassicalResult:
    """All runs of one job and the OpenCV build that produced them."""

    runs: list[ClassicalRun]
    opencv_version: str  # cv2.__version__ in .venv-eval, e.g. "5.0.0"
    contrib_wheel: str  # e.g. "opencv-contrib-python-headless 5.0.0.93"


def eval_python(root: Path | None = None) -> Path | None:
    """The Python that runs the classical trackers, or None when there is none.

    ``$SIAMMASK_EVAL_PYTHON`` when set (it must exist), else ``.venv-eval/bin/python``
    under ``root`` (default: this checkout's root).
    """
    override = os.environ.get(EVAL_PYTHON_ENV)
    if override:
        candidate = Path(override)
    else:
        candidate = (root if root is not None else REPO_ROOT) / ".venv-eval" / "bin" / "python"
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def _check_sequences(sequences: Sequence[tuple[str, Sequence[np.ndarray], Box]]) -> None:
    names = [name for name, _, _ in sequences]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"sequence names must be unique, repeated: {duplicates}")
    for name, frames, box in sequences:
        if len(frames) < 1:
            raise ValueError(f"sequence {name!r} has no frames")
        if len(box) != 4:
            raise ValueError(f"sequence {name!r}: init box must be (x, y, w, h), got {box!r}")


def _stack_frames(name: str, frames: Sequence[np.ndarray]) -> np.ndarray:
    stacked = np.stack([np.asarray(f) for f in frames])
    if stacked.dtype != np.uint8 or stacked.ndim != 4 or stacked.shape[3] != 3:
        raise ValueError(
            f"sequence {name!r}: frames must be uint8 H x W x 3 BGR images of one size, "
            f"got {stacked.dtype} {stacked.shape[1:]}"
        )
    return stacked


def _parse_run(raw: dict) -> ClassicalRun:
    boxes: list[Box | None] = [None if b is None else tuple(float(v) for v in b) for b in raw["boxes"]]
    return ClassicalRun(raw["tracker"], raw["sequence"], boxes, [float(v) for v in raw["ms"]])


def run_classical_job(
    sequences: Sequence[tuple[str, Sequence[np.ndarray], Box]],
    trackers: Sequence[str] = CLASSICAL_TRACKERS,
    python: Path | None = None,
    timeout_s: float = 1800,
    threads: int | None = None,
) -> ClassicalResult:
    """Run every tracker on every ``(name, frames, init_box)`` sequence in ``.venv-eval``.

    ``frames`` are uint8 BGR images of one size; ``init_box`` is (x, y, w, h) in frame 0
    (rounded to integers for OpenCV). ``threads`` sets ``cv2.setNumThreads`` in the worker;
    the environment (``OMP_NUM_THREADS`` ...) is passed through unchanged.

    Raises:
        ClassicalUnavailable: ``python`` does not exist, or none given and
            :func:`eval_python` finds none.
        ValueError: bad sequences (empty, mixed sizes, not uint8 BGR, repeated names).
        RuntimeError: the worker failed (unknown tracker, bad box...); its stderr included.
    """
    python = python if python is not None else eval_python()
    if python is None or not python.is_file():
        where = "" if python is None else f" ({python} does not exist)"
        raise ClassicalUnavailable(
            f"OpenCV contrib trackers need .venv-eval: run scripts/setup_eval_venv.sh{where}"
        )
    _check_sequences(sequences)
    with tempfile.TemporaryDirectory(prefix="siammask-classical-") as tmp:
        folder = Path(tmp)
        job_sequences = []
        for index, (name, frames, box) in enumerate(sequences):
            path = folder / f"frames_{index}.npy"
            np.save(path, _stack_frames(name, frames))
            job_sequences.append({"name": name, "frames": str(path), "init_box": [float(v) for v in box]})
        job = {
            "trackers": list(trackers),
            "sequences": job_sequences,
            "out": str(folder / "result.json"),
            "threads": threads,
        }
        job_path = folder / "job.json"
        job_path.write_text(json.dumps(job))
        # -I: the worker's folder (siammask_ros/eval) must not shadow modules on sys.path.
        done = subprocess.run(
            [str(python), "-I", str(WORKER), str(job_path)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"classical trackers failed (exit {done.returncode}, {python}): {done.stderr.strip()}"
            )
        result = json.loads(Path(job["out"]).read_text())
    return ClassicalResult(
        runs=[_parse_run(r) for r in result["runs"]],
        opencv_version=result["opencv_version"],
        contrib_wheel=result["contrib_wheel"],
    )


def run_classical(
    sequences: Sequence[tuple[str, Sequence[np.ndarray], Box]],
    trackers: Sequence[str] = CLASSICAL_TRACKERS,
    python: Path | None = None,
    timeout_s: float = 1800,
    threads: int | None = None,
) -> list[ClassicalRun]:
    """The runs of :func:`run_classical_job` (same arguments and errors), one per sequence x tracker."""
    return run_classical_job(sequences, trackers, python, timeout_s, threads).runs
