"""``make bench``: tracking-step time per backend, precision, search size and target count,
as ratios to the torch fp32 path, and the accuracy guard of every fast path.

For each search size (255 and the lost-mode size) and each number of targets (one batched
network call for all of them), the whole ``MultiTargetTracker.track`` step is timed with
each backend; the backends take turns step by step, so a load that changes during the run
(other jobs on the machine) affects them alike and the ratios stay comparable. Medians.

Rows:
    torch        fp32, bf16 (and fp16 on CUDA), batch norm folded, channels-last: today's path
    onnxruntime  fp32 graphs from ``siammask-export``, providers TensorRT > CUDA > CPU
    reference    the published loop's way: network as loaded, fp32, host crops, full-frame mask warp

``crops``: where the torch rows cut their crops (``--crops``; host with OpenCV, or device:
the frame uploaded once and cropped on the network's device, the default on a GPU).
Ratios are to torch fp32 with host crops: the ratio of the medians, and beside it the
quartiles of the ratio taken round by round (each round times every variant back to
back), which show how far the host's load moved it during the run.

``first ms`` is the first step after the backend was built and warmed up at load.
Cases whose first step takes over 2 s are timed over at most 3 steps.
``--output-dir`` also writes ``results.csv``, ``results.md`` and ``bench.png``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from siammask_ros.model import build_siammask, default_weights_path, load_checkpoint, resolve_device
from siammask_ros.model.backends import make_backend
from siammask_ros.tracker.config import LongTermConfig, TrackerConfig
from siammask_ros.tracker.crops import CROP_PLACES, crops_on_device
from siammask_ros.tracker.multi import MultiTargetTracker

from .bench import _cpu_name, _grid_boxes, _textured_frame

SLOW_STEP_MS = 2000.0  # cases whose first step takes longer are timed over at most 3 steps
LOAD_CAVEAT = (
    "Medians of interleaved steps; on a machine shared with other jobs absolute times drift, "
    "ratios less so. Re-run on an idle machine for published numbers."
)


@dataclass
class Row:
    arch: str
    backend: str
    precision: str
    crops: str  # host or device (tracker.crops)
    search: int
    targets: int
    step_ms: float
    per_target_ms: float
    first_ms: float
    ratio: float  # torch fp32 step time / this step time (same arch, search, targets)
    # Quartiles of the same ratio taken round by round (both steps timed back to back): how
    # far the host's load moved it during the run.
    ratio_p25: float
    ratio_p75: float


@dataclass(frozen=True)
class Variant:
    """One way of running the network, timed against the others."""

    backend: str
    precision: str
    crops: str  # where this variant cuts its crops: host or device
    make: Callable[[TrackerConfig], MultiTargetTracker]

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision} {self.crops}-crops"


def _variants(arch: str, weights: Path | None, device: torch.device, sizes: list[int], backends: list[str],
              precisions: list[str], reference: bool, threads: int | None,
              crops: Sequence[str] = ("auto",)) -> list[Variant]:  # fmt: skip
    """The timed variants; ``crops`` (``CROP_PLACES``) applies to the torch backend, the
    others crop on the host. Places that resolve alike (auto and host on the CPU) run once."""
    variants = []
    for backend in backends:
        places = sorted({crops_on_device(place, backend, device) for place in crops} if backend == "torch" else {False})
        for precision in precisions:
            if precision != "fp32" and backend != "torch":
                continue  # onnxruntime runs fp32 graphs only
            if precision == "fp16" and device.type != "cuda":
                continue  # the torch backend refuses fp16 off CUDA
            model = _build(arch, weights, device, optimize=True)
            net = make_backend(backend, model, arch, sizes, device=str(device), threads=threads, precision=precision)
            for on_device in places:
                place = "device" if on_device else "host"
                variants.append(Variant(backend, precision, place, lambda config, net=net, place=place:
                                        MultiTargetTracker(net, config, crops=place)))  # fmt: skip
    if reference:
        plain = _build(arch, weights, device)
        variants.append(Variant("reference", "fp32", "host", lambda config: MultiTargetTracker(
            plain, config, region_limited_mask=False, crops="host")))  # fmt: skip
    return variants


@dataclass(frozen=True)
class CaseTimes:
    """One variant's step times in one case, ms."""

    median: float
    first: float  # the first step after warm-up
    rounds: list[float]  # one timed step per round, in order


def _base_index(variants: list[Variant]) -> int | None:
    """The ratios' denominator: the torch fp32 step with host crops (today's path), or with
    device crops where only those ran."""
    candidates = sorted((v.crops != "host", i) for i, v in enumerate(variants)
                        if v.backend == "torch" and v.precision == "fp32")  # fmt: skip
    return candidates[0][1] if candidates else None


def _ratios(base: CaseTimes | None, times: CaseTimes) -> tuple[float, float, float]:
    """(ratio of medians, 25th and 75th percentile of the round-by-round ratios)."""
    if base is None:
        return float("nan"), float("nan"), float("nan")
    paired = np.asarray(base.rounds) / np.asarray(times.rounds)
    return base.median / times.median, float(np.percentile(paired, 25)), float(np.percentile(paired, 75))


def _build(arch: str, weights: Path | None, device: torch.device, optimize: bool = False) -> torch.nn.Module:
    """The network; without weights the same seeded random initialisation every time, so
    every variant of an architecture computes the same function."""
    torch.manual_seed(0)
    return build_siammask(arch, weights=weights, device=device, optimize=optimize)


def _weights_for(arch: str, weights: Path | None) -> Path | None:
    """``weights`` when they hold ``arch``, else None (timing does not depend on weights)."""
    if weights is None:
        return None
    recorded = load_checkpoint(weights).arch
    return weights if recorded in (None, arch) else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return 1000.0 * (time.perf_counter() - start)


def bench_case(variants: list[Variant], search: int, targets: int, frame: np.ndarray, repeats: int,
               device: torch.device) -> dict[int, CaseTimes]:  # fmt: skip
    """Step times per variant index, variants interleaved in pairs of steps of which the
    second is timed."""
    lost = search != 255
    config = TrackerConfig(long_term=LongTermConfig(enabled=lost, search_size=max(search, 255)))
    height, width = frame.shape[:2]
    trackers = []
    for variant in variants:
        tracker = variant.make(config)
        for box in _grid_boxes(targets, width, height):
            tracker.add_target(frame, box)
        trackers.append(tracker)

    def step(tracker: MultiTargetTracker) -> Callable[[], object]:
        def run() -> object:
            if lost:
                for target_id in tracker.target_ids:
                    tracker.mark_lost(target_id)  # keep every target on the lost-mode search
            return tracker.track(frame)

        return run

    first = {i: _timed(step(t), device) for i, t in enumerate(trackers)}
    if max(first.values()) > SLOW_STEP_MS:
        repeats = min(repeats, 3)  # keeps `make bench` short on a CPU (16 targets at 831)
    times: dict[int, list[float]] = {i: [] for i in range(len(trackers))}
    for _ in range(repeats):
        for i, tracker in enumerate(trackers):
            # An untimed step first: the timed one then runs as a node would, right after a
            # step of its own (thread pools awake, caches warm) and not after another
            # backend's, whose switch cost up to 10 ms on two cores.
            step(tracker)()
            times[i].append(_timed(step(tracker), device))
    return {i: CaseTimes(statistics.median(times[i]), first[i], times[i]) for i in times}


def run_guard(arch: str, weights: Path | None, device: torch.device, variants: list[Variant],
              frames: int) -> list[tuple[str, object]]:  # fmt: skip
    """Each variant against the fp32 torch network as loaded, on the demo clip."""
    from siammask_ros.eval.guard import compare_on_clip, demo_clip

    clip = demo_clip(max_frames=frames)
    reference = _build(arch, weights, device)
    results = []
    for variant in variants:
        if variant.backend == "reference":
            continue

        def single(config: TrackerConfig, variant: Variant = variant) -> object:
            return _Single(variant.make(config))

        result = compare_on_clip(
            lambda config: _Single(MultiTargetTracker(reference, config, crops="host")), single, clip
        )
        results.append((variant.label, result))
    return results


class _Single:
    """A one-target view of a MultiTargetTracker, for the guard's single-tracker runs."""

    def __init__(self, tracker: MultiTargetTracker) -> None:
        self.tracker = tracker

    def initialize(self, frame: np.ndarray, box: tuple[float, ...]) -> object:
        return self.tracker.add_target(frame, box, target_id="t")

    def track(self, frame: np.ndarray) -> object:
        return self.tracker.track(frame)["t"]


def write_outputs(rows: list[Row], out: Path, header: str) -> None:
    """``results.csv``, ``results.md`` and ``bench.png`` (bars: step ms per variant)."""
    out.mkdir(parents=True, exist_ok=True)
    fields = list(asdict(rows[0]))
    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    lines = [header, "", "| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    lines += ["| " + " | ".join(_fmt(v) for v in asdict(r).values()) + " |" for r in rows]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    cv2.imwrite(str(out / "bench.png"), plot_rows(rows))


def _fmt(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def plot_rows(rows: list[Row], width: int = 1100, bar_height: int = 18) -> np.ndarray:
    """A horizontal bar chart of step times (log-free, longest bar = full width), drawn
    with OpenCV so the bench needs no plotting library."""
    label_w, margin = 430, 10
    height = margin * 2 + bar_height * len(rows) + 30
    image = np.full((height, width, 3), 255, np.uint8)
    longest = max(r.step_ms for r in rows)
    colours = {"torch": (180, 119, 31), "onnxruntime": (14, 127, 255), "reference": (100, 100, 100)}
    for k, r in enumerate(rows):
        y = margin + k * bar_height
        label = f"{r.arch} {r.search} x{r.targets} {r.backend} {r.precision} {r.crops}"
        cv2.putText(image, label, (margin, y + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        length = int((width - label_w - 120) * r.step_ms / longest)
        cv2.rectangle(image, (label_w, y + 2), (label_w + max(length, 1), y + bar_height - 3),
                      colours.get(r.backend, (0, 0, 0)), -1)  # fmt: skip
        cv2.putText(image, f"{r.step_ms:.1f} ms  x{r.ratio:.2f}", (label_w + length + 5, y + 13),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    cv2.putText(image, "median tracking step (ms), ratio = torch fp32 / row", (margin, height - 12),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    return image


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siammask-bench-backends", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=None,
                        help="architectures (default: the bundled model's); those the weights do not "
                             "hold run with a seeded random initialisation")
    parser.add_argument("--weights", type=Path, default=None, help="checkpoint (default: the bundled model)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: %(default)s)")
    parser.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"], choices=["torch", "onnxruntime"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "bf16"], choices=["fp32", "fp16", "bf16"],
                        help="fp16 and bf16 run for torch only, fp16 only on CUDA (default: %(default)s)")
    parser.add_argument("--crops", nargs="+", default=["auto"], choices=list(CROP_PLACES),
                        help="where the torch backend cuts its crops; auto is the device on a GPU, the "
                             "host on the CPU (default: %(default)s)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[255, 831], help="search sizes")
    parser.add_argument("--targets", type=int, nargs="+", default=[1, 4, 16], help="targets per step")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per case and variant")
    parser.add_argument("--frame", default="640x480", help="frame WIDTHxHEIGHT (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch and onnxruntime")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference-style rows")
    parser.add_argument("--guard-frames", type=int, default=40,
                        help="demo-clip frames for the accuracy guard; 0 skips it (default: %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=None, help="write results.csv/.md and bench.png here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        print(f"siammask-bench: {exc}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()  # onnxruntime gets as many CPU threads as torch: a fair ratio
    if min(args.targets) < 1 or args.repeats < 1:
        print("--targets and --repeats need values >= 1", file=sys.stderr)
        return 2
    weights = args.weights or default_weights_path()
    archs = args.arch or [load_checkpoint(weights).arch or "siammask_mnv2"]
    width, height = (int(v) for v in args.frame.lower().split("x"))
    frame = _textured_frame(width, height)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    import onnxruntime

    header = (f"device {device} ({name}), torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
              f"{threads} CPU threads (torch and onnxruntime), frame {width}x{height}, "
              f"median of {args.repeats}")  # fmt: skip
    print(header)
    print(LOAD_CAVEAT)
    rows: list[Row] = []
    guard_ok = True
    print(f"{'arch':<14} {'backend':<12} {'prec':<5} {'crops':<6} {'search':>6} {'tgts':>4} {'step ms':>8} {'/tgt':>7} "
          f"{'first':>7} {'ratio':>6}  {'rounds p25-p75':>14}")  # fmt: skip
    for arch in archs:
        arch_weights = _weights_for(arch, weights)
        print(f"{arch}: {arch_weights or 'random weights (seeded)'}")
        variants = _variants(arch, arch_weights, device, args.sizes, args.backends, args.precisions,
                             not args.no_reference, threads, args.crops)  # fmt: skip
        for search in args.sizes:
            for targets in args.targets:
                reference_too = targets == 1  # the reference-style mode: one target, as the published loop
                chosen = [v for v in variants if v.backend != "reference" or reference_too]
                times = bench_case(chosen, search, targets, frame, args.repeats, device)
                base_index = _base_index(chosen)
                base = times[base_index] if base_index is not None else None
                for i, variant in enumerate(chosen):
                    step, first = times[i].median, times[i].first
                    row = Row(arch, variant.backend, variant.precision, variant.crops, search, targets, step, step / targets,
                              first, *_ratios(base, times[i]))  # fmt: skip
                    rows.append(row)
                    print(f"{arch:<14} {row.backend:<12} {row.precision:<5} {row.crops:<6} {search:>6} {targets:>4} "
                          f"{step:>8.1f} {row.per_target_ms:>7.1f} {first:>7.1f} {row.ratio:>6.2f}  "
                          f"{row.ratio_p25:>6.2f}-{row.ratio_p75:<6.2f}", flush=True)  # fmt: skip
        if args.guard_frames > 0:
            for label, result in run_guard(arch, arch_weights, device, variants, args.guard_frames):
                # An fp32 path that leaves the reference is a bug (non-zero exit); a reduced
                # precision that does is a measured property of that precision, reported.
                exact = "fp32" in label
                guard_ok &= result.holds or not exact
                verdict = "holds" if result.holds else "FAILS" if exact else "fails: not accurate enough at this precision"
                print(f"guard {arch} {label}: demo clip, {result.frames} frames: box IoU {result.box_iou:.4f} "
                      f"mask IoU {result.mask_iou:.4f} -> {verdict}")  # fmt: skip
    if args.output_dir is not None:
        write_outputs(rows, args.output_dir, header)
        print(f"wrote {args.output_dir / 'results.md'}, results.csv and bench.png")
    return 0 if guard_ok else 1


if __name__ == "__main__":
    sys.exit(main())
