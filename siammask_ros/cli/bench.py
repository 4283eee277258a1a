"""``siammask-bench`` / ``make bench``: time one tracking step, stage by stage.

Measures, on one device, the median time of each stage of a tracking step at the normal
255 search and at the lost-mode search (831 by default), for each architecture:

    crop      frame -> search patch (host crop + resize)
    network   crop, upload, backbone + heads (``model.track``), scores and boxes to the host
    refine    refine module at the chosen position, probabilities to the host
    mask      warp into the frame, threshold, contour and rotated box
    step      the whole ``SiamMaskTracker.track`` call

With ``--targets N ...`` it also times one ``MultiTargetTracker.track`` step with N
targets at the 255 search (one batched network call and one batched refinement), per
step and per target.

Timing does not depend on the weights, so randomly initialised networks are used unless
``--weights`` is given; the network runs in fp32, with batch norm folded and channels-last
weights as the node and ``siammask-track`` run it (``--plain``: the network as loaded).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from siammask_ros.model import SiamMask, build_siammask, resolve_device
from siammask_ros.tracker import SiamMaskTracker
from siammask_ros.tracker.config import LongTermConfig, TrackerConfig
from siammask_ros.tracker.geometry import (
    context_size,
    crop_patch,
    mask_in_frame,
    refined_patch_box,
    rotated_box_from_mask,
    search_side,
)
from siammask_ros.tracker.multi import MultiTargetTracker

STAGES = ("crop", "network", "refine", "mask", "step")


def _median_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def _textured_frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.kron(small, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width])


def bench_search(model: SiamMask, instance: int, frame: np.ndarray, repeats: int) -> dict[str, float]:
    """Median milliseconds per stage for one network and one search size."""
    device = next(model.parameters()).device
    long_term = LongTermConfig(enabled=instance != 255, search_size=max(instance, 255))
    config = TrackerConfig(long_term=long_term)
    tracker = SiamMaskTracker(model, config)
    height, width = frame.shape[:2]
    box = (width / 2 - 40, height / 2 - 30, 80, 60)
    tracker.initialize(frame, box)
    pin_lost = instance != 255

    def step() -> None:
        if pin_lost:
            tracker.mark_lost()  # keep the long-term search size for every repeat
        tracker.track(frame)

    step()  # warm-up: allocator, anchors and window for this size
    center, size = tracker.center, tracker.size
    pad_color = frame.mean(axis=(0, 1)).astype(np.uint8)
    s_x = context_size(*size, config.context_amount)
    side = round(search_side(s_x, config.exemplar_size, instance))

    def to_tensor(patch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(patch).to(device).permute(2, 0, 1).unsqueeze(0).float()

    patch = crop_patch(frame, center, side, instance, pad_color)
    x = to_tensor(patch)

    with torch.inference_mode():
        template = model.template(to_tensor(crop_patch(frame, center, round(s_x), 127, pad_color)))

        def network():
            out = model.track(to_tensor(crop_patch(frame, center, side, instance, pad_color)), template)
            out.cls.cpu(), out.loc.cpu()
            return out

        out = model.track(x, template)
        score_size = out.cls.shape[-1]
        row = col = score_size // 2
        prob = torch.sigmoid(model.refine_mask(out, row, col)[0]).cpu().numpy()
        x0, y0, patch_side = refined_patch_box(center, side, instance, row, col, config)
        times = {
            "crop": _median_ms(lambda: crop_patch(frame, center, side, instance, pad_color), repeats, device),
            "network": _median_ms(network, repeats, device),
            "refine": _median_ms(lambda: model.refine_mask(out, row, col).cpu(), repeats, device),
        }

    def mask_stage() -> None:
        mask, region = mask_in_frame(prob, x0, y0, patch_side, width, height, config.seg_thr)
        rotated_box_from_mask(mask, center, size, region)

    times["mask"] = _median_ms(mask_stage, repeats, device)
    times["step"] = _median_ms(step, repeats, device)
    return times


def _grid_boxes(count: int, width: int, height: int) -> list[tuple[float, float, float, float]]:
    """``count`` boxes ``(x, y, w, h)``, one centred in each cell of a near-square grid,
    80x60 or half their cell, whichever is smaller."""
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    cell_w, cell_h = width / cols, height / rows
    w, h = min(80.0, cell_w / 2), min(60.0, cell_h / 2)
    return [
        ((k % cols + 0.5) * cell_w - w / 2, (k // cols + 0.5) * cell_h - h / 2, w, h) for k in range(count)
    ]


def bench_targets(model: SiamMask, counts: list[int], frame: np.ndarray, repeats: int) -> dict[int, float]:
    """Median milliseconds of one ``MultiTargetTracker.track`` with N targets at 255, per N."""
    device = next(model.parameters()).device
    tracker = MultiTargetTracker(model, TrackerConfig())  # long-term off: every search is 255
    height, width = frame.shape[:2]
    times = {}
    for count in counts:
        tracker.clear()
        for box in _grid_boxes(count, width, height):
            tracker.add_target(frame, box)
        tracker.track(frame)  # warm-up for this batch size
        times[count] = _median_ms(lambda: tracker.track(frame), repeats, device)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="siammask-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["siammask_mnv2", "siammask_r50"])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: %(default)s)")
    parser.add_argument("--frame", default="640x480", help="frame WIDTHxHEIGHT (default: %(default)s)")
    parser.add_argument("--lost-size", type=int, default=831, help="lost-mode search size (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--weights", default=None, help="checkpoint (only with a single --arch)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; use 1 when other jobs share the cores)")
    parser.add_argument("--plain", action="store_true",
                        help="time the network as loaded (batch norm unfolded, default layout)")
    parser.add_argument(
        "--targets", type=int, nargs="+", default=None, metavar="N",
        help="also time one multi-target step (batched) with N targets at 255, for each N",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.targets is not None and min(args.targets) < 1:
        parser.error(f"--targets needs counts >= 1, got {args.targets}")
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        parser.error(str(exc))
    width, height = (int(v) for v in args.frame.lower().split("x"))
    frame = _textured_frame(width, height)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    print(f"device: {device} ({device_name}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"frame {width}x{height}, fp32, {'plain' if args.plain else 'batch norm folded, channels-last'}, "
          f"median of {args.repeats} (ms)")
    print(f"{'arch':<15} {'search':>6} " + " ".join(f"{s:>8}" for s in STAGES))
    models = {
        arch: build_siammask(arch=arch, weights=args.weights, device=device, optimize=not args.plain)
        for arch in args.arch
    }
    for arch, model in models.items():
        for instance in (255, args.lost_size):
            times = bench_search(model, instance, frame, args.repeats)
            print(f"{arch:<15} {instance:>6} " + " ".join(f"{times[s]:>8.1f}" for s in STAGES), flush=True)
    if args.targets:
        print(f"multi-target step at 255, median of {args.repeats} (ms)")
        print(f"{'arch':<15} {'targets':>7} {'step':>8} {'/target':>8}")
        for arch, model in models.items():
            per_count = bench_targets(model, args.targets, frame, args.repeats)
            for count, ms in per_count.items():
                print(f"{arch:<15} {count:>7} {ms:>8.1f} {ms / count:>8.1f}", flush=True)
    return 0


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu"


if __name__ == "__main__":
    sys.exit(main())
