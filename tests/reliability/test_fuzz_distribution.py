"""Fuzzing scene distribution files: a mutation of what ``synthloop distribution --out``
exports (keys dropped, kinds changed, weights negative / NaN / infinite / strings / huge
lists, edges out of order, junk of every type anywhere, broken or deeply nested JSON) is,
read the way ``synthloop generate --distribution FILE`` reads it
(``synth.distribution.read_distribution``, then the task's generator check), either
usable or refused with the project's user error: one line naming the file. Never another
exception, and nothing written beside the file.

``SYNTHLOOP_FUZZ_EXAMPLES=5000`` runs a longer fuzz (default: a quick deterministic one).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from copy import deepcopy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth.distribution import read_distribution
from synth.eye_generator import EyeGenerator, sample_scenes
from synth.face_generator import sample_face_scenes
from synthloop.cli import main
from synthloop.errors import SynthloopError

EXAMPLES = int(os.environ.get("SYNTHLOOP_FUZZ_EXAMPLES", "150"))
FUZZ = settings(derandomize=True, max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TASKS = ("gaze", "landmarks")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, dict]:
    """Each task's default distribution as the command line exports it."""
    out = tmp_path_factory.mktemp("exports")
    docs = {}
    for task in TASKS:
        assert main(["distribution", "--task", task, "--out", str(out / f"{task}.json")]) == 0
        docs[task] = json.loads((out / f"{task}.json").read_text())
    return docs


# --- what a careless or hostile edit puts into a distribution file ----------------------

NUMBERS = st.one_of(
    st.integers(-10, 200_000), st.integers(-2**70, 2**70), st.sampled_from([10**400, -10**400]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
)
SCALARS = st.one_of(st.none(), NUMBERS, st.text(max_size=8),
                    st.sampled_from(["continuous", "categorical", "gaze", "landmarks", "eyeball"]))
JUNK = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=10)
# sampled values are copied: an edit must never change the strategy's own objects
HUGE_LISTS = st.sampled_from([[1.0] * 5000, [[]] * 100, list(range(3000)), ["1"] * 50]).map(deepcopy)
BAD_WEIGHTS = st.sampled_from([-0.5, float("nan"), float("inf"), -float("inf"), "0.5", None,
                               True, [], {}, 1e308, 10**400, -0.0, 0]).map(deepcopy)


def _nodes(obj, path=()):
    """Every (path, value) in the JSON tree, the root included."""
    yield path, obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield from _nodes(v, (*path, k))


def _get(root, path):
    for k in path:
        root = root[k]
    return root


def _set(root, path, value):
    if not path:
        return value
    _get(root, path[:-1])[path[-1]] = value
    return root


def _factors(doc) -> list:
    fs = doc.get("factors") if isinstance(doc, dict) else None
    return [f for f in fs if isinstance(f, dict)] if isinstance(fs, list) else []


def _mutate(data, doc):
    """One edit of the JSON tree (returns the new root)."""
    op = data.draw(st.sampled_from(["drop", "junk", "huge", "kind", "weight", "edges", "image",
                                    "extra_key", "extra_factor", "benign", "benign"]), label="op")
    nodes = list(_nodes(doc))
    factors = _factors(doc)
    if op == "drop":
        path = data.draw(st.sampled_from([p for p, _ in nodes if p] or [()]), label="drop")
        if path:
            del _get(doc, path[:-1])[path[-1]]
        return doc
    if op in ("junk", "huge"):
        path = data.draw(st.sampled_from([p for p, _ in nodes]), label="where")
        return _set(doc, path, data.draw(JUNK if op == "junk" else HUGE_LISTS, label="value"))
    if not factors and op in ("kind", "weight", "edges", "extra_factor", "benign"):
        return doc
    if op == "benign":  # what a person means to do: move weight, narrow a support, rename
        f = data.draw(st.sampled_from(factors), label="factor")
        w, e = f.get("weights"), f.get("edges")
        how = data.draw(st.sampled_from(["weight", "narrow", "name"]), label="benign")
        if how == "weight" and isinstance(w, list) and w:
            w[data.draw(st.integers(0, len(w) - 1))] = data.draw(st.floats(0.0, 1e6))
        elif how == "narrow" and isinstance(e, list) and len(e) > 1 and \
                all(isinstance(x, float) for x in e):
            k = data.draw(st.floats(0.1, 1.0), label="narrow by")
            mid = (e[0] + e[-1]) / 2
            e[:] = [mid + k * (x - mid) for x in e]
        elif isinstance(doc, dict):
            doc[data.draw(st.sampled_from(["name", "reason"]))] = data.draw(st.text(max_size=30))
        return doc
    if op == "kind":
        f = data.draw(st.sampled_from(factors), label="factor")
        f["kind"] = data.draw(st.sampled_from(["continuous", "categorical", "gaussian", "", 3]))
    elif op == "weight":
        f = data.draw(st.sampled_from(factors), label="factor")
        w = f.get("weights")
        if isinstance(w, list) and w:
            i = data.draw(st.integers(0, len(w) - 1), label="bin")
            w[i] = data.draw(BAD_WEIGHTS, label="weight")
        if data.draw(st.booleans(), label="all zero") and isinstance(w, list):
            f["weights"] = [0.0] * len(w)
    elif op == "edges":
        f = data.draw(st.sampled_from(factors), label="factor")
        e = f.get("edges") if isinstance(f.get("edges"), list) else f.get("values")
        if isinstance(e, list) and e and all(isinstance(x, int | float) for x in e):
            how = data.draw(st.sampled_from(["reverse", "swap", "scale", "inf", "repeat"]))
            if how == "reverse":
                e.reverse()
            elif how == "swap" and len(e) > 1:
                e[0], e[-1] = e[-1], e[0]
            elif how == "scale":
                k = data.draw(st.sampled_from([10.0, -1.0, 1000.0, 1e-9]), label="scale")
                e[:] = [x * k for x in e]
            elif how == "inf":
                e[-1] = float("inf")
            else:
                e.append(e[-1])
    elif op == "image":
        image = doc.get("image") if isinstance(doc, dict) else None
        if isinstance(image, dict):
            key = data.draw(st.sampled_from(["height", "width", "channels", "centre"]))
            image[key] = data.draw(st.one_of(st.integers(-5, 200_000), st.sampled_from(
                [0, 1, 2, 3, 7, 1024, 1025, 100_000, 36.0, "36", None, True, "nose"])))
    elif op == "extra_key":
        dicts = [p for p, v in nodes if isinstance(v, dict)]
        if dicts:
            _get(doc, data.draw(st.sampled_from(dicts)))[data.draw(
                st.sampled_from(["moon_phase", "edgse", "support", ""]))] = data.draw(JUNK)
    else:  # a factor more: renamed (unknown to the renderer) or a duplicate
        f = deepcopy(data.draw(st.sampled_from(factors), label="factor"))
        f["name"] = data.draw(st.sampled_from(["moon_phase", f.get("name"), "", 7]))
        doc["factors"].append(f)
    return doc


def _text(data, doc) -> bytes:
    """The file's bytes: the JSON, sometimes damaged as text."""
    text = json.dumps(doc, indent=2)
    how = data.draw(st.sampled_from(["json"] * 6 + ["cut", "insert", "deep", "binary", "empty"]),
                    label="text")
    if how == "cut":
        text = text[:data.draw(st.integers(0, len(text)), label="cut at")]
    elif how == "insert":
        i = data.draw(st.integers(0, len(text)), label="at")
        text = text[:i] + data.draw(st.sampled_from(["}", "]", ",", '"', "\\", "NaN", "\x00"])) + text[i:]
    elif how == "deep":
        depth = data.draw(st.sampled_from([10, 2000, 100_000]), label="depth")
        text = '{"factors": ' + "[" * depth + "]" * depth + "}"
    elif how == "binary":
        return b"\xff\xfe\x00junk" + text.encode()[:100]
    elif how == "empty":
        text = ""
    return text.encode()


def _generator_check(task: str, dist) -> None:
    """What ``generate --task TASK`` does with a distribution before writing anything."""
    if task == "gaze":
        EyeGenerator(dist)
        sample_scenes(dist, 4, 0)
        # a few eyes, rendered small: an accepted distribution must render
        small = dataclasses.replace(dist, image=dataclasses.replace(dist.image, height=8, width=8))
        EyeGenerator(small).render_all(2, 0)
    else:
        sample_face_scenes(dist, 4, 0)


def _read_like_generate(task: str, raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "edited.json"
        path.write_bytes(raw)
        try:
            _generator_check(task, read_distribution(path))
        except SynthloopError as e:
            message = str(e)
            assert "\n" not in message and "\r" not in message, message
            assert str(path) in message, message
            assert len(message) < 600, message
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["edited.json"]  # nothing written


@pytest.mark.parametrize("task", TASKS)
@FUZZ
@given(data=st.data())
def test_a_mutated_distribution_is_read_or_refused_naming_the_file(exported, task, data):
    doc = json.loads(json.dumps(exported[task]))
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        doc = _mutate(data, doc)
    if isinstance(doc, dict) and data.draw(st.sampled_from([True] * 4 + [False]), label="drop id"):
        doc.pop("id", None)  # what the message of an edited file asks for
    _read_like_generate(task, _text(data, doc))

