"""The landmarks task object: face crops (rendered at 128 x 128 RGB by the numba face
renderer on the CPU, resampled to the model's input size) with the 68 iBug points and a
dense point set; real faces are images with ``.pts`` files; the loop's error is the
inter-ocular NME in percent."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from models.landmark_recipe import DEFAULT_LANDMARK_MODEL
from synthloop.errors import UsageError
from synthloop.taskspec import (
    AnalysisEvidence,
    BatchGenerator,
    GenerateOptions,
    TaskSpec,
    TrainRequest,
)

__all__ = ["SPEC", "LandmarksSpec"]

DEFAULT_LANDMARK_SET = "dense500"


class FaceBatchGenerator(BatchGenerator):
    """Face batches with the face model :func:`synth.face_loading.load_face_model` picks
    (ICT-FaceKit beside the project, else the built-in head; ``SYNTHLOOP_FACE_MODEL``),
    loaded once: the planned id and the batch must use the same model."""

    def __init__(self, options: GenerateOptions):
        if options.device != "cpu" or options.compiled is not None:
            raise UsageError("face batches render on the CPU (numba); --device and --compile "
                             "apply to --task gaze")
        self.landmark_sets = (options.landmark_set or DEFAULT_LANDMARK_SET,)
        self._model: Any = None

    @property
    def model(self):
        if self._model is None:
            from synth.face_loading import load_face_model

            self._model = load_face_model()
            print(f"face model: {'built-in fallback head' if self._model.is_fallback else self._model.source}",
                  file=sys.stderr)
        return self._model

    def planned_id(self, *, n, seed, dist=None):
        from synth.generate_faces import planned_face_batch_id

        return planned_face_batch_id(n=n, seed=seed, dist=dist, model=self.model,
                                     landmark_sets=self.landmark_sets)

    fans_out = True
    shard_modules = ("synth.generate_faces",)
    #: 2 vCPUs: 1,024 faces in shards of 256 break even (4.6 s either way), 2,048 in
    #: shards of 512 are 20% faster on two workers (docs/benchmarks.md)
    fan_out_from = 2_048

    def write(self, out, *, n, seed, dist=None, shard_size=4096, overwrite=False, progress=None,
              map_shards=None):
        from synth.generate_faces import generate_face_batch

        return generate_face_batch(out, n=n, seed=seed, dist=dist, model=self.model,
                                   landmark_sets=self.landmark_sets, shard_size=shard_size,
                                   overwrite=overwrite, progress=progress, map_shards=map_shards)


class LandmarksSpec(TaskSpec):
    name = "landmarks"
    samples = "faces"
    default_model = DEFAULT_LANDMARK_MODEL
    default_batch_size = 32
    error_metric = "real_nme_io_heldout"
    error_unit = "% NME io"
    validation_metric = "real_nme_io_analysis"
    real_data_hint = "a folder of images with .pts files, e.g. LFPW train"
    label_transfer = True
    places_points = True

    # ------------------------------------------------------------ distribution

    def default_distribution(self):
        from synth.face_distribution import default_face_distribution

        return default_face_distribution()

    def generator(self, options: GenerateOptions = GenerateOptions()) -> BatchGenerator:  # noqa: B008
        return FaceBatchGenerator(options)

    def preview(self, reader, out, *, count, real=None) -> Path:
        """The first ``count`` faces with their 68 points (red rings = occluded) and the
        stored dense set, sorted by head yaw."""
        import json

        from synth.face_preview import face_grid
        from synth.generate_faces import LANDMARKS, read_face_labels

        if real:
            raise UsageError("--real shows real eye patches beside an eye batch; not for face batches")
        labels = read_face_labels(reader.path, verify=False)  # BatchReader checked the checksums
        dense_sets = json.loads((reader.path / LANDMARKS).read_text()).get("dense_sets", [])
        idx = np.arange(min(count, reader.n))
        dense = dense_sets[0] if dense_sets else None
        return face_grid(reader.images(idx), labels["points68"][idx], labels["visible68"][idx], out,
                         dense=labels[dense][idx] if dense else None,
                         dense_visible=labels[f"{dense}_visible"][idx] if dense else None,
                         yaw=reader.metadata["yaw"].to_numpy()[idx],
                         title=f"{reader.batch_id}: 68 points (red rings = occluded)"
                               + (f", {dense}" if dense else "") + "; sorted by yaw")

    # ------------------------------------------------------------ refinement

    def refine_target_images(self, path, mirror_eye=None):
        # mirror_eye is refused before this is called: faces do not mirror (mirrors_eye_sides)
        from synthloop.landmarks.refining import refine_target_images

        return refine_target_images(path)

    def refine_target_points(self, images, landmarker):
        from synthloop.landmarks.refining import predicted_points

        return predicted_points(images, landmarker)

    def refine_condition(self, parent, name):
        from models.landmark_patch import CONDITION

        if name != CONDITION:
            return super().refine_condition(parent, name)
        from synthloop.landmarks.refining import points_and_visibility

        return points_and_visibility(parent)

    def refine_preview(self, reader, refined, real, out):
        from synthloop.landmarks.refining import refine_preview

        return refine_preview(reader, refined, real, out)

    # ------------------------------------------------------------ real data

    def bundled_real_data(self, settings) -> Path | None:
        """LFPW training faces (805, 68 points) in ``../shared``, when present."""
        folder = settings.shared / "data" / "real" / "lfpw-train"
        return folder if folder.is_dir() and any(folder.glob("*.pts")) else None

    def read_real(self, path: str, mirror_eye: str | None = None):
        """Labeled real faces cropped by the shared protocol; the fingerprint hashes the
        crops and the points (in the original images, where NMEs are measured).
        ``mirror_eye`` is refused before this is called (LoopConfig: faces do not mirror)."""
        from realdata.real_faces import load_real_faces
        from synthloop.loop.real import RealData

        faces = load_real_faces(path)
        points = np.asarray(faces.face_set.points, np.float64)
        h = hashlib.sha256(np.ascontiguousarray(faces.images).tobytes())
        h.update(np.ascontiguousarray(points).tobytes())
        return RealData(faces.images, {"points": points}, h.hexdigest()[:16], False, faces)

    def analysis_evidence(self, real, indices) -> AnalysisEvidence:
        """Slices by head yaw (estimated from the 68 points) and face size; head-yaw bins
        re-weighted; appearance factors fitted to image statistics."""
        from analysis.factor_maps import FACE_LABEL_FACTORS, FACE_NUISANCE
        from analysis.landmark_eval import estimate_yaw_deg

        pts = real.labels["points"][indices]
        yaw_deg = estimate_yaw_deg(pts)  # > 0: toward the image's left, as head_yaw
        observed = {"head_yaw_deg": yaw_deg,
                    "inter_ocular_px": np.linalg.norm(pts[:, 36] - pts[:, 45], axis=1)}
        return AnalysisEvidence(observed, {"head_yaw": np.radians(yaw_deg)}, FACE_LABEL_FACTORS,
                                FACE_NUISANCE)

    # ------------------------------------------------------------ train / evaluate

    def train(self, settings, request: TrainRequest, log=print):
        from synthloop.landmarks.train import train_landmarks

        if request.real_subjects is not None:
            raise UsageError("--real-subjects applies to --task gaze; landmark training uses "
                             "every face of --real-labeled")
        if request.mirror_eye is not None:
            raise UsageError("--mirror-eye (eye patches of one side mirrored onto the other's) "
                             "applies to --task gaze")
        if request.ema is not None:
            raise UsageError("--ema applies to --task gaze; landmark training always keeps an "
                             "average of the weights (models/landmark_recipe.py)")
        if request.refiner is not None:
            raise UsageError("--refiner (on-the-fly refinement) applies to --task gaze; for "
                             "faces, refine the batch with `synthloop refine` and train on it "
                             "with --source")
        return train_landmarks(settings, method=request.method, steps=request.steps,
                               seed=request.seed, out=request.out, source=request.source,
                               n_source=request.n_source, real_labeled=request.real_labeled,
                               target=request.target, model=request.model or self.default_model,
                               batch_size=request.batch_size or self.default_batch_size,
                               lr=request.lr, trade_off=request.trade_off, device=request.device,
                               register=request.register, log=log,
                               real_fraction=request.real_fraction)

    def describe_run(self, run) -> list[tuple[str, str]]:
        lines = [*super().describe_run(run), ("output", run.route)]
        if run.model_version:
            lines.append(("model", f"models:/synthloop-landmarks/{run.model_version}"
                          + ("  (champion)" if run.promoted else "")))
        return lines

    def evaluate(self, model: str, data: str, *, tta_shift: int = 0) -> dict[str, Any]:
        from synthloop.landmarks.evaluate import evaluate_landmarks_model

        if tta_shift:
            raise UsageError("--tta-shift (eye patches shifted and the answers averaged) "
                             "applies to --task gaze")
        return evaluate_landmarks_model(model, data)

    def evaluation_lines(self, res: dict[str, Any]) -> list[str]:
        lines = [f"model {res.get('model')} on {res.get('data')} (n={res['n']})",
                 f"  NME inter-ocular {res['nme_inter_ocular']:.3f}   inter-pupil "
                 f"{res['nme_inter_pupil']:.3f}   failures (io > 10) "
                 f"{100 * res['failure_rate_010']:.1f}%"]
        lines += [f"  yaw {sl['lo']:+5.0f}..{sl['hi']:+4.0f} deg  n={sl['n']:<4d} "
                  f"io {sl['nme_inter_ocular']:.3f}  ip {sl['nme_inter_pupil']:.3f}"
                  for sl in res.get("slices", [])]
        return lines

    # ------------------------------------------------------------ the loop's rounds

    def train_round(self, settings, cfg, **kw):
        from synthloop.landmarks.rounds import train_round

        return train_round(settings, cfg, **kw)

    def evaluate_round(self, settings, cfg, **kw):
        from synthloop.landmarks.rounds import evaluate_round

        return evaluate_round(settings, cfg, **kw)


SPEC = LandmarksSpec()
