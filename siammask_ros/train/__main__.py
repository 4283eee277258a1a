"""``python -m siammask_ros.train --out DIR --steps N --batch B [--resume CKPT] [--freeze-backbone]``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence

import torch


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m siammask_ros.train", description=__doc__)
    p.add_argument("--out", required=True, help="run directory (checkpoints, log, loss plot)")
    p.add_argument("--steps", type=int, default=1000, help="total optimiser steps")
    p.add_argument("--batch", type=int, default=8, help="pairs per step")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arch", default="siammask_mnv2")
    p.add_argument("--resume", help="training state (DIR/last.pth) to continue from")
    p.add_argument("--init", help="model checkpoint to start from instead of ImageNet weights")
    p.add_argument("--freeze-backbone", action="store_true", help="train neck and heads only")
    p.add_argument(
        "--train-backbone-from",
        type=int,
        default=-1,
        metavar="K",
        help="with --freeze-backbone: still train backbone blocks features.K onwards (batch norm stays frozen)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--checkpoint-every", type=float, default=240.0, help="seconds between checkpoints")
    p.add_argument("--time-budget", type=float, default=0.0, help="minutes of training at most (0: no limit)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--synth", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a SynthConfig field, e.g. p_neighbour=0.3 (repeatable)")  # fmt: skip
    p.add_argument("--export", help="also write the final fp16 weights here (package checkpoint format)")
    return p


def _synth_config(cls, settings: Sequence[str]):
    """SynthConfig with ``FIELD=VALUE`` changes; a bad name or value exits with the reason."""
    changes = {}
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    for setting in settings:
        name, _, value = setting.partition("=")
        if name not in fields:
            raise SystemExit(f"--synth {setting!r}: no such field; fields: {', '.join(fields)}")
        try:
            changes[name] = int(value) if fields[name] in (int, "int") else float(value)
        except ValueError:
            raise SystemExit(f"--synth {setting!r}: {value!r} is not a number") from None
    try:
        return cls(**changes)
    except ValueError as exc:
        raise SystemExit(f"--synth: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .loop import TrainConfig, Trainer, export_weights
    from .synth import SynthConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(
        out_dir=args.out,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        arch=args.arch,
        freeze_backbone=args.freeze_backbone,
        train_backbone_from=args.train_backbone_from,
        checkpoint_every_s=args.checkpoint_every,
        device=args.device,
        time_budget_s=args.time_budget * 60.0,
        synth=_synth_config(SynthConfig, args.synth),
    )
    trainer = Trainer(config, init=args.init)
    if args.resume:
        trainer.resume(args.resume)
    data = ", ".join(trainer.pool.names)
    print(f"training {config.arch} on {trainer.device} from step {trainer.step}, data: {data}", flush=True)
    started = time.monotonic()
    trainer.run(log=lambda line: print(line, flush=True))
    wall = time.monotonic() - started
    print(f"done: {trainer.step} steps, {wall:.0f} s this session", flush=True)
    if args.export:
        metadata = {
            "steps": trainer.step,
            "train_seconds": round(trainer.elapsed_s),
            "batch": config.batch,
            "device": str(trainer.device),
            "train_files": list(trainer.pool.names),
            "freeze_backbone": config.freeze_backbone,
            "train_backbone_from": config.train_backbone_from,
            "init": args.init,
            "seed": config.seed,
            "synth": dataclasses.asdict(config.synth),
        }
        path = export_weights(trainer.model, args.export, config.arch, metadata)
        print(f"exported {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
