"""``siammask-export``: write ONNX graphs of a checkpoint and check them against torch.

Writes ``template.onnx``, ``search_<S>.onnx`` per search size and ``refine.onnx`` (each
with a dynamic batch axis and metadata: architecture, sizes, preset) plus ``export.json``
into ``--output-dir``, then runs every graph with onnxruntime's CPU provider and the
torch network on the same inputs and prints the largest error. Exit status 1 when an
error exceeds ``--tolerance`` (relative to the largest torch output).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from siammask_ros.model import CheckpointError, build_siammask, default_weights_path, load_checkpoint
from siammask_ros.tracker.config import PRESETS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siammask-export", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="checkpoint (default: the bundled model)")
    parser.add_argument("--arch", default=None, help="architecture (default: what the checkpoint records)")
    parser.add_argument("--output-dir", type=Path, required=True, help="directory for the graphs (created)")
    parser.add_argument("--search-sizes", type=int, nargs="+", default=[255, 831], metavar="S",
                        help="search crop sizes to export, normal and lost-mode (default: %(default)s)")
    parser.add_argument("--preset", default="vot", choices=sorted(PRESETS), help="recorded in the metadata")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest relative error accepted by the check (default: %(default)s)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime check")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        print(f"siammask-export needs {' and '.join(missing)} (pip install -r requirements/deploy.txt)", file=sys.stderr)
        return 2
    from siammask_ros.model.export import ExportError, check_export, export_onnx

    weights = args.weights or default_weights_path()
    if weights is None:
        print("no weights: pass --weights (the bundled checkpoint is not installed)", file=sys.stderr)
        return 2
    try:
        arch = args.arch or load_checkpoint(weights).arch or "siammask_r50"
        model = build_siammask(arch, weights=weights, device="cpu", optimize=True)
        paths = export_onnx(model, args.output_dir, arch, args.search_sizes, args.preset, args.opset)
    except (CheckpointError, ValueError, ExportError) as exc:
        print(f"siammask-export: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if args.no_check:
        return 0
    worst = 0.0
    print(f"{'graph':<14} {'max abs err':>12} {'max rel err':>12}   (onnxruntime CPU vs torch, same inputs)")
    for check in check_export(model, args.output_dir):
        print(f"{check.graph:<14} {check.max_abs_error:>12.2e} {check.max_rel_error:>12.2e}")
        worst = max(worst, check.max_rel_error)
    if worst > args.tolerance:
        print(f"largest relative error {worst:.2e} exceeds --tolerance {args.tolerance:.0e}", file=sys.stderr)
        return 1
    print(f"largest relative error {worst:.2e} (tolerance {args.tolerance:.0e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
