"""siammask-track on rosbag2 input: bags written here with rosbags (mcap and sqlite3, raw and
compressed images of a synthetic moving object), tracked with the bundled model on the CPU,
and the output bag read back with rosbags."""

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("rosbags")

from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402
from synthetic_camera import Scene  # noqa: E402
from test_cli_track import _error_line  # noqa: E402

from siammask_ros.cli.track import main  # noqa: E402
from siammask_ros.io.bag import BagImageSource, image_topics  # noqa: E402

FRAMES, WIDTH, HEIGHT = 8, 160, 120
TOPIC = "/camera/image_raw"
FRAME_ID = "camera_optical_frame"
PREFIX = "/siammask_tracker"
# Irregular stamps far from the log times, so that a writer that used either the wrong
# clock or the frame index would be caught.
STAMPS = [(1_700_000_000 + i // 3, (123_456_789 + i * 333_333_337) % 1_000_000_000) for i in range(FRAMES)]
STORE = get_typestore(Stores.ROS2_JAZZY)
T = STORE.types


@pytest.fixture(scope="module")
def scene():
    return Scene(WIDTH, HEIGHT)


def _stamp_ns(stamp):
    return stamp[0] * 1_000_000_000 + stamp[1]


def _header(i):
    sec, nanosec = STAMPS[i]
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=FRAME_ID)


def _image_msg(i, frame, kind):
    """A sensor_msgs Image (kind "bgr8", "rgb8") or CompressedImage (kind "jpeg", "png")."""
    if kind in ("bgr8", "rgb8"):
        pixels = frame if kind == "bgr8" else frame[:, :, ::-1]
        return "sensor_msgs/msg/Image", T["sensor_msgs/msg/Image"](
            header=_header(i), height=HEIGHT, width=WIDTH, encoding=kind, is_bigendian=0, step=WIDTH * 3,
            data=np.ascontiguousarray(pixels).reshape(-1),
        )
    ok, data = cv2.imencode(".jpg" if kind == "jpeg" else ".png", frame)
    assert ok
    fmt = "rgb8; jpeg compressed bgr8" if kind == "jpeg" else "bgr8; png compressed bgr8"
    return "sensor_msgs/msg/CompressedImage", T["sensor_msgs/msg/CompressedImage"](
        header=_header(i), format=fmt, data=data.reshape(-1)
    )


def _write_bag(path, scene, kind="bgr8", storage="mcap", frames=FRAMES, extra_topics=(), hidden_from=None):
    """A bag with TOPIC (``frames`` images, logged 50 ms after their stamp) plus
    std_msgs/String topics named in ``extra_topics``; ``kind`` None writes no image topic.
    From frame ``hidden_from`` on, the object is left out of the images."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        for topic in extra_topics:
            connection = writer.add_connection(topic, "std_msgs/msg/String", typestore=STORE)
            text = T["std_msgs/msg/String"](data="not an image")
            writer.write(connection, _stamp_ns(STAMPS[0]), STORE.serialize_cdr(text, "std_msgs/msg/String"))
        if kind is None:
            return path
        msgtype, _ = _image_msg(0, scene.render(0)[0], kind)
        connection = writer.add_connection(TOPIC, msgtype, typestore=STORE)
        for i in range(frames):
            visible = hidden_from is None or i < hidden_from
            msgtype, msg = _image_msg(i, scene.render(i, visible=visible)[0], kind)
            writer.write(connection, _stamp_ns(STAMPS[i]) + 50_000_000, STORE.serialize_cdr(msg, msgtype))
    return path


def _box(scene):
    return ",".join(f"{v:.1f}" for v in scene.box(0))


def _run(bag, out, *extra):
    argv = [str(bag), "--box", _box(Scene(WIDTH, HEIGHT)), "--device", "cpu", "--output", str(out / "r.jsonl"), *extra]
    return main(argv)


def _read_bag(path):
    """{topic: [(log_time, msg)]}, {topic: type}, the bag's TrackedTarget class; read with the
    definitions stored in the bag only (no default type store)."""
    messages, types = {}, {}
    with AnyReader([Path(path)]) as reader:
        for connection, log_time, raw in reader.messages():
            messages.setdefault(connection.topic, []).append((log_time, reader.deserialize(raw, connection.msgtype)))
            types[connection.topic] = connection.msgtype
        tracked_target = reader.typestore.types["siammask_ros/msg/TrackedTarget"]
    return messages, types, tracked_target


def _iou(a, b):
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def _box_mask(bbox):
    """The rotated BoundingBox2D rasterised at image size."""
    centre = (bbox.center.position.x, bbox.center.position.y)
    corners = cv2.boxPoints((centre, (bbox.size_x, bbox.size_y), np.degrees(bbox.center.theta)))
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1)
    return mask.astype(bool)


@pytest.mark.parametrize(
    ("kind", "storage", "out_storage"),
    [("bgr8", "mcap", None), ("rgb8", "sqlite3", None), ("jpeg", "mcap", "sqlite3"), ("png", "sqlite3", "mcap")],
)
def test_track_bag_and_read_output_bag(tmp_path, scene, kind, storage, out_storage):
    bag = _write_bag(tmp_path / "in", scene, kind, storage, extra_topics=["/notes"])
    out_bag = tmp_path / "tracked"
    extra = ["--output-bag", str(out_bag), "--output-bag-debug-image",
             "--video", str(tmp_path / "annotated.mp4"), "--masks", str(tmp_path / "masks")]
    if out_storage:
        extra += ["--output-bag-storage", out_storage]
    # One image topic among others: --topic may be left out.
    assert _run(bag, tmp_path, *extra) == 0

    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(FRAMES))
    assert [(r["stamp"]["sec"], r["stamp"]["nanosec"]) for r in records] == STAMPS

    expected_storage = out_storage or storage
    suffix = ".mcap" if expected_storage == "mcap" else ".db3"
    assert [p.suffix for p in out_bag.iterdir() if p.name != "metadata.yaml"] == [suffix]

    video = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    video_frames = 0
    while video.read()[0]:
        video_frames += 1
    video.release()
    assert video_frames == FRAMES

    messages, types, tracked_target = _read_bag(out_bag)
    assert types == {
        f"{PREFIX}/mask": "sensor_msgs/msg/Image",
        f"{PREFIX}/detections": "vision_msgs/msg/Detection2DArray",
        f"{PREFIX}/result": "siammask_ros/msg/TrackingResult",
        f"{PREFIX}/debug_image": "sensor_msgs/msg/Image",
    }
    for topic, items in messages.items():
        assert len(items) == FRAMES, topic
        for (log_time, msg), stamp in zip(items, STAMPS):
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == stamp, topic
            assert log_time == _stamp_ns(stamp), topic
            assert msg.header.frame_id == FRAME_ID

    for i, ((_, mask), (_, result), (_, detections), (_, debug), record) in enumerate(zip(
        messages[f"{PREFIX}/mask"], messages[f"{PREFIX}/result"], messages[f"{PREFIX}/detections"],
        messages[f"{PREFIX}/debug_image"], records,
    )):
        truth = scene.render(i)[1]
        assert (mask.encoding, mask.height, mask.width, mask.step) == ("mono8", HEIGHT, WIDTH, WIDTH)
        labels = mask.data.reshape(HEIGHT, WIDTH)
        assert set(np.unique(labels)) <= {0, 1}
        assert (debug.encoding, debug.height, debug.width) == ("bgr8", HEIGHT, WIDTH)
        png = cv2.imread(str(tmp_path / "masks" / f"{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(png, labels * 255)  # --masks: the same mask, 0/255

        assert len(result.targets) == 1
        target = result.targets[0]
        assert target.id == "target_1" and target.state == tracked_target.TRACKING
        assert target.mask_area == record["mask_area"] == np.count_nonzero(labels)
        assert target.mask_label == (1 if target.mask_area else 0)
        assert target.search_size == record["search_size"]
        assert target.confidence == pytest.approx(record["confidence"], rel=1e-6)
        assert target.frames_since_lost == 0 and result.latency_ms > 0

        assert len(detections.detections) == 1
        detection = detections.detections[0]
        assert detection.id == "target_1"
        assert detection.results[0].hypothesis.class_id == "target"
        assert detection.results[0].hypothesis.score == pytest.approx(record["confidence"])
        box = record["rotated_box"]
        assert (detection.bbox.center.position.x, detection.bbox.center.position.y) == (box["cx"], box["cy"])
        assert (detection.bbox.size_x, detection.bbox.size_y, detection.bbox.center.theta) == (
            box["width"], box["height"], box["angle"])
        assert target.bbox.center.position.x == box["cx"] and target.bbox.size_x == box["width"]
        # The output follows the object.
        # The output follows the object (measured: box IoU >= 0.73, mask IoU >= 0.91).
        assert _iou(_box_mask(detection.bbox), truth) > 0.6, i
        if i > 0:  # the initialisation frame has no mask
            assert _iou(labels == 1, truth) > 0.8, i


def test_lost_target_in_output_bag(tmp_path, scene):
    """The object vanishes at frame 3: the result says LOST with the frames and image time
    since, and the detections array is empty (only TRACKING targets are detections)."""
    bag = _write_bag(tmp_path / "in", scene, "bgr8", hidden_from=3)
    assert _run(bag, tmp_path, "--long-term", "on", "--output-bag", str(tmp_path / "tracked")) == 0
    messages, types, tracked_target = _read_bag(tmp_path / "tracked")
    assert f"{PREFIX}/debug_image" not in types  # only written when asked for
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    states = [r["state"] for r in records]
    assert "lost" in states, states
    first_lost = states.index("lost")
    assert first_lost >= 3
    for i, ((_, result), (_, detections)) in enumerate(zip(messages[f"{PREFIX}/result"], messages[f"{PREFIX}/detections"])):
        target = result.targets[0]
        if states[i] == "lost":
            lost_for = i - first_lost  # LOST stays LOST here: the object never comes back
            assert target.state == tracked_target.LOST
            assert target.frames_since_lost == lost_for + 1
            lost_ns = _stamp_ns(STAMPS[i]) - _stamp_ns(STAMPS[first_lost])
            assert (target.time_since_lost.sec, target.time_since_lost.nanosec) == divmod(lost_ns, 1_000_000_000)
            assert target.search_size == records[i]["search_size"]
            if lost_for > 0:  # the frame that found it lost was searched at 255, later ones wider
                assert target.search_size > 255
            assert detections.detections == []
        else:
            assert target.state == tracked_target.TRACKING and target.frames_since_lost == 0
            assert len(detections.detections) == 1


def test_raw_encodings_and_lossless_compression_give_identical_tracks(tmp_path, scene):
    """rgb8 and PNG inputs reach the tracker as the same BGR pixels as bgr8 input."""
    runs = {}
    for kind in ("bgr8", "rgb8", "png"):
        out = tmp_path / kind
        out.mkdir()
        assert _run(_write_bag(out / "in", scene, kind, frames=4), out) == 0
        runs[kind] = (out / "r.jsonl").read_text()
    assert runs["rgb8"] == runs["bgr8"] == runs["png"]


def test_source_lists_topics_and_converts_frames(tmp_path, scene):
    bag = _write_bag(tmp_path / "in", scene, "rgb8", "sqlite3", frames=3, extra_topics=["/notes"])
    assert image_topics(bag) == {TOPIC: "sensor_msgs/msg/Image"}
    source = BagImageSource(bag)
    assert (source.topic, source.frame_count, source.storage) == (TOPIC, 3, "sqlite3")
    frames = list(source)
    assert [f.stamp for f in frames] == STAMPS[:3]
    assert [f.log_time_ns for f in frames] == [_stamp_ns(s) + 50_000_000 for s in STAMPS[:3]]
    assert all(f.color_order == "rgb" and f.frame_id == FRAME_ID for f in frames)
    np.testing.assert_array_equal(frames[1].frame[:, :, ::-1], scene.render(1)[0])
    # A bare storage file opens as well as the bag folder.
    [db3] = [p for p in bag.iterdir() if p.suffix == ".db3"]
    assert BagImageSource(db3).frame_count == 3


def test_unknown_topic_lists_image_topics(tmp_path, scene, capsys):
    bag = _write_bag(tmp_path / "in", scene, "bgr8", frames=1)
    assert _run(bag, tmp_path, "--topic", "/camera/other") == 1
    line = _error_line(capsys)
    assert "no topic '/camera/other'" in line and f"{TOPIC} (sensor_msgs/msg/Image)" in line


def test_non_image_topic_says_its_type(tmp_path, scene, capsys):
    bag = _write_bag(tmp_path / "in", scene, "jpeg", frames=1, extra_topics=["/notes"])
    assert _run(bag, tmp_path, "--topic", "/notes") == 1
    line = _error_line(capsys)
    assert "'/notes'" in line and "std_msgs/msg/String" in line and "sensor_msgs/msg/CompressedImage" in line


def test_bag_without_image_topic(tmp_path, scene, capsys):
    bag = _write_bag(tmp_path / "in", scene, None, storage="sqlite3")
    assert _run(bag, tmp_path) == 1
    assert "no sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage topic; its topics: none" in _error_line(capsys)


def test_image_topic_without_messages(tmp_path, scene, capsys):
    bag = _write_bag(tmp_path / "in", scene, "png", frames=0)
    assert _run(bag, tmp_path) == 1
    assert f"topic '{TOPIC}' in bag '{bag}' has no messages" in _error_line(capsys)


def test_several_image_topics_need_topic(tmp_path, scene, capsys):
    bag = tmp_path / "in"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for topic in ("/left/image", "/right/image"):
            connection = writer.add_connection(topic, "sensor_msgs/msg/Image", typestore=STORE)
            msgtype, msg = _image_msg(0, scene.render(0)[0], "bgr8")
            writer.write(connection, 1, STORE.serialize_cdr(msg, msgtype))
    assert _run(bag, tmp_path) == 1
    line = _error_line(capsys)
    assert "2 image topics; choose one with --topic" in line and "/left/image" in line and "/right/image" in line


def test_undecodable_compressed_image_names_message(tmp_path, scene, capsys):
    bag = tmp_path / "in"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection(TOPIC, "sensor_msgs/msg/CompressedImage", typestore=STORE)
        for i, data in enumerate([cv2.imencode(".png", scene.render(0)[0])[1].reshape(-1), np.zeros(10, np.uint8)]):
            msg = T["sensor_msgs/msg/CompressedImage"](header=_header(i), format="png", data=data)
            writer.write(connection, _stamp_ns(STAMPS[i]), STORE.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))
    assert _run(bag, tmp_path) == 1
    line = _error_line(capsys)
    sec, nanosec = STAMPS[1]
    assert f"message 1 (stamp {sec}.{nanosec:09d}) on '{TOPIC}'" in line and "cannot decode 10 bytes" in line


def test_output_bag_must_be_new(tmp_path, scene, capsys):
    bag = _write_bag(tmp_path / "in", scene, "bgr8", frames=1)
    existing = tmp_path / "tracked"
    existing.mkdir()
    assert _run(bag, tmp_path, "--output-bag", str(existing)) == 1
    line = _error_line(capsys)
    assert "cannot create output bag" in line and str(existing) in line


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--topic", TOPIC], "--topic needs a rosbag2 INPUT"),
        (["--output-bag", "x"], "--output-bag needs a rosbag2 INPUT"),
        (["--output-bag-debug-image"], "--output-bag-debug-image needs --output-bag"),
        (["--output-bag-storage", "mcap"], "--output-bag-storage needs --output-bag"),
    ],
)
def test_bag_options_need_a_bag(tmp_path, scene, capsys, extra, message):
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), scene.render(0)[0])
    assert _run(folder, tmp_path, *extra) == 1
    assert message in _error_line(capsys)


def test_output_types_match_the_interfaces(tmp_path):
    """The vision_msgs definitions written into bags have the field lists of the vision_msgs
    the node is built against (the development stand-in mirrors vision_msgs 4.1), and the
    TrackedTarget state constants are those of msg/TrackedTarget.msg."""
    from rosbags.typesys import get_types_from_msg

    from siammask_ros.io.bag import output_typestore
    from siammask_ros.io.message_fields import STATE_CODES
    from siammask_ros.tracker.result import TrackState

    store = output_typestore()
    standin = Path(__file__).resolve().parents[1] / "dev" / "vision_msgs_standin" / "msg"
    for name in ("Detection2DArray", "Detection2D", "BoundingBox2D", "Pose2D", "Point2D",
                 "ObjectHypothesisWithPose", "ObjectHypothesis"):
        msgtype = f"vision_msgs/msg/{name}"
        reference = get_types_from_msg((standin / f"{name}.msg").read_text(), msgtype)[msgtype]
        assert store.fielddefs[msgtype] == reference, name
    # Where rosidl built the interfaces, the bag's type hashes are the ones ROS 2 uses, so
    # `ros2 bag play` publishes them without a type-hash mismatch.
    for msgtype in ("siammask_ros/msg/TrackingResult", "vision_msgs/msg/Detection2DArray", "sensor_msgs/msg/Image"):
        package, _, name = msgtype.split("/")
        description = Path(sys.prefix) / "share" / package / "msg" / f"{name}.json"
        if description.is_file():
            hashes = {h["type_name"]: h["hash_string"] for h in json.loads(description.read_text())["type_hashes"]}
            assert store.hash_rihs01(msgtype) == hashes[msgtype], msgtype
    target = store.types["siammask_ros/msg/TrackedTarget"]
    assert STATE_CODES == {TrackState.IDLE: target.IDLE, TrackState.TRACKING: target.TRACKING,
                           TrackState.LOST: target.LOST}


def test_raw_image_table_matches_the_node_conversions():
    """io.raw_image (ROS-free, used for bags) and ros.conversions read the same encodings
    the same way, until conversions imports it instead of keeping its own table."""
    conversions = pytest.importorskip("siammask_ros.ros.conversions")
    from siammask_ros.io import raw_image

    def table(module):
        return {k: (v.channels, v.bytes_per_channel, v.color_order, v.alpha) for k, v in module._LAYOUTS.items()}

    if conversions.image_to_array is raw_image.image_to_array:
        return
    assert table(conversions) == table(raw_image)
