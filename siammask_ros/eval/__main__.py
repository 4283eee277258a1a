"""``python -m siammask_ros.eval [--weights CKPT]``: accuracy on held-out data, as tables and plots.

1. Real clips with hand-checked boxes (``data/eval_real``): success rate (IoU > 0.5), mean
   IoU, success AUC, J where outlines exist, ms per frame, confidently-wrong frames
   (a box delivered with IoU < 0.1) and frames with the target visible but no box delivered.
2. Synthetic sequences (exact ground truth, evaluation-only footage and textures): mean box
   IoU, J, AUC, failures and re-detection after a full occlusion.

Each is run for the SiamMask tracker as the node runs it (long-term search on), in short-term
mode (published SiamMask), and for OpenCV's CSRT, KCF and MIL (from ``.venv-eval``, see
docs/EVALUATION.md). Real clips without ground truth get a forward-backward check.
Writes success plots and a JSON summary to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

MODE_LABELS = {"long": "siammask-long", "short": "siammask-short"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m siammask_ros.eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--weights", help="checkpoint (default: the bundled siammask_mnv2 weights)")
    p.add_argument("--arch", help="architecture (default: recorded in the checkpoint)")
    p.add_argument("--preset", default="vot", help="tracker preset: davis, vot, vot_ld")
    p.add_argument("--out", default="results/eval", help="folder for the plots and summary.json")
    p.add_argument("--modes", default="long,short", help="SiamMask modes, comma list of long, short")
    p.add_argument("--classical", default="csrt,kcf,mil",
                   help="OpenCV trackers to compare with (comma list; empty: none)")  # fmt: skip
    p.add_argument("--sections", default="real,synthetic,fb", help="comma list of real, synthetic, fb")
    p.add_argument("--clips", default="", help="only these real clips (comma list of names)")
    p.add_argument("--sequences", type=int, default=0, help="evaluate only the first N synthetic sequences")
    p.add_argument("--box-fallback", choices=("auto", "on", "off"), default="auto",
                   help="rotated-box fallback as the node's rotated_box.fallback (default: %(default)s)")
    p.add_argument("--box-fallback-area-ratio", type=float, default=None, help="its threshold (default: the node's)")
    p.add_argument("--box-extent", choices=("auto", "mask", "box_branch"), default="auto",
                   help="rotated-box size as the node's rotated_box.extent (default: %(default)s)")
    p.add_argument("--template-update", type=float, default=0.0, help="template_update_rate (default: off)")
    p.add_argument("--wide-search-every", type=int, default=1,
                   help="long mode: the wide search on every N-th lost frame (default: %(default)s, every frame)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    return p


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _trackers(model, base, modes: Sequence[str]):
    """(label, tracker) per SiamMask mode: long-term search on (the node's default) or off;
    both with the node's rotated-box fallback for this architecture (``--box-fallback``)."""
    from siammask_ros.tracker.tracker import SiamMaskTracker

    for mode in modes:
        long_term = dataclasses.replace(base.long_term, enabled=mode == "long")
        yield MODE_LABELS[mode], SiamMaskTracker(model, dataclasses.replace(base, long_term=long_term))


def _classical_runs(named_sequences, trackers: Sequence[str], threads: int):
    """OpenCV trackers on (name, frames, init_box) sequences; [] with a note when unavailable."""
    from .classical import ClassicalUnavailable, run_classical

    if not trackers:
        return []
    try:
        return run_classical(named_sequences, trackers=trackers, threads=threads or None)
    except ClassicalUnavailable as exc:
        print(f"(classical trackers skipped: {exc})")
        return []


def _real_section(args, model, base, modes, out: Path, summary: dict) -> None:
    from .real_clips import ClipRun, load_real_clips, pooled_score, score_run
    from .runner import plot_success, run_clip

    clips = load_real_clips(names=_split(args.clips))
    if not clips:
        print("(no annotated real clips found)")
        return
    print(f"\nReal clips with hand-checked boxes: {len(clips)} ({', '.join(c.name for c in clips)})")
    runs: list[ClipRun] = []
    for label, tracker in _trackers(model, base, modes):
        runs += [run_clip(tracker, clip, label) for clip in clips]
    for r in _classical_runs([(c.name, c.frames, c.init_box) for c in clips], _split(args.classical), args.threads):
        runs.append(ClipRun(r.tracker, r.sequence, list(r.boxes), list(r.ms)))
    by_name = {c.name: c for c in clips}
    scores = [score_run(by_name[run.clip], run) for run in runs]
    labels = list(dict.fromkeys(run.tracker for run in runs))
    header = (f"{'clip':<20}{'tracker':<16}{'frames':>7}{'success':>8}{'meanIoU':>8}{'AUC':>7}{'J':>7}"
              f"{'ms':>7}{'confWrong':>10}{'lostVis':>8}")  # fmt: skip
    print(header)
    print("-" * len(header))

    def row(s) -> str:
        return (f"{s.clip:<20}{s.tracker:<16}{s.ious.size:>7}{s.success:>8.3f}{s.mean_iou:>8.3f}{s.auc:>7.3f}"
                f"{_fmt(float(s.js.mean()) if s.js.size else None):>7}{s.ms:>7.1f}{s.confidently_wrong:>10.3f}"
                f"{s.lost_while_visible:>8.3f}")  # fmt: skip

    for clip in clips:
        for s in scores:
            if s.clip == clip.name:
                print(row(s))
    print("-" * len(header))
    pooled = [pooled_score(scores, label) for label in labels]
    for s in pooled:
        print(row(s))
    per_clip_means = {label: float(sum(s.mean_iou for s in scores if s.tracker == label)
                                    / sum(1 for s in scores if s.tracker == label)) for label in labels}  # fmt: skip
    print("mean over clips of mean IoU: " + ", ".join(f"{k} {v:.3f}" for k, v in per_clip_means.items()))
    plot_success({s.tracker: s.ious for s in pooled}, out / "success_real.png", title="Real clips, hand-checked boxes")
    summary["real"] = {
        "clips": {c.name: {"kind": c.kind, "target": c.target, "frames": len(c.frames), "scored": len(c.scored_frames)}
                  for c in clips},  # fmt: skip
        "scores": [_score_dict(s) for s in scores],
        "pooled": [_score_dict(s) for s in pooled],
        "mean_of_clip_mean_iou": per_clip_means,
    }


def _score_dict(s) -> dict[str, object]:
    return {
        "clip": s.clip, "tracker": s.tracker, "frames": int(s.ious.size), "success": s.success,
        "mean_iou": s.mean_iou, "auc": s.auc, "j": float(s.js.mean()) if s.js.size else None, "ms": s.ms,
        "confidently_wrong": s.confidently_wrong, "lost_while_visible": s.lost_while_visible,
    }  # fmt: skip


def _synthetic_section(args, model, base, modes, out: Path, summary: dict) -> None:
    from siammask_ros.train.sources import EVAL_STILLS, load_pool

    from .metrics import success_auc
    from .runner import plot_success, run_sequence, score_sequence_boxes, summarise
    from .sequences import DEFAULT_SPECS, make_sequence

    pool = load_pool("eval", stills=EVAL_STILLS, videos=())
    specs = DEFAULT_SPECS[: args.sequences] if args.sequences else DEFAULT_SPECS
    sequences = [make_sequence(spec, pool) for spec in specs]
    print(f"\nSynthetic held-out sequences: {len(sequences)}")
    results: dict[str, list] = {}
    for label, tracker in _trackers(model, base, modes):
        results[label] = [run_sequence(tracker, seq) for seq in sequences]
    classical = _classical_runs([(s.name, s.frames, tuple(s.boxes[0])) for s in sequences],
                                _split(args.classical), args.threads)  # fmt: skip
    by_name = {s.name: s for s in sequences}
    for run in classical:
        results.setdefault(run.tracker, []).append(score_sequence_boxes(by_name[run.sequence], run.boxes, run.ms))
    header = (f"{'sequence':<24}{'tracker':<16}{'frames':>7}{'boxIoU':>8}{'J':>7}{'AUC':>7}{'fail':>6}"
              f"{'redet':>9}{'confWrong':>10}{'lostVis':>8}")  # fmt: skip
    print(header)
    print("-" * len(header))
    curves = {}
    for label, per_sequence in results.items():
        for r in per_sequence:
            redet = "never" if r.redetect_failed else ("-" if r.redetect is None else str(r.redetect))
            print(f"{r.name:<24}{label:<16}{r.box_iou.size:>7}{r.box_iou.mean():>8.3f}{_fmt(float(r.mask_j.mean())):>7}"
                  f"{success_auc(r.box_iou):>7.3f}{r.failures:>6}{redet:>9}")  # fmt: skip
        total = summarise(per_sequence)
        summary.setdefault("synthetic", {})[label] = total
        curves[label] = [v for r in per_sequence for v in r.box_iou]
        redet = f"{_fmt(total['redetect_mean'], 1)}/{_fmt(total['redetect_max'], 0)}"
        print(f"{'ALL (mean/max redet)':<24}{label:<16}{int(total['frames']):>7}{total['box_iou']:>8.3f}"
              f"{_fmt(total['mask_j']):>7}{total['auc']:>7.3f}{int(total['failures']):>6}{redet:>9}"
              f"{total['confidently_wrong']:>10.3f}{total['lost_while_visible']:>8.3f}"
              f"   re-detected {int(total['redetected'])}/{int(total['occlusions'])}, {total['track_ms']:.0f} ms/frame")
        print("-" * len(header))
    plot_success(curves, out / "success.png")


def _fb_section(model, base, summary: dict) -> None:
    from siammask_ros.tracker.tracker import SiamMaskTracker
    from siammask_ros.train.sources import find_source, read_video

    from .runner import FB_CLIPS, forward_backward

    tracker = SiamMaskTracker(model, base)
    fb = []
    print(f"\n{'forward-backward clip':<28}{'frames':>7}{'return centre err px':>22}{'return IoU':>12}")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import torch

    from siammask_ros.model import build_siammask, default_weights_path, load_checkpoint
    from siammask_ros.tracker.config import (
        DEFAULT_BOX_FALLBACK_AREA_RATIO,
        box_fallback_for,
        preset,
        rotated_box_extent_for,
    )

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
    ratio = args.box_fallback_area_ratio
    fallback_area_ratio = DEFAULT_BOX_FALLBACK_AREA_RATIO if ratio is None else ratio
    try:
        base = preset(args.preset).with_changes(
            box_fallback_area_ratio=box_fallback_for(arch, args.box_fallback, fallback_area_ratio),
            rotated_box_extent=rotated_box_extent_for(arch, args.box_extent),
            template_update_rate=args.template_update,
            long_term={"wide_search_every": args.wide_search_every},
        )
    except ValueError as exc:
        print(f"siammask eval: {exc}", file=sys.stderr)
        return 2
    modes = _split(args.modes)
    sections = _split(args.sections)
    for name, allowed, given in (("mode", MODE_LABELS, modes), ("section", ("real", "synthetic", "fb"), sections)):
        unknown = [g for g in given if g not in allowed]
        if unknown:
            print(f"siammask eval: unknown {name} {unknown}: use {', '.join(allowed)}", file=sys.stderr)
            return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"weights {weights} (arch {arch}), preset {args.preset}, box fallback {base.box_fallback_area_ratio:g}, "
          f"box extent {base.rotated_box_extent}, template update {base.template_update_rate:g}, "
          f"wide search every {base.long_term.wide_search_every}")  # fmt: skip
    summary: dict[str, object] = {
        "weights": str(weights), "arch": arch, "preset": args.preset,
        "box_fallback_area_ratio": base.box_fallback_area_ratio, "rotated_box_extent": base.rotated_box_extent,
        "template_update_rate": base.template_update_rate,
        "wide_search_every": base.long_term.wide_search_every,
    }  # fmt: skip
    try:
        if "real" in sections:
            _real_section(args, model, base, modes, out, summary)
        if "synthetic" in sections:
            _synthetic_section(args, model, base, modes, out, summary)
        if "fb" in sections:
            _fb_section(model, base, summary)
    except (ValueError, OSError) as exc:  # a clip that cannot be read or scored, an unknown clip name
        print(f"siammask eval: {exc}", file=sys.stderr)
        return 2
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(f"wrote plots and {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
