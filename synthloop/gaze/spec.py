"""The gaze task object: eye patches (36 x 60 grayscale) with (pitch, yaw) labels in
radians (MPIIGaze convention), rendered by the torch eye renderer; the loop's error is
the mean angular error in degrees."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from synthloop.errors import DataFormatError, UsageError
from synthloop.taskspec import (
    AnalysisEvidence,
    BatchGenerator,
    GenerateOptions,
    TaskSpec,
    TrainRequest,
)

__all__ = ["LOOP_TARGET_VERSION", "SPEC", "GazeSpec"]

#: Version of the built-in simulated target (synth.targets) the loop runs on without real
#: data: v2, whose gaze and head-pose skew is large enough for re-weighting to matter.
LOOP_TARGET_VERSION = "v2"
BUILTIN_TARGET_N = 2000


class EyeBatchGenerator(BatchGenerator):
    def __init__(self, options: GenerateOptions):
        if options.landmark_set is not None:
            raise UsageError("--landmark-set applies to --task landmarks only")
        self.device, self.compiled = options.device, options.compiled

    def planned_id(self, *, n, seed, dist=None):
        from synth.generate import planned_batch_id

        return planned_batch_id(n=n, seed=seed, dist=dist, device=self.device,
                                compiled=self.compiled)

    fans_out = True
    shard_modules = ("synth.generate", "synth.eye_generator")

    @property
    def fan_out_from(self) -> int | None:
        # 2 vCPUs: one process (two threads) is faster up to ~55,000 eyes, two workers
        # beyond (100,000: 12.8 vs 10.7 s; docs/benchmarks.md); a GPU renders in-process
        return 80_000 if self.device == "cpu" else None

    def write(self, out, *, n, seed, dist=None, shard_size=4096, overwrite=False, progress=None,
              map_shards=None):
        from synth.generate import generate_batch

        return generate_batch(out, n=n, seed=seed, dist=dist, device=self.device,
                              compiled=self.compiled, shard_size=shard_size,
                              overwrite=overwrite, progress=progress, map_shards=map_shards)


class GazeSpec(TaskSpec):
    name = "gaze"
    samples = "eye images"
    default_model = "gaze_resnet_s"
    default_batch_size = 64
    error_metric = "real_error_heldout_deg"
    error_unit = "deg"
    validation_metric = "real_error_analysis_deg"
    real_data_hint = "labels.csv with pitch and yaw"
    mirrors_eye_sides = True
    # more steps on synthetic eyes fit them more closely and read real eyes worse (past
    # ~750 steps here), so a warm round 2 (1,800 steps) scored worse than a fresh one from
    # every start measured on real eyes (docs/benchmarks.md, "Rounds from scratch")
    loop_round_start = "scratch"

    # ------------------------------------------------------------ distribution

    def default_distribution(self):
        from synth.eye_distribution import default_eye_distribution

        return default_eye_distribution()

    def generator(self, options: GenerateOptions = GenerateOptions()) -> BatchGenerator:  # noqa: B008
        return EyeBatchGenerator(options)

    def preview(self, reader, out, *, count, real=None) -> Path:
        """Eyes with their gaze arrows, beside real eyes (``real``: a folder of them)."""
        from synth.preview import batch_grid

        if not real:
            return batch_grid(reader, out, count=count)
        from realdata.eyes import read_eye_folder

        images = read_eye_folder(real).images
        spread = np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int)
        return batch_grid(reader, out, real=images[spread], count=count,
                          real_title=f"real: {Path(real).resolve().name} ({len(images)} eyes, "
                                     "evenly spaced)")

    # ------------------------------------------------------------ refinement

    def refine_target_images(self, path, mirror_eye=None):
        from realdata.eyes import read_eye_folder

        eyes = read_eye_folder(path)
        if mirror_eye is not None:
            from realdata.eye_side import mirror_side

            eyes = mirror_side(eyes, mirror_eye)
        return eyes.images

    def refine_target_head_yaw(self, path, column, mirror_eye=None):
        from realdata.eye_side import mirrored_mask, mirrored_yaw
        from realdata.eyes import META_NAME, read_eye_folder

        eyes = read_eye_folder(path)
        if column not in eyes.meta:
            raise DataFormatError(Path(path) / META_NAME, f"has no numeric column {column!r} of "
                                  "head yaw per eye (the per-pose mean patch needs one; "
                                  "--pose-column names another)")
        yaw = eyes.meta[column].astype(np.float64)
        return yaw if mirror_eye is None else mirrored_yaw(yaw, mirrored_mask(eyes, mirror_eye))

    def label_probe(self, reader, out, *, seed, steps, log=print):
        from synthloop.gaze.refining import train_label_probe

        return train_label_probe(reader, out, seed=seed, steps=steps, log=log)

    def label_learnability(self, reader, refiner, condition, out, *, seed, steps, log=print):
        from synthloop.gaze.refining import write_learnability

        return write_learnability(reader, refiner, condition, out, seed=seed, steps=steps, log=log)

    def consistency_probe(self, reader, out, *, seed, steps, log=print):
        from synthloop.gaze.refining import load_consistency_probe, train_label_probe

        return load_consistency_probe(train_label_probe(reader, out, seed=seed, steps=steps,
                                                        log=log))

    def refine_preview(self, reader, refined, real, out):
        from synthloop.gaze.refining import refine_preview

        return refine_preview(reader, refined, real, out)

    # ------------------------------------------------------------ real data

    def builtin_target(self, settings, n: int = BUILTIN_TARGET_N, seed: int = 0) -> Path:
        """The built-in simulated target (labeled), written once under the project home;
        used where no labeled real eyes are at hand (a fresh clone, the demo, the nightly
        default)."""
        import sys

        from synth.targets import target_name, write_simulated_target
        from synthloop.locks import file_lock

        out = settings.root / "targets" / f"{target_name(LOOP_TARGET_VERSION)}-n{n}-s{seed}"
        if (out / "labels.csv").is_file():
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        # several workers (tuning processes, flow runs) may share a home: one writes it
        with file_lock(out.parent / f".{out.name}.lock"):
            if not (out / "labels.csv").is_file():
                print(f"writing the built-in simulated target domain to {out} (a simulation, "
                      "not real data)", file=sys.stderr)
                write_simulated_target(out, n, seed, labeled=True, label_shift=True,
                                       version=LOOP_TARGET_VERSION)
        return out

    def bundled_real_data(self, settings) -> Path | None:
        """Columbia Gaze eye patches (labeled, 24 people) in ``../shared``, when present."""
        folder = settings.shared / "data" / "real" / "columbia-gaze-eyes"
        return folder if (folder / "labels.csv").is_file() else None

    def read_real(self, path: str, mirror_eye: str | None = None):
        """Labeled eyes (``labels.csv``; head pose too when it has ``head_pitch,head_yaw``;
        the people from ``meta.csv``, which the split then respects); the fingerprint
        hashes the images, the gaze labels, the head pose and the people.

        ``mirror_eye``: that side's eyes mirrored onto the other's with their yaw negated
        (:mod:`realdata.eye_side`), images and labels alike, so every error is the one
        the unmirrored eye would score and the model sees one kind of eye."""
        from realdata.eyes import read_eye_folder
        from synth.targets import is_simulated
        from synthloop.loop.real import RealData

        data = read_eye_folder(path)
        if data.pitchyaw is None:
            raise DataFormatError(Path(path), "the loop needs labeled real data (labels.csv with "
                                  "pitch and yaw); this folder has only a manifest")
        if mirror_eye is not None:
            from realdata.eye_side import mirror_side

            data = mirror_side(data, mirror_eye)
        pitchyaw = np.asarray(data.pitchyaw, np.float64)
        h = hashlib.sha256(np.ascontiguousarray(data.images).tobytes())
        h.update(np.ascontiguousarray(pitchyaw).tobytes())
        labels = {"pitchyaw": pitchyaw}
        if data.headpose is not None:
            labels["headpose"] = np.asarray(data.headpose, np.float64)
            h.update(b"head" + labels["headpose"].tobytes())
        if data.groups is not None:
            h.update(b"groups" + "\n".join(data.groups).encode())
        return RealData(data.images, labels, h.hexdigest()[:16], is_simulated(path), data,
                        groups=data.groups)

    def analysis_evidence(self, real, indices) -> AnalysisEvidence:
        """Slices by true gaze (and head pose, when labeled), in degrees, and by the
        numeric meta.csv columns (e.g. Columbia's head pose); gaze (and head pose) bins
        re-weighted; appearance factors fitted to image statistics."""
        from analysis.factor_maps import EYE_HEAD_FACTORS, EYE_LABEL_FACTORS, EYE_NUISANCE

        truth = real.labels["pitchyaw"][indices]
        observed = {"gaze_pitch_deg": np.degrees(truth[:, 0]), "gaze_yaw_deg": np.degrees(truth[:, 1])}
        values = {"gaze_pitch": truth[:, 0], "gaze_yaw": truth[:, 1]}
        factors = EYE_LABEL_FACTORS
        if "headpose" in real.labels:
            head = real.labels["headpose"][indices]
            observed.update(head_pitch_deg=np.degrees(head[:, 0]), head_yaw_deg=np.degrees(head[:, 1]))
            values.update(head_pitch=head[:, 0], head_yaw=head[:, 1])
            factors = EYE_LABEL_FACTORS + EYE_HEAD_FACTORS
        meta = getattr(real.source, "meta", {}) or {}
        observed.update({name: np.asarray(col)[indices] for name, col in meta.items()
                         if name not in observed})
        return AnalysisEvidence(observed, values, factors, EYE_NUISANCE)

    # ------------------------------------------------------------ train / evaluate

    def train(self, settings, request: TrainRequest, log=print):
        from synthloop.gaze.train import train_gaze

        if request.target is None:
            raise UsageError("gaze training needs --target (unlabeled target eyes)")
        return train_gaze(settings, method=request.method, target=request.target,
                          steps=request.steps, seed=request.seed, out=request.out,
                          source=request.source, n_source=request.n_source,
                          batch_size=request.batch_size or self.default_batch_size,
                          lr=request.lr, trade_off=request.trade_off,
                          model=request.model or self.default_model, device=request.device,
                          register=request.register, log=log, real_labeled=request.real_labeled,
                          real_subjects=request.real_subjects, refiner=request.refiner,
                          real_fraction=request.real_fraction, mirror_eye=request.mirror_eye,
                          ema=request.ema)

    def describe_run(self, run) -> list[tuple[str, str]]:
        lines = super().describe_run(run)
        if run.model_version:
            lines.append(("model", f"models:/synthloop-gaze/{run.model_version}"
                          + ("  (champion)" if run.promoted else "")))
        return lines

    def evaluate(self, model: str, data: str, *, tta_shift: int = 0) -> dict[str, Any]:
        from synthloop.gaze.evaluate import evaluate_gaze_model

        return evaluate_gaze_model(model, data, tta_shift=tta_shift)

    def evaluation_lines(self, res: dict[str, Any]) -> list[str]:
        lines = [f"model {res['model']} on {res['data']} ({res['data_kind']}, n={res['n']})"]
        if res.get("mirror_eye"):
            lines.append(f"  eyes of side {res['mirror_eye']} mirrored onto the other's, as the model "
                         "was trained; scored in the data's own frame")
        if res.get("tta_shift"):
            k = 2 * res["tta_shift"] + 1
            lines.append(f"  each answer the mean over the patch shifted by up to {res['tta_shift']} px "
                         f"per axis ({k * k} passes)")
        if res.get("labeled"):
            bias, spread = res["bias_deg"], res["spread_deg"]
            lines.append(f"  mean angular error   {res['mean_angular_error_deg']:.2f} deg")
            lines.append(f"  median angular error {res['median_angular_error_deg']:.2f} deg")
            lines.append(f"  bias (pred - true)   pitch {bias['pitch']:+.2f} deg, yaw "
                         f"{bias['yaw']:+.2f} deg; spread pitch {spread['pitch']:.2f}, yaw "
                         f"{spread['yaw']:.2f} deg")
            gain = {k: "n/a" if v is None else f"{v:.2f}" for k, v in res["gain"].items()}
            lines.append(f"  gain (pred on true)  pitch {gain['pitch']}, yaw {gain['yaw']} "
                         "(1: follows the angle in full)")
            if "subjects" in res:
                ci = res["subject_ci95"] or [float("nan")] * 2
                lines.append(f"  per subject          mean {res['subject_mean_deg']:.2f} deg over "
                             f"{res['n_subjects']} subjects, 95% CI {ci[0]:.2f}..{ci[1]:.2f}")
            lines.append(f"  recalibration bound  {res['recalibrated_deg']:.2f} deg with the best "
                         "gain and offset per angle (fitted on these labels)"
                         + (f"; {res['subject_offsets_removed_deg']:.2f} with each person's "
                            "offset removed" if "subject_offsets_removed_deg" in res else ""))
            lines += [f"  {sl['axis']:>15} {sl['lo_deg']:+6.1f}..{sl['hi_deg']:+6.1f}  "
                      f"n={sl['n']:<5d} {sl['mean_error_deg']:.2f} deg"
                      for sl in res.get("slices", [])]
        else:
            lines += [f"  {k:<24} {res[k]:.4f}"
                      for k in ("mmd_rbf", "frechet_distance", "mean_prediction_entropy")]
            lines.append(f"  (reference: {res['reference']})")
        return lines

    # ------------------------------------------------------------ the loop's rounds

    def train_round(self, settings, cfg, **kw):
        from synthloop.gaze.rounds import train_round

        return train_round(settings, cfg, **kw)

    def round_serving_model(self, settings, cfg, **kw):
        from synthloop.gaze.rounds import serving_model

        return serving_model(**kw)

    def evaluate_round(self, settings, cfg, **kw):
        from synthloop.gaze.rounds import evaluate_round

        return evaluate_round(settings, cfg, **kw)


SPEC = GazeSpec()
