"""Test helper: randomly initialised SiamMask networks that behave like trained ones.

With default batch-norm statistics a random network's activations explode (scores of
exactly 0 or 1, box sizes of inf). Re-estimating the statistics on a few textured crops
gives finite outputs whose scores vary across the map, which is what end-to-end
comparisons between two trackers need.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from siammask_ros.model import SiamMask, build_siammask


def texture(h: int, w: int, seed: int, cell: int) -> np.ndarray:
    """A blurred random colour checkerboard, ``cell`` px squares, uint8 BGR (h, w, 3)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(h // cell + 1, w // cell + 1, 3), dtype=np.uint8)
    big = np.kron(small, np.ones((cell, cell, 1), dtype=np.uint8))[:h, :w]
    return cv2.GaussianBlur(big, (5, 5), 1.5)


def calibrated_network(arch: str, seed: int = 0) -> SiamMask:
    """``arch`` with seeded random weights and batch-norm statistics from textured crops, in eval mode."""
    torch.manual_seed(seed)
    net = build_siammask(arch)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batch
    net.train()
    crops = [texture(255, 255, seed=s, cell=c) for s, c in ((3, 8), (4, 5), (5, 11))]
    batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        net.track(batch, net.template(batch[:, :, 64:191, 64:191]))
    return net.eval()
