"""Device crops: the frame uploaded once, every crop cut with torch on the network's device.

Run here on the CPU device, which takes the same code path as CUDA: the crops must equal
OpenCV's to the bit, and tracking with them must pass the accuracy guard.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from siammask_ros.eval.guard import compare_on_clip, compare_results, demo_clip, run_clip
from siammask_ros.model import build_siammask, default_weights_path
from siammask_ros.tracker import SiamMaskTracker, TrackerConfig
from siammask_ros.tracker.config import LongTermConfig
from siammask_ros.tracker.crops import CropSource, crop_patch_on_device, crops_on_device, resize_like_opencv
from siammask_ros.tracker.geometry import crop_patch
from siammask_ros.tracker.multi import MultiTargetTracker

PAD = np.array([17, 130, 250], dtype=np.uint8)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_siammask(weights=default_weights_path())


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(3)
    smooth = np.kron(rng.integers(0, 256, (30, 40, 3)), np.ones((8, 8, 1)))  # blocks: edges and flat areas
    return np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)  # 240x320


@pytest.mark.parametrize(
    ("center", "side", "out_size"),
    [
        ((160.0, 120.0), 200, 127),  # inside, shrunk
        ((160.4, 119.6), 61, 255),  # inside, enlarged
        ((160.0, 120.0), 254, 127),  # an exact halving (OpenCV averages 2x2 blocks)
        ((160.0, 120.0), 127, 127),  # unresized
        ((20.0, 30.0), 180, 255),  # over the top-left corner: padding
        ((310.0, 235.0), 301, 127),  # over the bottom-right corner
        ((3.0, 236.0), 127, 127),  # over a corner, unresized
        ((-400.0, 50.0), 90, 127),  # entirely outside: all padding
    ],
)
def test_a_device_crop_equals_opencvs(frame: np.ndarray, center, side: int, out_size: int) -> None:
    host = crop_patch(frame, center, side, out_size, PAD)
    device = crop_patch_on_device(torch.from_numpy(frame), center, side, out_size, PAD)
    assert device.dtype == torch.uint8 and device.shape == (3, out_size, out_size)
    np.testing.assert_array_equal(device.permute(1, 2, 0).numpy(), host)


def test_resize_like_opencv_matches_cv2_resize_to_the_bit() -> None:
    rng = np.random.default_rng(0)
    sides = [2, 3, 7, 64, 126, 128, 254, 510, 766, 1662, *rng.integers(8, 1700, 40).tolist()]
    for n in sides:
        for out in (127, 255, 831):
            if n == out:
                continue
            image = rng.integers(0, 256, (n, n, 3), dtype=np.uint8)
            expected = cv2.resize(image, (out, out), interpolation=cv2.INTER_LINEAR)
            got = resize_like_opencv(torch.from_numpy(image).permute(2, 0, 1), out).permute(1, 2, 0).numpy()
            assert np.array_equal(got, expected), f"{n} -> {out}: {(got != expected).mean():.2%} of values differ"


def test_a_crop_source_uploads_its_frame_once(frame: np.ndarray) -> None:
    source = CropSource(frame, torch.device("cpu"))
    first = source.crop((100.0, 100.0), 150, 255, PAD)
    uploaded = source._uploaded
    second = source.crop((200.0, 80.0), 90, 127, PAD)
    assert isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor)
    assert source._uploaded is uploaded  # the same device copy served both crops
    assert isinstance(CropSource(frame, None).crop((100.0, 100.0), 150, 255, PAD), np.ndarray)


def test_device_crops_track_like_host_crops(model: torch.nn.Module) -> None:
    clip = demo_clip(max_frames=30)
    result = compare_on_clip(
        lambda config: SiamMaskTracker(model, config, crops="host"),
        lambda config: SiamMaskTracker(model, config, crops="device"),
        clip,
    )
    print(f"device crops, {result.frames} demo frames: box IoU {result.box_iou:.4f}, mask IoU {result.mask_iou:.4f}")
    assert result.holds, result


def test_device_crops_track_like_host_crops_in_lost_mode(model: torch.nn.Module) -> None:
    clip = demo_clip(max_frames=8)
    clip = dataclasses.replace(clip, config=clip.config.with_changes(long_term=LongTermConfig(enabled=True, search_size=383)))
    host = run_clip(lambda config: SiamMaskTracker(model, config, crops="host"), clip, lost=True)
    device = run_clip(lambda config: SiamMaskTracker(model, config, crops="device"), clip, lost=True)
    assert all(r.search_size == 383 for r in device)
    result = compare_results("demo-lost", host, device)
    assert result.holds, result


def test_device_crops_serve_several_targets_and_the_template_update(model: torch.nn.Module) -> None:
    clip = demo_clip(max_frames=8)
    x, y, w, h = clip.box
    boxes = {"a": clip.box, "b": (x + 120, y + 20, w, h), "edge": (2.0, 2.0, 40.0, 40.0)}
    config = TrackerConfig(template_update_rate=0.2, template_update_confidence=0.5)
    runs = {}
    for crops in ("host", "device"):
        tracker = MultiTargetTracker(model, config, crops=crops)
        assert tracker.crops_on_device == (crops == "device")
        for target_id, box in boxes.items():
            tracker.add_target(clip.frames[0], box, target_id=target_id)
        runs[crops] = [tracker.track(frame) for frame in clip.frames[1:]]
    for target_id in boxes:
        result = compare_results(
            target_id, [r[target_id] for r in runs["host"]], [r[target_id] for r in runs["device"]]
        )
        assert result.holds, result


def test_crop_places_resolve_and_refuse_clearly() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert not crops_on_device("auto", "torch", cpu)
    assert crops_on_device("auto", "torch", cuda)
    assert not crops_on_device("auto", "onnxruntime", cuda)
    assert crops_on_device("device", "torch", cpu)
    with pytest.raises(ValueError, match="device crops need the torch backend"):
        crops_on_device("device", "onnxruntime", cpu)
    with pytest.raises(ValueError, match="unknown crop place 'gpu'"):
        crops_on_device("gpu", "torch", cpu)
