"""Write ``eyes-columbia-protocol.json``: the Columbia-range, corner-centred eye distribution
with its camera pipeline matched to what the real folder's README documents about its crops.

    python -m benchmarks.distributions.derive_columbia_protocol [--only scale|equalise|sensor|level_head --out F]

Nothing here reads real labels or real pixels; each change quotes the documented protocol of
``../shared/data/real/columbia-gaze-eyes`` (its README):

- *scale*: crops made from landmarks, "the eye corners spanning about 90 % of the width", so
  the eye is ~54 px wide in every 60 px patch. Ours spread 33-78 px (camera 420-640 mm,
  focal 880-1,100 px, eye 24-30 mm). Kept: the bins giving 47-59 px (camera 530-567 mm,
  focal 1,045-1,100 px, eye 25.5-28.5 mm).
- *equalisation*: every patch is histogram-equalised: ``histeq`` always on.
- *sensor*: 64 px crops cut from 5,184 px photographs, so sensor noise is averaged away and
  no 8x8 block of the 60x36 patch is a JPEG block of the original: the cleanest noise bins
  (sigma <= 0.0125) and JPEG quality >= 82.
- *level_head* (not part of the default set, which predates it): "each subject sits in a
  chin rest 2 m from the camera, with five horizontal head poses", so the head is turned
  but not tilted up or down: head pitch within +-7.5 deg (the two middle bins; ours drew
  +-30 deg with a 10 deg spread), head yaw left as it was (+-30 deg, Columbia's range).

Every other bin keeps a zero weight only until the loop re-weights it (re-weighting floors
every bin), so the loop can still move any of these factors.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARENT = HERE / "eyes-columbia-gaze-corners.json"
OUT = HERE / "eyes-columbia-protocol.json"

# part -> {continuous factor: the (lo, hi) part of its support that keeps its weight,
#          categorical factor: the one value kept}
PARTS = {
    "scale": {"camera_distance_mm": (530.0, 566.7), "focal_length_px": (1045.0, 1100.0),
              "eye_width_mm": (25.5, 28.5)},
    "equalise": {"histeq": 1.0},
    "sensor": {"noise_sigma": (0.0, 0.0125), "jpeg_quality": (82.0, 98.0)},
    "level_head": {"head_pitch": (-0.1309, 0.1309)},  # rad: +-7.5 deg, bin mids +-3.75
}
#: what ``eyes-columbia-protocol.json`` matches (written before ``level_head`` existed)
PROTOCOL_PARTS = ("scale", "equalise", "sensor")


def _kept(factor, lo: float, hi: float):
    import numpy as np

    e = np.asarray(factor.edges)
    mids = 0.5 * (e[:-1] + e[1:])
    keep = (mids >= lo) & (mids <= hi)
    if not keep.any():
        raise ValueError(f"{factor.name}: no bin between {lo} and {hi}")
    w = np.where(keep, np.asarray(factor.weights) + 1e-12, 0.0)
    return dataclasses.replace(factor, weights=tuple(w / w.sum()))


def _only(factor, value: float):
    w = [1.0 if v == value else 0.0 for v in factor.values]
    return dataclasses.replace(factor, weights=tuple(w))


def derive(parts=PROTOCOL_PARTS):
    from synth.distribution import read_distribution

    parent = read_distribution(PARENT)
    keep = {k: v for p in parts for k, v in PARTS[p].items()}
    factors = []
    for f in parent.factors:
        if f.name in keep:
            f = _only(f, keep[f.name]) if f.kind == "categorical" else _kept(f, *keep[f.name])
        factors.append(f)
    what = {"scale": "eye ~54 px wide (corners at ~90% of the width)",
            "equalise": "always equalised", "sensor": "clean sensor, JPEG >= 82",
            "level_head": "head level (pitch within +-7.5 deg: a chin rest, head turned only)"}
    name = "eyes-columbia-protocol" + ("" if parts == PROTOCOL_PARTS else "-" + "-".join(parts))
    head = ("camera pipeline matched to Columbia's documented crops: " if "level_head" not in parts
            else "matched to Columbia's documented protocol: ")
    return parent.derive(head + ", ".join(what[p] for p in parts), name=name,
                         factors=tuple(factors))


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", choices=list(PARTS), help="match only these parts")
    ap.add_argument("--out", type=Path, default=None, help=f"default {OUT.name} beside this file")
    a = ap.parse_args(argv)
    dist = derive(tuple(a.only) if a.only else PROTOCOL_PARTS)
    out = a.out or (OUT if not a.only else HERE / f"{dist.name}.json")
    out.write_text(dist.dumps())
    print(f"wrote {out} ({dist.id})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
