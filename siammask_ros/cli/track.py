"""``siammask-track``: run SiamMask offline on a video or an image folder.

Example::

    siammask-track clip.mp4 --weights SiamMask_VOT.pth --preset vot --box 300,120,80,140 \\
        --output results.jsonl --video annotated.mp4 --masks masks/

Writes one JSON record per frame (frame 0, the initialisation, included), optionally the
annotated video and one 0/255 mask PNG per frame, and prints a one-line summary.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import numpy as np
import torch
from tqdm import tqdm

from siammask_ros.io.frames import FrameSource, FrameSourceError, open_frames, parse_box
from siammask_ros.io.render import draw_overlay
from siammask_ros.io.results import JsonLinesWriter, result_to_record
from siammask_ros.model import CheckpointError, build_siammask, default_weights_path, resolve_device
from siammask_ros.tracker import InvalidBoxError, InvalidFrameError, SiamMaskTracker
from siammask_ros.tracker.config import PRESETS, preset
from siammask_ros.tracker.result import TrackResult, TrackState

__all__ = ["build_parser", "main"]

PROG = "siammask-track"
DEFAULT_VIDEO_FPS = 30.0


class UsageError(Exception):
    """A problem with the user's inputs or outputs, reported as one line without a traceback."""


@dataclass(frozen=True)
class RunSummary:
    frames: int
    lost: int
    tracker_seconds: float

    @property
    def mean_fps(self) -> float:
        return self.frames / self.tracker_seconds if self.tracker_seconds > 0 else float("inf")

    def __str__(self) -> str:
        return f"{self.frames} frames, {self.mean_fps:.1f} fps mean (tracker only), {self.lost} frames lost"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Track one object through a video or an image folder with SiamMask.",
    )
    parser.add_argument("input", metavar="INPUT", help="video file, or folder of images (natural name order)")
    parser.add_argument("--box", required=True, type=_box_arg, metavar="X,Y,W,H",
                        help="target in the first frame: top-left corner and size in pixels")
    parser.add_argument("--output", required=True, metavar="FILE",
                        help="JSON Lines results, one object per frame ('-' for standard output)")
    parser.add_argument("--weights", type=Path, metavar="FILE",
                        help="checkpoint (.pth); default: the bundled model, if any")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="vot",
                        help="tracking parameters matching the checkpoint (default: %(default)s)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where the network runs; auto picks cuda when available (default: %(default)s)")
    parser.add_argument("--long-term", choices=("on", "off"), default="off",
                        help="widen the search while the target is lost (default: %(default)s)")
    parser.add_argument("--video", type=Path, metavar="FILE", help="write the annotated video (mp4v)")
    parser.add_argument("--masks", type=Path, metavar="DIR", help="write one 0/255 mask PNG per frame")
    parser.add_argument("--max-frames", type=_positive_int, metavar="N", help="stop after N frames")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``siammask-track``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        summary = _run(args)
    except (UsageError, FrameSourceError, CheckpointError, OSError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    # Keep standard output clean when the records go there.
    print(summary, file=sys.stderr if args.output == "-" else sys.stdout)
    return 0


def _run(args: argparse.Namespace) -> RunSummary:
    """Track the whole input as described by parsed arguments."""
    weights = _weights_file(args.weights)
    source = open_frames(args.input)
    config = preset(args.preset).with_changes(long_term={"enabled": args.long_term == "on"})
    model = build_siammask(weights=weights, device=_device(args.device), optimize=True)
    tracker = SiamMaskTracker(model, config)
    with _Outputs(args.output, args.video, args.masks, source.fps) as outputs:
        return _track(tracker, source, args.box, outputs, args.max_frames)


def _track(
    tracker: SiamMaskTracker,
    source: FrameSource,
    box: tuple[float, float, float, float],
    outputs: "_Outputs",
    max_frames: int | None,
) -> RunSummary:
    total = source.frame_count
    if max_frames is not None:
        total = max_frames if total is None else min(total, max_frames)
    count = lost = 0
    seconds = 0.0
    with tqdm(total=total, unit="frame", file=sys.stderr, disable=not sys.stderr.isatty()) as progress:
        for index, frame in itertools.islice(source, max_frames):
            start = time.perf_counter()
            try:
                result = tracker.initialize(frame, box) if count == 0 else tracker.track(frame)
            except (InvalidBoxError, InvalidFrameError) as error:
                raise UsageError(f"frame {index}: {error}") from None
            seconds += time.perf_counter() - start
            outputs.write(index, frame, result)
            count += 1
            lost += result.state is TrackState.LOST
            progress.update()
    return RunSummary(frames=count, lost=lost, tracker_seconds=seconds)


class _Outputs:
    """The JSON Lines records and, when asked for, the annotated video and the mask PNGs."""

    def __init__(self, records: str, video: Path | None, masks: Path | None, fps: float | None) -> None:
        if masks is not None:
            masks.mkdir(parents=True, exist_ok=True)
        self._masks = masks
        self._video_path = _with_parent(video) if video is not None else None
        self._video: cv2.VideoWriter | None = None
        self._fps = fps or DEFAULT_VIDEO_FPS
        self._stack = ExitStack()
        stream: str | IO[str] = sys.stdout if records == "-" else _with_parent(Path(records))
        self._records = self._stack.enter_context(JsonLinesWriter(stream))

    def write(self, index: int, frame: np.ndarray, result: TrackResult) -> None:
        self._records.write(result_to_record(index, result))
        if self._video_path is not None:
            self._write_video_frame(draw_overlay(frame, result))
        if self._masks is not None:
            path = self._masks / f"{index:06d}.png"
            if not cv2.imwrite(str(path), np.where(result.mask != 0, 255, 0).astype(np.uint8)):
                raise UsageError(f"cannot write mask image {str(path)!r}")

    def _write_video_frame(self, image: np.ndarray) -> None:
        if self._video is None:
            height, width = image.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._video = cv2.VideoWriter(str(self._video_path), fourcc, self._fps, (width, height))
            self._stack.callback(self._video.release)
            if not self._video.isOpened():
                raise UsageError(f"cannot write video {str(self._video_path)!r}")
        self._video.write(image)

    def __enter__(self) -> "_Outputs":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()


def _weights_file(path: Path | None) -> Path:
    if path is None:
        path = default_weights_path()
        if path is None:
            raise UsageError("--weights is required: this installation bundles no default model")
    return path


def _device(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _with_parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _box_arg(text: str) -> tuple[float, float, float, float]:
    try:
        return parse_box(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
