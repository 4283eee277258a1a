"""Backends: ONNX Runtime tracks like the fp32 torch reference (the accuracy guard)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from siammask_ros.eval.guard import (  # noqa: E402
    GUARD_BOX_IOU,
    GUARD_MASK_IOU,
    compare_on_clip,
    compare_results,
    demo_clip,
    run_clip,
    synthetic_clips,
)
from siammask_ros.model import SearchOutput, build_siammask, default_weights_path  # noqa: E402
from siammask_ros.model.backends import (  # noqa: E402
    OnnxRuntimeBackend,
    TorchBackend,
    as_backend,
    crop_skip_windows,
    make_backend,
    onnxruntime_providers,
    provider_options,
)
from siammask_ros.tracker import SiamMaskTracker, TrackerConfig  # noqa: E402
from siammask_ros.tracker.config import LongTermConfig  # noqa: E402
from siammask_ros.tracker.multi import MultiTargetTracker  # noqa: E402

LOST_SIZE = 383  # small lost-mode search: quick, and not exported up front (exported on first use)


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    return build_siammask(weights=default_weights_path())  # fp32, as loaded: the reference path


@pytest.fixture(scope="module")
def onnx_backend(tmp_path_factory: pytest.TempPathFactory) -> OnnxRuntimeBackend:
    model = build_siammask(weights=default_weights_path(), optimize=True)
    directory = tmp_path_factory.mktemp("onnx")
    return OnnxRuntimeBackend.from_model(model, "siammask_mnv2", (255,), device="cpu", directory=directory)


def test_guard_holds_on_the_demo_clip(reference: torch.nn.Module, onnx_backend: OnnxRuntimeBackend) -> None:
    clip = demo_clip(max_frames=30)
    result = compare_on_clip(
        lambda config: SiamMaskTracker(reference, config), lambda config: SiamMaskTracker(onnx_backend, config), clip
    )
    assert result.frames == 29
    assert result.box_iou >= GUARD_BOX_IOU and result.mask_iou >= GUARD_MASK_IOU, result
    assert result.holds


def test_guard_holds_in_lost_mode(reference: torch.nn.Module, onnx_backend: OnnxRuntimeBackend) -> None:
    """Every frame searched at the lost-mode size (a graph exported when first needed)."""
    clip = demo_clip(max_frames=8)
    config = clip.config.with_changes(long_term=LongTermConfig(enabled=True, search_size=LOST_SIZE))
    clip = dataclasses.replace(clip, config=config)

    def run(model: object) -> list:
        return run_clip(lambda c: SiamMaskTracker(model, c), clip, lost=True)

    torch_run, onnx_run = run(reference), run(onnx_backend)
    assert all(r.search_size == LOST_SIZE for r in onnx_run)
    result = compare_results("demo-lost", torch_run, onnx_run)
    assert result.holds, result


def test_guard_holds_on_synthetic_sequences(reference: torch.nn.Module, onnx_backend: OnnxRuntimeBackend) -> None:
    clips = synthetic_clips(count=2, frames=25)
    if not clips:
        pytest.skip("the held-out footage of the synthetic sequences (opencv-doc) is not installed")
    for clip in clips:
        result = compare_on_clip(
            lambda c: SiamMaskTracker(reference, c), lambda c: SiamMaskTracker(onnx_backend, c), clip
        )
        assert result.holds, result


def test_multi_target_onnx_matches_torch(reference: torch.nn.Module, onnx_backend: OnnxRuntimeBackend) -> None:
    clip = demo_clip(max_frames=6)
    x, y, w, h = clip.box
    boxes = {"a": clip.box, "b": (x + 120, y + 20, w, h), "c": (x - 150, y - 60, 40, 40)}
    runs = []
    for model in (reference, onnx_backend):
        tracker = MultiTargetTracker(model, TrackerConfig())
        for target_id, box in boxes.items():
            tracker.add_target(clip.frames[0], box, target_id=target_id)
        runs.append([tracker.track(frame) for frame in clip.frames[1:]])
    for target_id in boxes:
        result = compare_results(target_id, [r[target_id] for r in runs[0]], [r[target_id] for r in runs[1]])
        assert result.holds, result


def test_batches_larger_than_a_call_are_split_into_calls(onnx_backend: OnnxRuntimeBackend) -> None:
    """Template, search and refine take at most ``chunk`` rows per call (the TensorRT
    profile's largest batch); more rows give what one call per row gives."""
    rng = np.random.default_rng(2)
    exemplars = [rng.integers(0, 256, (127, 127, 3), dtype=np.uint8) for _ in range(5)]
    crops = [rng.integers(0, 256, (255, 255, 3), dtype=np.uint8) for _ in range(5)]
    positions = [(k, 24 - 3 * k) for k in range(5)]
    templates = onnx_backend.template(exemplars)
    output = onnx_backend.track(crops, templates)
    rows = [SearchOutput(output.cls[k : k + 1], output.loc[k : k + 1], output.mask_corr[k : k + 1],
                         tuple(s[k : k + 1] for s in output.skips)) for k in range(5)]  # fmt: skip
    probs = onnx_backend.refine(rows, positions)
    assert templates.shape[0] == output.cls.shape[0] == probs.shape[0] == 5 > onnx_backend.chunk
    for k in range(5):
        alone = onnx_backend.track([crops[k]], onnx_backend.template([exemplars[k]]))
        np.testing.assert_allclose(output.cls[k : k + 1].numpy(), alone.cls.numpy(), rtol=1e-4, atol=1e-5)
        prob = onnx_backend.refine([alone], [positions[k]])
        np.testing.assert_allclose(probs[k : k + 1], prob, rtol=1e-4, atol=1e-5)


def test_host_windows_match_the_torch_refine_crop(reference: torch.nn.Module) -> None:
    rng = np.random.default_rng(1)
    skips = [rng.standard_normal((2, c, s, s)).astype(np.float32) for c, s in ((4, 125), (5, 63), (6, 31))]
    corr = rng.standard_normal((2, 3, 25, 25)).astype(np.float32)
    refine = reference.refine_head
    for row, col in ((0, 0), (12, 3), (24, 24)):
        want = refine.crop([torch.from_numpy(s[1:2]) for s in skips], torch.from_numpy(corr[1:2]), row, col)
        got = crop_skip_windows(skips, 1, row, col, score_size=25)
        assert len(got) == 3
        for g, w in zip(got, want[:3]):
            np.testing.assert_array_equal(g, w.numpy())
    with pytest.raises(ValueError, match="outside the 25x25 score map"):
        crop_skip_windows(skips, 0, 25, 0, score_size=25)


def test_backend_choice_and_errors(reference: torch.nn.Module, onnx_backend: OnnxRuntimeBackend) -> None:
    assert isinstance(as_backend(reference), TorchBackend)
    assert as_backend(onnx_backend) is onnx_backend
    assert onnxruntime_providers("cpu") == ["CPUExecutionProvider"]
    assert onnxruntime_providers("auto")[-1] == "CPUExecutionProvider"
    with pytest.raises(TypeError, match="SiamMask network or a backend"):
        as_backend("model.pth")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'"):
        make_backend("tensorflow", reference, "siammask_mnv2")
    with pytest.raises(FileNotFoundError, match="no exported SiamMask graphs"):
        OnnxRuntimeBackend(default_weights_path().parent)


def test_siammask_track_runs_on_onnxruntime(tmp_path) -> None:  # noqa: ANN001
    from siammask_ros.cli.track import main as track_main

    clip = demo_clip(max_frames=1)
    records = tmp_path / "out.jsonl"
    video = str(Path(__file__).resolve().parents[1] / "data" / "demo" / "vtest_pedestrians.mp4")
    status = track_main([video, "--box", ",".join(str(v) for v in clip.box), "--backend", "onnxruntime",
                         "--device", "cpu", "--max-frames", "4", "--output", str(records)])  # fmt: skip
    assert status == 0
    assert len(records.read_text().splitlines()) == 4


def test_gpu_providers_get_the_cuda_index_and_tensorrt_a_cache_per_graph_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, onnx_backend: OnnxRuntimeBackend
) -> None:
    monkeypatch.setenv("SIAMMASK_TENSORRT_CACHE", str(tmp_path / "cache"))
    graph = tmp_path / "search_255.onnx"
    graph.write_bytes((onnx_backend.directory / "search_255.onnx").read_bytes())
    names = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    (trt, trt_options), (cuda, cuda_options), (cpu, cpu_options) = provider_options(names, "cuda:1", graph)
    assert (trt, cuda, cpu) == tuple(names)
    assert trt_options["device_id"] == cuda_options["device_id"] == "1" and cpu_options == {}
    assert trt_options["trt_engine_cache_enable"] == "True"
    # A profile over batches 1..4 for both inputs: no engine rebuild when targets are added.
    kernels = "x".join(str(v) for v in onnx_backend.template([np.zeros((127, 127, 3), np.uint8)]).shape[1:])
    assert trt_options["trt_profile_min_shapes"] == f"patches:1x255x255x3,kernels:1x{kernels}"
    assert trt_options["trt_profile_opt_shapes"] == trt_options["trt_profile_min_shapes"]
    assert trt_options["trt_profile_max_shapes"] == f"patches:4x255x255x3,kernels:4x{kernels}"
    first_cache = Path(trt_options["trt_engine_cache_path"])
    assert first_cache.is_dir() and first_cache.parent == tmp_path / "cache"
    # New weights, same file name: never the old engines.
    graph.write_bytes((onnx_backend.directory / "template.onnx").read_bytes())
    (_, retrained), *_ = provider_options(names, "cuda", graph, max_batch=2)
    assert Path(retrained["trt_engine_cache_path"]) != first_cache and retrained["device_id"] == "0"
    assert retrained["trt_profile_max_shapes"] == "patches:2x127x127x3"
    assert provider_options(["CPUExecutionProvider"], "cpu", graph) == [("CPUExecutionProvider", {})]


def test_an_unwritable_export_cache_falls_back_to_a_private_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("SIAMMASK_ONNX_CACHE", str(blocker))
    model = build_siammask(weights=default_weights_path(), optimize=True)
    with pytest.warns(UserWarning, match="cannot use the ONNX export cache"):
        backend = OnnxRuntimeBackend.from_model(model, "siammask_mnv2", (255,), device="cpu")
    assert not backend.directory.is_relative_to(blocker)
    assert backend.template([np.zeros((127, 127, 3), np.uint8)]).shape[0] == 1
