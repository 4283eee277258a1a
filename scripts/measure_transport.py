#!/usr/bin/env python3
"""How many camera frames reach a subscriber in another process, with and without a DDS profile.

For each image size and profile, a publisher process sends bgr8 sensor_msgs/Image at a fixed
rate (best effort, keep last 5, the QoS of a camera consumer) and a subscriber process counts
what arrives with siammask_ros.ros.transport.TransportLossCounter:

    scripts/isolate.sh .venv/bin/python scripts/measure_transport.py \\
        --sizes 640x480 1280x720 3840x2160 --rate 30 --seconds 10 --profiles none shipped

Columns: sent, received, missed (publication sequence gaps), lost (DDS message-lost events),
p50/p95 latency from the publisher's header stamp to the subscriber's callback (ms).
Both processes get the same profile ("none" removes FAST*_DEFAULT_PROFILES_FILE).

The two roles are also run on their own by test/test_transport.py:
    measure_transport.py publish --sizes 64x48,1920x1080 --count 20 --rate 30
    measure_transport.py subscribe      (reads "sent N" on stdin, prints one JSON line)
Run it only under scripts/isolate.sh (the network rule of this project).
"""

from __future__ import annotations

import argparse
import array
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_PROFILE = ROOT / "config" / "fastdds_large_images.xml"
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
TOPIC = "measure_transport/image"
DISCOVERY_TIMEOUT_S = 20.0


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480); raises argparse.ArgumentTypeError otherwise."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"image size {text!r} is not WIDTHxHEIGHT") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"image size {text!r} must be positive")
    return width, height


def image_qos():
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)


def shm_segments() -> dict[str, int]:
    """Fast DDS shared-memory segments mapped by this process: file name -> bytes.

    A process maps its own segment and, once it has read from them, its peers' segments.
    """
    segments: dict[str, int] = {}
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5].startswith("/dev/shm/fastrtps_") and "_port" not in fields[5] \
                and not fields[5].endswith("_el"):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            segments[fields[5]] = segments.get(fields[5], 0) + end - start
    return segments


def publish(sizes: list[tuple[int, int]], count: int, rate: float) -> dict:
    """Send `count` frames cycling through `sizes` at `rate` Hz once a subscriber is matched."""
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("measure_transport_publisher")
    publisher = node.create_publisher(Image, TOPIC, image_qos())
    messages = [_image(width, height) for width, height in sizes]
    deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
    while publisher.get_subscription_count() < 1:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no subscriber on {TOPIC} within {DISCOVERY_TIMEOUT_S} s")
        rclpy.spin_once(node, timeout_sec=0.05)
    start = time.perf_counter()
    for index, message in zip(range(count), itertools.cycle(messages)):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the camera, not synchronisation
        stamp = time.time_ns()
        message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        message.header.frame_id = str(index + 1)
        publisher.publish(message)
    result = {"sent": count, "shm_segments": shm_segments()}
    node.destroy_node()
    rclpy.shutdown()
    return result


def _image(width: int, height: int):
    from sensor_msgs.msg import Image

    pixels = bytes(range(256)) * (width * height * 3 // 256 + 1)
    # array.array, not numpy: rclpy copies a numpy array element by element (slow at 720p).
    data = array.array("B", pixels[: width * height * 3])
    return Image(width=width, height=height, encoding="bgr8", step=width * 3, data=data)


def subscribe(drain_s: float) -> dict:
    """Count frames until stdin says "sent N" and the last frame arrived (or drain_s of silence)."""
    import rclpy
    from rclpy.event_handler import SubscriptionEventCallbacks
    from sensor_msgs.msg import Image

    from siammask_ros.ros.transport import TransportLossCounter

    rclpy.init()
    node = rclpy.create_node("measure_transport_subscriber")
    counter = TransportLossCounter(reports_message_lost=True)
    latencies_ms: list[float] = []
    sequences: list[int] = []
    sizes: dict[str, int] = {}
    last_arrival = [time.monotonic()]

    def on_image(message: Image, message_info: dict) -> None:
        now = time.time_ns()
        stamp = message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec
        latencies_ms.append((now - stamp) / 1e6)
        counter.observe(message_info)
        sequences.append(message_info.get("publication_sequence_number"))
        size = f"{message.width}x{message.height}"
        sizes[size] = sizes.get(size, 0) + 1
        last_arrival[0] = time.monotonic()

    events = SubscriptionEventCallbacks(
        message_lost=lambda event: counter.record_message_lost(event.total_count, event.total_count_change)
    )
    node.create_subscription(Image, TOPIC, on_image, image_qos(), event_callbacks=events)
    # No publisher exists yet: the segments mapped now are this process's own.
    print(json.dumps({"ready": True, "shm_segments": shm_segments()}), flush=True)
    sent: list[int] = []
    threading.Thread(target=lambda: sent.append(_read_sent(sys.stdin)), daemon=True).start()

    def finished() -> bool:
        if not sent:
            return False
        got_last = bool(sequences) and sequences[-1] == sent[0]
        return got_last or time.monotonic() - last_arrival[0] > drain_s

    while not finished():
        rclpy.spin_once(node, timeout_sec=0.05)
    stats = counter.stats()
    result = {
        "sent": sent[0], "received": stats.received, "missed": stats.missed,
        "lost_in_transport": stats.lost_in_transport, "skipped_in_queue": stats.skipped_in_queue,
        "sequences": sequences, "sizes": sizes,
        "p50_ms": statistics.median(latencies_ms) if latencies_ms else None,
        "p95_ms": statistics.quantiles(latencies_ms, n=20)[-1] if len(latencies_ms) >= 2 else None,
        "publication_hz": stats.publication_hz, "reception_hz": stats.reception_hz,
    }
    node.destroy_node()
    rclpy.shutdown()
    return result


def _read_sent(stream) -> int:
    for line in stream:
        if line.startswith("sent "):
            return int(line.split()[1])
    return 0  # stdin closed without a count: the publisher failed


def profile_environment(profile: Path | None) -> dict[str, str]:
    """This process's environment with `profile` (None: no profile) under both variable names."""
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES}
    if profile is not None:
        env.update({name: str(profile) for name in PROFILE_VARIABLES})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_pair(sizes: list[tuple[int, int]], count: int, rate: float, profile: Path | None,
             drain_s: float = 3.0, subscriber_profile: Path | None | str = "same") -> dict:
    """One publisher and one subscriber process; the subscriber's result.

    `profile` is the publisher's DDS profile; the subscriber gets the same one unless
    `subscriber_profile` names another (None: none).
    """
    env = profile_environment(profile)
    sub_env = env if subscriber_profile == "same" else profile_environment(subscriber_profile)
    script = [sys.executable, str(Path(__file__).resolve())]
    subscriber = subprocess.Popen(
        [*script, "subscribe", "--drain", str(drain_s)], env=sub_env, cwd=ROOT,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        ready = json.loads(subscriber.stdout.readline() or "{}")
        if not ready.get("ready"):
            raise RuntimeError("the subscriber process did not start")
        size_arg = ",".join(f"{w}x{h}" for w, h in sizes)
        published = subprocess.run(
            [*script, "publish", "--sizes", size_arg, "--count", str(count), "--rate", str(rate)],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=count / rate + 120, check=True,
        )
        publisher = json.loads(published.stdout.strip().splitlines()[-1])
        output, _ = subscriber.communicate(f"sent {publisher['sent']}\n", timeout=count / rate + 120)
        result = json.loads(output.strip().splitlines()[-1])
        own = ready["shm_segments"]
        result["subscriber_shm_segment"] = max(own.values(), default=0)
        result["publisher_shm_segment"] = max(
            (size for name, size in publisher["shm_segments"].items() if name not in own), default=0
        )
        return result
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
            subscriber.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    roles = parser.add_subparsers(dest="role")
    pub = roles.add_parser("publish", help="child: send frames")
    pub.add_argument("--sizes", type=lambda s: [parse_size(p) for p in s.split(",")], required=True)
    pub.add_argument("--count", type=int, required=True)
    pub.add_argument("--rate", type=float, default=30.0)
    sub = roles.add_parser("subscribe", help="child: count frames")
    sub.add_argument("--drain", type=float, default=3.0, help="seconds of silence that end the count")
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[(640, 480), (1280, 720), (3840, 2160)])
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profiles", nargs="+", choices=["none", "shipped"], default=["none", "shipped"])
    args = parser.parse_args(argv)

    if args.role == "publish":
        print(json.dumps(publish(args.sizes, args.count, args.rate)), flush=True)
        return 0
    if args.role == "subscribe":
        print(json.dumps(subscribe(args.drain)), flush=True)
        return 0
    print(f"{'profile':8} {'size':>10} {'sent':>5} {'recv':>5} {'missed':>6} {'lost':>5} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'shm MiB':>7}")
    for profile_name, size in itertools.product(args.profiles, args.sizes):
        profile = SHIPPED_PROFILE if profile_name == "shipped" else None
        r = run_pair([size], round(args.seconds * args.rate), args.rate, profile)
        print(f"{profile_name:8} {size[0]:>5}x{size[1]:<4} {r['sent']:>5} {r['received']:>5} {_show(r['missed']):>6} "
              f"{_show(r['lost_in_transport']):>5} {_show(r['p50_ms']):>7} {_show(r['p95_ms']):>7} "
              f"{r['publisher_shm_segment'] / 2**20:>7.1f}", flush=True)
    print("recv: frames the subscriber took; missed: publication sequence gaps between them (frames after the "
          "last one received are not seen); lost: DDS message-lost events ('-' = implausible, Fast DDS 2.14 "
          "overflows on fragmented samples); shm MiB: the publisher's shared-memory segment")
    return 0


def _show(value) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
