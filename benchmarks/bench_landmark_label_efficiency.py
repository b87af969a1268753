"""Landmarks on real LFPW faces by the number of labeled real faces, four ways of using
synthetic faces: the label-efficiency benchmark of issue 13.

    python -m benchmarks.bench_landmark_label_efficiency [--n 25 100 645] [--seeds 0 1 2]
        [--arms a b c d e ast cst] [--steps 3000] [--n-source 4000] [--model landmark_resnet_s]
        [--distribution FILE] [--transfer-fit ridge|mlp]
        [--source-batch BATCH]   # the synthetic arms on a given batch, e.g. a refined one
    python -m benchmarks.bench_landmark_label_efficiency --quick     # smoke run, not results

Real data: ``../shared/data/real/lfpw-train`` split 645/160 by ``split_face_folder`` (the
case study's split). An arm with ``n`` labeled faces uses the first ``n`` of a seeded
permutation of the 645; the 160 are only scored, as crops by the shared protocol, with
test-time flip averaging (the layout's mirror permutation). Arms, each at the same
budget of ``--steps`` steps of ``--batch-size`` images (DA steps carry as many target
images again, so DALN gets half the steps):

- (a) real only: the ``n`` faces, 68 points;
- (b) synthetic only (the dense set), then the label-transfer network fitted on the
  ``n`` faces' dense predictions (``--transfer-fit``: ridge, closed form, by default; the
  synthetic model is shared by every ``n``);
- (c) synthetic pre-training (``--pre-share`` of the steps, half by default, shared by
  every ``n``), then synthetic + the ``n`` real faces jointly (the rest of the steps,
  ``--real-fraction`` of each batch real; the real 68 head starts at the dense set's
  iBug vertices, ``synthloop.landmarks.warm_start``), scored on the real head and, as
  ``transfer_*``, through its dense head and the transfer fitted on the ``n`` faces;
- (d) DALN with the 645 real training images unlabeled (half the steps, the DALN term
  weighted ``--da-trade-off``), then the transfer fitted on the ``n`` faces;
- (e) arm c's synthetic pre-training, then the ``n`` real faces alone for the rest of the
  steps, on a 68-point model narrowed from the dense one (its 68 points start at the
  dense set's iBug vertices, at the 68-point model's own heatmap stride:
  ``synthloop.landmarks.warm_start``);
- (ast), (cst): self-training on the unlabeled training faces. Arm a's or arm c's model
  (the teacher, the same run) labels the 645 training faces with its flip-averaged 68
  points, the ``n`` labeled faces keep their own, and a student trains on all 645: (ast)
  as arm a does, from scratch, ``--steps`` steps; (cst) as arm c's joint phase does, from
  the same pre-training, the rest of the steps. The student's minutes include its
  teacher's; ``pseudo_nme_io`` is the teacher's error on the unlabeled faces it labeled.

The recipe is ``models.landmark_recipe`` for every arm (Wing loss, face augmentation with
flips, bf16 on the CPU, weight average); the last checkpoint is scored (no selection on
test faces). Columns: NME inter-ocular and inter-pupil (%, the 160 faces), failure rate
(share above 10% inter-ocular), training minutes (shared pre-training counted in full
for every ``n``). Median and range over seeds. Writes
benchmarks/results/landmark_label_efficiency.json and a plot (``--name`` for another name).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, print_table, results_dir, save
from models.landmark_recipe import EMA_DECAY
from synthloop.loop.config import TRANSFER_FIT_NAMES

LFPW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "lfpw-train"
ARMS = {"a": "a real only", "b": "b synthetic + transfer", "c": "c syn pre-train + syn/real",
        "d": "d DALN + transfer", "e": "e syn pre-train + real fine-tune",
        "ast": "a+st real only, self-trained", "cst": "c+st syn + real, self-trained"}


def _recipe(model: str, steps: int, batch_size: int, seed: int, ema: float | None):
    from models.landmark_recipe import landmark_recipe
    from models.train import TrainConfig
    from synth.face_model import IBUG68_MIRROR

    return TrainConfig(
        task="landmarks", model=model, model_kwargs={"num_points": 68}, method="source_only",
        steps=steps, batch_size=batch_size, seed=seed, select="source_error",
        eval_every=steps, ckpt_every=max(1, steps // 4), log_every=max(1, steps // 20),
        **landmark_recipe(IBUG68_MIRROR, steps=steps, ema=ema))


def _timed(out: Path, fn) -> float:
    """Run ``fn()`` unless ``out`` holds a finished run; its training minutes either way
    (wall clock; the marker also keeps the process's CPU minutes, which a busy machine
    does not inflate)."""
    marker = out / "bench_minutes.json"
    if not marker.is_file():
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        marker.write_text(json.dumps({"minutes": (time.perf_counter() - t0) / 60,
                                      "cpu_minutes": (time.process_time() - c0) / 60}))
    return float(json.loads(marker.read_text())["minutes"])


class Bench:
    """The data and settings every arm shares; ``arm_*`` return rows per ``n``."""

    def __init__(self, a, settings, train_set, test_set, train_faces, test_faces):
        self.a, self.settings = a, settings
        self.train_set, self.test_set = train_set, test_set
        self.train_faces, self.test_faces = train_faces, test_faces
        self.root = settings.root / ("label-efficiency" + ("-quick" if a.quick else ""))
        self.ema = a.ema or None
        self._batch = None
        self.dist = None  # the built-in face distribution
        if a.distribution:
            from synth.distribution import read_distribution

            self.dist = read_distribution(a.distribution)

    def labeled(self, n: int, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).permutation(len(self.train_faces.images))[:n]

    @property
    def batch(self) -> str:
        """The synthetic face batch of arms b-d (generated once, seed 0, then reused)."""
        if self._batch is None:
            from synthloop.batches import prepare_training_batch

            reader = prepare_training_batch(self.settings, "landmarks", source=None,
                                            n=self.a.n_source, seed=0, dist=self.dist, log=print)
            self._batch = str(reader.path)
        return self._batch

    def test_points(self, net, mirror):
        """Every output channel of ``net`` on the test faces, flip-averaged."""
        import torch

        from models.predict import predict_points_flip_averaged

        return predict_points_flip_averaged(net.eval(), torch.from_numpy(self.test_faces.nchw()),
                                            mirror, amp=False)

    def score(self, points) -> dict:
        """NMEs of ``points`` (the test faces' 68 predicted points)."""
        from analysis.landmark_eval import evaluate_landmarks

        ev = evaluate_landmarks(points.numpy(), self.test_faces.points)
        return {"nme_io": float(ev["nme_inter_ocular"]), "nme_ip": float(ev["nme_inter_pupil"]),
                "failure_010": float(ev["failure_rate_010"])}

    def synthetic(self, name: str, seed: int, steps: int, **kw) -> tuple[Path, float]:
        from synthloop.landmarks.train import train_landmarks

        dist = f"-{self.dist.id}" if self.dist is not None else ""
        out = self.root / f"{self.a.model}-{name}-s{seed}-steps{steps}-syn{self.a.n_source}{dist}"
        minutes = _timed(out, lambda: train_landmarks(
            self.settings, out=str(out), source=self.batch, steps=steps, seed=seed,
            model=self.a.model, batch_size=self.a.batch_size, register=False,
            log=lambda *_: None, run_name=f"label-efficiency-{name}-s{seed}",
            train_overrides={"ema": self.ema}, **kw))
        return out, minutes

    def transferred(self, run: Path, seed: int, minutes: float, arm: str) -> list[dict]:
        """Rows of a dense model + the transfer fitted on each ``n``'s faces."""
        import torch

        from models.label_transfer import apply_label_transfer
        from models.predict import predict_points_flip_averaged
        from models.registry import load_model

        net = load_model(run / "last.pt").eval()
        mirror = self.dense_mirror
        dense = predict_points_flip_averaged(net, torch.from_numpy(self.train_faces.nchw()), mirror,
                                             amp=False)
        test = self.test_points(net, mirror)
        rows = []
        for n in self.a.n:
            idx = self.labeled(n, seed)
            t0 = time.perf_counter()
            fit = self.fit_transfer(dense[idx], idx, seed)
            fit_min = (time.perf_counter() - t0) / 60
            r = self.score(apply_label_transfer(fit.model, test))
            rows.append(self.row(arm, n, seed, r, minutes + fit_min))
        return rows

    def fit_transfer(self, dense, idx: np.ndarray, seed: int):
        """The label transfer from ``dense`` (a dense model's points for the training faces
        ``idx``) to those faces' real 68 points."""
        import torch

        from models.transfer_fits import fit_transfer

        return fit_transfer(dense, torch.from_numpy(self.train_faces.points[idx]).float(),
                            method=self.a.transfer_fit, steps=self.a.transfer_steps, seed=seed)

    def transfer_route(self, net, mirror, test, idx: np.ndarray, seed: int) -> dict:
        """Arm c's network (``test``: its points on the test faces) scored through its
        dense head and the label transfer fitted on its labeled faces ``idx`` (the
        product's ``transfer`` route), keys ``transfer_*``."""
        import torch

        from models.label_transfer import apply_label_transfer
        from models.predict import predict_points_flip_averaged

        d = len(mirror) - 68
        dense = predict_points_flip_averaged(net.eval(), torch.from_numpy(self.train_faces.nchw(idx)),
                                             mirror, amp=False)[:, :d]
        r = self.score(apply_label_transfer(self.fit_transfer(dense, idx, seed).model, test[:, :d]))
        return {f"transfer_{k}": v for k, v in r.items()}

    @functools.cached_property
    def dense_mirror(self) -> np.ndarray:
        """The batch's dense-set mirror (read once: reading the labels verifies them)."""
        from synthloop.landmarks.source import synthetic_labels

        mirror = synthetic_labels(self.batch).mirror
        if mirror is None:
            raise SystemExit(f"{self.batch}: a face batch without mirror pairs; regenerate it")
        return mirror

    @property
    def pre_steps(self) -> int:
        """Steps of synthetic pre-training in arms c and e."""
        return max(1, round(self.a.steps * self.a.pre_share))

    def row(self, arm: str, n: int, seed: int, r: dict, minutes: float, **extra) -> dict:
        row = {"arm": ARMS[arm], "n": n, "seed": seed, "steps": self.a.steps, "model": self.a.model,
               "ema": self.ema, **extra, **r, "train_minutes": round(minutes, 2)}
        via = (f"  (transfer route: io {extra['transfer_nme_io']:.2f}%)"
               if "transfer_nme_io" in extra else "")
        print(f"{ARMS[arm]}, n={n}, seed={seed}: io {r['nme_io']:.2f}%  ip {r['nme_ip']:.2f}%  "
              f"fail {100 * r['failure_010']:.1f}%  {minutes:.1f} min{via}", file=sys.stderr, flush=True)
        return row

    # ------------------------------------------------------------------ the arms

    def real_only(self, n: int, seed: int, steps: int, name: str, init: Path | None = None,
                  faces=None) -> tuple[dict, float, Path]:
        """Scores, minutes and run folder of a 68-point model trained ``steps`` steps on the
        ``n`` labeled faces, or on ``faces`` (every training face, e.g. pseudo-labeled),
        from scratch or from ``init`` (a checkpoint of a dense model, narrowed)."""
        import torch

        from models.data import ArraySource
        from models.predictor import OutputLayout
        from models.registry import load_model
        from models.train import train
        from synth.face_model import IBUG68_MIRROR
        from synthloop.landmarks.warm_start import warm_start_checkpoint

        faces = self.train_faces if faces is None else faces
        order = self.labeled(n, seed) if faces is self.train_faces else np.arange(len(faces))
        pts = faces.points[order].astype(np.float32)
        src = ArraySource(faces.images[order], self.a.batch_size, seed,
                          labels={"points": pts, "visible": np.ones(pts.shape[:2], np.float32)})
        val = {"image": torch.from_numpy(faces.nchw(order[:32])),
               "points": torch.from_numpy(np.ascontiguousarray(pts[:32]))}
        cfg = _recipe(self.a.model, steps, self.a.batch_size, seed, self.ema)
        out = self.root / (f"{self.a.model}-{name}-n{n}-s{seed}-steps{steps}"
                           + (f"-ema{self.ema}" if self.ema else ""))
        start = None if init is None else warm_start_checkpoint(
            init, OutputLayout("points68", 68), out)
        minutes = _timed(out, lambda: train(cfg, src, None, out, val_source=val, resume=True,
                                            init_weights=start))
        return self.score(self.test_points(load_model(out / "last.pt"), IBUG68_MIRROR)), minutes, out

    def arm_a(self, seed: int) -> list[dict]:
        rows = []
        for n in self.a.n:
            r, minutes, _ = self.real_only(n, seed, self.a.steps, "a")
            rows.append(self.row("a", n, seed, r, minutes))
        return rows

    def arm_b(self, seed: int) -> list[dict]:
        run, minutes = self.synthetic("b", seed, self.a.steps)
        return self.transferred(run, seed, minutes, "b")

    @property
    def joint_mirror(self) -> np.ndarray:
        """The mirror of arm c's models: the dense set, then the real 68 head."""
        from models.landmark_augment import layout_mirror

        return layout_mirror(self.dense_mirror, real_head=True)

    def c_joint(self, name: str, seed: int, real) -> tuple[Path, float, float]:
        """Arm c's run on ``real`` (labeled real faces), its minutes and those of the shared
        synthetic pre-training it starts from (syn + real for the rest of the steps)."""
        pre, pre_min = self.synthetic("c-pre", seed, self.pre_steps)
        variant = "" if (self.a.pre_share, self.a.real_fraction) == (0.5, 0.5) else \
            f"-pre{self.a.pre_share:g}-rf{self.a.real_fraction:g}"
        variant += "-sh68" if self.a.syn_head68 else ""
        run, minutes = self.synthetic(f"{name}{variant}", seed, max(1, self.a.steps - self.pre_steps),
                                      real_labeled=real, real_fraction=self.a.real_fraction,
                                      real_val_fraction=0.0, transfer_steps=self.a.transfer_steps,
                                      transfer_fit=self.a.transfer_fit,
                                      syn_head68=self.a.syn_head68,
                                      init_weights=str(pre / "last.pt"))
        return run, minutes, pre_min

    def arm_c(self, seed: int) -> list[dict]:
        from models.registry import load_model

        mirror, rows = self.joint_mirror, []
        for n in self.a.n:
            idx = self.labeled(n, seed)
            run, minutes, pre_min = self.c_joint(f"c-n{n}", seed,
                                                 self.train_set.subset(idx.tolist()))
            net = load_model(run / "last.pt")
            test = self.test_points(net, mirror)
            rows.append(self.row("c", n, seed, self.score(test[:, len(mirror) - 68:]),
                                 pre_min + minutes,
                                 pre_steps=self.pre_steps, real_fraction=self.a.real_fraction,
                                 **self.transfer_route(net, mirror, test, idx, seed)))
        return rows

    def pseudo_labeled(self, teacher: Path, mirror: np.ndarray, idx: np.ndarray):
        """The training faces labeled by ``teacher``'s 68 points (a run folder; its last 68
        channels, flip-averaged), the labeled faces ``idx`` keeping their own; and the
        teacher's scores on the faces it labeled."""
        import torch

        from analysis.landmark_eval import evaluate_landmarks
        from models.predict import predict_points_flip_averaged
        from models.registry import load_model

        net = load_model(teacher / "last.pt").eval()
        pts = predict_points_flip_averaged(net, torch.from_numpy(self.train_faces.nchw()), mirror,
                                           amp=False)[:, len(mirror) - 68:].numpy()
        unlabeled = np.setdiff1d(np.arange(len(pts)), idx)
        ev = evaluate_landmarks(pts[unlabeled], self.train_faces.points[unlabeled])
        pts[idx] = self.train_faces.points[idx]
        return self.train_faces.relabeled(pts), {"pseudo_nme_io": float(ev["nme_inter_ocular"])}

    def arm_ast(self, seed: int) -> list[dict]:
        from synth.face_model import IBUG68_MIRROR

        rows = []
        for n in self.a.n:
            idx = self.labeled(n, seed)
            _, t_min, teacher = self.real_only(n, seed, self.a.steps, "a")  # arm a's run
            faces, pseudo = self.pseudo_labeled(teacher, IBUG68_MIRROR, idx)
            r, minutes, _ = self.real_only(n, seed, self.a.steps, "ast", faces=faces)
            rows.append(self.row("ast", n, seed, r, t_min + minutes, **pseudo))
        return rows

    def arm_cst(self, seed: int) -> list[dict]:
        from models.registry import load_model

        mirror, rows = self.joint_mirror, []
        for n in self.a.n:
            idx = self.labeled(n, seed)
            teacher, t_min, pre_min = self.c_joint(f"c-n{n}", seed,
                                                   self.train_set.subset(idx.tolist()))
            faces, pseudo = self.pseudo_labeled(teacher, mirror, idx)
            run, minutes, _ = self.c_joint(f"cst-n{n}", seed, faces)
            test = self.test_points(load_model(run / "last.pt"), mirror)
            rows.append(self.row("cst", n, seed, self.score(test[:, len(mirror) - 68:]),
                                 pre_min + t_min + minutes, pre_steps=self.pre_steps,
                                 real_fraction=self.a.real_fraction, **pseudo))
        return rows

    def arm_d(self, seed: int) -> list[dict]:
        to = self.a.da_trade_off
        run, minutes = self.synthetic(f"d-daln-to{to:g}", seed, max(1, self.a.steps // 2),
                                      method="daln", target=self.train_set, trade_off=to)
        return self.transferred(run, seed, minutes, "d")

    def arm_e(self, seed: int) -> list[dict]:
        pre_steps = self.pre_steps
        pre, pre_min = self.synthetic("c-pre", seed, pre_steps)  # arm c's, shared
        rows = []
        for n in self.a.n:
            r, minutes, _ = self.real_only(n, seed, max(1, self.a.steps - pre_steps),
                                        f"e-pre{pre_steps}", init=pre / "last.pt")
            rows.append(self.row("e", n, seed, r, pre_min + minutes, pre_steps=pre_steps))
        return rows


def lfpw_split(real: str, model: str, quick: bool):
    """The project settings (home created), ``model``'s input size and the fixed 645/160
    split of the LFPW folder (8 test faces for a quick run)."""
    from models.registry import create_model
    from realdata.splits import LFPW_N_TEST, split_face_folder
    from synthloop.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    size = int(create_model(model, num_points=68).input_size)
    train_set, test_set = split_face_folder(real, n_test=8 if quick else LFPW_N_TEST, seed=0)
    return settings, size, train_set, test_set


def lfpw_train_indices(real: str, quick: bool = False):
    """The folder indices of the split's training faces (as :func:`lfpw_split` splits), for
    requests that name real images by index, e.g. a refiner's (the test faces never reach it)."""
    from realdata.landmarks import read_landmark_folder
    from realdata.splits import LFPW_N_TEST, holdout_split

    n_folder = len(read_landmark_folder(real))
    return holdout_split(n_folder, 8 if quick else LFPW_N_TEST, 0)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[25, 100, 645])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", default=list("abcde"), choices=list(ARMS))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--n-source", type=int, default=4000, help="synthetic faces (arms b-d)")
    ap.add_argument("--transfer-fit", choices=TRANSFER_FIT_NAMES, default=TRANSFER_FIT_NAMES[0],
                    help="how the label transfer is fitted (models/transfer_fits.py)")
    ap.add_argument("--transfer-steps", type=int, default=2000, help="the mlp fit's steps")
    ap.add_argument("--syn-head68", action="store_true",
                    help="arm c: synthetic faces also train the 68 head, labeled by a transfer "
                    "fitted on the n real faces (synthloop/landmarks/syn_head68.py)")
    ap.add_argument("--pre-share", type=float, default=0.5,
                    help="arms c, e: share of --steps spent pre-training on synthetic faces alone")
    ap.add_argument("--real-fraction", type=float, default=0.5,
                    help="arm c: share of real faces in each joint syn+real batch")
    ap.add_argument("--da-trade-off", type=float, default=0.05,
                    help="arm d: weight of the DALN term (the Wing loss is ~0.1 in crop units; "
                         "at 1.0 DALN kept the model from learning the synthetic faces at all)")
    ap.add_argument("--distribution", help="the synthetic faces' scene distribution (JSON; "
                    "default: the built-in one), e.g. benchmarks/distributions/faces-lfpw-like.json")
    ap.add_argument("--source-batch", metavar="BATCH",
                    help="train the synthetic arms on this face batch (e.g. a refined one: "
                         "`synthloop refine`) instead of generating --n-source faces; use a "
                         "fresh SYNTHLOOP_HOME per batch, as runs are kept by name")
    ap.add_argument("--model", default="landmark_resnet_s")
    ap.add_argument("--ema", type=float, default=EMA_DECAY,
                    help="weight-average decay; 0 = score the online weights")
    ap.add_argument("--real", default=str(LFPW), help="images + .pts (split 645/160)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--name", default="landmark_label_efficiency",
                    help="results file name (JSON and plot) under benchmarks/results")
    a = ap.parse_args(argv)
    if a.quick:
        a.n, a.seeds, a.steps, a.batch_size, a.n_source, a.transfer_steps = [8], [0], 4, 4, 16, 5
    if not Path(a.real).is_dir():
        print(f"no real faces at {a.real}: this benchmark needs ../shared (LFPW)", file=sys.stderr)
        return 2

    import torch

    torch.set_num_threads(int(os.environ.get("SYNTHLOOP_BENCH_THREADS", "2")))
    from realdata.real_faces import load_real_faces

    settings, size, train_set, test_set = lfpw_split(a.real, a.model, a.quick)
    if a.quick:
        train_set = train_set.subset(list(range(16)))
    if {"ast", "cst"} & set(a.arms) and max(a.n) >= len(train_set):
        print(f"--n {max(a.n)}: the self-trained arms need unlabeled training faces (n below "
              f"{len(train_set)})", file=sys.stderr)
        return 2
    bench = Bench(a, settings, train_set, test_set, load_real_faces(train_set, size),
                  load_real_faces(test_set, size))
    if a.source_batch:
        if not (Path(a.source_batch) / "manifest.json").is_file():
            print(f"{a.source_batch}: not a batch folder (no manifest.json)", file=sys.stderr)
            return 2
        bench._batch = str(a.source_batch)
    rows = [r for seed in a.seeds for arm in a.arms for r in getattr(bench, f"arm_{arm}")(seed)]
    summary = []
    for arm in a.arms:
        for n in a.n:
            mine = [r for r in rows if r["n"] == n and r["arm"] == ARMS[arm]]
            io = [r["nme_io"] for r in mine]
            summary.append({"arm": ARMS[arm], "n": n, "seeds": len(mine),
                            "nme_io_median": round(float(np.median(io)), 2),
                            "nme_io_range": f"{min(io):.2f}-{max(io):.2f}",
                            "nme_ip_median": round(float(np.median([r["nme_ip"] for r in mine])), 2),
                            "failure_median": round(float(np.median([r["failure_010"] for r in mine])), 3),
                            "transfer_io_median": _median_of(mine, "transfer_nme_io"),
                            "train_minutes_median": round(float(np.median([r["train_minutes"] for r in mine])), 1)})
    print_table(summary, list(summary[0]))
    save(a.name + ("_quick" if a.quick else ""),
         {"machine": machine(), "args": vars(a), "rows": rows, "summary": summary})
    if not a.quick:  # after the results, so a plotting error loses no run
        _plot(summary, results_dir() / f"{a.name}.png")
    return 0


def _median_of(rows: list[dict], key: str) -> float | str:
    """Median of ``key`` over the rows that have it, rounded; "" where none has."""
    values = [r[key] for r in rows if key in r]
    return round(float(np.median(values)), 2) if values else ""


def _plot(summary: list[dict], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for arm in dict.fromkeys(s["arm"] for s in summary):
        mine = [s for s in summary if s["arm"] == arm]
        ax.plot([s["n"] for s in mine], [s["nme_io_median"] for s in mine], "o-", label=arm)
    ax.set_xscale("log")
    ns = sorted({s["n"] for s in summary})
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("labeled real faces")
    ax.set_ylabel("NME inter-ocular (%), 160 LFPW test faces")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
