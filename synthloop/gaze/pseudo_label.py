"""Pseudo-labels: unlabeled real eyes labeled with the mean answer of trained gaze models,
written as a labeled folder that ``synthloop train --real-labeled`` trains a student on.

Why: models trained on synthetic eyes share most of their error on real ones, but not all;
the mean of a few of them (a seed ensemble) is a better teacher than any one, and a
single student trained on synthetic eyes beside the real eyes it labeled ends up at least
as good as the ensemble while serving as one model (docs/gaze.md). No real label is read:
a labels.csv in ``data`` is replaced, not used."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np

from synthloop.errors import UsageError

__all__ = ["PSEUDO_NOTE", "SPREAD_COLUMN", "pseudo_label_eyes"]

#: The file that says where a folder's labels came from.
PSEUDO_NOTE = "PSEUDO_LABELS.json"
#: meta.csv column: how far the teachers' answers lie from their mean, per eye (degrees).
SPREAD_COLUMN = "teacher_spread_deg"


def pseudo_label_eyes(models: list[str], data: str, out: str, *, tta_shift: int = 0,
                      log=print) -> dict[str, Any]:
    """Label the eyes of ``data`` (manifest.csv or labels.csv, whose labels are ignored;
    meta.csv kept) with the mean pitch and yaw of ``models`` (checkpoints or registered
    model URIs; each shown the eyes as its training mirrored them, answers in the data's
    frame, averaged over shifts of up to ``tta_shift`` px) and write them to the new
    folder ``out`` (atomically) with :data:`PSEUDO_NOTE`. Returns that note."""
    import dataclasses

    from analysis.gaze_eval import angular_errors_deg
    from realdata.eye_folder_writer import check_new_folder, write_eye_folder
    from synthloop.gaze.evaluate import load_gaze_model_and_side, predict_in_data_frame
    from synthloop.gaze.source import load_target
    from synthloop.model_refs import is_model_uri

    if not models:
        raise UsageError("pseudo-labels need at least one --model")
    try:  # before any model runs
        dest = check_new_folder(out)
    except FileExistsError as e:
        raise UsageError(f"--out {e} (pseudo-labels go to a new one)") from None
    eyes = load_target(data)
    answers = []
    for i, ref in enumerate(models, 1):
        net, side = load_gaze_model_and_side(ref)
        pred = predict_in_data_frame(net, side, eyes, tta_shift)[0].astype(np.float64)
        answers.append(pred)
        log(f"teacher {i}/{len(models)}: {ref}: mean pitch {np.degrees(pred[:, 0].mean()):+.1f}, "
            f"yaw {np.degrees(pred[:, 1].mean()):+.1f} deg over {len(eyes)} eyes")
    mean = np.mean(answers, axis=0)
    spread = np.mean([angular_errors_deg(a, mean) for a in answers], axis=0)
    meta = {**eyes.meta, SPREAD_COLUMN: spread} if len(models) > 1 else dict(eyes.meta)
    labeled = dataclasses.replace(eyes, pitchyaw=mean.astype(np.float32), meta=meta)
    note = {
        "kind": "pseudo-labels: the teachers' mean answer, no real label read",
        "data": str(Path(data).resolve()),
        "data_labels_ignored": eyes.pitchyaw is not None,
        "teachers": [ref if is_model_uri(ref) else str(Path(ref).resolve()) for ref in models],
        "tta_shift": tta_shift,
        "n": len(eyes),
        "teacher_spread_deg_mean": float(spread.mean()),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    write_eye_folder(dest, labeled, extra_files={PSEUDO_NOTE: json.dumps(note, indent=2) + "\n"})
    return {**note, "out": str(dest.resolve())}
