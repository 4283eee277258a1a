"""SiamMaskTracker: the per-sequence SiamMask algorithm around a stateless network.

The step itself lives in ``_Stepper``, one target at a time except for the network call,
which takes any number of targets with the same search size; ``SiamMaskTracker`` runs it
for one target and ``multi.MultiTargetTracker`` for several.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from siammask_ros.model import SearchOutput, SiamMask
from siammask_ros.model.backends import Backend, as_backend

from .box_orientation import canonical_box, continue_box
from .config import TrackerConfig
from .crops import CropSource, Patch, crops_on_device
from .device_choice import DeviceGrid, TargetTerms, choose_on_device, pack_group, unpack_choice
from .geometry import (
    apply_prediction,
    clip_state,
    context_size,
    cosine_window,
    decode_boxes,
    fit_to_box,
    foreground_scores,
    generate_anchors,
    mask_box_agreement,
    mask_in_frame,
    refined_patch_box,
    rotated_box_from_mask,
    scale_ratio_penalty,
    search_side,
    to_bgr,
    validate_box,
)
from .result import RotatedBox, TrackResult, TrackState

__all__ = ["SiamMaskTracker"]


@dataclass
class _Sequence:
    """What the tracker remembers about the sequence in progress."""

    template: torch.Tensor  # (1, 256, 7, 7) template features
    pad_color: np.ndarray  # (3,) uint8: channel average of the first frame, truncated
    center: tuple[float, float]
    size: tuple[float, float]
    frame_size: tuple[int, int]  # (W, H) of the last frame seen
    lost: bool = False
    lost_steps: int = 0  # steps taken since the target was declared lost (0 while tracking)
    # The last mask frame's published box, which the next one continues (same physical
    # side as width, nearest angle); None before the first one and after a held box.
    published_box: RotatedBox | None = None


class _Grid(NamedTuple):
    anchors: np.ndarray  # (A*S*S, 4) float32
    window: np.ndarray  # (A*S*S,) float64


class _Plan(NamedTuple):
    """One target's search in this frame, fixed by its state before the step."""

    instance: int  # side of the search crop fed to the network
    window_influence: float
    scale: float  # model pixels per frame pixel (the template's image scale)
    crop_side: int  # frame pixels cropped: round(search side)
    patch: Patch  # the search crop, instance x instance (see ``crops``)


class _Search(NamedTuple):
    """One search crop through the network, on the host."""

    output: SearchOutput  # this crop's row (B = 1), kept on the device for the mask refinement
    scores: np.ndarray  # (A*S*S,) foreground probability
    boxes: np.ndarray  # (4, A*S*S) cx, cy, w, h in crop pixels
    score_size: int


class _Choice(NamedTuple):
    best: int  # flat index into the score map
    row: int  # score-map position of ``best``
    col: int
    confidence: float  # raw foreground probability there
    lr: float
    pred: np.ndarray | None  # (dx, dy, w, h) in frame pixels; None when not finite


def _published_box(
    mask_box: RotatedBox, center: tuple[float, float], size: tuple[float, float], cfg: TrackerConfig
) -> RotatedBox:
    """The rotated box a frame with a mask publishes, from the mask's box and the state.

    The box branch's (axis-aligned) box where the mask box disagrees with it by more than
    ``box_fallback_area_ratio`` allows (see ``mask_box_agreement``); otherwise the mask box,
    as it is or fitted to the state's centre and size (``rotated_box_extent``).
    """
    ratio = cfg.box_fallback_area_ratio
    if ratio > 0 and mask_box_agreement(mask_box, size) < ratio:
        return RotatedBox.axis_aligned(*center, *size)
    if cfg.rotated_box_extent == "box_branch":
        return fit_to_box(mask_box, center, size)
    return mask_box


class _Stepper:
    """The tracking step for one target at a time, around a shared network.

    A frame's step for a target is ``plan`` (its search crop), ``search`` (the network;
    one call serves every target with the same search size, row i against template row
    i), ``choose``, ``refine`` (only when ``publishes``), then ``finish`` (state update
    and result). Targets share this object's configuration; their state is the
    ``_Sequence`` each step is given.
    """

    def __init__(
        self,
        model: SiamMask | Backend,
        config: TrackerConfig,
        device: str | torch.device | None,
        region_limited_mask: bool,
        crops: str = "auto",
    ) -> None:
        self.backend = as_backend(model, device)  # a torch network runs through TorchBackend
        self.device = self.backend.device
        self.region_limited_mask = region_limited_mask
        self.crops_on_device = crops_on_device(crops, self.backend.name, self.device)
        self._config = config
        self._grids: dict[int, _Grid] = {}
        self._device_grids: dict[int, DeviceGrid] = {}

    @property
    def config(self) -> TrackerConfig:
        return self._config

    @config.setter
    def config(self, config: TrackerConfig) -> None:
        self._config = config
        self._grids.clear()  # anchors and window depend on the anchor settings
        self._device_grids.clear()

    def start(self, image: np.ndarray, box_xywh: Sequence[float]) -> tuple[_Sequence, TrackResult]:
        """A new sequence on a BGR ``image`` with the target box ``(x, y, w, h)``."""
        frame_h, frame_w = image.shape[:2]
        cx, cy, w, h = validate_box(box_xywh, frame_w, frame_h)
        cfg = self._config
        # Truncating cast of the float mean, as the reference's assignment into uint8.
        pad_color = np.mean(image, axis=(0, 1)).astype(np.uint8)
        s_z = round(context_size(w, h, cfg.context_amount))
        patch = self.crop_source(image).crop((cx, cy), s_z, cfg.exemplar_size, pad_color)
        template = self.backend.template([patch])
        seq = _Sequence(template, pad_color, (cx, cy), (w, h), (frame_w, frame_h))
        result = TrackResult(
            state=TrackState.TRACKING,
            confidence=1.0,
            center=(cx, cy),
            size=(w, h),
            rotated_box=RotatedBox.axis_aligned(cx, cy, w, h),
            mask=np.zeros((frame_h, frame_w), dtype=np.uint8),
            search_size=cfg.exemplar_size,
        )
        return seq, result

    def crop_source(self, image: np.ndarray) -> CropSource:
        """``image`` (BGR) as this step's crops take it: uploaded once when they are cut on the device."""
        return CropSource(image, self.device if self.crops_on_device else None)

    def plan(self, seq: _Sequence, source: CropSource) -> _Plan:
        """Cut the target's search crop from the frame (rescaling its state first if the
        frame size changed)."""
        frame_h, frame_w = source.frame.shape[:2]
        _follow_resolution(seq, frame_w, frame_h)
        cfg, long_term = self._config, self._config.long_term
        searching_wide = long_term.enabled and seq.lost and seq.lost_steps % long_term.wide_search_every == 0
        instance = long_term.search_size if searching_wide else cfg.instance_size
        window_influence = long_term.lost_window_influence if searching_wide else cfg.window_influence
        # Either search size is cut at the template's image scale.
        s_x = context_size(seq.size[0], seq.size[1], cfg.context_amount)
        scale = cfg.exemplar_size / s_x
        crop_side = round(search_side(s_x, cfg.exemplar_size, instance))
        patch = source.crop(seq.center, crop_side, instance, seq.pad_color)
        return _Plan(instance, window_influence, scale, crop_side, patch)

    def search(self, patches: Sequence[Patch], templates: torch.Tensor, instance_size: int) -> list[_Search]:
        """One ``backend.track`` for same-size crops; ``templates`` holds one row of template
        features per crop, in the same order."""
        output = self.backend.track(patches, templates)
        score_size = self._checked_score_size(output, instance_size)
        cls, loc = _heads_on_host(output)
        anchors = self.grid(score_size).anchors
        rows = [output] if len(patches) == 1 else [_batch_row(output, i) for i in range(len(patches))]
        return [
            _Search(row, foreground_scores(cls[i]), decode_boxes(loc[i].reshape(4, -1), anchors), score_size)
            for i, row in enumerate(rows)
        ]

    def _checked_score_size(self, output: SearchOutput, instance_size: int) -> int:
        score_size = int(output.cls.shape[-1])
        if score_size != self._config.score_size(instance_size):
            raise RuntimeError(
                f"the model returned a {score_size}x{score_size} score map for a {instance_size} crop; the "
                f"tracker configuration expects {self._config.score_size(instance_size)} (exemplar/stride mismatch)"
            )
        return score_size

    def choose(self, search: _Search, seq: _Sequence, plan: _Plan) -> _Choice:
        """Penalised, windowed argmax over the score map, and the step it proposes."""
        cfg = self._config
        scale, size = plan.scale, seq.size
        window = self.grid(search.score_size).window
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            penalty = scale_ratio_penalty(
                search.boxes[2], search.boxes[3], size[0] * scale, size[1] * scale, cfg.penalty_k
            )
            pscore = penalty * search.scores * (1 - plan.window_influence) + window * plan.window_influence
        # Not in the reference: a non-finite candidate (overflowing network output) is
        # never chosen, and a non-finite choice proposes no step.
        pscore[~np.isfinite(pscore)] = -np.inf
        best = int(np.argmax(pscore))
        _, row, col = np.unravel_index(best, (cfg.anchor_num, search.score_size, search.score_size))
        lr = penalty[best] * search.scores[best] * cfg.lr
        pred = search.boxes[:, best] / scale
        usable = np.isfinite(pscore[best]) and np.isfinite(lr) and np.isfinite(pred).all()
        return _Choice(best, int(row), int(col), float(search.scores[best]), float(lr), pred if usable else None)

    def publishes(self, choice: _Choice) -> bool:
        """Whether the choice moves the state and gets a mask (else the state is held)."""
        long_term = self._config.long_term
        return choice.pred is not None and not (long_term.enabled and choice.confidence < long_term.confidence_low)

    def refine(self, output: SearchOutput, choice: _Choice) -> np.ndarray:
        """Refined mask probabilities (127, 127) at the chosen position."""
        return self.backend.refine([output], [(choice.row, choice.col)])[0]

    def finish(self, seq: _Sequence, plan: _Plan, choice: _Choice, prob: np.ndarray | None) -> TrackResult:
        """Update ``seq`` and report the frame; ``prob`` is None when the choice does not publish.

        The rotated box of a frame with a mask continues the previous one (see
        ``RotatedBox``); it is canonical on the first frame after ``start`` (whose box is
        axis-aligned, so continuing it would give the same), after a held box, and on a
        re-detection: a lost target found again by the long-term search.
        """
        cfg, long_term = self._config, self._config.long_term
        was_lost = seq.lost
        frame_w, frame_h = seq.frame_size
        if prob is None:
            # Too weak to be the target: hold the state, publish nothing.
            center, size = clip_state(seq.center, seq.size, frame_w, frame_h, cfg.min_box_size)
            mask = np.zeros((frame_h, frame_w), dtype=np.uint8)
            rotated_box = RotatedBox.axis_aligned(*center, *size)
        else:
            new_center, new_size = apply_prediction(seq.center, seq.size, choice.pred, choice.lr)
            x0, y0, side = refined_patch_box(seq.center, plan.crop_side, plan.instance, choice.row, choice.col, cfg)
            mask, region = mask_in_frame(
                prob, x0, y0, side, frame_w, frame_h, cfg.seg_thr, region_limited=self.region_limited_mask
            )
            rotated_box = rotated_box_from_mask(mask, new_center, new_size, region)
            center, size = clip_state(new_center, new_size, frame_w, frame_h, cfg.min_box_size)
            rotated_box = _published_box(rotated_box, center, size, cfg)

        seq.center, seq.size = center, size
        if choice.confidence < long_term.confidence_low:
            seq.lost = True
        elif choice.confidence > long_term.confidence_high:
            seq.lost = False
        seq.lost_steps = seq.lost_steps + 1 if was_lost and seq.lost else 0
        if prob is not None:
            redetected = long_term.enabled and was_lost and not seq.lost
            previous = None if redetected else seq.published_box
            rotated_box = canonical_box(rotated_box) if previous is None else continue_box(rotated_box, previous)
        # A held box (no mask) says nothing about the orientation: the next one starts afresh.
        seq.published_box = None if prob is None else rotated_box
        return TrackResult(
            state=TrackState.LOST if seq.lost else TrackState.TRACKING,
            confidence=choice.confidence,
            center=center,
            size=size,
            rotated_box=rotated_box,
            mask=mask,
            search_size=plan.instance,
        )

    def update_template(self, seq: _Sequence, source: CropSource, result: TrackResult) -> None:
        """Move the template towards the target's look in this frame after a confident one
        (``template_update_rate`` > 0; see TrackerConfig). Off, it does nothing."""
        cfg = self._config
        rate = cfg.template_update_rate
        if rate <= 0 or result.state is not TrackState.TRACKING or result.confidence < cfg.template_update_confidence:
            return
        s_z = round(context_size(*seq.size, cfg.context_amount))
        patch = source.crop(seq.center, s_z, cfg.exemplar_size, seq.pad_color)
        fresh = self.backend.template([patch])
        seq.template = seq.template * (1 - rate) + fresh.to(seq.template.dtype) * rate

    def step(self, image: np.ndarray, seqs: Sequence[_Sequence]) -> list[TrackResult]:
        """One frame for every sequence in ``seqs``: the only tracking step, for one target
        or several.

        Targets are grouped by search size; each group gets one network call on its crops
        and template rows stacked, and one refinement for those of its targets that publish
        a mask. States move only after the network has run for every target, so an error
        there (out of device memory, say) leaves them all where they were. A target alone
        in its group gets exactly what a batch of one gives. On the device path
        (``crops_on_device``) every group's choices and masks stay on the device and come
        back together, in one copy (``device_choice``).
        """
        source = self.crop_source(image)
        plans = [self.plan(seq, source) for seq in seqs]
        groups: dict[int, list[int]] = {}
        for k, plan in enumerate(plans):
            groups.setdefault(plan.instance, []).append(k)
        outcomes: list[tuple[_Choice, np.ndarray | None]] = [None] * len(seqs)  # type: ignore[list-item]
        on_device: list[tuple[list[int], torch.Tensor]] = []
        for instance, members in groups.items():
            group_seqs, group_plans = [seqs[k] for k in members], [plans[k] for k in members]
            if self.crops_on_device:
                on_device.append((members, self._search_group_on_device(group_seqs, group_plans, instance)))
                continue
            for k, outcome in zip(members, self._search_group(group_seqs, group_plans, instance)):
                outcomes[k] = outcome
        if on_device:
            packed = torch.cat([values for _, values in on_device]).cpu().numpy()  # the frame's one copy back
            members = [k for group, _ in on_device for k in group]
            for k, values in zip(members, packed):
                outcomes[k] = self._outcome_from_device(values)
        results = [self.finish(seq, plan, *outcome) for seq, plan, outcome in zip(seqs, plans, outcomes)]
        for seq, result in zip(seqs, results):
            self.update_template(seq, source, result)
        return results

    def _search_group(
        self, seqs: Sequence[_Sequence], plans: Sequence[_Plan], instance: int
    ) -> list[tuple[_Choice, np.ndarray | None]]:
        """Network, choice and mask probabilities (None when not publishing) for targets
        sharing a search size."""
        templates = _stacked_templates(seqs)
        searches = self.search([plan.patch for plan in plans], templates, instance)
        choices = [self.choose(search, seq, plan) for search, seq, plan in zip(searches, seqs, plans)]
        publishing = [k for k, choice in enumerate(choices) if self.publishes(choice)]
        probs: list[np.ndarray | None] = [None] * len(seqs)
        if len(publishing) == 1:
            (k,) = publishing
            probs[k] = self.refine(searches[k].output, choices[k])
        elif publishing:
            outputs = [searches[k].output for k in publishing]
            refined = self.backend.refine(outputs, [(choices[k].row, choices[k].col) for k in publishing])
            for k, prob in zip(publishing, refined):
                probs[k] = prob
        return list(zip(choices, probs))

    def _search_group_on_device(self, seqs: Sequence[_Sequence], plans: Sequence[_Plan], instance: int) -> torch.Tensor:
        """``_search_group`` without leaving the device: the network, the choice and the mask
        refinement for targets sharing a search size, packed (``device_choice.pack_group``)."""
        templates = _stacked_templates(seqs)
        output = self.backend.track([plan.patch for plan in plans], templates)
        score_size = self._checked_score_size(output, instance)
        terms = [
            TargetTerms(plan.scale, seq.size[0] * plan.scale, seq.size[1] * plan.scale, plan.window_influence)
            for seq, plan in zip(seqs, plans)
        ]
        choice = choose_on_device(output, self.device_grid(score_size), terms, self._config.penalty_k, self._config.lr)
        return pack_group(choice, self.backend.refine_at(output, choice.rows, choice.cols))

    def _outcome_from_device(self, values: np.ndarray) -> tuple[_Choice, np.ndarray | None]:
        """One target's row of the packed buffer as ``_search_group`` returns it."""
        best, row, col, confidence, lr, pred, prob = unpack_choice(values)
        choice = _Choice(best, row, col, confidence, lr, pred)
        return choice, prob if self.publishes(choice) else None

    def device_grid(self, score_size: int) -> DeviceGrid:
        """``grid`` on the network's device, for choices made there."""
        grid = self._device_grids.get(score_size)
        if grid is None:
            host = self.grid(score_size)
            grid = DeviceGrid(*(torch.from_numpy(table).to(self.device) for table in (host.anchors, host.window)))
            self._device_grids[score_size] = grid
        return grid

    def grid(self, score_size: int) -> _Grid:
        grid = self._grids.get(score_size)
        if grid is None:
            cfg = self._config
            grid = _Grid(generate_anchors(cfg, score_size), cosine_window(score_size, cfg.anchor_num))
            self._grids[score_size] = grid
        return grid


class _SteppedTracker:
    """What the single- and multi-target trackers share: one ``_Stepper`` (network,
    parameters, anchors) and the public ``config`` and ``device`` around it."""

    def __init__(
        self,
        model: SiamMask,
        config: TrackerConfig | None,
        device: str | torch.device | None,
        region_limited_mask: bool,
        crops: str,
    ) -> None:
        config = config if config is not None else TrackerConfig()
        self._stepper = _Stepper(model, config, device, region_limited_mask, crops)

    @property
    def config(self) -> TrackerConfig:
        return self._stepper.config

    @config.setter
    def config(self, config: TrackerConfig) -> None:
        """Replace the parameters from the next ``track`` on; what is tracked is kept."""
        self._stepper.config = config

    @property
    def device(self) -> torch.device:
        return self._stepper.device

    @property
    def crops_on_device(self) -> bool:
        """Whether crops are cut on the network's device (see ``crops``)."""
        return self._stepper.crops_on_device


class SiamMaskTracker(_SteppedTracker):
    """Single-object SiamMask tracking: ``initialize`` on a box, then ``track`` each frame.

    Follows the published SiamMask step (box from the anchor branch, a mask refined at the
    chosen position, the mask's minimum-area rectangle as the rotated box; the mask never
    feeds back into the state), optionally with pysot's long-term lost-target search
    (``config.long_term``). The network holds no per-sequence state; one tracker holds
    one sequence, and several trackers may share a model.

    Frames are HxWx3 uint8, BGR unless ``color_order`` says ``"rgb"`` or ``"mono"``.

    Reported state: TRACKING, or LOST once the confidence falls below
    ``long_term.confidence_low`` until it rises above ``long_term.confidence_high``
    (reported in both modes). With long-term search enabled, a frame whose confidence is
    below ``confidence_low`` does not move the state and publishes no target: its mask
    is empty and its rotated box is the held state box, because a candidate that weak is
    not the target.

    When the mask is too small for a rotated rectangle, the rotated box is the state box
    after this frame's update and before clipping it to the frame, as in the reference.

    A frame of a different size than the previous one (camera resolution change) rescales
    the centre and size by the width and height ratios; tracking continues with the same
    template and padding colour.

    Not in the reference: candidates with non-finite scores or boxes (an overflowing
    network) are never chosen, and a frame without a finite candidate holds the state
    like a below-threshold frame in long-term mode.

    A tracker is not thread-safe: call it from one thread at a time.

    Args:
        model: the network (put in eval mode by this constructor).
        config: tracking parameters; defaults to the ``vot`` preset.
        device: where to run; defaults to the device of the model's parameters. A given
            device moves the model there.
        region_limited_mask: warp only the frame rows the refined patch can reach and
            threshold only its footprint: bit-identical to thresholding the full-frame
            warp, cheaper on large frames (see ``geometry.mask_in_frame``).
        crops: where crops are cut, one of ``crops.CROP_PLACES``: ``host`` (OpenCV, the
            reference's step), ``device`` (torch backend: the frame is uploaded once and
            cropped on the network's device, with OpenCV's pixels; the choice and the mask
            refinement run there too, and one copy per frame comes back, see
            ``device_choice``) or ``auto`` (device on a GPU, host on the CPU).

    Raises:
        ValueError: unknown ``crops``, or ``device`` crops with a backend other than torch.
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
        self._seq: _Sequence | None = None

    # ----------------------------------------------------------------------------------
    # Public API
    # ----------------------------------------------------------------------------------

    @property
    def is_initialized(self) -> bool:
        return self._seq is not None

    @property
    def state(self) -> TrackState:
        if self._seq is None:
            return TrackState.IDLE
        return TrackState.LOST if self._seq.lost else TrackState.TRACKING

    @property
    def center(self) -> tuple[float, float] | None:
        """Target centre (x, y) in frame pixels; None before ``initialize``."""
        return None if self._seq is None else self._seq.center

    @property
    def size(self) -> tuple[float, float] | None:
        """Target size (w, h) in frame pixels; None before ``initialize``."""
        return None if self._seq is None else self._seq.size

    def mark_lost(self) -> None:
        """Declare the target lost (an outside cue, or a benchmark pinning the search size).

        With long-term search enabled the next frames search the long-term region until
        the confidence rises above ``confidence_high``; otherwise only the reported state
        changes.

        Raises:
            RuntimeError: no sequence.
        """
        if self._seq is None:
            raise RuntimeError("mark_lost() needs a target: call initialize(frame, box) first")
        self._seq.lost, self._seq.lost_steps = True, 0  # an outside cue: search wide on the next frame

    def reset(self) -> None:
        """Forget the sequence; the tracker is IDLE until the next ``initialize``."""
        self._seq = None

    def initialize(self, frame: np.ndarray, box_xywh: Sequence[float], color_order: str = "bgr") -> TrackResult:
        """Start a sequence on ``frame`` with the target box ``(x, y, w, h)``.

        A box partly outside the frame is clipped to it (see ``validate_box``).

        Raises:
            InvalidFrameError: unreadable frame.
            InvalidBoxError: empty, non-finite, or out-of-frame box.
        """
        self._seq, result = self._stepper.start(to_bgr(frame, color_order), box_xywh)
        return result

    def track(self, frame: np.ndarray, color_order: str = "bgr") -> TrackResult:
        """Locate the target in the next frame.

        Raises:
            RuntimeError: no sequence (``initialize`` not called, or ``reset`` since).
            InvalidFrameError: unreadable frame.
        """
        seq = self._seq
        if seq is None:
            raise RuntimeError("track() needs a target: call initialize(frame, box) first (or again after reset())")
        (result,) = self._stepper.step(to_bgr(frame, color_order), [seq])
        return result


def _heads_on_host(output: SearchOutput) -> tuple[np.ndarray, np.ndarray]:
    """The score and box maps as float32 host arrays: one copy back from a GPU (both maps
    in one buffer), none on the CPU."""
    if output.cls.device.type == "cpu":
        return output.cls.float().numpy(), output.loc.float().numpy()
    batch = output.cls.shape[0]
    both = torch.cat([output.cls.reshape(batch, -1), output.loc.reshape(batch, -1)], dim=1).float().cpu().numpy()
    split = output.cls[0].numel()
    return both[:, :split].reshape(output.cls.shape), both[:, split:].reshape(output.loc.shape)


def _stacked_templates(seqs: Sequence[_Sequence]) -> torch.Tensor:
    """The template rows of a search group, in its order (a lone target's as it is)."""
    return seqs[0].template if len(seqs) == 1 else torch.cat([seq.template for seq in seqs])


def _batch_row(output: SearchOutput, i: int) -> SearchOutput:
    """Row ``i`` of a batched search output, as a batch of one (views, no copies)."""
    rows = slice(i, i + 1)
    return SearchOutput(
        cls=output.cls[rows],
        loc=output.loc[rows],
        mask_corr=output.mask_corr[rows],
        skips=tuple(skip[rows] for skip in output.skips),
    )


def _follow_resolution(seq: _Sequence, frame_w: int, frame_h: int) -> None:
    """Rescale the state when the frame size changes (same camera, new resolution)."""
    old_w, old_h = seq.frame_size
    if (old_w, old_h) == (frame_w, frame_h):
        return
    rx, ry = frame_w / old_w, frame_h / old_h
    seq.center = (seq.center[0] * rx, seq.center[1] * ry)
    seq.size = (seq.size[0] * rx, seq.size[1] * ry)
    seq.frame_size = (frame_w, frame_h)
