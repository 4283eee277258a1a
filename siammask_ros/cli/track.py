"""``siammask-track``: run SiamMask offline on a video, an image folder or a rosbag2.

Example::

    siammask-track clip.mp4 --weights SiamMask_VOT.pth --preset vot --box 300,120,80,140 \\
        --output results.jsonl --video annotated.mp4 --masks masks/
    siammask-track run.mcap --topic /camera/image_raw --box 300,120,80,140 \\
        --output results.jsonl --output-bag tracked/

Writes one JSON record per frame (frame 0, the initialisation, included), optionally the
annotated video and one 0/255 mask PNG per frame, and prints a one-line summary. A bag's
records also carry the image's header stamp, and ``--output-bag`` writes the node's
outputs for each image into a new bag (docs/BAGS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import IO

import cv2
import numpy as np
import torch

from siammask_ros.io.bag import DEFAULT_PREFIX, BagImageSource, BagResultWriter, is_bag
from siammask_ros.io.frames import FrameSource, FrameSourceError, open_frames, parse_box
from siammask_ros.io.message_fields import LostClock, TargetFields
from siammask_ros.io.render import draw_overlay
from siammask_ros.io.results import JsonLinesWriter, result_to_record
from siammask_ros.model import CheckpointError, SiamMask, build_siammask, default_weights_path, resolve_device
from siammask_ros.model.backends import BACKENDS, PRECISIONS, Backend, make_backend
from siammask_ros.tracker import InvalidBoxError, InvalidFrameError, SiamMaskTracker, to_bgr
from siammask_ros.tracker.config import (
    DEFAULT_BOX_FALLBACK_AREA_RATIO,
    PRESETS,
    ROTATED_BOX_EXTENTS,
    TrackerConfig,
    box_fallback_for,
    preset,
    rotated_box_extent_for,
)
from siammask_ros.tracker.result import TrackResult, TrackState

__all__ = ["build_parser", "main"]

PROG = "siammask-track"
DEFAULT_VIDEO_FPS = 30.0
#: Target id in an output bag's messages (the node's name for its first selection).
BAG_TARGET_ID = "target_1"


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
        description="Track one object through a video, an image folder or a rosbag2 with SiamMask.",
    )
    parser.add_argument("input", metavar="INPUT",
                        help="video file, folder of images (natural name order), or rosbag2 "
                             "(bag folder, .mcap or .db3 file)")
    parser.add_argument("--box", required=True, type=_box_arg, metavar="X,Y,W,H",
                        help="target in the first frame: top-left corner and size in pixels")
    parser.add_argument("--output", required=True, metavar="FILE",
                        help="JSON Lines results, one object per frame ('-' for standard output)")
    parser.add_argument("--weights", type=Path, metavar="FILE",
                        help="checkpoint (.pth); default: the bundled model, if any")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="vot",
                        help="tracking parameters matching the checkpoint (default: %(default)s)")
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda or cuda:N; auto picks cuda when available (default: %(default)s)")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="network runtime; onnxruntime exports the model at start and uses TensorRT, "
                             "CUDA or CPU, whichever it has, in that order (default: %(default)s)")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32",
                        help="network weights and inputs in this dtype, torch backend only; fp16 needs CUDA "
                             "(default: %(default)s)")
    parser.add_argument("--long-term", choices=("on", "off"), default="off",
                        help="widen the search while the target is lost (default: %(default)s)")
    parser.add_argument("--box-fallback", choices=("auto", "on", "off"), default="auto",
                        help="publish the box branch's box where the rotated box's area is far off its "
                             "(--box-fallback-area-ratio); auto: on for the bundled model, off for the "
                             "published ResNet-50 (default: %(default)s)")
    parser.add_argument("--box-fallback-area-ratio", type=_unit_float, default=DEFAULT_BOX_FALLBACK_AREA_RATIO,
                        metavar="RATIO", help="smaller/larger area below which it falls back (default: %(default)s)")
    parser.add_argument("--box-extent", choices=("auto", *ROTATED_BOX_EXTENTS), default="auto",
                        help="size of the rotated box: the mask's own, or the mask's shape and angle at the "
                             "box branch's size (box_branch); auto: box_branch for the bundled model, mask "
                             "for the published ResNet-50 (default: %(default)s)")
    parser.add_argument("--template-update", type=_unit_float, default=0.0, metavar="RATE",
                        help="move the template this far towards the target's look after confident frames "
                             "(default: %(default)s, off)")
    parser.add_argument("--video", type=Path, metavar="FILE", help="write the annotated video (mp4v)")
    parser.add_argument("--masks", type=Path, metavar="DIR", help="write one 0/255 mask PNG per frame")
    parser.add_argument("--max-frames", type=_positive_int, metavar="N", help="stop after N frames")
    bag = parser.add_argument_group("rosbag2 input and output (mcap, sqlite3; needs the rosbags package)")
    bag.add_argument("--topic", metavar="TOPIC",
                     help="sensor_msgs/Image or CompressedImage topic to track; needed when the bag has several")
    bag.add_argument("--output-bag", type=Path, metavar="DIR",
                     help="write mask, detections and result per image into this new bag, with the images' stamps")
    bag.add_argument("--output-bag-storage", choices=("mcap", "sqlite3"),
                     help="storage of --output-bag (default: the input bag's)")
    bag.add_argument("--output-bag-prefix", default=DEFAULT_PREFIX, metavar="NS",
                     help="namespace of the output topics (default: %(default)s)")
    bag.add_argument("--output-bag-debug-image", action="store_true",
                     help="also write <NS>/debug_image, the bgr8 overlay")
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
    source = _open_source(args)
    model = build_siammask(weights=weights, device=_device(args.device), optimize=True)
    config = preset(args.preset).with_changes(
        long_term={"enabled": args.long_term == "on"},
        box_fallback_area_ratio=box_fallback_for(model.arch, args.box_fallback, args.box_fallback_area_ratio),
        rotated_box_extent=rotated_box_extent_for(model.arch, args.box_extent),
        template_update_rate=args.template_update,
    )
    tracker = SiamMaskTracker(_backend(args.backend, model, config, args.device, args.precision), config)
    with _Outputs(args.output, args.video, args.masks, source.fps) as outputs:
        if args.output_bag is not None:
            outputs.add_bag(BagResultWriter(
                args.output_bag, args.output_bag_storage or source.storage, args.output_bag_prefix,
                debug_image=args.output_bag_debug_image,
            ))
        return _track(tracker, source, args.box, outputs, args.max_frames)


def _open_source(args: argparse.Namespace) -> FrameSource | BagImageSource:
    """A bag's image topic, or a video / image folder; bag options only go with a bag."""
    if args.output_bag is None:
        for option, used in (("--output-bag-storage", args.output_bag_storage is not None),
                             ("--output-bag-debug-image", args.output_bag_debug_image)):
            if used:
                raise UsageError(f"{option} needs --output-bag")
    if is_bag(args.input):
        return BagImageSource(args.input, args.topic)
    for option, value in (("--topic", args.topic), ("--output-bag", args.output_bag)):
        if value is not None:
            raise UsageError(f"{option} needs a rosbag2 INPUT (bag folder, .mcap or .db3), got {args.input!r}")
    return open_frames(args.input)


@dataclass(frozen=True)
class _Frame:
    """One input image, BGR; a bag image also has its header stamp (sec, nanosec) and frame_id."""

    index: int
    image: np.ndarray
    stamp: tuple[int, int] | None = None
    frame_id: str = ""


def _frames(source: FrameSource | BagImageSource) -> Iterator[_Frame]:
    if isinstance(source, BagImageSource):
        for item in source:
            yield _Frame(item.index, to_bgr(item.frame, item.color_order), item.stamp, item.frame_id)
    else:
        for index, image in source:
            yield _Frame(index, image)


def _track(
    tracker: SiamMaskTracker,
    source: FrameSource | BagImageSource,
    box: tuple[float, float, float, float],
    outputs: "_Outputs",
    max_frames: int | None,
) -> RunSummary:
    total = source.frame_count
    if max_frames is not None:
        total = max_frames if total is None else min(total, max_frames)
    count = lost = 0
    seconds = 0.0
    with _progress_bar(total) as progress:
        for frame in itertools.islice(_frames(source), max_frames):
            start = time.perf_counter()
            try:
                result = tracker.initialize(frame.image, box) if count == 0 else tracker.track(frame.image)
            except (InvalidBoxError, InvalidFrameError) as error:
                raise UsageError(f"frame {frame.index}: {error}") from None
            step_seconds = time.perf_counter() - start
            seconds += step_seconds
            outputs.write(frame, result, step_seconds)
            count += 1
            lost += result.state is TrackState.LOST
            progress.update()
    return RunSummary(frames=count, lost=lost, tracker_seconds=seconds)


class _Outputs:
    """The JSON Lines records and, when asked for, the annotated video, the mask PNGs and
    the output bag."""

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
        self._bag: BagResultWriter | None = None
        self._lost_clock = LostClock()

    def add_bag(self, bag: BagResultWriter) -> None:
        self._bag = self._stack.enter_context(bag)

    def write(self, frame: _Frame, result: TrackResult, step_seconds: float) -> None:
        record = result_to_record(frame.index, result)
        if frame.stamp is not None:
            record["stamp"] = {"sec": frame.stamp[0], "nanosec": frame.stamp[1]}
        self._records.write(record)
        overlay = None
        if self._video_path is not None:
            overlay = draw_overlay(frame.image, result)
            self._write_video_frame(overlay)
        if self._bag is not None:
            self._write_bag(frame, result, step_seconds, overlay)
        if self._masks is not None:
            path = self._masks / f"{frame.index:06d}.png"
            if not cv2.imwrite(str(path), np.where(result.mask != 0, 255, 0).astype(np.uint8)):
                raise UsageError(f"cannot write mask image {str(path)!r}")

    def _write_bag(self, frame: _Frame, result: TrackResult, step_seconds: float, overlay: np.ndarray | None) -> None:
        assert frame.stamp is not None  # _open_source allows --output-bag with bag inputs only
        stamp_ns = frame.stamp[0] * 1_000_000_000 + frame.stamp[1]
        frames_lost, lost_ns = self._lost_clock.update(result.state, stamp_ns)
        target = TargetFields(BAG_TARGET_ID, "", 1, result.state, result, lost_ns, frames_lost)
        if overlay is None and self._bag.has_debug_image:
            overlay = draw_overlay(frame.image, result)
        self._bag.write(frame.stamp, frame.frame_id, [target], frame.image.shape[:2], step_seconds * 1e3, overlay)

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


def _backend(name: str, model: SiamMask, config: TrackerConfig, device: str, precision: str) -> Backend:
    sizes = [config.instance_size] + ([config.long_term.search_size] if config.long_term.enabled else [])
    try:
        return make_backend(name, model, "", sizes, device=device, precision=precision)
    except (ImportError, ValueError) as error:  # onnxruntime missing, without the device's provider,
        raise UsageError(f"--backend {name} --precision {precision}: {error}") from None  # or a refused precision


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


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return value


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


def _progress_bar(total: int | None):
    """tqdm's bar on a terminal; a silent stand-in where tqdm is not installed (it is a
    convenience, not a dependency of headless robots)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return contextlib.nullcontext(SimpleNamespace(update=lambda n=1: None))
    return tqdm(total=total, unit="frame", file=sys.stderr, disable=not sys.stderr.isatty())
