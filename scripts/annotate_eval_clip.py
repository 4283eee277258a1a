"""Cut and annotate the real evaluation clips in ``data/eval_real`` (a development tool).

    cut SOURCE START COUNT NAME --kind KIND   write NAME.mp4 (frames START..START+COUNT-1) and NAME.json
    grid NAME FRAME [--roi X Y W H] [--zoom Z] write a PNG of one frame with a labelled pixel grid
    check NAME [--every K]                     write a contact sheet with every annotated box drawn

Boxes are typed into NAME.json by hand after reading them off the gridded frames; ``check``
draws them back so that each one is inspected on its frame. The PNGs go to ``--work``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

CLIP_DIR = Path(__file__).resolve().parent.parent / "data" / "eval_real"


def _read_frames(path: Path, start: int = 0, count: int | None = None) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SystemExit(f"cannot open {path}")
    frames, index = [], 0
    while count is None or len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        if index >= start:
            frames.append(frame)
        index += 1
    capture.release()
    return frames


def cut(args: argparse.Namespace) -> None:
    source = Path(args.source)
    frames = _read_frames(source, args.start, args.count)
    if len(frames) < args.count:
        raise SystemExit(f"{source} has only {len(frames)} frames from {args.start}")
    fps = cv2.VideoCapture(str(source)).get(cv2.CAP_PROP_FPS) or 25.0
    CLIP_DIR.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(CLIP_DIR / f"{args.name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    # The codec may round the size (405 rows decode as 404): record what the clip decodes to.
    height, width = _read_frames(CLIP_DIR / f"{args.name}.mp4", 0, 1)[0].shape[:2]
    record = {
        "name": args.name,
        "kind": args.kind,
        "video": f"{args.name}.mp4",
        "size": [width, height],
        "frames": len(frames),
        "fps": fps,
        "source": {"file": source.name, "first_frame": args.start, "package": args.package, "licence": args.licence},
        "target": args.target,
        "annotation": "",
        "boxes": [],
        "absent": [],
    }
    json_path = CLIP_DIR / f"{args.name}.json"
    if json_path.exists():
        print(f"{json_path} exists: kept (only the video was rewritten)")
    else:
        json_path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {CLIP_DIR / args.name}.mp4 ({len(frames)} frames {width}x{height})")


def _clip_frames(name: str) -> list[np.ndarray]:
    return _read_frames(CLIP_DIR / f"{name}.mp4")


def grid(args: argparse.Namespace) -> None:
    frame = _clip_frames(args.name)[args.frame]
    x0, y0, w, h = args.roi if args.roi else (0, 0, frame.shape[1], frame.shape[0])
    crop = frame[y0 : y0 + h, x0 : x0 + w]
    zoom = args.zoom
    big = cv2.resize(crop, (crop.shape[1] * zoom, crop.shape[0] * zoom), interpolation=cv2.INTER_NEAREST)
    step = args.step
    for gx in range((x0 // step + 1) * step, x0 + w, step):
        colour = (0, 255, 255) if gx % (step * 5) == 0 else (160, 160, 160)
        cv2.line(big, ((gx - x0) * zoom, 0), ((gx - x0) * zoom, big.shape[0]), colour, 1)
        if gx % (step * 5) == 0:
            cv2.putText(big, str(gx), ((gx - x0) * zoom + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1)
    for gy in range((y0 // step + 1) * step, y0 + h, step):
        colour = (0, 255, 255) if gy % (step * 5) == 0 else (160, 160, 160)
        cv2.line(big, (0, (gy - y0) * zoom), (big.shape[1], (gy - y0) * zoom), colour, 1)
        if gy % (step * 5) == 0:
            cv2.putText(big, str(gy), (2, (gy - y0) * zoom - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1)
    out = Path(args.work) / f"{args.name}_{args.frame:04d}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), big)
    print(out)


def check(args: argparse.Namespace) -> None:
    record = json.loads((CLIP_DIR / f"{args.name}.json").read_text())
    frames = _clip_frames(args.name)
    boxes = {int(b[0]): b[1:] for b in record["boxes"]}
    chosen = sorted(boxes)[:: args.every]
    tiles = []
    for index in chosen:
        x, y, w, h = boxes[index]
        frame = frames[index].copy()
        pad = int(max(w, h))
        cv2.rectangle(frame, (round(x), round(y)), (round(x + w), round(y + h)), (0, 0, 255), 1)
        ys, xs = max(0, int(y) - pad), max(0, int(x) - pad)
        crop = frame[ys : int(y + h) + pad, xs : int(x + w) + pad]
        scale = 240 / max(crop.shape[:2])
        tile = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))))
        tile = cv2.copyMakeBorder(tile, 0, 240 - tile.shape[0], 0, 240 - tile.shape[1], cv2.BORDER_CONSTANT)
        cv2.putText(tile, str(index), (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
        tiles.append(tile)
    columns = 6
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    sheet = np.vstack([np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)])
    out = Path(args.work) / f"{args.name}_check.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet)
    print(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/annotate", help="folder for the PNGs")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("cut")
    p.add_argument("source")
    p.add_argument("start", type=int)
    p.add_argument("count", type=int)
    p.add_argument("name")
    p.add_argument("--kind", required=True, help="person, vehicle, hand-held, moving-camera")
    p.add_argument("--target", default="", help="which object, in words")
    p.add_argument("--package", default="", help="where the source file comes from")
    p.add_argument("--licence", default="")
    p.set_defaults(func=cut)
    p = sub.add_parser("grid")
    p.add_argument("name")
    p.add_argument("frame", type=int)
    p.add_argument("--roi", type=int, nargs=4)
    p.add_argument("--zoom", type=int, default=3)
    p.add_argument("--step", type=int, default=5)
    p.set_defaults(func=grid)
    p = sub.add_parser("check")
    p.add_argument("name")
    p.add_argument("--every", type=int, default=1)
    p.set_defaults(func=check)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
