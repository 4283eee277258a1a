"""decode_compressed: CompressedImage format strings and data, encoded here with real OpenCV."""

import array

import cv2
import numpy as np
import pytest

from siammask_ros.io.compressed import CompressedImageError, decode_compressed


def _bgr_frame(width: int = 48, height: int = 32) -> np.ndarray:
    """Distinct, smooth colour ramps (JPEG-friendly) with a different value in each channel."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 4 % 256, yy * 6 % 256, np.full_like(xx, 200)], axis=-1).astype(np.uint8)


def _encode(image: np.ndarray, ext: str) -> bytes:
    ok, encoded = cv2.imencode(ext, image)
    assert ok
    return encoded.tobytes()


@pytest.mark.parametrize("fmt", ["png", "PNG", "bgr8; png compressed bgr8", "rgb8; png compressed bgr8", ""])
def test_png_colour_is_bgr_and_lossless(fmt):
    frame = _bgr_frame()
    decoded, order = decode_compressed(fmt, _encode(frame, ".png"))
    assert order == "bgr"
    assert decoded.dtype == np.uint8 and decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded, frame)


@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed bgr8"])
def test_jpeg_colour_is_bgr(fmt):
    frame = _bgr_frame()
    decoded, order = decode_compressed(fmt, _encode(frame, ".jpg"))
    assert order == "bgr" and decoded.shape == frame.shape
    assert np.abs(decoded.astype(int) - frame).mean() < 4  # JPEG is lossy, not reordered


def test_stored_rgb_order_is_reported():
    # The encoder was handed RGB bytes: decoding gives them back in that order.
    rgb = _bgr_frame()[:, :, ::-1].copy()
    decoded, order = decode_compressed("rgb8; png compressed rgb8", _encode(rgb, ".png"))
    assert order == "rgb"
    np.testing.assert_array_equal(decoded, rgb)


@pytest.mark.parametrize(("fmt", "ext"), [("mono8; png compressed", ".png"), ("mono8; jpeg compressed mono8", ".jpg")])
def test_mono(fmt, ext):
    mono = _bgr_frame()[:, :, 0].copy()
    decoded, order = decode_compressed(fmt, _encode(mono, ext))
    assert order == "mono" and decoded.shape == mono.shape
    assert np.abs(decoded.astype(int) - mono).max() <= (0 if ext == ".png" else 12)


def test_sixteen_bit_png_is_scaled_like_raw_images():
    mono16 = np.array([[0, 257, 65535], [1000, 30000, 65534]], dtype=np.uint16)
    decoded, order = decode_compressed("mono16; png compressed mono16", _encode(mono16, ".png"))
    assert order == "mono"
    np.testing.assert_array_equal(decoded, [[0, 1, 255], [4, 117, 255]])


def test_alpha_is_dropped():
    bgra = np.dstack([_bgr_frame(), np.full((32, 48), 7, np.uint8)])
    decoded, order = decode_compressed("bgra8; png compressed bgra8", _encode(bgra, ".png"))
    assert order == "bgr"
    np.testing.assert_array_equal(decoded, bgra[:, :, :3])


@pytest.mark.parametrize("container", [bytes, lambda b: np.frombuffer(b, np.uint8), lambda b: array.array("B", b), list])
def test_data_containers(container):
    frame = _bgr_frame()
    decoded, _ = decode_compressed("png", container(_encode(frame, ".png")))
    np.testing.assert_array_equal(decoded, frame)


@pytest.mark.parametrize(
    ("fmt", "words"),
    [
        ("16UC1; compressedDepth png", ["compressedDepth", "16UC1"]),
        ("32FC1; compressedDepth", ["compressedDepth"]),
        ("h264", ["unsupported codec 'h264'", "jpeg", "png"]),
        ("rgb8; theora compressed", ["'theora'"]),
        ("something odd here", ["unrecognised format 'something odd here'"]),
    ],
)
def test_unsupported_formats(fmt, words):
    with pytest.raises(CompressedImageError) as info:
        decode_compressed(fmt, _encode(_bgr_frame(), ".png"))
    assert info.value.reason == "unsupported_format"
    assert isinstance(info.value, ValueError)
    for word in words:
        assert word in str(info.value)


def test_empty_data():
    with pytest.raises(CompressedImageError, match=r"format 'jpeg'\) has no data") as info:
        decode_compressed("jpeg", b"")
    assert info.value.reason == "undecodable_image"


def test_garbage_data():
    with pytest.raises(CompressedImageError) as info:
        decode_compressed("rgb8; jpeg compressed bgr8", b"\x01\x02\x03not an image at all")
    assert info.value.reason == "undecodable_image"
    message = str(info.value)
    assert "cannot decode 22 bytes as jpeg" in message and "01 02 03" in message


def test_truncated_jpeg_header():
    data = _encode(_bgr_frame(), ".jpg")[:20]
    with pytest.raises(CompressedImageError) as info:
        decode_compressed("jpeg", data)
    assert info.value.reason == "undecodable_image"
