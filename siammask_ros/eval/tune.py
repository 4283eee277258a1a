"""``python -m siammask_ros.eval.tune --set box_fallback_area_ratio=0,0.5,0.7``: choose a tracker setting.

Runs the tracker as the node runs it (preset, long-term search on, the rotated-box fallback
of the network's architecture) over synthetic sequences built from *training* footage
(``TUNING_SPECS``), once per value, and prints the IoU of the published box (the rotated
box's bounds, what a follower gets), of the state box, J and the share of visible frames
with a box delivered. The evaluation sets are never used here.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

import numpy as np


def _parse_setting(text: str) -> tuple[str, list[float] | list[str]]:
    """``NAME=V1,V2,...``: numbers, or words where any value is not a number
    (``rotated_box_extent=mask,box_branch``); TrackerConfig checks them."""
    name, _, values = text.partition("=")
    if not name or not values:
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,..., got {text!r}")
    words = values.split(",")
    try:
        return name, [float(v) for v in words]
    except ValueError:
        return name, words


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m siammask_ros.eval.tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--set", type=_parse_setting, required=True,
                   help="TrackerConfig field (long_term.FIELD for LongTermConfig) and values to try")
    p.add_argument("--weights", help="checkpoint (default: the bundled model)")
    p.add_argument("--preset", default="vot")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)

    import torch

    from siammask_ros.model import build_siammask, default_weights_path, load_checkpoint
    from siammask_ros.tracker.config import box_fallback_for, preset, rotated_box_extent_for
    from siammask_ros.tracker.result import TrackState
    from siammask_ros.tracker.tracker import SiamMaskTracker
    from siammask_ros.train.sources import TRAIN_STILLS, load_pool

    from .metrics import box_iou_xywh, confidently_wrong_frames, mask_iou
    from .runner import hull_xywh
    from .sequences import TUNING_SPECS, make_sequence

    if args.threads:
        torch.set_num_threads(args.threads)
    weights = args.weights or default_weights_path()
    model = build_siammask(load_checkpoint(weights).arch or "siammask_mnv2", weights=weights, optimize=True)
    base = preset(args.preset)
    base = dataclasses.replace(base, long_term=dataclasses.replace(base.long_term, enabled=True))
    arch = getattr(model, "arch", None)
    base = base.with_changes(box_fallback_area_ratio=box_fallback_for(arch), rotated_box_extent=rotated_box_extent_for(arch))
    name, values = args.set
    try:
        for value in values:
            _with_setting(base, name, value)
    except (TypeError, ValueError) as exc:  # no such field, or a value it refuses
        print(f"eval.tune: {name}={value!r}: {exc}", file=sys.stderr)
        return 2
    pool = load_pool("train", stills=TRAIN_STILLS, videos=())
    sequences = [make_sequence(spec, pool) for spec in TUNING_SPECS]
    print(f"{len(sequences)} tuning sequences (training footage); {name} in {values}")
    if name == "box_fallback_area_ratio":
        _box_fallback(model, base, sequences, values)
        return 0
    for value in values:
        tracker = SiamMaskTracker(model, _with_setting(base, name, value))
        published, state, js, delivered = [], [], [], []
        for seq, i, result in _visible_frames(tracker, sequences):
            tracking = result.state is TrackState.TRACKING
            delivered.append(tracking)
            published.append(box_iou_xywh(hull_xywh(result.rotated_box), seq.boxes[i]) if tracking else 0.0)
            state.append(box_iou_xywh(_state_xywh(result), seq.boxes[i]))
            js.append(mask_iou(result.mask, seq.masks[i]))
        _report(f"{name}={value}", np.asarray(published), state, js, delivered)
        tracking = np.asarray(delivered)
        wrong = confidently_wrong_frames(tracking, np.asarray(state)) / max(1, np.count_nonzero(tracking))
        print(f"    TRACKING with state IoU < 0.1: {wrong:.3f} of TRACKING frames; "
              f"LOST while visible: {np.mean(~tracking):.3f}", flush=True)
    return 0


def _with_setting(base, name: str, value):  # noqa: ANN001, ANN202 - TrackerConfig in and out
    """``base`` with one field changed; ``long_term.FIELD`` names a LongTermConfig field."""
    group, _, field = name.rpartition(".")
    if group == "long_term":
        if isinstance(value, float) and field == "wide_search_every":
            value = int(value)
        return base.with_changes(long_term={field: value})
    if group:
        raise ValueError(f"unknown group {group!r}: use a TrackerConfig field or long_term.FIELD")
    return base.with_changes(**{name: value})


def _visible_frames(tracker, sequences):
    """(sequence, frame index, result) for every frame with some of the target visible."""
    for seq in sequences:
        tracker.initialize(seq.frames[0], seq.boxes[0])
        for i in range(1, len(seq.frames)):
            result = tracker.track(seq.frames[i])
            if seq.visible[i] > 0:
                yield seq, i, result


def _state_xywh(result) -> tuple[float, float, float, float]:
    return (result.center[0] - result.size[0] / 2, result.center[1] - result.size[1] / 2, *result.size)


def _report(label: str, published: np.ndarray, state, js, delivered) -> None:
    print(f"{label}: published box IoU {published.mean():.3f} (success {np.mean(published > 0.5):.3f}), "
          f"state box IoU {np.mean(state):.3f}, J {np.mean(js):.3f}, delivered {np.mean(delivered):.3f}",
          flush=True)  # fmt: skip


def _box_fallback(model, base, sequences, values: Sequence[float]) -> None:
    """The fallback changes only the published box, never the state: one run scores every
    value, the published box built as the node builds it (``base.rotated_box_extent``)."""
    from siammask_ros.tracker.geometry import fit_to_box, mask_box_agreement
    from siammask_ros.tracker.result import TrackState
    from siammask_ros.tracker.tracker import SiamMaskTracker

    from .metrics import box_iou_xywh, mask_iou
    from .runner import hull_xywh

    tracker = SiamMaskTracker(model, base.with_changes(box_fallback_area_ratio=0.0, rotated_box_extent="mask"))
    agreement, mask_iou_gt, state_iou_gt, js, delivered = [], [], [], [], []
    for seq, i, result in _visible_frames(tracker, sequences):
        mask_box = result.rotated_box
        if base.rotated_box_extent == "box_branch":
            mask_box = fit_to_box(mask_box, result.center, result.size)
        agreement.append(mask_box_agreement(result.rotated_box, result.size))
        mask_iou_gt.append(box_iou_xywh(hull_xywh(mask_box), seq.boxes[i]))
        state_iou_gt.append(box_iou_xywh(_state_xywh(result), seq.boxes[i]))
        js.append(mask_iou(result.mask, seq.masks[i]))
        delivered.append(result.state is TrackState.TRACKING)
    agreement_arr, delivered_arr = np.asarray(agreement), np.asarray(delivered)
    for value in values:
        chosen = np.where(agreement_arr < value, state_iou_gt, mask_iou_gt)
        share = np.mean(agreement_arr < value)
        _report(f"box_fallback_area_ratio={value:g} (falls back on {share:.1%} of frames)",
                np.where(delivered_arr, chosen, 0.0), state_iou_gt, js, delivered)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
