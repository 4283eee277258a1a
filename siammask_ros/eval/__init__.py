"""Evaluating a SiamMask model on held-out data (``python -m siammask_ros.eval``).

Synthetic sequences with exact ground truth over evaluation-only footage
(``sequences``), metrics (``metrics``), and the runs and summaries (``runner``).
"""

from .metrics import SUCCESS_THRESHOLDS, box_iou_xywh, mask_iou, redetection_frames, success_auc, success_curve
from .runner import FB_CLIPS, FBResult, SequenceResult, forward_backward, run_sequence, summarise
from .sequences import DEFAULT_SPECS, SequenceSpec, SyntheticSequence, make_sequence

__all__ = [
    "DEFAULT_SPECS",
    "FB_CLIPS",
    "FBResult",
    "SUCCESS_THRESHOLDS",
    "SequenceResult",
    "SequenceSpec",
    "SyntheticSequence",
    "box_iou_xywh",
    "forward_backward",
    "make_sequence",
    "mask_iou",
    "redetection_frames",
    "run_sequence",
    "success_auc",
    "success_curve",
    "summarise",
]
