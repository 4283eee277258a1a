"""``siammask-gpu-checks``: what a first CUDA run must show beyond speed, in one go.

Part of ``scripts/gpu_bench.sh``; runs on any device (the test suite runs it on the CPU,
where the CUDA-only parts report "n/a"). Checks, each passed, failed or reported:

- device strings: ``auto``, the requested device and a missing CUDA index resolve or are
  refused with a clear message;
- numerics, per architecture: template, search at every size and refine on the device
  against the CPU in fp32 with TF32 off (the package's policy), relative error at most
  ``DEVICE_FP32_RTOL``; the deviation with TF32 on is reported;
- tracking on the device against the CPU on the demo clip (accuracy guard), with host
  and with device crops;
- two identical device runs, bit for bit;
- several targets split across the normal and the lost-mode search in the same steps,
  against one tracker per target (accuracy guard);
- device-to-host copies per step on the device path (one), from the torch profiler;
- one training step under autocast, saved, resumed and continued.

Writes ``gpu_checks.md`` into ``--output-dir``; exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from siammask_ros.eval.guard import Clip, compare_results, demo_clip, run_clip
from siammask_ros.model import SiamMask, build_siammask, default_weights_path, resolve_device
from siammask_ros.tracker import SiamMaskTracker
from siammask_ros.tracker.config import LongTermConfig, TrackerConfig
from siammask_ros.tracker.multi import MultiTargetTracker

__all__ = ["DEVICE_FP32_RTOL", "Check", "main", "run_checks"]

#: Largest relative error (max |device - cpu| / max |cpu|) of a head on the device in fp32
#: with TF32 off. Kernels sum in other orders than the CPU's; TF32 would be about 1e-3.
DEVICE_FP32_RTOL = 1e-4


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None  # None: reported, not judged (a CUDA-only part on the CPU)
    detail: str

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "FAIL", None: "n/a"}[self.passed]


def check_device_strings(device: torch.device) -> list[Check]:
    """``auto`` and the requested device resolve; a CUDA index past the last is refused."""
    checks = [Check("device auto", True, f"resolves to {resolve_device('auto')}")]
    resolved = resolve_device(str(device))
    checks.append(Check(f"device {device}", resolved == device, f"resolves to {resolved}"))
    missing = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    try:
        resolve_device(missing)
        checks.append(Check(f"device {missing} refused", False, "accepted, but no such device exists"))
    except ValueError as error:
        checks.append(Check(f"device {missing} refused", True, str(error)))
    return checks


def _network_outputs(model: SiamMask, device: torch.device, sizes: list[int]) -> list[np.ndarray]:
    """Template features, the heads at every search size and a refined mask, as float64."""
    rng = np.random.default_rng(0)

    def batch(side: int) -> torch.Tensor:
        patch = np.kron(rng.integers(0, 256, (side // 8 + 1, side // 8 + 1, 3)), np.ones((8, 8, 1)))[:side, :side]
        return torch.from_numpy(patch).permute(2, 0, 1)[None].float().to(device)

    outputs = []
    with torch.inference_mode():
        template = model.template(batch(127))
        outputs.append(template)
        for size in sizes:
            out = model.track(batch(size), template)
            centre = out.cls.shape[-1] // 2
            outputs += [out.cls, out.loc, model.refine_mask(out, centre, centre)]
    return [t.double().cpu().numpy() for t in outputs]


def _relative_error(got: list[np.ndarray], expected: list[np.ndarray]) -> float:
    return max(float(np.abs(g - e).max() / max(np.abs(e).max(), 1e-12)) for g, e in zip(got, expected))


@contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def check_numerics(arch: str, weights: Path | None, device: torch.device, sizes: list[int]) -> list[Check]:
    """The network on ``device`` against the CPU, fp32 with TF32 off, and with TF32 on."""
    torch.manual_seed(0)  # the same random weights for an architecture the checkpoint does not hold
    cpu_model = build_siammask(arch, weights=weights)
    expected = _network_outputs(cpu_model, torch.device("cpu"), sizes)
    on_device = copy.deepcopy(cpu_model).to(device)
    with _tf32(False):
        error = _relative_error(_network_outputs(on_device, device, sizes), expected)
    checks = [Check(f"{arch} fp32 on {device} vs cpu, TF32 off", error <= DEVICE_FP32_RTOL,
                    f"largest relative error {error:.2e} (limit {DEVICE_FP32_RTOL:.0e}), sizes {sizes}")]  # fmt: skip
    if device.type == "cuda":
        with _tf32(True):
            error_tf32 = _relative_error(_network_outputs(on_device, device, sizes), expected)
        checks.append(Check(f"{arch} fp32 on {device} vs cpu, TF32 on", None,
                            f"largest relative error {error_tf32:.2e} (why the package turns TF32 off)"))  # fmt: skip
    else:
        checks.append(Check(f"{arch} TF32 deviation", None, "TF32 exists on CUDA only"))
    return checks


def check_tracking(model: SiamMask, device: torch.device, frames: int) -> list[Check]:
    """The tracker on ``device`` against the CPU (guard), and two device runs bit for bit."""
    clip = demo_clip(max_frames=frames)
    cpu_model = copy.deepcopy(model).cpu()
    reference = run_clip(lambda config: SiamMaskTracker(cpu_model, config, crops="host"), clip)
    checks = []
    for crops in ("host", "device"):
        runs = [run_clip(lambda config: SiamMaskTracker(model, config, device=device, crops=crops), clip)
                for _ in range(2)]  # fmt: skip
        guard = compare_results(f"demo {crops} crops", reference, runs[0])
        checks.append(Check(f"tracking on {device}, {crops} crops, vs cpu", guard.holds,
                            f"{guard.frames} demo frames: box IoU {guard.box_iou:.4f}, mask IoU {guard.mask_iou:.4f}"))  # fmt: skip
        identical = all(_same(a, b) for a, b in zip(*runs))
        checks.append(Check(f"two runs on {device}, {crops} crops, bit for bit", identical,
                            "identical" if identical else "the runs differ"))  # fmt: skip
    return checks


def _same(a, b) -> bool:  # noqa: ANN001 - two TrackResults
    return (a.center, a.size, a.confidence) == (b.center, b.size, b.confidence) and (
        np.array_equal(a.rotated_box.corners, b.rotated_box.corners) and np.array_equal(a.mask, b.mask)
    )


def check_mixed_search_sizes(model: SiamMask, device: torch.device, frames: int, lost_size: int) -> list[Check]:
    """Four targets, two held on the lost-mode search: one step serves a 255 and a lost
    group; each target must track as a tracker of its own does."""
    clip = demo_clip(max_frames=frames)
    config = TrackerConfig(long_term=LongTermConfig(enabled=True, search_size=lost_size))
    x, y, w, h = clip.box
    boxes = {"a": clip.box, "b": (x + 120, y + 20, w, h), "lost-a": (x - 150, y - 60, 40, 40), "lost-b": clip.box}
    multi = MultiTargetTracker(model, config, device=device)
    for target_id, box in boxes.items():
        multi.add_target(clip.frames[0], box, target_id=target_id)
    together = []
    for frame in clip.frames[1:]:
        for target_id in ("lost-a", "lost-b"):
            multi.mark_lost(target_id)
        together.append(multi.track(frame))
    checks = []
    for target_id, box in boxes.items():
        target = Clip(target_id, clip.frames, box, config)
        alone = run_clip(lambda c: SiamMaskTracker(model, c, device=device), target, lost=target_id.startswith("lost"))
        guard = compare_results(target_id, alone, [step[target_id] for step in together])
        sizes = sorted({step[target_id].search_size for step in together})
        checks.append(Check(f"mixed search sizes, target {target_id}", guard.holds,
                            f"search {sizes}: box IoU {guard.box_iou:.4f}, mask IoU {guard.mask_iou:.4f}"))  # fmt: skip
    return checks


def check_copies_per_frame(model: SiamMask, device: torch.device, frames: int, lost_size: int) -> list[Check]:
    """Device-to-host copies per step on CUDA (torch profiler), targets on the 255 and the
    lost-mode search together: the device path must need one, whatever the groups; the
    host path's count is reported next to it."""
    if device.type != "cuda":
        return [Check("copies back per frame", None, "a CPU step copies nothing back")]
    from torch.profiler import ProfilerActivity, profile

    clip = demo_clip(max_frames=frames)
    config = TrackerConfig(long_term=LongTermConfig(enabled=True, search_size=lost_size))
    x, y, w, h = clip.box
    counts = {}
    for crops in ("device", "host"):
        multi = MultiTargetTracker(model, config, device=device, crops=crops)
        for target_id, box in {"a": clip.box, "b": (x + 120, y + 20, w, h), "lost": clip.box}.items():
            multi.add_target(clip.frames[0], box, target_id=target_id)
        torch.cuda.synchronize(device)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as recorded:
            for frame in clip.frames[1:]:
                multi.mark_lost("lost")
                multi.track(frame)
            torch.cuda.synchronize(device)
        counts[crops] = _device_to_host_copies(recorded.events()) / (len(clip.frames) - 1)
    if counts["host"] == 0:
        return [Check("copies back per frame", None, "the profiler recorded no device-to-host copies (CUPTI missing?)")]
    detail = f"device path {counts['device']:g}, host path {counts['host']:g} (2 search sizes, 3 targets)"
    return [Check("copies back per frame, device path", counts["device"] == 1, detail)]


def _device_to_host_copies(events) -> int:  # noqa: ANN001 - the profiler's EventList
    """Memcpy DtoH activities, listed as events of their own or under the op that issued them."""
    own = sum("DtoH" in event.name for event in events)
    return own or sum("DtoH" in kernel.name for event in events for kernel in getattr(event, "kernels", ()))


def check_training_step(device: torch.device) -> list[Check]:
    """One training step under autocast (bf16, or fp16 with loss scaling, on CUDA), saved,
    resumed into a fresh trainer and continued next to the original."""
    from siammask_ros.cli.bench import _textured_frame
    from siammask_ros.train.loop import TrainConfig, Trainer
    from siammask_ros.train.sources import ImagePool

    pool = ImagePool(stills=tuple(_textured_frame(320, 240, seed) for seed in range(4)), clips=(), names=("generated",))
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(out_dir=out, steps=4, batch=2, warmup_steps=1, device=str(device), imagenet=False)
        first = Trainer(config, pool=pool)
        losses = first.train_step()
        path = first.save()
        resumed = Trainer(config, pool=pool)
        resumed.resume(path)
        continued, original = resumed.train_step(), first.train_step()
    finite = all(np.isfinite(v) for v in (losses["total"], continued["total"], original["total"]))
    gap = abs(continued["total"] - original["total"]) / max(abs(original["total"]), 1e-12)
    autocast = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else (
        "fp16" if device.type == "cuda" else "off (CPU)")  # fmt: skip
    return [
        Check(f"training step on {device}, autocast {autocast}", finite,
              f"loss {losses['total']:.4f}" if finite else f"non-finite loss {losses}"),  # fmt: skip
        Check("training state saved and resumed", resumed.step == 2 and finite,
              f"resumed at step 1, next loss {continued['total']:.4f} vs {original['total']:.4f} "
              f"without the restart (relative gap {gap:.1e})"),  # fmt: skip
    ]


def run_checks(device: torch.device, frames: int, sizes: list[int], weights: Path | None) -> list[Check]:
    checks = check_device_strings(device)
    for arch in ("siammask_r50", "siammask_mnv2"):
        checks += check_numerics(arch, weights if arch == "siammask_mnv2" else None, device, sizes)
    model = build_siammask(weights=weights, device=device)
    checks += check_tracking(model, device, frames)
    checks += check_mixed_search_sizes(model, device, min(frames, 8), max(sizes))
    checks += check_copies_per_frame(model, device, min(frames, 6), max(sizes))
    checks += check_training_step(device)
    return checks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siammask-gpu-checks", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=30, help="demo-clip frames per tracking run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[255, 831], help="search sizes")
    parser.add_argument("--weights", type=Path, default=None, help="bundled-architecture checkpoint (default: bundled)")
    parser.add_argument("--output-dir", type=Path, default=None, help="write gpu_checks.md here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        print(f"siammask-gpu-checks: {error}", file=sys.stderr)
        return 2
    checks = run_checks(device, args.frames, args.sizes, args.weights or default_weights_path())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [f"GPU checks on {device} ({name}), torch {torch.__version__}", "",
             "| check | verdict | detail |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {c.name} | {c.verdict} | {c.detail} |" for c in checks]
    print("\n".join(lines))
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        (args.output_dir / "gpu_checks.md").write_text("\n".join(lines) + "\n")
    return 1 if any(c.passed is False for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
