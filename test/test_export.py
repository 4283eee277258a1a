"""siammask-export: graphs, metadata, agreement with torch, dynamic batch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
import onnxruntime as ort  # noqa: E402

from siammask_ros.cli.export import main as export_main  # noqa: E402
from siammask_ros.model import build_siammask, default_weights_path  # noqa: E402
from siammask_ros.model.backends import OnnxRuntimeBackend  # noqa: E402
from siammask_ros.model.export import (  # noqa: E402
    ExportError,
    _SearchGraph,
    cached_export,
    check_export,
    export_cache_dir,
    export_onnx,
    graph_file,
    read_metadata,
)

LOST_SIZE = 383  # a small lost-mode size keeps the test quick; 831 is the default


@pytest.fixture(scope="module")
def bundled() -> torch.nn.Module:
    return build_siammask(weights=default_weights_path(), optimize=True)


@pytest.fixture(scope="module")
def exported(bundled: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("onnx")
    export_onnx(bundled, directory, "siammask_mnv2", (255, LOST_SIZE), preset="vot")
    return directory


def test_export_writes_every_graph_with_metadata(exported: Path) -> None:
    manifest = json.loads((exported / "export.json").read_text())
    assert manifest["arch"] == "siammask_mnv2" and manifest["search_sizes"] == [255, LOST_SIZE]
    for size in (255, LOST_SIZE):
        meta = read_metadata(graph_file(exported, "search", size))
        assert meta["arch"] == "siammask_mnv2" and meta["graph"] == "search"
        assert meta["search_size"] == str(size) and meta["preset"] == "vot" and meta["exemplar_size"] == "127"
    session = ort.InferenceSession(str(graph_file(exported, "refine")), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["graph"] == "refine"


def test_onnxruntime_agrees_with_torch(bundled: torch.nn.Module, exported: Path) -> None:
    checks = {c.graph: c for c in check_export(bundled, exported, batch=2)}
    assert set(checks) == {"search_255", f"search_{LOST_SIZE}", "refine@255", f"refine@{LOST_SIZE}"}
    for check in checks.values():
        assert check.max_rel_error < 1e-4, check


def test_search_graph_batch_rows_are_independent(bundled: torch.nn.Module, exported: Path) -> None:
    """One call with three targets gives each row what a call with that target alone gives."""
    session = ort.InferenceSession(str(graph_file(exported, "search", 255)), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, (3, 255, 255, 3), dtype=np.uint8)
    templates = np.stack([rng.integers(0, 256, (127, 127, 3), dtype=np.uint8) for _ in range(3)])
    template_session = ort.InferenceSession(str(graph_file(exported, "template")), providers=["CPUExecutionProvider"])
    (kernels,) = template_session.run(None, {"patches": templates})
    batched = session.run(None, {"patches": patches, "kernels": kernels})
    for i in (0, 2):
        alone = session.run(None, {"patches": patches[i : i + 1], "kernels": kernels[i : i + 1]})
        for got, want in zip(batched, alone):
            np.testing.assert_allclose(got[i : i + 1], want, rtol=1e-4, atol=1e-3)
    with torch.no_grad():
        x = torch.from_numpy(patches).permute(0, 3, 1, 2).float()
        z = torch.from_numpy(templates).permute(0, 3, 1, 2).float()
        cls = bundled.track(x, bundled.template(z)).cls.numpy()
    np.testing.assert_allclose(batched[0], cls, rtol=1e-4, atol=1e-3)


def test_cli_exports_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export_main(["--output-dir", str(tmp_path), "--search-sizes", "255"]) == 0
    out = capsys.readouterr().out
    assert "largest relative error" in out and "search_255" in out
    assert graph_file(tmp_path, "search", 255).is_file() and not graph_file(tmp_path, "search", 831).exists()


def test_cli_rejects_a_too_small_search_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export_main(["--output-dir", str(tmp_path), "--search-sizes", "100"]) == 2
    assert "search sizes must be >= 127" in capsys.readouterr().err


def test_the_export_cache_exports_once_and_what_is_missing(
    bundled: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIAMMASK_ONNX_CACHE", str(tmp_path / "cache"))
    first = cached_export(bundled, "siammask_mnv2", [255])
    assert first.parent == tmp_path / "cache" and graph_file(first, "search", 255).is_file()
    stamps = {p.name: p.stat().st_mtime_ns for p in first.glob("*.onnx")}
    assert cached_export(bundled, "siammask_mnv2", [255]) == first  # a second start: nothing written
    assert {p.name: p.stat().st_mtime_ns for p in first.glob("*.onnx")} == stamps
    cached_export(bundled, "siammask_mnv2", [255, LOST_SIZE])  # one more size, the rest kept
    assert graph_file(first, "search", 255).stat().st_mtime_ns == stamps["search_255.onnx"]
    assert json.loads((first / "export.json").read_text())["search_sizes"] == [255, LOST_SIZE]
    assert not list((tmp_path / "cache").glob(".export-*"))  # the scratch folders are gone
    # Other weights never meet these graphs.
    other = build_siammask(weights=default_weights_path(), optimize=True)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    assert export_cache_dir(other, "siammask_mnv2") != first


def test_exporting_one_more_size_keeps_the_manifest_whole(bundled: torch.nn.Module, tmp_path: Path) -> None:
    export_onnx(bundled, tmp_path, "siammask_mnv2", [255])
    export_onnx(bundled, tmp_path, "siammask_mnv2", [LOST_SIZE])
    assert json.loads((tmp_path / "export.json").read_text())["search_sizes"] == [255, LOST_SIZE]


def test_the_neck_is_composed_with_the_box_branches_only_where_that_is_cheaper(bundled: torch.nn.Module) -> None:
    """MobileNetV2's 96-channel deep feature: one composed 3x3 conv replaces the neck's 1x1
    and the box branches' 3x3, same values. ResNet-50's 1024 channels: composing would cost
    more, so the export keeps the two."""
    composed = _SearchGraph(bundled).neck_search
    assert composed is not None and composed.in_channels == 96
    deep = torch.randn(1, 96, 24, 24) * 3  # wider than 20: the neck crops only template maps
    with torch.no_grad():
        search = bundled.neck(deep)
        separate = torch.cat([bundled.rpn_head[name].conv_search(search) for name in ("cls", "loc")], dim=1)
        torch.testing.assert_close(torch.relu(composed(deep)), separate, rtol=1e-4, atol=1e-4)
    resnet = build_siammask("siammask_r50", optimize=True)
    assert _SearchGraph(resnet).neck_search is None
    assert _SearchGraph(build_siammask("siammask_mnv2")).neck_search is None  # batch norm not folded: not that form


def test_a_graph_folder_of_another_format_is_refused_with_the_remedy(exported: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(exported, old)
    manifest = json.loads((old / "export.json").read_text())
    (old / "export.json").write_text(json.dumps({**manifest, "format": "siammask_ros-onnx-1"}))
    with pytest.raises(ExportError, match="format 'siammask_ros-onnx-1'.*export them again with siammask-export"):
        OnnxRuntimeBackend(old, device="cpu")
    (old / "export.json").unlink()  # without a manifest the template graph's metadata decides: this one's
    assert OnnxRuntimeBackend(old, device="cpu").directory == old
