"""MultiTargetTracker: several SiamMask targets in one stream, one network call per search size."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import count

import numpy as np
import torch

from siammask_ros.model import SiamMask

from .config import TrackerConfig
from .geometry import to_bgr
from .result import TrackResult
from .tracker import _Sequence, _SteppedTracker

__all__ = ["MultiTargetTracker"]


class MultiTargetTracker(_SteppedTracker):
    """Track several targets in the same frames, batching the network across them.

    Each target holds what a ``SiamMaskTracker`` holds for its one target (template
    features, padding colour, centre, size, lost flag) and goes through the same step,
    so it gets what an independent ``SiamMaskTracker`` would get on the same frames, up
    to the float rounding of a batched network (which can tip a decision sitting on a
    threshold); a target alone in its group gets it to the bit. What is shared:

    - one ``TrackerConfig`` for all targets (thresholds, window, long-term mode);
    - the network calls of a frame: targets are grouped by search size (the normal
      ``instance_size``, or ``long_term.search_size`` for a target that is lost with
      long-term search enabled); each group runs one ``model.track`` on its search
      crops and template features stacked, then one mask refinement for those of its
      targets that publish a mask, each at its own score-map position.

    Targets are named by string ids, given or made up: ``"0"``, ``"1"``, ... from a
    counter that skips ids in use, so a removed made-up id is not made up again. Frames
    are HxWx3 uint8, BGR unless ``color_order`` says ``"rgb"`` or ``"mono"``. Not
    thread-safe: call it from one thread at a time.

    Args:
        model: the network (put in eval mode by this constructor).
        config: tracking parameters for every target; defaults to the ``vot`` preset.
        device: where to run; defaults to the device of the model's parameters. A given
            device moves the model there.
        region_limited_mask, crops: as for ``SiamMaskTracker``.
    """

    def __init__(
        self,
        model: SiamMask,
        config: TrackerConfig | None = None,
        device: str | torch.device | None = None,
        region_limited_mask: bool = True,
        crops: str = "auto",
    ) -> None:
        super().__init__(model, config, device, region_limited_mask, crops)
        self._targets: dict[str, _Sequence] = {}
        self._auto_ids: Iterator[int] = count()

    @property
    def target_ids(self) -> tuple[str, ...]:
        """The tracked targets, in the order they were added."""
        return tuple(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def __contains__(self, target_id: object) -> bool:
        return target_id in self._targets

    def add_target(
        self,
        frame: np.ndarray,
        box_xywh: Sequence[float],
        target_id: str | None = None,
        color_order: str = "bgr",
    ) -> tuple[str, TrackResult]:
        """Start tracking the target in box ``(x, y, w, h)`` of ``frame``.

        Returns the target's id (``target_id``, or a new one) and its initialisation
        result, as ``SiamMaskTracker.initialize``.

        Raises:
            ValueError: ``target_id`` is not a non-empty string, or is already tracked.
            InvalidFrameError: unreadable frame.
            InvalidBoxError: empty, non-finite, or out-of-frame box.
        """
        if target_id is None:
            target_id = self._new_id()
        elif not isinstance(target_id, str) or not target_id:
            raise ValueError(f"target_id must be a non-empty string or None, got {target_id!r}")
        elif target_id in self._targets:
            raise ValueError(f"target id {target_id!r} is already tracked; remove_target() it first or pick another")
        seq, result = self._stepper.start(to_bgr(frame, color_order), box_xywh)
        self._targets[target_id] = seq
        return target_id, result

    def remove_target(self, target_id: str) -> None:
        """Stop tracking one target.

        Raises:
            KeyError: no target has this id.
        """
        self._target(target_id)
        del self._targets[target_id]

    def clear(self) -> None:
        """Stop tracking all targets."""
        self._targets.clear()

    def mark_lost(self, target_id: str) -> None:
        """Declare one target lost, as ``SiamMaskTracker.mark_lost``.

        Raises:
            KeyError: no target has this id.
        """
        seq = self._target(target_id)
        seq.lost, seq.lost_steps = True, 0  # an outside cue: search wide on the next frame

    def track(
        self, frame: np.ndarray, color_order: str = "bgr", target_ids: Sequence[str] | None = None
    ) -> dict[str, TrackResult]:
        """Locate every target (or those in ``target_ids``) in the next frame:
        ``{target_id: result}`` in ``target_ids`` order.

        The states move only after the network has run for every target, so an error
        there (out of device memory, say) leaves them where they were.

        Raises:
            InvalidFrameError: unreadable frame.
            KeyError: an id in ``target_ids`` is not tracked.
        """
        chosen = self._targets if target_ids is None else {t: self._target(t) for t in target_ids}
        results = self._stepper.step(to_bgr(frame, color_order), list(chosen.values()))
        return dict(zip(chosen, results))

    def _target(self, target_id: str) -> _Sequence:
        try:
            return self._targets[target_id]
        except KeyError:
            known = ", ".join(repr(t) for t in self._targets) or "none"
            raise KeyError(f"no target with id {target_id!r} (tracked: {known})") from None

    def _new_id(self) -> str:
        while True:
            candidate = str(next(self._auto_ids))
            if candidate not in self._targets:
                return candidate

