"""Checkpoint layouts, round trips through files, and the errors users see."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from siammask_ros.model import (
    Checkpoint,
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    SiamMask,
    build_siammask,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    to_layout,
    to_native,
)
from siammask_ros.model.weights import LAYOUTS, describe_checkpoint, detect_layout

SPEC_FILE = Path(__file__).resolve().parents[1].parent / "shared" / "spec" / "siammask_r50_state_dict.txt"

# The reference's statement of how pysot renames the published prefixes.
PUBLISHED_TO_PYSOT = (
    ("features.features.", "backbone."),
    ("features.downsample.", "neck.downsample."),
    ("rpn_model.", "rpn_head."),
    ("mask_model.mask.", "mask_head."),
    ("refine_model.", "refine_head."),
)


def pysot_name(published: str) -> str:
    for old, new in PUBLISHED_TO_PYSOT:
        if published.startswith(old):
            return new + published[len(old) :]
    raise AssertionError(f"{published} has no published prefix")


@pytest.fixture(autouse=True)
def _no_grad() -> Iterator[None]:
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def spec() -> dict[str, tuple[tuple[int, ...], str]]:
    if not SPEC_FILE.is_file():
        pytest.skip(f"reference state-dict listing not found at {SPEC_FILE}")
    entries = {}
    for line in SPEC_FILE.read_text().splitlines():
        match = re.fullmatch(r"(\S+) \[([\d, ]*)\] (\w+)", line.strip())
        assert match, f"unparsed spec line: {line!r}"
        name, dims, dtype = match.groups()
        entries[name] = (tuple(int(d) for d in dims.split(",") if d.strip()), dtype)
    return entries


@pytest.fixture(scope="module")
def source() -> SiamMask:
    torch.manual_seed(11)
    return build_siammask()


@pytest.fixture(scope="module")
def target() -> SiamMask:
    torch.manual_seed(12)
    return build_siammask()


@pytest.fixture(scope="module")
def published(source: SiamMask) -> dict[str, Tensor]:
    return to_layout(source.state_dict(), "published")


@pytest.fixture
def ckpt(tmp_path: Path) -> Iterator[Path]:
    """A checkpoint path, deleted afterwards (full-size files are ~64 MB)."""
    path = tmp_path / "model.pth"
    yield path
    path.unlink(missing_ok=True)


def published_checkpoint(state_dict: dict[str, Tensor]) -> Checkpoint:
    """What load_checkpoint returns for a published-layout file holding ``state_dict``."""
    return Checkpoint(arch="siammask_r50", state_dict=to_native(state_dict, "published"), layout="published")


# --- layouts ----------------------------------------------------------------------------


def test_published_layout_has_exactly_the_reference_names_and_shapes(spec: dict, published: dict) -> None:
    ours = {name: (tuple(t.shape), str(t.dtype).removeprefix("torch.")) for name, t in published.items()}
    assert len(spec) == 356
    assert sorted(set(spec) - set(ours)) == []
    assert sorted(set(ours) - set(spec)) == []
    assert {k: v for k, v in ours.items() if spec[k] != v} == {}


def test_pysot_layout_renames_the_published_prefixes(spec: dict, source: SiamMask) -> None:
    assert set(to_layout(source.state_dict(), "pysot")) == {pysot_name(k) for k in spec}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_are_detected_and_convert_back(layout: str, source: SiamMask) -> None:
    native = source.state_dict()
    renamed = to_layout(native, layout)
    assert detect_layout(renamed) == layout
    back = to_native(renamed)
    assert list(back) == list(native)
    assert all(back[k] is native[k] for k in native)


def test_unknown_layout_name_is_rejected(source: SiamMask) -> None:
    with pytest.raises(ValueError, match="'caffe'"):
        to_layout(source.state_dict(), "caffe")


# --- round trips through files ----------------------------------------------------------


def _bare(published: dict, path: Path) -> None:
    torch.save(published, path)


def _training_file(published: dict, path: Path) -> None:
    # The reference's training script nests the weights and records its own arch name.
    torch.save({"epoch": 20, "arch": "Custom", "state_dict": published, "best_acc": 0.5}, path)


def _data_parallel(published: dict, path: Path) -> None:
    torch.save({"state_dict": {"module." + k: v for k, v in published.items()}}, path)


def _legacy_format(published: dict, path: Path) -> None:
    torch.save(published, path, _use_new_zipfile_serialization=False)


def _pysot(published: dict, path: Path) -> None:
    torch.save({pysot_name(k): v for k, v in published.items()}, path)


def _pysot_data_parallel(published: dict, path: Path) -> None:
    torch.save({"module." + pysot_name(k): v for k, v in published.items()}, path)


WRITERS: dict[str, tuple[Callable[[dict, Path], None], str]] = {
    "published bare": (_bare, "published"),
    "published training file": (_training_file, "published"),
    "published module. prefix": (_data_parallel, "published"),
    "published legacy serialisation": (_legacy_format, "published"),
    "pysot": (_pysot, "pysot"),
    "pysot module. prefix": (_pysot_data_parallel, "pysot"),
}


@pytest.fixture(scope="module")
def labelled(source: SiamMask) -> dict[str, Tensor]:
    """The native names, each holding a distinct one-element tensor (cheap to write and read)."""
    return {name: torch.tensor([float(i)]) for i, name in enumerate(source.state_dict())}


@pytest.mark.parametrize("variant", WRITERS)
def test_third_party_files_load_key_for_key(variant: str, labelled: dict, ckpt: Path) -> None:
    writer, layout = WRITERS[variant]
    writer(to_layout(labelled, "published"), ckpt)
    checkpoint = load_checkpoint(ckpt)
    assert (checkpoint.layout, checkpoint.arch, checkpoint.metadata) == (layout, "siammask_r50", {})
    assert list(checkpoint.state_dict) == list(labelled)
    assert all(torch.equal(checkpoint.state_dict[k], v) for k, v in labelled.items())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_save_checkpoint_round_trips_every_layout(layout: str, labelled: dict, ckpt: Path) -> None:
    save_checkpoint(labelled, ckpt, layout=layout)
    checkpoint = load_checkpoint(ckpt)
    assert (checkpoint.layout, checkpoint.arch) == (layout, "siammask_r50")
    assert list(checkpoint.state_dict) == list(labelled)
    assert all(torch.equal(checkpoint.state_dict[k], v) for k, v in labelled.items())


@pytest.fixture(scope="module")
def source_outputs(source: SiamMask) -> tuple[Tensor, ...]:
    generator = torch.Generator().manual_seed(13)
    z = torch.rand(1, 3, 127, 127, generator=generator) * 255
    x = torch.rand(1, 3, 255, 255, generator=generator) * 255
    with torch.no_grad():
        out = source.track(x, source.template(z))
        return z, x, out.cls, out.loc, source.refine_mask(out, 7, 19)


@pytest.mark.parametrize("variant", ["published module. prefix", "pysot", "native"])
def test_loaded_network_gives_identical_outputs(
    variant: str, published: dict, source: SiamMask, source_outputs: tuple[Tensor, ...], ckpt: Path
) -> None:
    if variant == "native":
        save_checkpoint(source, ckpt, metadata={"note": "round trip"})
    else:
        WRITERS[variant][0](published, ckpt)
    loaded = build_siammask(weights=ckpt)
    expected = source.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())
    z, x, cls, loc, mask = source_outputs
    out = loaded.track(x, loaded.template(z))
    assert torch.equal(out.cls, cls)
    assert torch.equal(out.loc, loc)
    assert torch.equal(loaded.refine_mask(out, 7, 19), mask)


def test_native_format_keeps_arch_and_metadata(ckpt: Path) -> None:
    weights = {"backbone.conv1.weight": torch.randn(4, 3, 7, 7)}
    metadata = {"trained_on": "unit test", "epochs": 3, "lr": 0.01, "stages": [1, 2.5, None], "nested": {"ok": True}}
    save_checkpoint(weights, ckpt, arch="tiny", metadata=metadata)
    checkpoint = load_checkpoint(ckpt)
    assert (checkpoint.arch, checkpoint.layout, checkpoint.metadata) == ("tiny", "native", metadata)
    assert torch.equal(checkpoint.state_dict["backbone.conv1.weight"], weights["backbone.conv1.weight"])
    assert "layout native, arch tiny, 1 tensors, 588 values" in describe_checkpoint(ckpt)


@pytest.mark.parametrize(
    "metadata, match",
    [
        ({"when": object()}, r"metadata\.when has type object"),
        ({"t": torch.zeros(1)}, r"metadata\.t has type Tensor"),
        ({1: "x"}, "key 1"),
    ],
)
def test_metadata_must_be_plain_data(metadata: dict, match: str, ckpt: Path) -> None:
    with pytest.raises(ValueError, match=match):
        save_checkpoint({"backbone.w": torch.zeros(1)}, ckpt, metadata=metadata)
    assert not ckpt.exists()


def test_metadata_needs_the_native_layout(ckpt: Path) -> None:
    with pytest.raises(ValueError, match="'published'"):
        save_checkpoint({"backbone.w": torch.zeros(1)}, ckpt, layout="published", metadata={"a": 1})


# --- mismatches -------------------------------------------------------------------------


def test_wrong_shape_is_named_with_both_shapes(published: dict, ckpt: Path) -> None:
    broken = dict(published)
    broken["rpn_model.cls.head.3.weight"] = torch.zeros(12, 256, 1, 1)
    torch.save(broken, ckpt)
    with pytest.raises(CheckpointMismatchError) as info:
        build_siammask(weights=ckpt)
    message = str(info.value)
    assert "layout detected: published" in message
    expected = "rpn_model.cls.head.3.weight (checkpoint [12, 256, 1, 1], model [10, 256, 1, 1])"
    assert f"keys with the wrong shape (1): {expected}" in message
    assert "missing" not in message and "unexpected" not in message
    assert info.value.mismatched == ("rpn_model.cls.head.3.weight",)


def test_missing_key_is_named(published: dict, target: SiamMask) -> None:
    broken = {k: v for k, v in published.items() if k != "refine_model.post2.bias"}
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(1\): refine_model\.post2\.bias$") as info:
        load_weights(target, published_checkpoint(broken))
    assert info.value.missing == ("refine_model.post2.bias",)
    assert (info.value.unexpected, info.value.mismatched) == ((), ())


def test_unexpected_key_is_named(published: dict, target: SiamMask) -> None:
    broken = dict(published)
    broken["rpn_model.cls.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys \(1\): rpn_model\.cls\.extra\.weight"):
        load_weights(target, published_checkpoint(broken))


def test_long_lists_show_ten_names_and_the_count(published: dict, target: SiamMask) -> None:
    refine = [k for k in published if k.startswith("refine_model.")]
    assert len(refine) > 10
    broken = {k: v for k, v in published.items() if k not in refine}
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(target, published_checkpoint(broken))
    message = str(info.value)
    assert f"missing keys ({len(refine)}): " + ", ".join(refine[:10]) + f" and {len(refine) - 10} more" in message
    assert sorted(info.value.missing) == sorted(refine)


def test_unrecognised_keys_report_an_unknown_layout(ckpt: Path) -> None:
    torch.save({"encoder.weight": torch.zeros(1, 1, 1, 1)}, ckpt)
    checkpoint = load_checkpoint(ckpt)
    assert (checkpoint.layout, checkpoint.arch) == ("unknown", None)
    match = r"layout detected: unknown.*unexpected keys \(1\): encoder\.weight"
    with pytest.raises(CheckpointMismatchError, match=match):
        load_weights(nn.Conv2d(1, 1, 1, bias=False), checkpoint)


def test_checkpoint_for_another_architecture_is_refused(ckpt: Path) -> None:
    save_checkpoint({"backbone.conv1.weight": torch.zeros(1)}, ckpt, arch="tiny")
    with pytest.raises(CheckpointMismatchError, match="'tiny', not 'siammask_r50'"):
        build_siammask("siammask_r50", weights=ckpt)


# --- unreadable files -------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "SiamMask_DAVIS.pth"
    with pytest.raises(CheckpointNotFoundError, match=re.escape(str(path))) as info:
        build_siammask(weights=path)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, CheckpointError)


def test_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path)


def test_garbage_file(ckpt: Path) -> None:
    ckpt.write_bytes(b"this is not a checkpoint\n" * 40)
    with pytest.raises(CorruptCheckpointError, match=re.escape(str(ckpt)) + r".*\(\w+Error: "):
        load_checkpoint(ckpt)


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_file(legacy: bool, ckpt: Path) -> None:
    torch.save({"backbone.conv1.weight": torch.randn(64, 3, 7, 7)}, ckpt, _use_new_zipfile_serialization=not legacy)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match=re.escape(str(ckpt))):
        load_checkpoint(ckpt)


def test_arbitrary_objects_are_not_unpickled(ckpt: Path) -> None:
    torch.save({"state_dict": {"backbone.w": torch.zeros(1)}, "args": argparse.Namespace(lr=0.1)}, ckpt)
    with pytest.raises(CorruptCheckpointError, match="object of type argparse.Namespace"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize(
    "payload, match",
    [
        (torch.zeros(3), "holds a Tensor object, not a state dict"),
        ({"backbone.w": "weights"}, "entry 'backbone.w' has type str, not Tensor"),
        ({"state_dict": [1, 2]}, "'state_dict' has type list, not dict"),
        ({"arch": 5, "state_dict": {"backbone.w": torch.zeros(1)}}, "'arch' has type int, not str"),
    ],
)
def test_content_that_is_not_a_state_dict(payload: object, match: str, ckpt: Path) -> None:
    torch.save(payload, ckpt)
    with pytest.raises(CorruptCheckpointError, match=re.escape(str(ckpt)) + ".*" + re.escape(match)):
        load_checkpoint(ckpt)
