"""``python -m siammask_ros.eval [--weights CKPT]``: accuracy on held-out data, as a table.

Synthetic sequences (exact ground truth, evaluation-only footage and textures): mean box
IoU, mean mask IoU (J), success AUC, failures (visible-target frames with IoU 0) and the
frames needed to re-detect the target after a full occlusion, once with the short-term
tracker and once with long-term search on. Real clips (no ground truth):
forward-backward consistency. Writes a success plot PNG and a JSON summary to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m siammask_ros.eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--weights", help="checkpoint (default: the bundled siammask_mnv2 weights)")
    p.add_argument("--arch", help="architecture (default: recorded in the checkpoint)")
    p.add_argument("--preset", default="vot", help="tracker preset: davis, vot, vot_ld")
    p.add_argument("--out", default="results/eval", help="folder for success.png and summary.json")
    p.add_argument("--modes", default="short,long", help="comma list of short, long")
    p.add_argument("--sequences", type=int, default=0, help="evaluate only the first N synthetic sequences")
    p.add_argument("--no-fb", action="store_true", help="skip the forward-backward check on real clips")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    return p


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import torch

    from siammask_ros.model import build_siammask, default_weights_path, load_checkpoint
    from siammask_ros.tracker.config import LongTermConfig, preset
    from siammask_ros.tracker.tracker import SiamMaskTracker
    from siammask_ros.train.sources import EVAL_STILLS, find_source, load_pool, read_video

    from .metrics import success_auc
    from .runner import FB_CLIPS, forward_backward, plot_success, run_sequence, summarise
    from .sequences import DEFAULT_SPECS, make_sequence

    if args.threads:
        torch.set_num_threads(args.threads)
    weights = args.weights or default_weights_path()
    if weights is None:
        print("no weights: pass --weights (the bundled checkpoint is not installed)", file=sys.stderr)
        return 2
    arch = args.arch or load_checkpoint(weights).arch or "siammask_mnv2"
    try:
        model = build_siammask(arch, weights=weights, device=args.device, optimize=True)
    except (ValueError, RuntimeError) as exc:  # no such device, or the network did not load onto it
        print(f"siammask eval: {exc}", file=sys.stderr)
        return 2
    base = preset(args.preset)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        if mode not in ("short", "long"):
            raise SystemExit(f"unknown mode {mode!r}: use short and/or long")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    pool = load_pool("eval", stills=EVAL_STILLS, videos=())
    specs = DEFAULT_SPECS[: args.sequences] if args.sequences else DEFAULT_SPECS
    sequences = [make_sequence(spec, pool) for spec in specs]
    print(f"weights {weights} (arch {arch}), preset {args.preset}, {len(sequences)} synthetic sequences")

    summary: dict[str, object] = {"weights": str(weights), "arch": arch, "preset": args.preset}
    curves = {}
    header = f"{'sequence':<24}{'mode':<7}{'frames':>7}{'boxIoU':>8}{'J':>7}{'AUC':>7}{'fail':>6}{'redet':>7}"
    print(header)
    print("-" * len(header))
    for mode in modes:
        config = dataclasses.replace(base, long_term=LongTermConfig(enabled=mode == "long"))
        tracker = SiamMaskTracker(model, config)
        results = [run_sequence(tracker, seq) for seq in sequences]
        for r in results:
            redet = "never" if r.redetect_failed else ("-" if r.redetect is None else str(r.redetect))
            print(f"{r.name:<24}{mode:<7}{r.box_iou.size:>7}{r.box_iou.mean():>8.3f}{r.mask_j.mean():>7.3f}"
                  f"{success_auc(r.box_iou):>7.3f}{r.failures:>6}{redet:>7}")  # fmt: skip
        total = summarise(results)
        summary[mode] = total
        curves[f"{mode}-term"] = [v for r in results for v in r.box_iou]
        redet = f"{_fmt(total['redetect_mean'], 1)}/{_fmt(total['redetect_max'], 0)}"
        print(f"{'ALL (mean/max redet)':<24}{mode:<7}{int(total['frames']):>7}{total['box_iou']:>8.3f}"
              f"{total['mask_j']:>7.3f}{total['auc']:>7.3f}{int(total['failures']):>6}{redet:>9}"
              f"   re-detected {int(total['redetected'])}/{int(total['occlusions'])} occlusions,"
              f" {total['track_ms']:.0f} ms/frame (median)")  # fmt: skip
        print("-" * len(header))
    plot_success(curves, out / "success.png")

    if not args.no_fb:
        tracker = SiamMaskTracker(model, base)
        fb = []
        print(f"{'real clip':<28}{'frames':>7}{'return centre err px':>22}{'return IoU':>12}")
        for clip in FB_CLIPS:
            path = find_source(clip.name)
            if path is None:
                print(f"{clip.name:<28}  (not installed, skipped)")
                continue
            frames = read_video(path, max_frames=clip.start + clip.frames, max_side=10_000)[clip.start :]
            r = forward_backward(tracker, frames, clip.box, f"{clip.name} {clip.label}")
            fb.append(dataclasses.asdict(r))
            print(f"{r.name:<28}{r.frames:>7}{r.centre_error_px:>22.1f}{r.return_iou:>12.3f}")
        summary["forward_backward"] = fb
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'success.png'} and {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
