"""The training loop: synthesised batches, resumable checkpoints, a loss log and plot.

Checkpoints written during training (``DIR/last.pth``) hold the model, the optimiser,
the step, the torch RNG state and the loss history; ``--resume`` continues from one
exactly where it stopped (batches are a function of ``(seed, step, index)``, so the data
resumes too). The deliverable is ``export_weights``: the model alone, in half precision,
in the package's checkpoint format with the architecture recorded.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from siammask_ros.model import SiamMask, build_siammask, save_checkpoint
from siammask_ros.model.mobilenet import load_imagenet_weights

from .labels import LabelConfig, make_targets
from .losses import BatchTargets, LossWeights, siammask_losses
from .sources import ImagePool, load_pool
from .synth import PairSample, SynthConfig, synthesise_pair

__all__ = ["TrainConfig", "Trainer", "export_weights", "make_batch", "plot_losses"]

LOSS_NAMES: tuple[str, ...] = ("total", "cls", "loc", "mask", "refine")


@dataclass(frozen=True)
class TrainConfig:
    """What one training run does."""

    out_dir: str
    steps: int = 1000
    batch: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    seed: int = 0
    arch: str = "siammask_mnv2"
    freeze_backbone: bool = True
    # >= 0: with freeze_backbone, still train backbone blocks features.<k> onwards (their
    # batch-norm statistics stay frozen): fine-tuning the last stages for tracking.
    train_backbone_from: int = -1
    checkpoint_every_s: float = 240.0
    log_every: int = 10
    device: str = "auto"
    grad_clip: float = 10.0
    imagenet: bool = True  # start the backbone from the ImageNet checkpoint (when no init is given)
    time_budget_s: float = 0.0  # > 0: also stop (and finish the LR decay) when this much training time is spent
    weights: LossWeights = field(default_factory=LossWeights)
    synth: SynthConfig = field(default_factory=SynthConfig)

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.train_backbone_from >= 0 and not self.freeze_backbone:
            raise ValueError("train_backbone_from only applies with freeze_backbone (the whole backbone trains otherwise)")


def make_batch(
    samples: Sequence[PairSample], rngs: Sequence[np.random.Generator], device: torch.device, labels: LabelConfig
) -> tuple[Tensor, Tensor, BatchTargets]:
    """Stack pairs into (template, search, targets) tensors on ``device``."""
    targets = [make_targets(rng, s.box, s.mask, s.positive, labels) for s, rng in zip(samples, rngs)]

    def images(arrays: list[np.ndarray]) -> Tensor:
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().to(device)

    mask_index = [np.c_[np.full(len(t.mask_cells), i), t.mask_cells] for i, t in enumerate(targets)]
    refine = [(i, t) for i, t in enumerate(targets) if t.refine_cell is not None]
    side = labels.tracker.exemplar_size
    batch_targets = BatchTargets(
        cls=torch.from_numpy(np.stack([t.cls for t in targets])).to(device),
        delta=torch.from_numpy(np.stack([t.delta for t in targets])).to(device),
        mask_index=torch.from_numpy(np.concatenate(mask_index).astype(np.int64).reshape(-1, 3)).to(device),
        mask_labels=torch.from_numpy(np.concatenate([t.mask_labels for t in targets])).to(device),
        refine_index=torch.tensor([[i, *t.refine_cell] for i, t in refine], dtype=torch.int64)
        .reshape(-1, 3)
        .to(device),
        refine_labels=torch.from_numpy(
            np.stack([t.refine_label for _, t in refine]) if refine else np.zeros((0, side, side), np.float32)
        ).to(device),
    )
    return images([s.template for s in samples]), images([s.search for s in samples]), batch_targets


def _amp_context(device: torch.device):
    """bf16 (or fp16) autocast on CUDA; plain fp32 on the CPU, where autocast buys nothing here."""
    if device.type != "cuda":
        return torch.autocast("cpu", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


class Trainer:
    """Owns the model, optimiser and run state of one training run."""

    def __init__(self, config: TrainConfig, pool: ImagePool | None = None, init: str | None = None) -> None:
        self.config = config
        self.out_dir = Path(config.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.model: SiamMask = build_siammask(config.arch, weights=init, device=config.device)
        self.device = next(self.model.parameters()).device
        if init is None:
            if config.imagenet and config.arch == "siammask_mnv2":
                load_imagenet_weights(self.model.backbone)
            _small_output_init(self.model)
        if config.freeze_backbone:
            self.model.backbone.requires_grad_(False)
            if config.train_backbone_from >= 0:
                for block in self.model.backbone.features[config.train_backbone_from :]:
                    block.requires_grad_(True)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        fp16 = self.device.type == "cuda" and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)  # loss scaling only for fp16 autocast
        self.pool = pool if pool is not None else load_pool("train")
        self.synth = config.synth
        self.labels = LabelConfig()
        self.step = 0
        self.elapsed_s = 0.0  # training time over all sessions of this run
        self.history: list[dict[str, float]] = []

    # ---- schedule and mode ------------------------------------------------------------

    def progress(self) -> float:
        """Fraction of the run done: of the steps, or of the time budget if that is further along."""
        cfg = self.config
        done = self.step / cfg.steps
        if cfg.time_budget_s > 0:
            done = max(done, self.elapsed_s / cfg.time_budget_s)
        return min(done, 1.0)

    def learning_rate(self, step: int) -> float:
        """Linear warm-up, then cosine decay (over ``progress``) to 5% of ``lr``."""
        cfg = self.config
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * self.progress())))

    def _train_mode(self) -> None:
        self.model.train()
        if self.config.freeze_backbone:
            self.model.backbone.eval()  # frozen ImageNet statistics, not this batch's

    # ---- data -------------------------------------------------------------------------

    def batch_for(self, step: int) -> tuple[Tensor, Tensor, BatchTargets]:
        """The batch of ``step``: pair i comes from the seed (seed, step, i), whatever ran before."""
        rngs = [np.random.default_rng([self.config.seed, step, i]) for i in range(self.config.batch)]
        samples = [synthesise_pair(rng, self.pool, self.synth) for rng in rngs]
        return make_batch(samples, rngs, self.device, self.labels)

    # ---- one step ---------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        self._train_mode()
        lr = self.learning_rate(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        start = time.perf_counter()
        template, search, targets = self.batch_for(self.step)
        data_s = time.perf_counter() - start
        with _amp_context(self.device):
            losses = siammask_losses(self.model, template, search, targets, self.config.weights)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["total"]).backward()
        self.scaler.unscale_(self.optimizer)
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        record = {name: float(losses[name].detach()) for name in LOSS_NAMES}
        step_s = time.perf_counter() - start
        record.update(step=self.step, lr=lr, data_s=data_s, step_s=step_s)
        self.elapsed_s += step_s
        self.history.append(record)
        self.step += 1
        return record

    # ---- checkpoints ------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the resumable training state (atomically)."""
        path = Path(path) if path is not None else self.out_dir / "last.pth"
        state = {
            "arch": self.config.arch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "torch_rng": torch.get_rng_state(),
            "config": json.dumps(asdict(self.config)),
            "history": json.dumps(self.history),
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        return path

    def resume(self, path: str | os.PathLike[str]) -> None:
        """Restore a state written by ``save`` (model, optimiser, step, RNG, history)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("arch") != self.config.arch:
            raise ValueError(f"{path} is a {state.get('arch')!r} training state, not {self.config.arch!r}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        torch.set_rng_state(state["torch_rng"])
        self.history = json.loads(state["history"])

    # ---- the run ----------------------------------------------------------------------

    def run(self, log: Callable[[str], None] = print) -> None:
        """Train until ``config.steps``, checkpointing on a timer and at the end."""
        from tqdm import tqdm

        cfg = self.config
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not sys.stderr.isatty(), unit="step")
        last_save = time.monotonic()
        started = time.monotonic()
        first_step = self.step
        while self.step < cfg.steps and self.progress() < 1.0:
            record = self.train_step()
            bar.update(1)
            bar.set_postfix(loss=f"{record['total']:.3f}")
            if self.step % cfg.log_every == 0:
                recent = self.history[-cfg.log_every :]
                means = {k: sum(r[k] for r in recent) / len(recent) for k in LOSS_NAMES}
                rate = (time.monotonic() - started) / (self.step - first_step)
                log(
                    f"step {self.step}/{cfg.steps} "
                    + " ".join(f"{k} {v:.4f}" for k, v in means.items())
                    + f" lr {record['lr']:.2e} data {record['data_s']:.2f}s step {rate:.2f}s"
                )
            if time.monotonic() - last_save > cfg.checkpoint_every_s:
                self.save()
                plot_losses(self.history, self.out_dir / "losses.png")
                last_save = time.monotonic()
        bar.close()
        self.save()
        plot_losses(self.history, self.out_dir / "losses.png")


def _small_output_init(model: SiamMask) -> None:
    """Start the heads' last layers near zero: even scores, zero deltas, mask logits near 0.

    The default Kaiming init makes the initial offsets several anchor sizes large and the
    first few hundred steps only undo that.
    """
    heads = [model.rpn_head["cls"], model.rpn_head["loc"], model.mask_head]
    for head in heads:
        last = head.head[-1]
        torch.nn.init.normal_(last.weight, std=1e-3)
        torch.nn.init.zeros_(last.bias)


def export_weights(model: SiamMask, path: str | os.PathLike[str], arch: str, metadata: dict[str, Any]) -> Path:
    """Save the model's weights in half precision (integer buffers unchanged) with the arch recorded."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    save_checkpoint(state, path, arch=arch, metadata=metadata)
    return Path(path)


def plot_losses(history: Sequence[dict[str, float]], path: str | os.PathLike[str], window: int = 25) -> None:
    """Loss curves (moving average over ``window`` steps) as a PNG."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([r["step"] for r in history])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name in LOSS_NAMES:
        values = np.array([r[name] for r in history])
        k = min(window, len(values))
        smooth = np.convolve(values, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss (moving average, {window} steps)")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
