"""sensor_msgs/CompressedImage -> numpy frame, with numpy and OpenCV only (no ROS, no bags).

``format`` is what the publisher wrote. The forms in use are:

- ``"jpeg"``, ``"png"`` (ROS 1 image_transport, many camera drivers);
- ``"<source encoding>; <codec> compressed <stored encoding>"`` (compressed_image_transport:
  ``"rgb8; jpeg compressed bgr8"``, ``"mono8; jpeg compressed mono8"``,
  ``"bgra8; png compressed bgra8"``); older PNG publishers leave out the stored encoding
  (``"mono8; png compressed"``).

The stored encoding says in which channel order the pixels were handed to the encoder,
which is the order the decoder gives back. When it is missing the encoder was given
OpenCV's order (BGR), as every OpenCV-based publisher does. The source encoding only says
what the publisher started from, so it does not change the frame returned here.
``compressedDepth`` (depth maps) is refused: a tracker frame is an intensity image.
"""

from __future__ import annotations

import re

import cv2
import numpy as np

__all__ = ["CODECS", "CompressedImageError", "decode_compressed"]

#: Codec names accepted in ``format`` (lower case), as OpenCV decodes them.
CODECS = frozenset({"jpeg", "jpg", "png", "tiff", "tif", "webp", "bmp"})

_RGB_ENCODINGS = frozenset({"rgb8", "rgba8", "rgb16", "rgba16"})
_COMPRESSED_FORM = re.compile(r"^(?P<source>[^;]*);\s*(?P<codec>\S+)\s+compressed(?:\s+(?P<stored>\S+))?\s*$")


class CompressedImageError(ValueError):
    """A CompressedImage that cannot be turned into a frame; ``reason`` names the kind."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        #: "unsupported_format" (the format string) or "undecodable_image" (the bytes).
        self.reason = reason


def decode_compressed(format: str, data) -> tuple[np.ndarray, str]:  # noqa: A002 (the message field's name)
    """Decode one CompressedImage's ``format`` and ``data`` into ``(frame, color_order)``.

    ``frame`` is uint8, HxW for ``color_order`` "mono", HxWx3 for "bgr" or "rgb"; alpha
    is dropped and 16-bit images (PNG, TIFF) are scaled to 8 bits as value/257, as for
    raw 16-bit Images. ``data`` may be bytes, a numpy uint8 array, array.array or a list.
    An empty ``format`` lets OpenCV identify the codec from the data.

    Raises:
        CompressedImageError: reason "unsupported_format" for compressedDepth or a codec
            OpenCV does not decode (``h264``...); "undecodable_image" for empty data or
            bytes that do not decode.
    """
    codec, stored_encoding = _parse_format(format)
    buffer = _byte_view(data)
    if buffer.size == 0:
        raise CompressedImageError(f"compressed image (format {format!r}) has no data", "undecodable_image")
    decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.size == 0:
        raise CompressedImageError(
            f"cannot decode {buffer.size} bytes as {codec or 'an image'} (format {format!r}): "
            f"the data starts with {bytes(buffer[:8]).hex(' ')}",
            "undecodable_image",
        )
    return _to_frame(decoded, stored_encoding)


def _parse_format(text: str) -> tuple[str, str]:
    """``(codec, stored encoding)`` of a format string; either may be empty."""
    normalized = text.strip()
    if "compresseddepth" in normalized.lower():
        raise CompressedImageError(
            f"format {text!r} is a compressedDepth depth map; track on the colour or mono image topic instead",
            "unsupported_format",
        )
    match = _COMPRESSED_FORM.match(normalized)
    if match:
        codec, stored = match["codec"].lower(), (match["stored"] or "").lower()
    elif ";" in normalized or " " in normalized:
        raise CompressedImageError(
            f"unrecognised format {text!r}; expected a codec (\"jpeg\", \"png\") or "
            f"\"<encoding>; <codec> compressed [<encoding>]\"",
            "unsupported_format",
        )
    else:
        codec, stored = normalized.lower(), ""
    if codec and codec not in CODECS:
        raise CompressedImageError(
            f"unsupported codec {codec!r} in format {text!r}; supported: {', '.join(sorted(CODECS))}",
            "unsupported_format",
        )
    return codec, stored


def _to_frame(decoded: np.ndarray, stored_encoding: str) -> tuple[np.ndarray, str]:
    if decoded.dtype == np.uint16:
        decoded = ((decoded.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif decoded.dtype != np.uint8:
        raise CompressedImageError(f"decoded image has unsupported pixel type {decoded.dtype}", "undecodable_image")
    if decoded.ndim == 3 and decoded.shape[2] == 1:
        decoded = decoded[:, :, 0]
    if decoded.ndim == 2:
        return np.ascontiguousarray(decoded), "mono"
    if decoded.shape[2] == 4:
        decoded = decoded[:, :, :3]
    order = "rgb" if stored_encoding in _RGB_ENCODINGS else "bgr"
    return np.ascontiguousarray(decoded), order


def _byte_view(data) -> np.ndarray:
    """``data`` as a flat uint8 array: a view for buffers (bytes, numpy, array.array), else a copy."""
    if isinstance(data, np.ndarray):  # rosbags gives uint8 arrays
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError:  # a list, as a hand-built message may hold
        return np.asarray(data, dtype=np.uint8).reshape(-1)
