"""Frame sources, box parsing, JSON records and the overlay, on small synthetic data."""

import json
import math

import cv2
import numpy as np
import pytest

from siammask_ros.io.frames import FrameSourceError, natural_sort_key, open_frames, parse_box
from siammask_ros.io.render import draw_overlay
from siammask_ros.io.results import RECORD_KEYS, JsonLinesWriter, result_to_record
from siammask_ros.tracker.result import RotatedBox, TrackResult, TrackState

# ---------------------------------------------------------------------------- frames


def _write_video(path, levels, size=(64, 48), fps=12.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for level in levels:
        writer.write(np.full((size[1], size[0], 3), level, dtype=np.uint8))
    writer.release()


def test_video_source_yields_every_frame_in_order(tmp_path):
    levels = [0, 50, 100, 150, 200, 250]
    path = tmp_path / "clip.mp4"
    _write_video(path, levels)

    source = open_frames(path)
    assert source.fps == pytest.approx(12.0)
    assert source.frame_count == len(levels)
    frames = list(source)
    assert [index for index, _ in frames] == list(range(len(levels)))
    for (_, frame), level in zip(frames, levels):
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        assert abs(float(frame.mean()) - level) < 15  # lossy codec, but distinct levels
    # A second pass starts again from the first frame.
    assert len(list(source)) == len(levels)


def test_image_folder_natural_order_and_only_images(tmp_path):
    for number in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"frame_{number}.png"), np.full((30, 40, 3), number, dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub.png").mkdir()  # a folder named like an image is skipped

    source = open_frames(tmp_path)
    assert source.fps is None
    assert source.frame_count == 3
    frames = list(source)
    assert [index for index, _ in frames] == [0, 1, 2]
    assert [int(frame[0, 0, 0]) for _, frame in frames] == [1, 2, 10]


def test_image_folder_converts_gray_and_alpha_to_bgr(tmp_path):
    cv2.imwrite(str(tmp_path / "0.png"), np.full((20, 30), 77, dtype=np.uint8))
    bgra = np.zeros((20, 30, 4), dtype=np.uint8)
    bgra[..., :3] = (10, 20, 30)
    bgra[..., 3] = 128
    cv2.imwrite(str(tmp_path / "1.png"), bgra)

    frames = [frame for _, frame in open_frames(tmp_path)]
    assert all(frame.shape == (20, 30, 3) and frame.dtype == np.uint8 for frame in frames)
    assert frames[0][5, 5].tolist() == [77, 77, 77]
    assert frames[1][5, 5].tolist() == [10, 20, 30]


def test_natural_sort_key():
    names = ["img10.png", "img2.png", "IMG1.png", "img2b.png", "a.png", "img02.png"]
    assert sorted(names, key=natural_sort_key) == [
        "a.png", "IMG1.png", "img02.png", "img2.png", "img2b.png", "img10.png"
    ]


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(FrameSourceError, match="no image files") as info:
        open_frames(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_missing_input_is_an_error(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FrameSourceError, match="does not exist") as info:
        open_frames(missing)
    assert str(missing) in str(info.value)


def test_undecodable_video_is_an_error(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"this is not a video" * 10)
    with pytest.raises(FrameSourceError) as info:
        open_frames(path)
    assert str(path) in str(info.value)


def test_unreadable_image_in_folder_names_the_file(tmp_path):
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((8, 8, 3), dtype=np.uint8))
    (tmp_path / "2.png").write_bytes(b"garbage")
    frames = iter(open_frames(tmp_path))
    next(frames)
    with pytest.raises(FrameSourceError, match="2.png"):
        next(frames)


def test_image_size_change_in_folder_is_an_error(tmp_path):
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((8, 8, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "2.png"), np.zeros((8, 9, 3), dtype=np.uint8))
    with pytest.raises(FrameSourceError, match="9x8"):
        list(open_frames(tmp_path))


# ---------------------------------------------------------------------------- parse_box


def test_parse_box_accepts_spaces_and_decimals():
    assert parse_box("10,20,30,40") == (10.0, 20.0, 30.0, 40.0)
    assert parse_box(" -1.5, 2 ,3.25,4e1") == (-1.5, 2.0, 3.25, 40.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2,3", "4 comma-separated"),
        ("1,2,3,4,5", "4 comma-separated"),
        ("1;2;3;4", "4 comma-separated"),
        ("a,2,3,4", "numbers only"),
        ("1,2,,4", "numbers only"),
        ("nan,2,3,4", "finite"),
        ("1,2,inf,4", "finite"),
        ("1,2,0,4", "W=0"),
        ("1,2,3,-4", "H=-4"),
    ],
)
def test_parse_box_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_box(text)


# ---------------------------------------------------------------------------- records


def _result(state=TrackState.TRACKING, frame_shape=(120, 160)):
    """A hand-made result: a 20x10 mask block at rows 60..69, cols 90..109."""
    mask = np.zeros(frame_shape, dtype=np.uint8)
    mask[60:70, 90:110] = 1
    corners = np.array([[88.1, 58.2], [111.3, 58.2], [111.3, 71.7], [88.1, 71.7]]) + 1 / 3
    return TrackResult(
        state=state,
        confidence=np.float32(0.123456789),
        center=(np.float64(100.0) + 1 / 3, 65.0 + 1 / 7),
        size=(np.float64(22.5), 12.0 / 7),
        rotated_box=RotatedBox.from_corners(corners),
        mask=mask,
        search_size=255,
    )


def test_record_fields_and_plain_types():
    result = _result()
    record = result_to_record(np.int64(7), result)

    assert tuple(record) == RECORD_KEYS
    assert type(record["frame"]) is int and record["frame"] == 7
    assert record["state"] == "tracking"
    assert type(record["confidence"]) is float
    # float32 0.123456789 widened to float64 exactly, not rounded to a few decimals.
    assert record["confidence"] == float(np.float32(0.123456789))
    assert record["center"] == [100.0 + 1 / 3, 65.0 + 1 / 7]
    assert record["size"] == [22.5, 12.0 / 7]
    assert all(type(v) is float for v in record["center"] + record["size"])
    assert record["polygon"][0] == [88.1 + 1 / 3, 58.2 + 1 / 3]
    assert len(record["polygon"]) == 4 and all(type(v) is float for p in record["polygon"] for v in p)
    rotated = record["rotated_box"]
    assert rotated["cx"] == pytest.approx(99.7 + 1 / 3) and rotated["cy"] == pytest.approx(64.95 + 1 / 3)
    assert rotated["width"] == pytest.approx(23.2) and rotated["height"] == pytest.approx(13.5)
    assert rotated["angle"] == 0.0
    assert record["mask_area"] == 200 and type(record["mask_area"]) is int
    assert record["search_size"] == 255 and type(record["search_size"]) is int


def test_record_non_finite_becomes_null():
    result = _result()
    nan_result = TrackResult(
        state=TrackState.LOST,
        confidence=float("nan"),
        center=result.center,
        size=(math.inf, 3.0),
        rotated_box=result.rotated_box,
        mask=result.mask,
        search_size=831,
    )
    record = result_to_record(0, nan_result)
    assert record["state"] == "lost"
    assert record["confidence"] is None and record["size"] == [None, 3.0]
    json.dumps(record, allow_nan=False)  # standard JSON


def test_json_lines_round_trip_is_exact_and_flushed(tmp_path):
    path = tmp_path / "out.jsonl"
    records = [result_to_record(i, _result()) for i in range(3)]
    with JsonLinesWriter(path) as writer:
        writer.write(records[0])
        # Flushed after each record: readable before the writer closes.
        assert json.loads(path.read_text(encoding="utf-8")) == records[0]
        for record in records[1:]:
            writer.write(record)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == records


# ---------------------------------------------------------------------------- overlay


def test_overlay_tints_mask_outlines_box_and_keeps_input():
    frame = np.full((120, 160, 3), 128, dtype=np.uint8)
    before = frame.copy()
    result = _result(TrackState.TRACKING)

    out = draw_overlay(frame, result)

    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.array_equal(frame, before)  # pure: the input is untouched
    b, g, r = (int(v) for v in out[65, 100])  # inside the mask, away from the box outline
    assert g > 128 and b < 128 and r < 128  # towards green
    assert np.array_equal(out[65, 100], out[66, 95])  # uniform tint over the mask
    assert out[110, 10].tolist() == [128, 128, 128]  # far from mask, box and label
    # The box outline: its top edge runs at y = 58.53 between the mask and the frame rest.
    assert not np.array_equal(out[58:60, 100], before[58:60, 100])
    # The label darkens the top-left corner.
    assert out[1, 1].max() < 128


def test_overlay_lost_is_red_and_accepts_mono():
    frame = np.full((120, 160), 128, dtype=np.uint8)
    out = draw_overlay(frame, _result(TrackState.LOST))
    assert out.shape == (120, 160, 3)
    b, g, r = (int(v) for v in out[65, 100])
    assert r > 128 and b < 128


def test_overlay_rejects_mismatched_mask():
    frame = np.zeros((100, 160, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="mask shape"):
        draw_overlay(frame, _result())
