"""What a task's renderer can read from a scene distribution: the factor names it
knows, those it needs, each factor's physical range (:class:`Limits`) and the image
shapes it renders. Checked when a distribution is read for a task, before anything is
rendered, so an unknown factor, a support no scene can have or an impossible image is a
one-line error naming the file and the factor."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from realdata.errors import shown
from synth.distribution import MAX_IMAGE_SIDE, Factor, ImageSpec, SceneDistribution


@dataclass(frozen=True)
class Limits:
    """What a factor's values can physically be (a renderer would draw nonsense, or
    nothing, beyond): a continuous support must lie inside [lo, hi]; categorical values
    too, and whole numbers where ``integral`` (they index a list: an expression preset,
    a background kind)."""

    lo: float
    hi: float
    integral: bool = False
    why: str = ""

    def problem(self, f: Factor) -> str | None:
        lo, hi = f.support
        values = f.values if f.kind == "categorical" else (lo, hi)
        slack = 1e-9 * max(1.0, abs(self.lo), abs(self.hi))  # edges computed in floating point
        if lo < self.lo - slack or hi > self.hi + slack:
            what = "support" if f.kind == "continuous" else "values span"
            why = f"; {self.why}" if self.why else ""
            return (f"factor {shown(f.name, 40)}: {what} {_span(lo, hi, f.unit)} is outside the "
                    f"physical range {_span(self.lo, self.hi, f.unit)}{why}")
        fractional = [v for v in values if v != math.floor(v)]
        if self.integral and fractional:
            return (f"factor {shown(f.name, 40)}: values must be whole numbers ({self.why}), "
                    f"got {fractional[0]:g}")
        return None


def _span(lo: float, hi: float, unit: str) -> str:
    if unit == "rad":  # people edit degrees: say both
        return f"{lo:.4g}..{hi:.4g} rad ({math.degrees(lo):.4g}..{math.degrees(hi):.4g} deg)"
    return f"{lo:.4g}..{hi:.4g}" + (f" {unit}" if unit else "")


# Limits shared by the tasks' factors (each task maps its factor names to these).
FRACTION = Limits(0.0, 1.0, why="a fraction, an albedo or a mix between two ends")
SWITCH = Limits(0.0, 1.0, integral=True, why="a switch: 0 or 1")
#: a direction relative to the camera axis: beyond 90 deg it faces away from the camera
FORWARD_ANGLE = Limits(-math.pi / 2, math.pi / 2, why="beyond 90 deg it faces away from the camera")
#: an angle around the camera axis (roll, a light's azimuth): any angle, once
PLANE_ANGLE = Limits(-math.pi, math.pi, why="an angle around the camera axis, once round")
POLAR_ANGLE = Limits(0.0, math.pi, why="an angle from the camera axis")
INTENSITY = Limits(0.0, 10.0, why="a light's strength in multiples of full scale")
# the camera pipeline (synth.camera; faces: synth.face_raster)
BLUR_SIGMA_PX = Limits(0.0, 3.0, why="the blur kernels stop at 3 px (faces: 2.4 px)")
NOISE_SIGMA = Limits(0.0, 1.0, why="a fraction of full scale")
GAMMA = Limits(0.1, 10.0, why="a tone curve exponent")
CONTRAST = Limits(0.0, 10.0, why="a gain around mid-grey")
JPEG_QUALITY = Limits(1.0, 100.0, why="JPEG's quality scale")


@dataclass(frozen=True)
class TaskFactors:
    """What one task's renderer reads from a distribution, checked before anything is
    rendered: the factor names it knows (an unknown one, e.g. a typo, would be drawn and
    recorded but never rendered), those it cannot do without, each factor's physical
    :class:`Limits`, and the image shapes it renders."""

    task: str
    names: tuple[str, ...]
    limits: Mapping[str, Limits]
    #: factors a distribution may lack (the renderer holds them at a fixed value)
    optional: frozenset[str] = frozenset()
    square_rgb: bool = False
    #: the largest image side this renderer can hold a chunk of in memory
    max_side: int = MAX_IMAGE_SIDE

    def name_problems(self, dist: SceneDistribution) -> list[str]:
        out = []
        unknown = [n for n in dist.factor_names if n not in self.names]
        if unknown:
            out.append(f"unknown factor {_some(unknown)}: the {self.task} renderer does not read "
                       f"it (`synthloop distribution --task {self.task}` lists its factors)")
        missing = [n for n in self.names if n not in dist.factor_names and n not in self.optional]
        if missing:
            out.append(f"lacks factor {_some(missing)}, which the {self.task} renderer needs")
        return out

    def limit_problems(self, dist: SceneDistribution) -> list[str]:
        found = (self.limits[f.name].problem(f) for f in dist.factors if f.name in self.limits)
        return [p for p in found if p]

    def image_problems(self, image: ImageSpec) -> list[str]:
        out = []
        if self.square_rgb and (image.height != image.width or image.channels != 3):
            out.append(f"task {self.task!r} renders square RGB images: image.height = image.width "
                       f"and image.channels = 3, got {image.height}x{image.width}x{image.channels}")
        if max(image.height, image.width) > self.max_side:
            out.append(f"the {self.task} renderer takes images of at most {self.max_side} pixels a "
                       f"side, got image.height = {image.height}, image.width = {image.width}")
        return out

    def problems(self, dist: SceneDistribution) -> list[str]:
        if dist.task != self.task:
            return [f"distribution is for task {shown(dist.task, 40)}, not {self.task!r}"]
        return self.name_problems(dist) + self.limit_problems(dist) + self.image_problems(dist.image)

    def check(self, dist: SceneDistribution) -> None:
        """Raise (``dist.error``: naming its file where known) on the first problem."""
        problems = self.problems(dist)
        if problems:
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise dist.error(problems[0] + more)


def _some(names: list[str], show: int = 5) -> str:
    """``'a'`` or ``'a', 'b'`` ... up to ``show`` names, then how many more: one short line."""
    text = ", ".join(shown(n, 40) for n in names[:show])
    return text + (f" and {len(names) - show} more" if len(names) > show else "")
