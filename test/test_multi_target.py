"""MultiTargetTracker against independent SiamMaskTrackers on the same frames (CPU).

The network is a randomly initialised MobileNetV2 SiamMask whose batch-norm statistics
are re-estimated on textured crops (as in test_reference_conformance.py), so that its
scores and masks vary from target to target. Three textured targets move over a
textured background; the batched tracker must give each of them what a tracker of its
own gives, with one network call per search size and frame.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibrated_network import calibrated_network, texture
from siammask_ros.cli import bench
from siammask_ros.model import build_siammask
from siammask_ros.tracker import (
    InvalidBoxError,
    LongTermConfig,
    MultiTargetTracker,
    SiamMaskTracker,
    TrackResult,
    TrackState,
    preset,
)

W, H = 320, 240
BOXES = {"a": (30.0, 40.0, 60.0, 44.0), "b": (210.0, 30.0, 50.0, 60.0), "c": (120.0, 150.0, 70.0, 50.0)}
VELOCITY = {"a": (6, 3), "b": (-5, 4), "c": (4, -5)}  # pixels per frame
CONFIG = preset("vot")
LONG_TERM_SIZE = 319  # a valid long-term search, (319 - 127) % 8 == 0, and cheap on a CPU


def _frames(count: int) -> list[np.ndarray]:
    background = texture(H, W, seed=1, cell=16)
    patterns = {
        name: texture(int(h), int(w), seed=10 + k, cell=5 + k) for k, (name, (_, _, w, h)) in enumerate(BOXES.items())
    }
    frames = []
    for i in range(count):
        frame = background.copy()
        for name, (x, y, w, h) in BOXES.items():
            dx, dy = VELOCITY[name]
            x0, y0 = int(x) + dx * i, int(y) + dy * i
            frame[y0 : y0 + int(h), x0 : x0 + int(w)] = patterns[name]
        frames.append(frame)
    return frames


class _Spy:
    """Records the arguments of ``owner.<name>`` calls; the real method still runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
        self.calls: list[tuple] = []
        original = getattr(owner, name)

        def spy(*args):
            self.calls.append(args)
            return original(*args)

        monkeypatch.setattr(owner, name, spy)

    def since(self, start: int) -> list[tuple]:
        return self.calls[start:]


def _assert_close(ours: TrackResult, theirs: TrackResult, where: str) -> None:
    """Equal up to float rounding of a batched network; masks exactly equal."""
    assert (ours.state, ours.search_size) == (theirs.state, theirs.search_size), where
    np.testing.assert_allclose(ours.confidence, theirs.confidence, rtol=1e-5, err_msg=where)
    np.testing.assert_allclose(ours.center, theirs.center, rtol=0, atol=1e-3, err_msg=where)
    np.testing.assert_allclose(ours.size, theirs.size, rtol=0, atol=1e-3, err_msg=where)
    differing = int(np.count_nonzero(ours.mask != theirs.mask))
    assert differing == 0, f"{where}: {differing} mask pixels differ"
    np.testing.assert_allclose(ours.rotated_box.corners, theirs.rotated_box.corners, rtol=0, atol=1e-3, err_msg=where)


def _assert_identical(ours: TrackResult, theirs: TrackResult) -> None:
    assert (ours.state, ours.search_size, ours.confidence) == (theirs.state, theirs.search_size, theirs.confidence)
    assert (ours.center, ours.size) == (theirs.center, theirs.size)
    np.testing.assert_array_equal(ours.mask, theirs.mask)
    np.testing.assert_array_equal(ours.rotated_box.corners, theirs.rotated_box.corners)


@pytest.fixture(scope="module")
def model():
    return calibrated_network("siammask_mnv2")


@pytest.fixture(scope="module")
def frames():
    return _frames(3)


@pytest.fixture(scope="module")
def run(model, frames):
    """Targets a, b, c on frame 1, then b removed and frame 2 with a and c: the batched
    tracker's results and calls, and independent trackers' results on the same frames."""
    with pytest.MonkeyPatch.context() as patch:
        track_calls = _Spy(patch, model, "track")
        fuse_calls = _Spy(patch, model.refine_head, "fuse")
        multi = MultiTargetTracker(model, CONFIG)
        singles = {name: SiamMaskTracker(model, CONFIG) for name in BOXES}
        initial = {}
        for name, box in BOXES.items():
            added, initial[name] = multi.add_target(frames[0], box, target_id=name)
            assert added == name
            _assert_identical(initial[name], singles[name].initialize(frames[0], box))
        batched, independent, calls = [], [], []
        for index, frame in enumerate(frames[1:], start=1):
            if index == 2:
                multi.remove_target("b")
                del singles["b"]
            start_track, start_fuse = len(track_calls.calls), len(fuse_calls.calls)
            batched.append(multi.track(frame))
            calls.append((track_calls.since(start_track), fuse_calls.since(start_fuse)))
            independent.append({name: tracker.track(frame) for name, tracker in singles.items()})
    return {"batched": batched, "independent": independent, "calls": calls, "initial": initial}


# ----------------------------------------------------------------------------- batching


def test_batched_targets_get_what_independent_trackers_get(run):
    for index, (ours, theirs) in enumerate(zip(run["batched"], run["independent"]), start=1):
        assert list(ours) == list(theirs)  # same ids, in insertion order
        for name in ours:
            _assert_close(ours[name], theirs[name], f"frame {index}, target {name}")
    # The comparison is not vacuous: every target found a mask, and the targets differ.
    first = run["batched"][0]
    assert all(result.mask_area > 0 for result in first.values())
    assert len({round(result.confidence, 7) for result in first.values()}) == 3
    assert len({result.mask_area for result in first.values()}) == 3


def test_each_frame_is_one_network_call_and_one_refinement(run):
    for index, (track_calls, fuse_calls) in enumerate(run["calls"], start=1):
        targets = 3 if index == 1 else 2
        assert len(track_calls) == 1, f"frame {index}: {len(track_calls)} model.track calls"
        (x, templates), = track_calls
        assert tuple(x.shape) == (targets, 3, 255, 255)
        assert templates.shape[0] == targets and tuple(templates.shape[2:]) == (7, 7)
        # all targets publish here (short-term mode, finite network): one refinement pass
        assert len(fuse_calls) == 1, f"frame {index}: {len(fuse_calls)} refinement passes"
        (inputs,) = fuse_calls[0]
        assert inputs.p3.shape[0] == targets


def test_removing_a_target_leaves_the_others_rows_matched(run):
    # Frame 2 runs after "b" (the middle row) was removed: a and c, carried on from
    # frame 1, still match their own trackers and are the only results.
    assert list(run["batched"][1]) == ["a", "c"]
    for name in ("a", "c"):
        _assert_close(run["batched"][1][name], run["independent"][1][name], f"frame 2, target {name}")


def test_a_lone_target_is_bit_identical_to_siammasktracker(model, frames):
    # The batched tracker gets RGB frames, the single tracker BGR.
    multi, single = MultiTargetTracker(model, CONFIG), SiamMaskTracker(model, CONFIG)
    target_id, started = multi.add_target(frames[0][..., ::-1], BOXES["c"], color_order="rgb")
    _assert_identical(started, single.initialize(frames[0], BOXES["c"]))
    ours = multi.track(frames[1][..., ::-1], color_order="rgb")
    assert list(ours) == [target_id]
    _assert_identical(ours[target_id], single.track(frames[1]))
    assert ours[target_id].mask_area > 0


def test_a_lost_target_alone_switches_to_the_long_term_search(model, frames, run, monkeypatch):
    # Thresholds around the first tracked frame's confidences (same in short- and
    # long-term mode while no target is lost): the least confident target falls below
    # confidence_low, the others stay above it.
    confidences = {name: result.confidence for name, result in run["independent"][0].items()}
    ranked = sorted(confidences, key=confidences.get)
    weakest, runner_up = confidences[ranked[0]], confidences[ranked[1]]
    assert runner_up - weakest > 1e-4, "the fixture needs distinct confidences"
    low = (weakest + runner_up) / 2
    config = CONFIG.with_changes(
        long_term=LongTermConfig(
            enabled=True, confidence_low=low, confidence_high=(low + 1) / 2, search_size=LONG_TERM_SIZE
        )
    )
    lost = ranked[0]
    track_calls = _Spy(monkeypatch, model, "track")
    multi = MultiTargetTracker(model, config)
    for name, box in BOXES.items():
        multi.add_target(frames[0], box, target_id=name)
    alone = SiamMaskTracker(model, config)
    alone.initialize(frames[0], BOXES[lost])

    held = multi.track(frames[1])
    assert len(track_calls.calls) == 1  # nobody lost yet: one 255 group
    x0, y0, w, h = BOXES[lost]
    assert held[lost].state is TrackState.LOST and held[lost].search_size == 255
    assert held[lost].center == (x0 + w / 2, y0 + h / 2) and not held[lost].mask.any()
    _assert_close(held[lost], alone.track(frames[1]), "frame 1")
    for name in BOXES.keys() - {lost}:
        assert held[name].state is TrackState.TRACKING and held[name].mask_area > 0

    start = len(track_calls.calls)
    searched = multi.track(frames[2])
    assert {name: result.search_size for name, result in searched.items()} == {
        name: LONG_TERM_SIZE if name == lost else 255 for name in BOXES
    }
    batch_sizes = sorted((x.shape[0], x.shape[-1]) for x, _ in track_calls.since(start))
    assert batch_sizes == [(1, LONG_TERM_SIZE), (2, 255)]
    # Alone in its group, the lost target is exactly what a tracker of its own gives.
    _assert_identical(searched[lost], alone.track(frames[2]))


# ----------------------------------------------------------------------------- targets


def test_ids_are_given_or_made_up_and_duplicates_are_refused(model, frames):
    multi = MultiTargetTracker(model, CONFIG)
    assert multi.add_target(frames[0], BOXES["a"])[0] == "0"
    assert multi.add_target(frames[0], BOXES["b"], target_id="1")[0] == "1"
    assert multi.add_target(frames[0], BOXES["c"])[0] == "2"  # "1" is taken
    with pytest.raises(ValueError, match="'0' is already tracked"):
        multi.add_target(frames[0], BOXES["c"], target_id="0")
    for bad in ("", 7):
        with pytest.raises(ValueError, match="non-empty string"):
            multi.add_target(frames[0], BOXES["c"], target_id=bad)
    with pytest.raises(InvalidBoxError):
        multi.add_target(frames[0], (1000.0, 10.0, 20.0, 20.0), target_id="outside")
    assert multi.target_ids == ("0", "1", "2") and len(multi) == 3
    assert "1" in multi and "outside" not in multi
    multi.remove_target("0")
    assert multi.add_target(frames[0], BOXES["a"])[0] == "3"  # a removed id is not handed out again


def test_remove_clear_and_unknown_ids(model, frames, monkeypatch):
    multi = MultiTargetTracker(model, CONFIG)
    for name in ("a", "b"):
        multi.add_target(frames[0], BOXES[name], target_id=name)
    multi.remove_target("a")
    assert multi.target_ids == ("b",)
    with pytest.raises(KeyError, match="no target with id 'a'.*'b'"):
        multi.remove_target("a")
    with pytest.raises(KeyError, match="'zz'"):
        multi.mark_lost("zz")
    multi.mark_lost("b")  # a known id is accepted
    multi.clear()
    assert multi.target_ids == () and len(multi) == 0
    track_calls = _Spy(monkeypatch, model, "track")
    assert multi.track(frames[1]) == {}
    assert track_calls.calls == []  # no target, no network


# ----------------------------------------------------------------------------- bench


def test_bench_times_one_batched_step_per_target_count(monkeypatch):
    track_calls = []
    original = MultiTargetTracker.track

    def counting_track(self, frame, color_order="bgr"):
        track_calls.append(len(self))
        return original(self, frame, color_order)

    monkeypatch.setattr(MultiTargetTracker, "track", counting_track)
    times = bench.bench_targets(build_siammask("siammask_mnv2"), [2], bench._textured_frame(160, 120), 1)
    assert list(times) == [2] and math.isfinite(times[2]) and times[2] > 0
    assert track_calls == [2, 2]  # a warm-up step and one timed step, both with 2 targets
    with pytest.raises(SystemExit):
        bench.main(["--targets", "0"])
