"""Tracker hyper-parameters as frozen dataclasses, one preset per published checkpoint."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

__all__ = ["LongTermConfig", "TrackerConfig", "PRESETS", "ROTATED_BOX_EXTENTS", "preset"]

#: Where a published rotated box's size can come from (``TrackerConfig.rotated_box_extent``).
ROTATED_BOX_EXTENTS: tuple[str, ...] = ("mask", "box_branch")


@dataclass(frozen=True)
class LongTermConfig:
    """Lost-target handling, as in pysot's long-term SiamRPN++ tracker.

    Below ``confidence_low`` the target is declared lost, the state is held and the next
    frames search a ``search_size`` crop at the same image scale; above
    ``confidence_high`` it is found again. In between the state is kept (hysteresis).
    ``wide_search_every`` > 1 runs the wide search on every that-many-th frame while lost
    (the first lost frame included) and the normal search around the held position in
    between, at a fraction of the cost on a CPU; 1 (the reference) searches wide every frame.
    With ``enabled`` False the search never grows and the state is always updated (the
    published SiamMask), but TRACKING/LOST is still reported with the same thresholds.
    """

    enabled: bool = False
    confidence_low: float = 0.85
    confidence_high: float = 0.998
    search_size: int = 831
    lost_window_influence: float = 0.001
    wide_search_every: int = 1

    def __post_init__(self) -> None:
        if not (0.0 < self.confidence_low < self.confidence_high < 1.0):
            raise ValueError(
                "long-term thresholds need 0 < confidence_low < confidence_high < 1, got "
                f"confidence_low={self.confidence_low}, confidence_high={self.confidence_high}"
            )
        if self.search_size < 255 or (self.search_size - 127) % 8 != 0:
            raise ValueError(
                f"long-term search_size must be >= 255 with (size - 127) % 8 == 0, got {self.search_size}"
            )
        if not 0.0 <= self.lost_window_influence <= 1.0:
            raise ValueError(f"lost_window_influence must be in [0, 1], got {self.lost_window_influence}")
        if int(self.wide_search_every) != self.wide_search_every or self.wide_search_every < 1:
            raise ValueError(f"wide_search_every must be an integer >= 1, got {self.wide_search_every}")


@dataclass(frozen=True)
class TrackerConfig:
    """SiamMask tracking parameters; defaults are the ``vot`` preset."""

    penalty_k: float = 0.04
    window_influence: float = 0.42
    lr: float = 0.25
    seg_thr: float = 0.30
    exemplar_size: int = 127
    instance_size: int = 255
    total_stride: int = 8
    base_size: int = 8
    context_amount: float = 0.5
    anchor_ratios: tuple[float, ...] = (0.33, 0.5, 1.0, 2.0, 3.0)
    anchor_scales: tuple[float, ...] = (8.0,)
    min_box_size: float = 10.0
    # Publish the box branch's (axis-aligned) box instead of the mask's rotated box where the
    # smaller of their areas is below this share of the larger, for the mask box and for its
    # upright hull alike (geometry.mask_box_agreement). 0 = off, as the published tracker.
    box_fallback_area_ratio: float = 0.0
    # Where the published rotated box's size comes from: "mask", the mask's minimum-area
    # rectangle as it is (the published tracker); "box_branch", that rectangle's shape and
    # angle, centred on the tracking state and scaled so that its upright hull has the box
    # branch's area (geometry.fit_to_box): the mask says which way the target is turned,
    # the box branch how big it is and where.
    rotated_box_extent: str = "mask"
    # Template update against appearance change: after a frame with confidence of at least
    # template_update_confidence, the template features move this far towards those of the
    # target's crop in that frame (exponential average). 0 = off, as the published tracker.
    template_update_rate: float = 0.0
    template_update_confidence: float = 0.99
    long_term: LongTermConfig = field(default_factory=LongTermConfig)

    def __post_init__(self) -> None:
        for name in ("penalty_k", "window_influence", "lr", "seg_thr"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        for name in ("box_fallback_area_ratio", "template_update_rate", "template_update_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.rotated_box_extent not in ROTATED_BOX_EXTENTS:
            raise ValueError(f"rotated_box_extent must be one of {ROTATED_BOX_EXTENTS}, got {self.rotated_box_extent!r}")
        for name in ("window_influence", "lr", "seg_thr"):
            if getattr(self, name) > 1:
                raise ValueError(f"{name} must be <= 1, got {getattr(self, name)}")
        if (self.instance_size - self.exemplar_size) % self.total_stride != 0:
            raise ValueError(
                f"instance_size - exemplar_size must be a multiple of total_stride "
                f"({self.instance_size} - {self.exemplar_size} vs {self.total_stride})"
            )

    @property
    def anchor_num(self) -> int:
        return len(self.anchor_ratios) * len(self.anchor_scales)

    def score_size(self, instance_size: int) -> int:
        """Side of the score map for a search crop of ``instance_size`` (25 for 255, 97 for 831)."""
        return (instance_size - self.exemplar_size) // self.total_stride + 1 + self.base_size

    def with_changes(self, **changes) -> "TrackerConfig":
        """A copy with some fields replaced (validated again); ``long_term`` takes a dict too."""
        long_term = changes.pop("long_term", None)
        if isinstance(long_term, dict):
            long_term = replace(self.long_term, **long_term)
        if long_term is not None:
            changes["long_term"] = long_term
        return replace(self, **changes)


# The published reference's JSON configs, one per released checkpoint.
PRESETS: dict[str, TrackerConfig] = {
    "davis": TrackerConfig(penalty_k=0.04, window_influence=0.40, lr=1.00, seg_thr=0.35),
    "vot": TrackerConfig(penalty_k=0.04, window_influence=0.42, lr=0.25, seg_thr=0.30),
    "vot_ld": TrackerConfig(penalty_k=0.10, window_influence=0.41, lr=0.32, seg_thr=0.15),
}


def preset(name: str) -> TrackerConfig:
    """The named preset; raises ValueError listing the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


#: Architectures whose published box takes the box branch's size and falls back to the box
#: branch's box where the areas disagree, unless told otherwise: the bundled model, whose
#: masks are loose, spill and break up (measured on the tuning set, docs/EVALUATION.md). The
#: published ResNet-50 keeps the reference behaviour.
TUNED_BOX_ARCHS: frozenset[str] = frozenset({"siammask_mnv2"})
#: The area ratio those architectures use, chosen on the tuning set (docs/EVALUATION.md): the
#: mask box's success rate rises from 0.910 (off) to 0.915 while 1.0 % of frames fall back;
#: 0.7 brings back width/height swaps on a turning target.
DEFAULT_BOX_FALLBACK_AREA_RATIO: float = 0.6


def box_fallback_for(arch: str | None, mode: str = "auto", ratio: float = DEFAULT_BOX_FALLBACK_AREA_RATIO) -> float:
    """``TrackerConfig.box_fallback_area_ratio`` for a network: ``mode`` on (``ratio``), off (0)
    or auto (``ratio`` for the architectures in TUNED_BOX_ARCHS, else 0)."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"box fallback mode must be auto, on or off, got {mode!r}")
    if mode == "on" or (mode == "auto" and arch in TUNED_BOX_ARCHS):
        return ratio
    return 0.0


def rotated_box_extent_for(arch: str | None, mode: str = "auto") -> str:
    """``TrackerConfig.rotated_box_extent`` for a network: ``mode`` itself (mask or box_branch),
    or auto (box_branch for the architectures in TUNED_BOX_ARCHS, else mask)."""
    if mode == "auto":
        return "box_branch" if arch in TUNED_BOX_ARCHS else "mask"
    if mode not in ROTATED_BOX_EXTENTS:
        raise ValueError(f"rotated box extent must be auto, mask or box_branch, got {mode!r}")
    return mode
