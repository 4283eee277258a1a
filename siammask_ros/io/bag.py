"""rosbag2 input and output without a ROS install, through the ``rosbags`` library.

Input: :class:`BagImageSource` reads the sensor_msgs/Image or sensor_msgs/CompressedImage
messages of one topic of an mcap or sqlite3 bag (a bag folder, or a bare ``.mcap`` /
``.db3`` file) as :class:`BagFrame` (header stamp and frame_id, frame, colour order).

Output: :class:`BagResultWriter` writes what the node publishes for each image, stamped
with the image's header and logged at its stamp, so that ``ros2 bag play``, RViz and
Foxglove replay the run:

- ``<prefix>/mask`` sensor_msgs/Image mono8 label image (target pixels = ``mask_label``);
- ``<prefix>/detections`` vision_msgs/Detection2DArray (TRACKING targets only);
- ``<prefix>/result`` siammask_ros/TrackingResult;
- ``<prefix>/debug_image`` sensor_msgs/Image bgr8 overlay, when asked for.

The message definitions of vision_msgs (absent from rosbags' built-in type stores) and of
this package are registered from their ``.msg`` text and stored in the bag, which makes
the bag self-describing. Field contents come from :mod:`siammask_ros.io.message_fields`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from siammask_ros.io.compressed import CompressedImageError, decode_compressed
from siammask_ros.io.frames import FrameSourceError
from siammask_ros.io.message_fields import (
    Fields,
    TargetFields,
    detection_array_fields,
    header_fields,
    label_image,
    tracking_result_fields,
)
from siammask_ros.io.raw_image import ImageConversionError, image_to_array

__all__ = [
    "BAG_STORAGES",
    "COMPRESSED_IMAGE_TYPE",
    "DEFAULT_PREFIX",
    "IMAGE_TYPE",
    "BagError",
    "BagFrame",
    "BagImageSource",
    "BagResultWriter",
    "bag_storage",
    "image_topics",
    "is_bag",
    "output_typestore",
    "package_msg_dir",
]

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
#: Storage plugin names as in rosbag2's metadata.yaml, by data-file suffix.
BAG_STORAGES = {".mcap": "mcap", ".db3": "sqlite3"}
DEFAULT_PREFIX = "/siammask_tracker"

RESULT_TYPE = "siammask_ros/msg/TrackingResult"
TARGET_TYPE = "siammask_ros/msg/TrackedTarget"
DETECTIONS_TYPE = "vision_msgs/msg/Detection2DArray"

# vision_msgs 4.1 (ROS 2 Jazzy) field lists, for the types the output uses.
_VISION_MSGS: dict[str, str] = {
    "Point2D": "float64 x\nfloat64 y\n",
    "Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "ObjectHypothesis": "string class_id\nfloat64 score\n",
    "ObjectHypothesisWithPose": "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n",
    "Detection2D": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
        "vision_msgs/BoundingBox2D bbox\nstring id\n"
    ),
    "Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
}


class BagError(FrameSourceError):
    """A bag that cannot be read or written as asked; the message names the bag and topic."""


@dataclass(frozen=True)
class BagFrame:
    """One image of the tracked topic. ``frame`` is uint8 in ``color_order``
    ("bgr", "rgb" or "mono"); ``stamp`` is the header stamp ``(sec, nanosec)``;
    ``log_time_ns`` the time the recorder received it."""

    index: int
    stamp: tuple[int, int]
    frame_id: str
    frame: np.ndarray
    color_order: str
    log_time_ns: int

    @property
    def stamp_ns(self) -> int:
        return self.stamp[0] * 1_000_000_000 + self.stamp[1]


def is_bag(path: str | Path) -> bool:
    """A rosbag2 folder (with metadata.yaml) or a bare .mcap / .db3 file."""
    path = Path(path)
    if path.is_dir():
        return (path / "metadata.yaml").is_file()
    return path.suffix in BAG_STORAGES


def bag_storage(path: str | Path) -> str:
    """"mcap" or "sqlite3": the storage of a bag folder's data files or of a bare file."""
    path = Path(path)
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    for file in files:
        if file.suffix in BAG_STORAGES:
            return BAG_STORAGES[file.suffix]
    raise BagError(f"bag {str(path)!r} has no .mcap or .db3 data file")


def image_topics(path: str | Path) -> dict[str, str]:
    """Image topics of a bag and their types, in name order."""
    with _open_reader(Path(path)) as reader:
        return _image_topics(reader)


class BagImageSource:
    """The images of one topic of a bag, in log-time order; each iteration starts over.

    ``topic`` may be None when the bag has exactly one image topic.

    Raises:
        BagError: the bag cannot be opened; it has no image topic; ``topic`` is None and
            it has several; ``topic`` is not in the bag (the message lists the image
            topics), is not an image type (the message says its type) or has no message.
    """

    def __init__(self, path: str | Path, topic: str | None = None) -> None:
        self.path = Path(path)
        with _open_reader(self.path) as reader:
            images = _image_topics(reader)
            self.topic = _choose_topic(self.path, reader.topics, images, topic)
            self.msgtype = images[self.topic]
            info = reader.topics[self.topic]
            self.frame_count: int | None = info.msgcount
            duration_s = reader.duration * 1e-9
        if not self.frame_count:
            raise BagError(f"topic {self.topic!r} in bag {str(self.path)!r} has no messages")
        # Rate over the whole recording: good enough for the annotated video's timing.
        self.fps: float | None = None
        if self.frame_count > 1 and duration_s > 0:
            self.fps = (self.frame_count - 1) / duration_s
        self.storage = bag_storage(self.path)

    def __iter__(self) -> Iterator[BagFrame]:
        with _open_reader(self.path) as reader:
            connections = [c for c in reader.connections if c.topic == self.topic]
            for index, (connection, log_time, raw) in enumerate(reader.messages(connections=connections)):
                yield self._frame(index, reader.deserialize(raw, connection.msgtype), log_time)

    def _frame(self, index: int, msg: Any, log_time: int) -> BagFrame:
        stamp = (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))
        try:
            if self.msgtype == IMAGE_TYPE:
                frame, order = image_to_array(msg)
            else:
                frame, order = decode_compressed(msg.format, msg.data)
        except (ImageConversionError, CompressedImageError) as error:
            raise BagError(
                f"message {index} (stamp {stamp[0]}.{stamp[1]:09d}) on {self.topic!r} in bag "
                f"{str(self.path)!r}: {error}"
            ) from None
        return BagFrame(index, stamp, msg.header.frame_id, frame, order, int(log_time))


def _require_rosbags() -> None:
    try:
        import rosbags  # noqa: F401
    except ImportError:
        raise BagError(
            "reading and writing bags needs the rosbags package: pip install 'rosbags==0.11.9' "
            "(or pip install '.[bag]')"
        ) from None


@contextmanager
def _open_reader(path: Path) -> Iterator[Any]:
    """An open rosbags AnyReader; bags without stored definitions are read as Jazzy types."""
    _require_rosbags()
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    if not path.exists():
        raise BagError(f"bag {str(path)!r} does not exist")
    try:
        reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY))
        reader.open()
    except Exception as error:  # rosbags raises several unrelated types for unreadable bags
        raise BagError(f"cannot read bag {str(path)!r}: {error}") from None
    try:
        yield reader
    finally:
        reader.close()


def _image_topics(reader: Any) -> dict[str, str]:
    return {name: info.msgtype for name, info in sorted(reader.topics.items()) if info.msgtype in IMAGE_TYPES}


def _describe(topics: dict[str, str]) -> str:
    return ", ".join(f"{name} ({msgtype})" for name, msgtype in topics.items()) or "none"


def _choose_topic(path: Path, all_topics: dict[str, Any], images: dict[str, str], topic: str | None) -> str:
    where = f"bag {str(path)!r}"
    if topic is None:
        if len(images) == 1:
            return next(iter(images))
        if not images:
            others = _describe({name: info.msgtype for name, info in sorted(all_topics.items())})
            raise BagError(f"{where} has no {IMAGE_TYPE} or {COMPRESSED_IMAGE_TYPE} topic; its topics: {others}")
        raise BagError(f"{where} has {len(images)} image topics; choose one with --topic: {_describe(images)}")
    if topic not in all_topics:
        raise BagError(f"{where} has no topic {topic!r}; its image topics: {_describe(images)}")
    if topic not in images:
        raise BagError(
            f"topic {topic!r} in {where} has type {all_topics[topic].msgtype}, not {IMAGE_TYPE} or "
            f"{COMPRESSED_IMAGE_TYPE}; its image topics: {_describe(images)}"
        )
    return topic


# Output ---------------------------------------------------------------------------------


def package_msg_dir() -> Path:
    """The folder holding this package's TrackedTarget.msg and TrackingResult.msg.

    Looked up in the ament install prefixes (``share/siammask_ros/msg``, a colcon or
    ``make setup`` install), then in the source checkout next to the Python package.
    """
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(Path(sys.prefix))
    candidates = [prefix / "share" / "siammask_ros" / "msg" for prefix in prefixes]
    candidates.append(Path(__file__).resolve().parents[2] / "msg")
    for candidate in candidates:
        if (candidate / "TrackingResult.msg").is_file() and (candidate / "TrackedTarget.msg").is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise BagError(f"cannot find siammask_ros' TrackingResult.msg to describe the output bag; searched {searched}")


def output_typestore():
    """ROS 2 Jazzy's types plus vision_msgs and siammask_ros' result messages."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict[str, Any] = {}
    for name, text in _VISION_MSGS.items():
        types.update(get_types_from_msg(text, f"vision_msgs/msg/{name}"))
    msg_dir = package_msg_dir()
    for msgtype in (TARGET_TYPE, RESULT_TYPE):
        text = (msg_dir / f"{msgtype.rsplit('/', 1)[1]}.msg").read_text(encoding="utf-8")
        types.update(get_types_from_msg(text, msgtype))
    store.register(types)
    return store


class BagResultWriter:
    """Writes the tracker's outputs for each image into a new bag (see the module docstring).

    ``storage`` is "mcap" or "sqlite3". Use as a context manager; the bag is complete (its
    metadata.yaml written) on exit.

    Raises:
        BagError: ``path`` exists already or cannot be created, or ``storage`` is unknown.
    """

    def __init__(self, path: str | Path, storage: str, prefix: str = DEFAULT_PREFIX, debug_image: bool = False) -> None:
        _require_rosbags()
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
        if storage not in plugins:
            raise BagError(f"unknown bag storage {storage!r}; choose one of {', '.join(plugins)}")
        self.path = Path(path)
        self._store = output_typestore()
        prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        try:
            self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=plugins[storage])
            self._writer.open()
        except Exception as error:  # WriterError when it exists, OSError when it cannot be made
            raise BagError(f"cannot create output bag {str(self.path)!r}: {error}") from None
        topics = {"mask": IMAGE_TYPE, "detections": DETECTIONS_TYPE, "result": RESULT_TYPE}
        if debug_image:
            topics["debug_image"] = IMAGE_TYPE
        self._connections = {
            name: self._writer.add_connection(f"{prefix}/{name}", msgtype, typestore=self._store)
            for name, msgtype in topics.items()
        }

    @property
    def has_debug_image(self) -> bool:
        return "debug_image" in self._connections

    @property
    def topics(self) -> dict[str, str]:
        """Output topic name -> message type."""
        return {c.topic: c.msgtype for c in self._connections.values()}

    def write(
        self,
        stamp: tuple[int, int],
        frame_id: str,
        targets: Sequence[TargetFields],
        image_size: tuple[int, int],
        latency_ms: float,
        debug_image: np.ndarray | None = None,
    ) -> None:
        """One image's outputs, logged at its stamp. ``image_size`` is (height, width);
        ``debug_image`` (BGR uint8) is written when the bag has that topic."""
        header = header_fields(stamp[0], stamp[1], frame_id)
        log_time = stamp[0] * 1_000_000_000 + stamp[1]
        height, width = image_size
        self._put("mask", log_time, _image_fields(header, label_image(targets, height, width), "mono8"))
        self._put("detections", log_time, detection_array_fields(header, targets))
        self._put("result", log_time, tracking_result_fields(header, targets, latency_ms))
        if debug_image is not None and self.has_debug_image:
            self._put("debug_image", log_time, _image_fields(header, debug_image, "bgr8"))

    def _put(self, name: str, log_time: int, fields: Fields) -> None:
        connection = self._connections[name]
        msg = _build(self._store, connection.msgtype, fields)
        self._writer.write(connection, log_time, self._store.serialize_cdr(msg, connection.msgtype))

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> "BagResultWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _image_fields(header: Fields, image: np.ndarray, encoding: str) -> Fields:
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    return {
        "header": header,
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": width * channels,
        "data": np.ascontiguousarray(image, dtype=np.uint8).reshape(-1),
    }


# rosbags message classes are dataclasses that take every field: build them from the
# type store's field definitions, with message defaults for the fields left out.
_STRING_TYPES = {"string", "wstring"}
_NUMPY_TYPES = {"bool": np.bool_, "byte": np.uint8, "char": np.uint8, "octet": np.uint8}


def _build(store: Any, msgtype: str, fields: Fields) -> Any:
    from rosbags.interfaces import Nodetype

    _, definitions = store.fielddefs[msgtype]
    unknown = set(fields) - {name for name, _ in definitions}
    if unknown:
        raise ValueError(f"{msgtype} has no field {', '.join(sorted(unknown))}")
    values = {}
    for name, (node, detail) in definitions:
        value = fields.get(name)
        if node == Nodetype.NAME:
            values[name] = _build(store, detail, value or {})
        elif node == Nodetype.BASE:
            values[name] = _base_value(detail[0], value)
        else:  # ARRAY (fixed length) or SEQUENCE
            (item_node, item_detail), length = detail
            values[name] = _array_value(store, item_node, item_detail, length if node == Nodetype.ARRAY else 0, value)
    return store.types[msgtype](**values)


def _base_value(typename: str, value: Any) -> Any:
    if typename in _STRING_TYPES:
        return "" if value is None else str(value)
    if typename == "bool":
        return bool(value)
    if typename.startswith("float"):
        return 0.0 if value is None else float(value)
    return 0 if value is None else int(value)


def _array_value(store: Any, item_node: Any, item_detail: Any, length: int, value: Iterable | None) -> Any:
    from rosbags.interfaces import Nodetype

    if item_node == Nodetype.NAME:
        items = list(value or [])
        items += [{}] * (length - len(items))
        return [_build(store, item_detail, item) for item in items]
    typename = item_detail[0]
    if typename in _STRING_TYPES:
        items = [str(v) for v in (value or [])]
        return items + [""] * (length - len(items))
    dtype = _NUMPY_TYPES.get(typename, typename)
    array = np.zeros(length, dtype=dtype) if value is None else np.asarray(value, dtype=dtype).reshape(-1)
    if length and array.size != length:
        raise ValueError(f"array of {typename} needs {length} items, got {array.size}")
    return array
