"""sensor_msgs/Image fields -> numpy frame, without ROS: the encoding table in one place.

:func:`image_to_array` reads only the fields ``height``, ``width``, ``step``,
``encoding``, ``is_bigendian`` and ``data``, so it takes an rclpy message, a rosbags
message (``data`` a numpy array) or any object with those attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "EmptyImageError",
    "ImageConversionError",
    "SUPPORTED_ENCODINGS",
    "TruncatedImageError",
    "UnsupportedEncodingError",
    "image_to_array",
]


class ImageConversionError(ValueError):
    """A sensor_msgs/Image that cannot be turned into a frame."""

    #: Short machine-friendly name of the problem, used as a diagnostics counter key.
    reason = "invalid_image"


class UnsupportedEncodingError(ImageConversionError):
    reason = "unsupported_encoding"


class TruncatedImageError(ImageConversionError):
    """``data`` is shorter than ``step * height`` or ``step`` is shorter than a row."""

    reason = "truncated_data"


class EmptyImageError(ImageConversionError):
    reason = "empty_image"


@dataclass(frozen=True)
class _Layout:
    channels: int
    bytes_per_channel: int
    color_order: str  # what the tracker is told: "bgr", "rgb" or "mono"
    alpha: bool = False


# Encodings follow sensor_msgs/image_encodings.hpp. 16-bit images are scaled to 8 bits
# over their full range (value / 257), which keeps the conversion identical from frame to
# frame; cameras that use only the low 10-12 bits give dark but trackable frames.
_LAYOUTS: dict[str, _Layout] = {
    "mono8": _Layout(1, 1, "mono"),
    "8UC1": _Layout(1, 1, "mono"),
    "bgr8": _Layout(3, 1, "bgr"),
    "rgb8": _Layout(3, 1, "rgb"),
    "8UC3": _Layout(3, 1, "bgr"),
    "bgra8": _Layout(4, 1, "bgr", alpha=True),
    "rgba8": _Layout(4, 1, "rgb", alpha=True),
    "8UC4": _Layout(4, 1, "bgr", alpha=True),
    "mono16": _Layout(1, 2, "mono"),
    "bgr16": _Layout(3, 2, "bgr"),
    "rgb16": _Layout(3, 2, "rgb"),
    "bgra16": _Layout(4, 2, "bgr", alpha=True),
    "rgba16": _Layout(4, 2, "rgb", alpha=True),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)


def image_to_array(msg) -> tuple[np.ndarray, str]:
    """A uint8 frame (HxW or HxWx3) and its colour order ("bgr", "rgb" or "mono").

    Row padding (``step`` larger than a row) is skipped, the alpha channel dropped and
    16-bit data read in the byte order given by ``is_bigendian`` and scaled to 8 bits.
    For 8-bit encodings without padding or alpha the result is a read-only view of
    ``msg.data`` (no copy).

    Raises:
        EmptyImageError: width or height is zero.
        UnsupportedEncodingError: the encoding is not in ``SUPPORTED_ENCODINGS``.
        TruncatedImageError: ``step`` is shorter than a row or ``data`` shorter than
            ``step * height``.
    """
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise EmptyImageError(f"image has zero size ({width}x{height})")
    layout = _LAYOUTS.get(msg.encoding)
    if layout is None:
        raise UnsupportedEncodingError(
            f"unsupported encoding {msg.encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    row_bytes = width * layout.channels * layout.bytes_per_channel
    if step < row_bytes:
        raise TruncatedImageError(
            f"step {step} is shorter than one {msg.encoding} row of width {width} ({row_bytes} bytes)"
        )
    buffer = _byte_view(msg.data)
    if buffer.size < step * height:
        raise TruncatedImageError(
            f"data has {buffer.size} bytes, fewer than step * height = {step} * {height} = {step * height}"
        )
    rows = buffer[: step * height].reshape(height, step)[:, :row_bytes]
    if layout.bytes_per_channel == 2:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        wide = np.ascontiguousarray(rows).view(dtype)
        pixels = ((wide.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    else:
        pixels = rows
    pixels = pixels.reshape(height, width, layout.channels)
    if layout.alpha:
        pixels = pixels[:, :, :3]
    if layout.channels == 1:
        pixels = pixels[:, :, 0]
    frame = np.ascontiguousarray(pixels)
    frame.flags.writeable = False
    return frame, layout.color_order


def _byte_view(data) -> np.ndarray:
    """``data`` as a flat uint8 array: a view for buffers (array.array, bytes, numpy), else a copy."""
    if isinstance(data, np.ndarray):  # rosbags messages
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError:  # a list, as a hand-built message may hold
        return np.asarray(data, dtype=np.uint8).reshape(-1)
