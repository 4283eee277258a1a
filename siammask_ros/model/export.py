"""Export a SiamMask to ONNX graphs for ONNX Runtime (and TensorRT through it).

Graphs, each with a dynamic batch axis (one row per target)::

    template.onnx      patches (B, 127, 127, 3) uint8 BGR -> kernels (B, 3C, k, k)
    search_<S>.onnx    patches (B, S, S, 3) uint8, kernels -> cls, loc, mask_feature, p0, p1, p2
    refine.onnx        p0, p1, p2 windows, mask_feature window, mask kernel -> prob (B, 127, 127)

``kernels`` are the cls, loc and mask heads' correlation kernels of each target (fixed per
target, so computed once). The search graph computes the box branches everywhere but
stops the mask branch at ``mask_feature``: its correlation is needed only at the chosen
position, where the refine graph computes it (exact, and a third of the heads' work
saved). ``mask_feature`` is the neck's output, or, where the neck is a 1x1 convolution
whose composition with the box branches' 3x3 convolution costs less than the two apart
(the bundled MobileNetV2 model: 96 channels in, 128 out), the backbone's deep feature:
the search graph then runs the composed convolution and the refine graph applies the
neck to its window only (exact up to float rounding; the 831 search 5-9 % faster on a
2-core CPU). One search graph per search size (255 and the lost-mode size): a
fixed spatial size lets the runtime plan every convolution. Inputs are the tracker's
uint8 crops as they are (cast and NCHW move inside) and the refine graph ends in the
sigmoid, so a backend does no per-step tensor work on the host.

The depthwise correlation is written as one convolution with ``groups = C`` and a
channel multiplier of B (every search row against every kernel row), of which the
diagonal is kept: a grouped convolution whose group count depends on the batch cannot be
expressed in ONNX, and this form is exact. It costs B times the correlation, so
``OnnxRuntimeBackend`` runs at most 4 rows per call.

Every file carries metadata (``onnxruntime.InferenceSession.get_modelmeta()``):
format, architecture, graph kind, exemplar and search size, preset, opset, exporter.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .heads import DepthwiseCorrelation, RefineInputs
from .inference import optimize_for_inference
from .siammask import SiamMask

__all__ = [
    "EXPORT_FORMAT",
    "ExportCheck",
    "ExportError",
    "cache_root",
    "cached_export",
    "check_export",
    "check_format",
    "export_cache_dir",
    "export_onnx",
    "graph_file",
    "read_metadata",
]

EXPORT_FORMAT = "siammask_ros-onnx-2"  # 2: mask_feature may be the deep feature
EXEMPLAR_SIZE = 127
TEMPLATE_OUTPUTS = ("kernels",)
SEARCH_INPUTS = ("patches", "kernels")
SEARCH_OUTPUTS = ("cls", "loc", "mask_feature", "p0", "p1", "p2")
REFINE_INPUTS = ("p0", "p1", "p2", "mask_feature_window", "mask_kernel")


class ExportError(RuntimeError):
    """The network could not be exported, or an exported graph disagrees with torch."""


def graph_file(directory: str | os.PathLike[str], kind: str, search_size: int | None = None) -> Path:
    """Path of one graph in an export directory: ``template``, ``search`` (needs the size), ``refine``."""
    if kind == "search":
        if search_size is None:
            raise ValueError("a search graph needs its search size")
        return Path(directory) / f"search_{int(search_size)}.onnx"
    if kind not in ("template", "refine"):
        raise ValueError(f"unknown graph kind {kind!r}: use template, search or refine")
    return Path(directory) / f"{kind}.onnx"


class _GroupedConv(torch.autograd.Function):
    """A grouped convolution whose weight is computed in the graph: the TorchScript
    exporter refuses a weight with a symbolic dimension, ONNX's Conv does not."""

    @staticmethod
    def forward(ctx, search: Tensor, weight: Tensor, groups: int) -> Tensor:  # noqa: ARG004
        return nn.functional.conv2d(search, weight, groups=groups)

    @staticmethod
    def symbolic(g, search, weight, groups: int):  # noqa: ANN001, ANN205 (exporter types)
        out = g.op("Conv", search, weight, group_i=groups)
        out.setType(search.type().with_sizes([None, None, None, None]))  # batch-dependent
        return out


def _diagonal_xcorr(search: Tensor, kernel: Tensor) -> Tensor:
    """Depthwise correlation, row b of ``search`` with row b of ``kernel``, in a form with
    a batch-independent group count (see the module docstring)."""
    # Static channel and kernel sizes (python ints) keep the convolution's weight shape
    # known to the exporter; only the batch stays symbolic.
    channels, side = int(kernel.shape[1]), int(kernel.shape[2])
    batch = kernel.shape[0]
    weight = kernel.transpose(0, 1).reshape(-1, 1, side, side)  # (C*B, 1, k, k)
    every = _GroupedConv.apply(search, weight, channels)  # (B, C*B, H', W')
    height, width = int(every.shape[-2]), int(every.shape[-1])
    every = every.reshape(batch, channels, batch, height * width).transpose(1, 2)  # (B, B, C, H'W')
    diagonal = torch.arange(batch, device=search.device) * (batch + 1)
    rows = every.reshape(-1, channels, height * width).index_select(0, diagonal)
    return rows.reshape(-1, channels, height, width)


def _to_nchw(patches: Tensor) -> Tensor:
    return patches.permute(0, 3, 1, 2).float()


class _TemplateGraph(nn.Module):
    """Template features -> the correlation kernels of the cls, loc and mask heads,
    concatenated (B, 3C, k, k): fixed per target, so computed once, not every frame."""

    def __init__(self, model: SiamMask) -> None:
        super().__init__()
        self.model = model
        self.heads = _heads(model)
        self.fused_kernel = _fuse_parallel_convs([head.conv_kernel for head in self.heads])

    def forward(self, patches: Tensor) -> Tensor:
        template = self.model.template(_to_nchw(patches))
        if self.fused_kernel is None:
            return torch.cat([head.conv_kernel(template) for head in self.heads], dim=1)
        return torch.relu(self.fused_kernel(template))


class _SearchGraph(nn.Module):
    """``SiamMask.track`` for the box branches; the mask branch stops at ``mask_feature``,
    because its correlation is needed at one position only (the refine graph computes it
    there: exact, and a third of the heads' work saved).

    Where the neck composes with the box branches (``_compose_neck``: ``neck_search``), the
    box branches start from the deep feature and ``mask_feature`` is the deep feature
    (``from_deep``); else they start from the neck's output, which is ``mask_feature``.
    The module is the same for every search size.
    """

    def __init__(self, model: SiamMask) -> None:
        super().__init__()
        self.model = model
        self.heads = _heads(model)[:2]
        fused = _fuse_parallel_convs([head.conv_search for head in self.heads])
        self.neck_search = _compose_neck(model.neck, fused)
        self.fused_search = fused if self.neck_search is None else None

    @property
    def from_deep(self) -> bool:
        """``mask_feature`` is the deep feature, so the refine graph applies the neck."""
        return self.neck_search is not None

    def forward(self, patches: Tensor, kernels: Tensor) -> tuple[Tensor, ...]:
        p0, p1, p2, deep = self.model.backbone(_to_nchw(patches))
        width = int(kernels.shape[1]) // 3  # python int: static slices
        if self.neck_search is not None:
            mask_feature, searched = deep, torch.relu(self.neck_search(deep))
        else:
            mask_feature = self.model.neck(deep)
            searched = self._box_branches(mask_feature)
        corr = _diagonal_xcorr(searched, kernels[:, : 2 * width])  # cls and loc in one grouped conv
        cls_head, loc_head = self.heads
        return cls_head.head(corr[:, :width]), loc_head.head(corr[:, width:]), mask_feature, p0, p1, p2

    def _box_branches(self, search: Tensor) -> Tensor:
        if self.fused_search is None:
            return torch.cat([head.conv_search(search) for head in self.heads], dim=1)
        return torch.relu(self.fused_search(search))


class _RefineGraph(nn.Module):
    """The mask correlation at the chosen position from a window of ``mask_feature`` (the
    neck applied to it first where that is the deep feature) and the mask kernel, then
    ``Refine.fuse`` and the sigmoid."""

    def __init__(self, model: SiamMask, from_deep: bool = False) -> None:
        super().__init__()
        self.refine = model.refine_head
        self.mask_head = model.mask_head
        self.neck = model.neck if from_deep else None

    def forward(self, p0: Tensor, p1: Tensor, p2: Tensor, window: Tensor, mask_kernel: Tensor) -> Tensor:
        if self.neck is not None:
            window = self.neck.project(window)
        corr = (self.mask_head.conv_search(window) * mask_kernel).sum(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.refine.fuse(RefineInputs(p0, p1, p2, corr)))


def _compose_neck(neck: nn.Module, conv: nn.Conv2d | None) -> nn.Conv2d | None:
    """The neck's 1x1 convolution followed by ``conv`` (the box branches' fused 3x3
    convolution, ``_fuse_parallel_convs``), as one convolution from the deep feature, where
    that form exists and costs fewer multiply-adds per output pixel; else None.

    Exact up to float rounding because nothing nonlinear lies between the two and the 3x3
    convolution does not pad (a padded one would see zeros where the neck's output has
    its bias).
    """
    projection = getattr(neck, "downsample", None)
    layers = list(projection.children()) if isinstance(projection, nn.Sequential) else []
    if len(layers) != 2 or type(layers[0]) is not nn.Conv2d or type(layers[1]) is not nn.Identity:
        return None  # not a folded 1x1 conv (batch norm still separate, or another neck)
    pointwise = layers[0]
    if conv is None or pointwise.kernel_size != (1, 1) or pointwise.stride != (1, 1) or pointwise.groups != 1:
        return None
    if pointwise.padding != (0, 0) or conv.padding != (0, 0):
        return None
    taps = conv.kernel_size[0] * conv.kernel_size[1]
    deep, mid, out = pointwise.in_channels, pointwise.out_channels, conv.out_channels
    if deep * taps * out >= deep * mid + mid * taps * out:
        return None  # wider deep feature (the ResNet-50's 1024 channels): composing costs more
    composed = nn.Conv2d(deep, out, conv.kernel_size, stride=conv.stride, dilation=conv.dilation, bias=True)
    neck_bias = pointwise.bias if pointwise.bias is not None else torch.zeros(mid)
    with torch.no_grad():
        composed.weight.copy_(torch.einsum("omhw,md->odhw", conv.weight, pointwise.weight[:, :, 0, 0]))
        composed.bias.copy_(conv.bias + torch.einsum("omhw,m->o", conv.weight, neck_bias))
    return composed.eval()


def _heads(model: SiamMask) -> list[DepthwiseCorrelation]:
    return [model.rpn_head["cls"], model.rpn_head["loc"], model.mask_head]


def _fuse_parallel_convs(branches: Sequence[nn.Module]) -> nn.Conv2d | None:
    """One convolution computing every branch's (conv, identity, relu) at once, outputs
    concatenated; None when the branches are not all of that folded form."""
    convs = []
    for branch in branches:
        layers = list(branch.children()) if isinstance(branch, nn.Sequential) else []
        if len(layers) != 3 or type(layers[0]) is not nn.Conv2d or type(layers[1]) is not nn.Identity:
            return None
        if type(layers[2]) is not nn.ReLU:
            return None
        convs.append(layers[0])
    first = convs[0]
    same = ("in_channels", "kernel_size", "stride", "padding", "dilation", "groups")
    if any(getattr(c, a) != getattr(first, a) for c in convs for a in same) or first.groups != 1:
        return None
    fused = nn.Conv2d(
        first.in_channels, sum(c.out_channels for c in convs), first.kernel_size,
        stride=first.stride, padding=first.padding, dilation=first.dilation, bias=True,
    )  # fmt: skip
    with torch.no_grad():
        fused.weight.copy_(torch.cat([c.weight for c in convs]))
        fused.bias.copy_(torch.cat([c.bias if c.bias is not None else torch.zeros(c.out_channels) for c in convs]))
    return fused.eval()


@dataclass(frozen=True)
class ExportCheck:
    """Largest deviation of one graph's outputs from torch on the same inputs."""

    graph: str
    max_abs_error: float
    max_rel_error: float  # max |onnx - torch| / max |torch|, over outputs


def _metadata(arch: str, kind: str, search_size: int | None, preset: str, opset: int) -> dict[str, str]:
    meta = {
        "format": EXPORT_FORMAT,
        "arch": arch,
        "graph": kind,
        "exemplar_size": str(EXEMPLAR_SIZE),
        "preset": preset,
        "opset": str(opset),
        "exporter": f"torch {torch.__version__} (torch.onnx.export, dynamo=False)",
    }
    if search_size is not None:
        meta["search_size"] = str(search_size)
    return meta


def _write(module: nn.Module, args: tuple[Tensor, ...], path: Path, inputs: Sequence[str],
           outputs: Sequence[str], metadata: dict[str, str], opset: int) -> None:  # fmt: skip
    import onnx

    dynamic = {name: {0: "batch"} for name in (*inputs, *outputs)}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Shapes read as python ints are meant to be constants of the graph.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter's notice
            torch.onnx.export(
                module, args, str(path), input_names=list(inputs), output_names=list(outputs),
                dynamic_axes=dynamic, opset_version=opset, dynamo=False,
            )  # fmt: skip
    except Exception as exc:  # the exporter raises many types; all mean the same to a user
        raise ExportError(f"exporting {path.name} failed: {type(exc).__name__}: {exc}") from exc
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, metadata)
    onnx.save(graph, str(path))


def _example_inputs(
    model: SiamMask, search_size: int, from_deep: bool, batch: int = 2
) -> dict[str, tuple[Tensor, ...]]:
    generator = torch.Generator().manual_seed(search_size)
    z = torch.randint(0, 256, (batch, EXEMPLAR_SIZE, EXEMPLAR_SIZE, 3), dtype=torch.uint8, generator=generator)
    x = torch.randint(0, 256, (batch, search_size, search_size, 3), dtype=torch.uint8, generator=generator)
    with torch.no_grad():
        kernels = _TemplateGraph(model)(z)
        out = model.track(_to_nchw(x), model.template(_to_nchw(z)))
        windows = model.refine_head.crop(out.skips, out.mask_corr, 0, 0)[:3]
        deep = model.backbone(_to_nchw(x))[-1]
    width = kernels.shape[1] // 3
    side = deep.shape[-1] - out.cls.shape[-1] + 1  # the window one score cell needs (the neck is 1x1)
    feature = deep if from_deep else model.neck(deep)  # what the search graph hands the refine graph
    refine = (*windows, feature[:, :, :side, :side].contiguous(), kernels[:, 2 * width :].contiguous())
    return {"template": (z,), "search": (x, kernels), "refine": refine}


def export_onnx(
    model: SiamMask,
    directory: str | os.PathLike[str],
    arch: str,
    search_sizes: Sequence[int] = (255, 831),
    preset: str = "vot",
    opset: int = 17,
) -> list[Path]:
    """Write ``template.onnx``, ``search_<S>.onnx`` for each size and ``refine.onnx`` into
    ``directory`` (created), plus ``export.json`` listing them; returns the graph paths.

    ``model`` is not changed: a copy is exported with batch norm folded (fp32, CPU).

    Raises:
        ValueError: no or invalid search sizes.
        ExportError: the exporter failed.
    """
    sizes = sorted({int(s) for s in search_sizes})
    if not sizes or min(sizes) < EXEMPLAR_SIZE:
        raise ValueError(f"search sizes must be >= {EXEMPLAR_SIZE}, got {list(search_sizes)}")
    net = copy.deepcopy(model).float().cpu().eval()
    if any(isinstance(m, nn.BatchNorm2d) for m in net.modules()):
        optimize_for_inference(net, channels_last=False)
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    search_graph = _SearchGraph(net)
    from_deep = search_graph.from_deep
    paths: list[Path] = []
    for size in sizes:
        examples = _example_inputs(net, size, from_deep)
        if not paths:
            path = graph_file(out_dir, "template")
            _write(_TemplateGraph(net), examples["template"], path, ("patches",), TEMPLATE_OUTPUTS,
                   _metadata(arch, "template", None, preset, opset), opset)  # fmt: skip
            paths.append(path)
            path = graph_file(out_dir, "refine")
            _write(_RefineGraph(net, from_deep), examples["refine"], path, REFINE_INPUTS, ("prob",),
                   _metadata(arch, "refine", None, preset, opset), opset)  # fmt: skip
            paths.append(path)
        path = graph_file(out_dir, "search", size)
        _write(search_graph, examples["search"], path, SEARCH_INPUTS, SEARCH_OUTPUTS,
               _metadata(arch, "search", size, preset, opset), opset)  # fmt: skip
        paths.append(path)
    _write_manifest(out_dir, arch, preset, sorted(set(sizes) | _listed_sizes(out_dir, arch, preset)))
    return paths


def _listed_sizes(out_dir: Path, arch: str, preset: str) -> set[int]:
    """Search sizes an earlier export of the same network left in ``out_dir`` (their graphs
    still there), so that exporting one more size keeps them in the manifest."""
    try:
        manifest = json.loads((out_dir / "export.json").read_text())
    except (OSError, ValueError):
        return set()
    if (manifest.get("format"), manifest.get("arch"), manifest.get("preset")) != (EXPORT_FORMAT, arch, preset):
        return set()
    return {int(s) for s in manifest.get("search_sizes", []) if graph_file(out_dir, "search", s).is_file()}


def _write_manifest(out_dir: Path, arch: str, preset: str, sizes: Sequence[int]) -> None:
    names = [graph_file(out_dir, "template").name, graph_file(out_dir, "refine").name]
    names += [graph_file(out_dir, "search", size).name for size in sizes]
    manifest = {"format": EXPORT_FORMAT, "arch": arch, "preset": preset, "search_sizes": sorted(sizes),
                "graphs": names}  # fmt: skip
    scratch = out_dir / f".export.json.{os.getpid()}"
    scratch.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(scratch, out_dir / "export.json")  # readers never see half a manifest


def export_cache_dir(model: SiamMask, arch: str, preset: str = "vot") -> Path:
    """Where ``cached_export`` keeps the graphs of ``model``: a folder named by a digest of
    its weights, the model and export code and the torch version, under
    ``$SIAMMASK_ONNX_CACHE``, else ``$XDG_CACHE_HOME/siammask_ros/onnx``, else
    ``~/.cache/siammask_ros/onnx``. Export is deterministic, so equal inputs give equal
    graphs (and TensorRT's engine cache, keyed by graph content, stays valid)."""
    digest = hashlib.sha256(f"{EXPORT_FORMAT}|{torch.__version__}|{arch}|{preset}".encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):  # the network's code and this exporter
        digest.update(source.read_bytes())
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return cache_root("SIAMMASK_ONNX_CACHE", "onnx") / f"{arch or 'model'}-{digest.hexdigest()[:16]}"


def cache_root(variable: str, name: str) -> Path:
    """A cache folder of this package: ``$variable``, else ``$XDG_CACHE_HOME/siammask_ros/name``,
    else ``~/.cache/siammask_ros/name``."""
    root = os.environ.get(variable)
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "siammask_ros" / name


def cached_export(model: SiamMask, arch: str, search_sizes: Sequence[int], preset: str = "vot") -> Path:
    """The ``export_cache_dir`` of ``model`` holding template, refine and a search graph
    for every size in ``search_sizes``; only what is missing is exported (a node's first
    start pays the export, about 5 s for the bundled model on a 2-core CPU; later starts
    load the files).

    Graphs are written to a temporary folder beside the cache and moved in file by file,
    so a process starting at the same time never reads half a file.

    Raises:
        ValueError, ExportError: as ``export_onnx``.
    """
    target = export_cache_dir(model, arch, preset)
    sizes = sorted({int(s) for s in search_sizes})
    present = {int(p.stem.split("_")[1]) for p in target.glob("search_*.onnx")}
    fixed = all(graph_file(target, kind).is_file() for kind in ("template", "refine"))
    missing = [size for size in sizes if size not in present]
    if missing or not fixed:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch:
            for path in export_onnx(model, scratch, arch, missing or sizes, preset):
                os.replace(path, target / path.name)
        present |= set(missing or sizes)
        _write_manifest(target, arch, preset, sorted(present))
    return target


def check_format(directory: str | os.PathLike[str]) -> None:
    """Refuse an export written in another format (by another version of this package),
    whose graphs would take or give other tensors than this version's backend expects.

    Raises:
        ExportError: the manifest (or, without one, the template graph) names another format.
    """
    manifest = Path(directory) / "export.json"
    try:
        found = json.loads(manifest.read_text()).get("format")
    except (OSError, ValueError):
        found = read_metadata(graph_file(directory, "template")).get("format")
    if found != EXPORT_FORMAT:
        raise ExportError(
            f"{directory} holds graphs in format {found!r}, this siammask_ros reads {EXPORT_FORMAT!r}: "
            f"export them again with siammask-export"
        )


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata ``export_onnx`` stored in one graph file."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in graph.metadata_props}


def check_export(model: SiamMask, directory: str | os.PathLike[str], batch: int = 3) -> list[ExportCheck]:
    """Run the graphs in ``directory`` through ``OnnxRuntimeBackend`` (CPU provider) and the
    torch network on the same random crops (``batch`` targets); the largest errors of the
    search outputs (cls, loc, skip features) per search size and of the refined mask
    probabilities at three positions per row."""
    from .backends import OnnxRuntimeBackend, TorchBackend, _row

    net = copy.deepcopy(model).float().cpu().eval()
    manifest = json.loads((Path(directory) / "export.json").read_text())
    onnx_backend = OnnxRuntimeBackend(directory, device="cpu")
    torch_backend = TorchBackend(net)
    rng = np.random.default_rng(0)
    z = [rng.integers(0, 256, (EXEMPLAR_SIZE, EXEMPLAR_SIZE, 3), dtype=np.uint8) for _ in range(batch)]
    onnx_templates, torch_templates = onnx_backend.template(z), torch_backend.template(z)
    checks = []
    for size in manifest["search_sizes"]:
        x = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(batch)]
        got, want = onnx_backend.track(x, onnx_templates), torch_backend.track(x, torch_templates)
        checks.append(_compare(f"search_{size}", [got.cls, got.loc, *got.skips[:3]], [want.cls, want.loc, *want.skips]))
        last = int(got.cls.shape[-1]) - 1
        positions = [(0, 0), (last // 2, last // 3), (last, last)]
        probs, expected = [], []
        for i in range(batch):
            probs.append(onnx_backend.refine([_row(got, i)] * 3, positions))
            expected.append(torch_backend.refine([_row(want, i)] * 3, positions))
        checks.append(_compare(f"refine@{size}", [np.stack(probs)], [torch.from_numpy(np.stack(expected))]))
    return checks


def _compare(name: str, got: Sequence[np.ndarray | Tensor], expected: Sequence[Tensor]) -> ExportCheck:
    if len(got) != len(expected):
        raise ExportError(f"{name}: onnxruntime returned {len(got)} outputs, torch {len(expected)}")
    abs_err = rel_err = 0.0
    for value, reference in zip(got, expected):
        value, ref = np.asarray(value), reference.numpy()
        if value.shape != ref.shape:
            raise ExportError(f"{name}: output shape {value.shape} from onnxruntime, {ref.shape} from torch")
        err = float(np.abs(value - ref).max())
        abs_err = max(abs_err, err)
        rel_err = max(rel_err, err / max(float(np.abs(ref).max()), 1e-12))
    return ExportCheck(name, abs_err, rel_err)
