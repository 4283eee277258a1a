"""Where the network runs: torch, or ONNX Runtime on graphs from ``export.export_onnx``.

The tracker talks to a ``Backend`` with three calls on uint8 HxWx3 BGR crops, one row per
target; everything else (anchors, window, penalties, mask warp) is the tracker's own
numpy code, so the geometry is the same for every backend::

    templates = backend.template(patches)            # opaque per-row template features
    output = backend.track(patches, templates)       # SearchOutput, tensors on backend.device
    probs = backend.refine(rows, positions)          # (B, 127, 127) float32 mask probabilities

where ``rows`` are single-row ``SearchOutput``s (rows of one or several ``track`` calls).

Template features are torch tensors whose first axis is the target, so a tracker can
``torch.cat`` the rows of several targets. ``make_backend`` builds one by name.

Precision (``PRECISIONS``) is the dtype of the torch network's weights and inputs: fp32,
fp16 (CUDA only) or bf16 (CPU and CUDA). Score maps and mask probabilities reach the host's
numpy geometry as float32 whatever it is; ONNX Runtime runs fp32 graphs only.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from .export import REFINE_INPUTS
from .heads import Refine, RefineInputs
from .siammask import SearchOutput, SiamMask, resolve_device

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "Backend",
    "OnnxRuntimeBackend",
    "TorchBackend",
    "as_backend",
    "crop_skip_windows",
    "make_backend",
    "onnxruntime_providers",
    "provider_options",
    "precision_dtype",
    "tensorrt_cache_dir",
    "tensorrt_profile",
]

BACKENDS = ("torch", "onnxruntime")
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
Position = tuple[int, int]  # (row, col) on the score map


@runtime_checkable
class Backend(Protocol):
    """The three network calls of a tracking step (see the module docstring)."""

    name: str
    device: torch.device

    def template(self, patches: Sequence[np.ndarray]) -> Tensor:
        """Template features, one row per (127, 127, 3) uint8 crop (the torch backend also
        takes (3, 127, 127) uint8 tensors on its device)."""
        ...

    def track(self, patches: Sequence[np.ndarray], templates: Tensor) -> SearchOutput:
        """Heads for same-size (S, S, 3) uint8 crops, row i against template row i (the
        torch backend also takes (3, S, S) uint8 tensors on its device)."""
        ...

    def refine(self, rows: Sequence[SearchOutput], positions: Sequence[Position]) -> np.ndarray:
        """(B, 127, 127) float32 mask probabilities: single-row output i refined at ``positions[i]``."""
        ...


def precision_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The torch dtype of ``precision`` (``PRECISIONS``) on ``device``.

    Raises:
        ValueError: unknown precision, fp16 on a device other than CUDA, or bf16 on a GPU
            without bf16 support.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision 'fp16' needs a CUDA device; the network runs on {device} "
                         f"(use fp32 or bf16 there)")  # fmt: skip
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision 'bf16' is not supported by {device} ({torch.cuda.get_device_name(device)})")
    return PRECISIONS[precision]


class TorchBackend:
    """The torch network, in the dtype of ``precision`` or as it is.

    Args:
        model: the network (put in eval mode; moved and converted in place).
        device: where to run; None keeps the device of its parameters, else moves it there.
        precision: ``"fp32"``, ``"fp16"`` (CUDA only) or ``"bf16"``: weights and inputs in
            that dtype; None keeps the dtype its parameters have.

    Raises:
        ValueError: see ``precision_dtype``; the network is left as it was.
    """

    name = "torch"

    def __init__(self, model: SiamMask, device: str | torch.device | None = None,
                 precision: str | None = None) -> None:  # fmt: skip
        parameter = next(model.parameters())
        self.device = parameter.device if device is None else resolve_device(device)
        self.dtype = parameter.dtype if precision is None else precision_dtype(precision, self.device)
        self.model = model.to(self.device, self.dtype).eval()

    @torch.inference_mode()
    def template(self, patches: Sequence[np.ndarray]) -> Tensor:
        return self.model.template(self._to_tensor(patches))

    @torch.inference_mode()
    def track(self, patches: Sequence[np.ndarray], templates: Tensor) -> SearchOutput:
        return self.model.track(self._to_tensor(patches), templates)

    @torch.inference_mode()
    def refine(self, rows: Sequence[SearchOutput], positions: Sequence[Position]) -> np.ndarray:
        _check_rows(rows, positions)
        if len(rows) == 1:
            (row, col), = positions
            return torch.sigmoid(self.model.refine_mask(rows[0], row, col)).float().cpu().numpy()
        # One position per row: crop each row at its own, refine the crops together.
        refine: Refine = self.model.refine_head
        crops = [refine.crop(out.skips, out.mask_corr, row, col) for out, (row, col) in zip(rows, positions)]
        batch = RefineInputs(*(torch.cat(parts) for parts in zip(*crops)))
        return torch.sigmoid(refine.fuse(batch)).float().cpu().numpy()

    @torch.inference_mode()
    def refine_at(self, output: SearchOutput, rows: Tensor, cols: Tensor) -> Tensor:
        """(B, 127, 127) float32 mask probabilities on the device: row i of ``output`` refined
        at (``rows[i]``, ``cols[i]``), index tensors on the device (``Refine.crop_at``)."""
        refine: Refine = self.model.refine_head
        return torch.sigmoid(refine.fuse(refine.crop_at(output.skips, output.mask_corr, rows, cols))).float()

    def warm_up(self, search_sizes: Sequence[int], batch: int = 1) -> None:
        """Run template, every search size and the refinement once (first-call costs:
        allocator, oneDNN/cuDNN kernel selection), so a node's first frame is not slow."""
        templates = self.template([np.zeros((127, 127, 3), np.uint8)] * batch)
        for size in search_sizes:
            out = self.track([np.zeros((size, size, 3), np.uint8)] * batch, templates)
            self.refine([_row(out, i) for i in range(batch)], [(0, 0)] * batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _to_tensor(self, patches: Sequence[np.ndarray] | Sequence[Tensor]) -> Tensor:
        """uint8 BGR patches -> (B, 3, H, W) float 0..255 on the model's device. Host patches
        are HxWx3 arrays; device crops (``tracker.crops``) are 3xHxW tensors already there."""
        if isinstance(patches[0], Tensor):
            # In the host patches' layout (channels last), so both run the same kernels.
            batch = torch.stack(list(patches)).to(self.device, self.dtype)
            return batch.contiguous(memory_format=torch.channels_last)
        patches = [patch if patch.flags.writeable else patch.copy() for patch in patches]
        if len(patches) == 1:
            # The single-target layout, kept to the stride: CPU kernels are chosen by the
            # strides even of a size-1 batch dimension, and results must stay bit-stable.
            tensor = torch.from_numpy(patches[0]).to(self.device).permute(2, 0, 1).unsqueeze(0)
        else:
            tensor = torch.from_numpy(np.stack(patches)).to(self.device).permute(0, 3, 1, 2)
        return tensor.to(self.dtype)


def onnxruntime_providers(device: str = "auto") -> list[str]:
    """Execution providers to ask for, best first, among those this onnxruntime has:
    TensorRT, CUDA, CPU for ``"auto"`` and ``"cuda"``/``"cuda:N"``; CPU for ``"cpu"``.

    Raises:
        ValueError: ``device`` names CUDA and neither GPU provider is present, or is unknown.
    """
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    gpu = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
    kind = str(device).split(":")[0]
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind == "cuda" and not gpu:
        raise ValueError(
            f"device {device!r} needs onnxruntime's CUDA or TensorRT provider; this onnxruntime has "
            f"{sorted(available)} (install onnxruntime-gpu)"
        )
    if kind not in ("auto", "cuda"):
        raise ValueError(f"unknown device {device!r} for onnxruntime: use auto, cpu, cuda or cuda:N")
    return [*gpu, "CPUExecutionProvider"]


def provider_options(
    providers: Sequence[str], device: str, graph: Path, max_batch: int = 4
) -> list[tuple[str, dict[str, str]]]:
    """``providers`` with their options for the session on ``graph``: the GPU providers on
    the CUDA index of ``device``; TensorRT with its engine and timing caches on disk and
    an explicit shape profile (``tensorrt_profile``) for batches of 1 to ``max_batch``.

    TensorRT builds an engine per graph and input shape on first use (seconds to minutes
    on a Jetson); the cache makes that a one-time cost per machine. ONNX Runtime does not
    check that a cached engine belongs to the graph, so each graph gets a folder named by
    a digest of its content: new weights never meet an engine built for old ones. Folder:
    ``$SIAMMASK_TENSORRT_CACHE``, else ``$XDG_CACHE_HOME/siammask_ros/tensorrt``, else
    ``~/.cache/siammask_ros/tensorrt``.
    """
    kind, _, index = str(device).partition(":")
    device_id = index if kind == "cuda" and index else "0"
    options: list[tuple[str, dict[str, str]]] = []
    for name in providers:
        entry: dict[str, str] = {}
        if name in ("TensorrtExecutionProvider", "CUDAExecutionProvider"):
            entry["device_id"] = device_id
        if name == "TensorrtExecutionProvider":
            cache = str(tensorrt_cache_dir(graph))
            entry.update(trt_engine_cache_enable="True", trt_engine_cache_path=cache,
                         trt_timing_cache_enable="True", trt_timing_cache_path=cache)  # fmt: skip
            entry.update(tensorrt_profile(graph, max_batch))
        options.append((name, entry))
    return options


def tensorrt_profile(graph: Path, max_batch: int) -> dict[str, str]:
    """TensorRT's shape profile for every input of ``graph``: batch 1 (optimum and least)
    to ``max_batch``, the other axes as exported.

    Without one, TensorRT builds its engine for the first batch it sees and builds it
    again whenever a larger one comes: a second target selected on a Jetson would stall
    the node for the length of an engine build. ONNX Runtime takes the profile as
    ``name:1x255x255x3,...`` strings.
    """
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    initializers = {tensor.name for tensor in model.graph.initializer}
    shapes = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        if any(not d.dim_value for d in dims[1:]):
            raise ValueError(f"{graph.name}: input {value.name!r} has a dynamic axis besides the batch")
        shapes[value.name] = [d.dim_value for d in dims[1:]]

    def profile(batch: int) -> str:
        return ",".join(f"{name}:{'x'.join(str(v) for v in [batch, *rest])}" for name, rest in shapes.items())

    return {"trt_profile_min_shapes": profile(1), "trt_profile_opt_shapes": profile(1),
            "trt_profile_max_shapes": profile(max_batch)}  # fmt: skip


def tensorrt_cache_dir(graph: Path) -> Path:
    """The TensorRT cache folder of one graph file (see ``provider_options``); created."""
    from .export import cache_root

    digest = hashlib.sha256(Path(graph).read_bytes()).hexdigest()[:16]
    folder = cache_root("SIAMMASK_TENSORRT_CACHE", "tensorrt") / f"{Path(graph).stem}-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class OnnxRuntimeBackend:
    """ONNX Runtime sessions on the graphs of an export directory.

    Search graphs are per search size; a size that was not exported is exported on first
    use when the backend was built from a torch network (``from_model``), else refused.

    Args:
        directory: an ``export_onnx`` output directory.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (see ``onnxruntime_providers``).
        threads: intra-op threads of the CPU provider; None: onnxruntime's choice.
    """

    name = "onnxruntime"

    def __init__(self, directory: str | os.PathLike[str], device: str = "auto", threads: int | None = None) -> None:
        import onnxruntime as ort

        from .export import check_format, graph_file

        self.directory = Path(directory)
        if not graph_file(self.directory, "template").is_file():
            raise FileNotFoundError(f"{self.directory} holds no exported SiamMask graphs (template.onnx missing)")
        check_format(self.directory)
        self.providers = onnxruntime_providers(device)
        self._device_name = str(device)
        self.device = torch.device("cpu")  # outputs come back as host arrays
        self._ort = ort
        self._threads = threads
        self._source: SiamMask | None = None
        self._arch = ""
        self._cached = False  # the directory is the shared export cache
        self._sessions: dict[str, object] = {}
        self._windows = Refine.windows
        self.chunk = 4  # most rows per search or refine call (and the TensorRT profile's largest batch)

    @classmethod
    def from_model(
        cls,
        model: SiamMask,
        arch: str,
        search_sizes: Sequence[int] = (255,),
        device: str = "auto",
        threads: int | None = None,
        directory: str | os.PathLike[str] | None = None,
    ) -> OnnxRuntimeBackend:
        """Export ``model`` into ``directory`` and load the graphs; without a directory, load
        them from the export cache (``export.cached_export``), exporting what is missing."""
        from .export import cached_export, export_onnx

        if directory is None:
            try:
                target = cached_export(model, arch, search_sizes)
            except OSError as exc:  # a read-only or full cache location: export for this process only
                target = Path(tempfile.mkdtemp(prefix="siammask_onnx_"))
                warnings.warn(f"cannot use the ONNX export cache ({exc}); exporting into {target} instead "
                              f"(set SIAMMASK_ONNX_CACHE to a writable folder)", stacklevel=2)  # fmt: skip
                return cls.from_model(model, arch, search_sizes, device, threads, target)
        else:
            target = Path(directory)
            export_onnx(model, target, arch, search_sizes)
        backend = cls(target, device=device, threads=threads)
        backend._source, backend._arch, backend._cached = model, arch, directory is None
        return backend

    @property
    def active_providers(self) -> list[str]:
        """The providers the template session actually got (a missing library drops one)."""
        return list(self._session("template").get_providers())

    def warm_up(self, search_sizes: Sequence[int], batch: int = 1) -> None:
        """Run every graph once at each search size (sessions plan their kernels on first use)."""
        z = [np.zeros((127, 127, 3), np.uint8)] * batch
        templates = self.template(z)
        for size in search_sizes:
            out = self.track([np.zeros((size, size, 3), np.uint8)] * batch, templates)
            self.refine([_row(out, i) for i in range(batch)], [(0, 0)] * batch)

    def template(self, patches: Sequence[np.ndarray]) -> Tensor:
        (features,) = self._run_in_chunks(self._session("template"), {"patches": np.stack(patches)})
        return torch.from_numpy(features)

    def track(self, patches: Sequence[np.ndarray], templates: Tensor) -> SearchOutput:
        """Box branches for every row; the mask branch is left at the graph's
        ``mask_feature`` (in ``mask_corr``; see export) and the row's mask kernel (appended
        to ``skips``): ``refine`` correlates them at the chosen position only."""
        batch = np.stack(patches)
        session = self._search_session(batch.shape[1])
        outputs = self._run_in_chunks(session, {"patches": batch, "kernels": templates.numpy()})
        cls, loc, mask_feature, p0, p1, p2 = (torch.from_numpy(array) for array in outputs)
        mask_kernel = templates[:, 2 * templates.shape[1] // 3 :]  # kernels are [cls, loc, mask]
        return SearchOutput(cls, loc, mask_feature, (p0, p1, p2, mask_kernel))

    def refine(self, rows: Sequence[SearchOutput], positions: Sequence[Position]) -> np.ndarray:
        _check_rows(rows, positions)
        crops = [self._refine_inputs(out, row, col) for out, (row, col) in zip(rows, positions)]
        feed = {name: np.concatenate(parts) for name, parts in zip(REFINE_INPUTS, zip(*crops))}
        (prob,) = self._run_in_chunks(self._session("refine"), feed)
        return prob

    def _run_in_chunks(self, session: object, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """``session.run`` on at most ``chunk`` rows at a time, each output concatenated over
        the calls: the search graph's correlation costs rows^2 (see export), and TensorRT's
        shape profile ends at ``chunk`` rows (``tensorrt_profile``)."""
        rows = len(next(iter(feed.values())))
        parts = [
            session.run(None, {name: value[i : i + self.chunk] for name, value in feed.items()})
            for i in range(0, rows, self.chunk)
        ]
        return [arrays[0] if len(arrays) == 1 else np.concatenate(arrays) for arrays in zip(*parts)]

    def _refine_inputs(self, out: SearchOutput, row: int, col: int) -> tuple[np.ndarray, ...]:
        score_size = int(out.cls.shape[-1])
        windows = crop_skip_windows([s.numpy() for s in out.skips[:3]], 0, row, col, score_size, self._windows)
        feature = out.mask_corr.numpy()
        side = feature.shape[-1] - score_size + 1  # feature pixels one score cell's correlation reads
        window = np.ascontiguousarray(feature[:1, :, row : row + side, col : col + side])
        return (*windows, window, np.ascontiguousarray(out.skips[3].numpy()))

    def _search_session(self, size: int) -> object:
        from .export import cached_export, export_onnx, graph_file

        name = f"search_{size}"
        if name not in self._sessions and not graph_file(self.directory, "search", size).is_file():
            if self._source is None:
                raise ValueError(f"no search graph for a {size} crop in {self.directory}: export it with "
                                 f"siammask-export --search-sizes ... {size}")  # fmt: skip
            if self._cached:
                cached_export(self._source, self._arch, [size])
            else:
                export_onnx(self._source, self.directory, self._arch, [size])
        return self._session(name)

    def _session(self, name: str) -> object:
        session = self._sessions.get(name)
        if session is None:
            options = self._ort.SessionOptions()
            options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Idle intra-op threads sleep instead of spinning: between the search and refine
            # calls the tracker crops, decodes and warps on the same cores, and spinning
            # threads starved it (2 threads, 2 cores, 255 step: 47-55 ms spinning, 24-26 ms not).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            if self._threads is not None:
                options.intra_op_num_threads = self._threads
            path = self.directory / f"{name}.onnx"
            providers = provider_options(self.providers, self._device_name, path, max_batch=self.chunk)
            session = self._ort.InferenceSession(str(path), options, providers=providers)
            self._sessions[name] = session
        return session


def _check_rows(rows: Sequence[SearchOutput], positions: Sequence[Position]) -> None:
    if len(rows) != len(positions) or not rows:
        raise ValueError(
            f"refine needs one position per search row, got {len(rows)} rows and {len(positions)} positions"
        )
    for out in rows:
        if out.cls.shape[0] != 1:
            raise ValueError(f"refine takes single-row search outputs, got a batch of {out.cls.shape[0]}")


def _row(output: SearchOutput, i: int) -> SearchOutput:
    rows = slice(i, i + 1)
    skips = tuple(s[rows] for s in output.skips)
    return SearchOutput(output.cls[rows], output.loc[rows], output.mask_corr[rows], skips)


def crop_skip_windows(
    skips: Sequence[np.ndarray], index: int, row: int, col: int, score_size: int,
    windows: Sequence[tuple[int, int, int]] = Refine.windows,
) -> tuple[np.ndarray, ...]:  # fmt: skip
    """The first three parts of ``Refine.crop`` on host arrays, for row ``index``: the
    conv1, layer1 and layer2 windows around score-map position (``row``, ``col``), zero
    outside the map, each with a batch axis of one."""
    if not (0 <= row < score_size and 0 <= col < score_size):
        raise ValueError(f"position (row={row}, col={col}) is outside the {score_size}x{score_size} score map")
    crops = []
    for feature, (pad, stride, side) in zip(skips, windows):
        top, left = stride * row - pad, stride * col - pad  # window corner in unpadded pixels
        window = np.zeros((1, feature.shape[1], side, side), dtype=feature.dtype)
        height, width = feature.shape[-2:]
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + side, height), min(left + side, width)
        if y1 > y0 and x1 > x0:
            window[0, :, y0 - top : y1 - top, x0 - left : x1 - left] = feature[index, :, y0:y1, x0:x1]
        crops.append(window)
    return tuple(crops)


def as_backend(model: SiamMask | Backend, device: str | torch.device | None = None) -> Backend:
    """A backend as it is, or a torch network wrapped in ``TorchBackend``.

    Raises:
        ValueError: a backend given together with a device it does not run on.
        TypeError: neither a SiamMask nor a backend.
    """
    if isinstance(model, torch.nn.Module):
        return TorchBackend(model, device)
    if isinstance(model, Backend):
        if device is not None and resolve_device(device).type != model.device.type:
            raise ValueError(f"the {model.name} backend returns results on {model.device}, not on {device}")
        return model
    raise TypeError(f"expected a SiamMask network or a backend, got {type(model).__name__}")


def make_backend(
    name: str,
    model: SiamMask,
    arch: str,
    search_sizes: Sequence[int] = (255,),
    device: str = "auto",
    threads: int | None = None,
    precision: str = "fp32",
) -> Backend:
    """The backend called ``name`` (``BACKENDS``) around ``model``, warmed up at every
    search size; onnxruntime loads the network's graphs from the export cache, exporting
    them first where they are missing (``export.cached_export``).
    ``precision`` (``PRECISIONS``) converts a torch network in place.

    Raises:
        ValueError: unknown name, device or precision; fp16 off CUDA; onnxruntime with a
            precision other than fp32.
    """
    if name == "onnxruntime" and precision != "fp32":
        raise ValueError(f"the onnxruntime backend runs fp32 graphs only, not precision {precision!r}; "
                         f"use the torch backend for fp16/bf16")  # fmt: skip
    if name == "torch":
        torch_backend = TorchBackend(model, None if device == "auto" else device, precision)
        torch_backend.warm_up(search_sizes)
        return torch_backend
    if name == "onnxruntime":
        backend = OnnxRuntimeBackend.from_model(model, arch, search_sizes, device=device, threads=threads)
        backend.warm_up(search_sizes)
        return backend
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
