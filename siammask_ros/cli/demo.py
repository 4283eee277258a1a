"""``make demo``: track the bundled clip with the bundled model and summarise each second.

The clip, its initial box and the tracker settings are described by
``data/demo/demo.json`` in the repository (``{"video": ..., "box": [x, y, w, h],
"preset": ..., "long_term": true|false}``), so the demo needs no argument.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from siammask_ros.cli import track

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_SPEC = REPO_ROOT / "data" / "demo" / "demo.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="siammask-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path("results"),
                        help="where demo.mp4 and demo.jsonl go (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    args = parser.parse_args(argv)
    if not DEMO_SPEC.is_file():
        print(f"siammask-demo: error: {DEMO_SPEC} not found (run from a full checkout)", file=sys.stderr)
        return 1
    spec = json.loads(DEMO_SPEC.read_text())
    video = args.output_dir / "demo.mp4"
    records = args.output_dir / "demo.jsonl"
    status = track.main([
        str(DEMO_SPEC.parent / spec["video"]),
        "--box", ",".join(str(v) for v in spec["box"]),
        "--preset", spec.get("preset", "vot"),
        "--long-term", "on" if spec.get("long_term", True) else "off",
        "--device", args.device,
        "--output", str(records),
        "--video", str(video),
    ])
    if status != 0:
        return status
    print_per_second_summary(records, fps=float(spec.get("fps", 30.0)))
    print(f"annotated video: {video}\nper-frame results: {records}")
    return 0


def print_per_second_summary(records_path: Path, fps: float) -> None:
    """One line per second of video: frames, states, mean confidence, mean mask area."""
    records = [json.loads(line) for line in records_path.read_text().splitlines() if line]
    per_second: dict[int, list[dict]] = {}
    for record in records:
        per_second.setdefault(int(record["frame"] // fps), []).append(record)
    print(f"{'second':>6} {'frames':>6} {'tracking':>8} {'lost':>5} {'confidence':>10} {'mask px':>8}")
    for second, group in sorted(per_second.items()):
        states = Counter(r["state"] for r in group)
        confidence = sum(r["confidence"] for r in group) / len(group)
        area = sum(r["mask_area"] for r in group) / len(group)
        print(f"{second:>6} {len(group):>6} {states['tracking']:>8} {states['lost']:>5} "
              f"{confidence:>10.3f} {area:>8.0f}")


if __name__ == "__main__":
    sys.exit(main())
