"""Network precision of the torch backend: fp32 unchanged, bf16 on the CPU checked by the
accuracy guard, fp16 off CUDA and non-fp32 ONNX Runtime refused with the reason."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from siammask_ros.cli import track as track_cli
from siammask_ros.cli.bench_backends import _variants
from siammask_ros.eval.guard import GUARD_BOX_IOU, GUARD_MASK_IOU, compare_on_clip, demo_clip
from siammask_ros.model import build_siammask, default_weights_path
from siammask_ros.model.backends import PRECISIONS, TorchBackend, make_backend, precision_dtype
from siammask_ros.ros.params import PARAMETERS
from siammask_ros.tracker import SiamMaskTracker, TrackerConfig
from siammask_ros.tracker.result import TrackResult

GUARD_FRAMES = 30
DEMO_DIR = Path(__file__).resolve().parents[1] / "data" / "demo"


def _optimized() -> torch.nn.Module:
    """The network as the node and siammask-track build it."""
    return build_siammask(weights=default_weights_path(), device="cpu", optimize=True)


def _one_step(net: torch.nn.Module | object) -> tuple[TrackResult, TrackResult]:
    """Initialise on demo frame 0, track frame 1: (initial result, tracked result)."""
    clip = demo_clip(max_frames=2)
    tracker = SiamMaskTracker(net, clip.config)
    return tracker.initialize(clip.frames[0], clip.box), tracker.track(clip.frames[1])


def _assert_identical(a: TrackResult, b: TrackResult) -> None:
    assert (a.state, a.center, a.size, a.confidence) == (b.state, b.center, b.size, b.confidence)
    assert np.array_equal(a.mask, b.mask)


@pytest.fixture(scope="module")
def demo_patches() -> tuple[np.ndarray, np.ndarray]:
    """A template crop and a search crop cut from the demo clip's first frame."""
    frame = demo_clip(max_frames=1).frames[0]
    return np.ascontiguousarray(frame[180:307, 200:327]), np.ascontiguousarray(frame[120:375, 140:395])


def test_fp32_is_bit_identical_to_the_network_as_built(demo_patches: tuple[np.ndarray, np.ndarray]) -> None:
    """precision='fp32' changes nothing: same heads as calling the network directly, same
    tracking step as a tracker given the bare network."""
    template_patch, search_patch = demo_patches
    plain = _optimized()
    backend = make_backend("torch", _optimized(), "", device="cpu", precision="fp32")
    assert backend.dtype == torch.float32 and next(backend.model.parameters()).dtype == torch.float32
    with torch.inference_mode():
        z = torch.from_numpy(template_patch).permute(2, 0, 1).unsqueeze(0).float()
        x = torch.from_numpy(search_patch).permute(2, 0, 1).unsqueeze(0).float()
        expected = plain.track(x, plain.template(z))
    got = backend.track([search_patch], backend.template([template_patch]))
    assert torch.equal(got.cls, expected.cls) and torch.equal(got.loc, expected.loc)
    for ours, theirs in zip(_one_step(backend), _one_step(_optimized())):
        _assert_identical(ours, theirs)


def test_bf16_runs_the_network_in_bf16_and_returns_float32(demo_patches: tuple[np.ndarray, np.ndarray]) -> None:
    template_patch, search_patch = demo_patches
    backend = make_backend("torch", _optimized(), "", device="cpu", precision="bf16")
    assert backend.dtype == torch.bfloat16
    assert {p.dtype for p in backend.model.parameters()} == {torch.bfloat16}
    out = backend.track([search_patch], backend.template([template_patch]))
    assert out.cls.dtype == torch.bfloat16
    probs = backend.refine([out], [(12, 12)])
    assert probs.dtype == np.float32 and probs.shape == (1, 127, 127) and np.isfinite(probs).all()
    reference = make_backend("torch", _optimized(), "", device="cpu", precision="fp32")
    fp32 = reference.track([search_patch], reference.template([template_patch]))
    assert not torch.equal(out.cls.float(), fp32.cls), "bf16 gave the fp32 scores: it did not run in bf16"
    # Close in the large (a bf16 significand has 8 bits), not equal.
    assert torch.allclose(out.cls.float(), fp32.cls, rtol=0.1, atol=0.1 * float(fp32.cls.abs().max()))
    _, tracked = _one_step(backend)
    assert isinstance(tracked.center[0], float) and tracked.mask.dtype == np.uint8


def test_bf16_on_the_cpu_goes_through_the_accuracy_guard() -> None:
    """The guard's numbers for bf16 are computed and its verdict follows them; on this
    CPU bf16 fails the guard (docs/DEPLOYMENT.md), which the guard must report."""
    clip = demo_clip(max_frames=GUARD_FRAMES)
    reference = build_siammask(weights=default_weights_path())  # fp32, as loaded: the guard's reference
    candidate = make_backend("torch", _optimized(), "", device="cpu", precision="bf16")
    result = compare_on_clip(
        lambda config: SiamMaskTracker(reference, config), lambda config: SiamMaskTracker(candidate, config), clip
    )
    print(f"bf16 guard, {result.frames} demo frames: box IoU {result.box_iou:.4f}, mask IoU {result.mask_iou:.4f}")
    assert result.frames == GUARD_FRAMES - 1
    assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (result.box_iou, result.mask_iou, result.min_box_iou))
    assert result.min_box_iou <= result.box_iou
    assert result.box_iou < 1.0 or result.mask_iou < 1.0, "bf16 agreed exactly with fp32: it did not run in bf16"
    if result.holds:
        assert result.box_iou >= GUARD_BOX_IOU and result.mask_iou >= GUARD_MASK_IOU
    else:
        assert result.box_iou < GUARD_BOX_IOU or result.mask_iou < GUARD_MASK_IOU, result


def test_fp16_on_the_cpu_is_refused_naming_the_device() -> None:
    model = _optimized()
    with pytest.raises(ValueError, match=r"precision 'fp16' needs a CUDA device; the network runs on cpu"):
        make_backend("torch", model, "", device="cpu", precision="fp16")
    with pytest.raises(ValueError, match=r"needs a CUDA device; the network runs on cpu"):
        TorchBackend(model, precision="fp16")  # device from the parameters
    assert {p.dtype for p in model.parameters()} == {torch.float32}, "a refused precision must leave the network"


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown precision 'int8'; choose one of fp32, fp16, bf16"):
        precision_dtype("int8", torch.device("cpu"))


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_onnxruntime_refuses_precisions_other_than_fp32(precision: str) -> None:
    with pytest.raises(ValueError, match=rf"onnxruntime backend runs fp32 graphs only, not precision '{precision}'"):
        make_backend("onnxruntime", _optimized(), "siammask_mnv2", device="cpu", precision=precision)


def test_siammask_track_refuses_fp16_on_the_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(DEMO_DIR / "vtest_pedestrians.mp4"), "--box", "252,219,31,90", "--output", str(tmp_path / "r.jsonl"),
            "--device", "cpu", "--precision", "fp16", "--max-frames", "2"]  # fmt: skip
    assert track_cli.main(argv) == 1
    assert "--precision fp16: precision 'fp16' needs a CUDA device; the network runs on cpu" in capsys.readouterr().err


def test_siammask_track_runs_bf16(tmp_path: Path) -> None:
    output = tmp_path / "r.jsonl"
    argv = [str(DEMO_DIR / "vtest_pedestrians.mp4"), "--box", "252,219,31,90", "--output", str(output),
            "--device", "cpu", "--precision", "bf16", "--max-frames", "3"]  # fmt: skip
    assert track_cli.main(argv) == 0
    assert len(output.read_text().splitlines()) == 3


def test_bench_has_a_bf16_row_on_the_cpu_and_no_fp16() -> None:
    variants = _variants("siammask_mnv2", default_weights_path(), torch.device("cpu"), [255], ["torch"],
                         ["fp32", "fp16", "bf16"], reference=False, threads=1)  # fmt: skip
    assert [(v.backend, v.precision, v.crops) for v in variants] == [("torch", "fp32", "host"), ("torch", "bf16", "host")]
    tracker = variants[1].make(TrackerConfig())
    assert tracker._stepper.backend.dtype == torch.bfloat16


def test_node_parameter_offers_every_precision() -> None:
    (spec,) = [p for p in PARAMETERS if p.name == "precision"]
    assert spec.choices == tuple(PRECISIONS) and spec.default == "fp32" and spec.read_only


@pytest.mark.parametrize(
    "params, words",
    [
        (("precision:=fp16",), "precision 'fp16' needs a CUDA device; the network runs on cpu"),
        (("backend:=onnxruntime", "precision:=bf16"),
         "onnxruntime backend runs fp32 graphs only, not precision 'bf16'"),
    ],
)
def test_the_node_fails_configure_on_a_refused_precision(tmp_path: Path, params: tuple[str, ...], words: str) -> None:
    from node_harness import NODE_START_S, NodeProcess

    process = NodeProcess(tmp_path / "node.log", "/precision", "device:=cpu", *params)
    try:
        code = process.process.wait(timeout=NODE_START_S)
    finally:
        process.stop()
    assert code == 1, process.output()[-3000:]
    assert words in process.output()
