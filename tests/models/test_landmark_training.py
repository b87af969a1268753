"""The landmark task through the one training loop: configs, named step outputs for every
DA method, heatmap DALN against an explicit SVD, geometry augmentation that moves the
points, minimum functionality on a toy dot dataset, exact resume, evaluation keys and
self-describing checkpoints. CPU, tiny hourglasses."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from models.augment import AugmentConfig, GeometryConfig, augment_landmarks
from models.checkpoint import load_checkpoint, save_checkpoint
from models.da_losses import HeatmapDALNLoss
from models.data import ArraySource
from models.evaluate import evaluate
from models.label_transfer import LabelTransfer
from models.predictor import LandmarkPredictor
from models.registry import create_method, list_methods, load_model, method_serves
from models.schedules import grl_coeff
from models.train import TrainConfig, build, make_optimizer, train, train_step

K = 3
TINY = {"channels": 16, "stacks": 2, "num_points": K}


def _dots(n, seed=0, k=K, bg=0, size=128):
    """Black (or grey) crops with one coloured Gaussian dot per landmark (red, green,
    blue, ...), dots 24 px or more from the border; points in pixel-centre coordinates."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(24, size - 24, (n, k, 2)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.full((n, size, size, 3), bg, np.float32)
    colours = np.eye(3)[np.arange(k) % 3]
    for i in range(n):
        for j in range(k):
            d2 = (xx - pts[i, j, 0]) ** 2 + (yy - pts[i, j, 1]) ** 2
            img[i] += np.exp(-d2 / (2 * 3.0 ** 2))[..., None] * colours[j] * 255
    return np.clip(img, 0, 255).astype(np.uint8), pts


@pytest.fixture(scope="module")
def toy():
    xs, ps = _dots(48, seed=0)
    xt, pt = _dots(48, seed=1, bg=40)
    src = ArraySource(xs, 8, seed=0, labels={"points": ps, "visible": np.ones((48, K), np.float32)})
    tgt = ArraySource(xt, 8, seed=1)
    val_s = src.gather(range(16))
    val_t = ArraySource(xt, 8, 0, labels={"points": pt}).gather(range(16))  # labels: benchmark only
    return src, tgt, val_s, val_t


def _cfg(method="daln", **kw):
    base = dict(task="landmarks", model="hourglass_s", model_kwargs=TINY, method=method,
                method_kwargs={"hidden": 16} if method == "dann" else {}, steps=12, batch_size=8,
                lr=1e-2, warmup=2, eval_every=6, ckpt_every=6, log_every=3, select="source_error")
    return TrainConfig(**{**base, **kw})


# --------------------------------------------------------------------------- configs


def test_config_checks_task_model_selector_and_options():
    cfg = _cfg(task_kwargs={"heatmap_weight": 0.5})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["task"] == "landmarks"
    assert TrainConfig().task == "gaze"  # the default is unchanged
    with pytest.raises(ValueError, match="landmarks"):
        TrainConfig(model="hourglass_s")  # a landmark model under the gaze task
    with pytest.raises(ValueError, match="gaze"):
        TrainConfig(task="landmarks", model="gaze_resnet_s")
    with pytest.raises(ValueError, match="select"):
        _cfg(select="snd")  # SND on K*H*W-long probability vectors is not offered
    with pytest.raises(TypeError, match="heatmap_wieght"):
        _cfg(task_kwargs={"heatmap_wieght": 0.5})
    with pytest.raises(TypeError, match="GazeTaskConfig fields: \\['coord'\\]"):
        TrainConfig(task_kwargs={"coord": "l1"})  # a landmark option under the gaze task
    with pytest.raises(ValueError, match="task"):
        TrainConfig(task="pose")


def test_array_source_carries_landmark_labels(toy):
    src = toy[0]
    b, again = src.batch(2), src.batch(2)
    assert b["image"].shape == (8, 3, 128, 128) and b["image"].dtype == torch.uint8
    assert b["points"].shape == (8, K, 2) and b["visible"].shape == (8, K)
    assert torch.equal(b["points"], again["points"])
    with pytest.raises(ValueError, match="points"):
        ArraySource(np.zeros((4, 8, 8), np.uint8), 2, 0, labels={"points": np.zeros((3, K, 2))})


# --------------------------------------------------------------------------- DALN on heatmaps


def _head_and_features(seed=0):
    g = torch.Generator().manual_seed(seed)
    head = nn.Conv2d(2, 3, 1).double()
    with torch.no_grad():
        head.weight.copy_(torch.randn(3, 2, 1, 1, generator=g, dtype=torch.float64))
        head.bias.copy_(torch.randn(3, generator=g, dtype=torch.float64))
    f_s = torch.randn(4, 2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    f_t = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    return head, f_s, f_t


def _nwd_svd(head, f_s, f_t, pool=1):
    """mean_k (||P_s,k||_* - ||P_t,k||_*) / B_t by explicit SVD of each B x HW matrix."""
    def probs(f):
        p = torch.softmax(head(f).flatten(2), -1)  # (B, K, HW)
        if pool > 1:
            b, k, _ = p.shape
            p = p.view(b, k, 4 // pool, pool, 4 // pool, pool).sum((3, 5)).flatten(2)
        return p
    ps, pt = probs(f_s), probs(f_t)
    terms = [torch.linalg.svdvals(ps[:, k]).sum() - torch.linalg.svdvals(pt[:, k]).sum()
             for k in range(ps.shape[1])]
    return torch.stack(terms).mean() / f_t.shape[0]


@pytest.mark.parametrize("pool", [1, 2])
def test_heatmap_daln_equals_explicit_svd(pool):
    head, f_s, f_t = _head_and_features()
    loss, diag = HeatmapDALNLoss(pool)(head, f_s, f_t, coeff=1.0)
    ref = _nwd_svd(head, f_s, f_t, pool).item()
    assert ref != 0.0
    assert loss.item() == pytest.approx(-ref, rel=1e-5)
    assert diag["discrepancy"].item() == pytest.approx(ref, rel=1e-5)


def test_heatmap_daln_gradients_head_maximises_features_minimise():
    coeff = 0.3
    head, f_s, f_t = _head_and_features(seed=1)
    ref = _nwd_svd(head, f_s, f_t)
    g_w, g_fs, g_ft = torch.autograd.grad(ref, (head.weight, f_s, f_t))
    loss, _ = HeatmapDALNLoss()(head, f_s, f_t, coeff)
    loss.backward()
    # the head (critic) descends -NWD, i.e. ascends NWD; the features get the reversed,
    # scaled gradient, so they descend NWD
    assert torch.allclose(head.weight.grad, -g_w, atol=1e-6)
    assert torch.allclose(f_s.grad, coeff * g_fs, atol=1e-6)
    assert torch.allclose(f_t.grad, coeff * g_ft, atol=1e-6)


def test_daln_method_dispatches_on_the_model():
    torch.manual_seed(0)
    model, method = build(_cfg("daln"))
    out = model(torch.rand(4, 3, 128, 128))
    feats = method.features_of(out)
    assert feats.shape == out.head_features.shape  # spatial, not the pooled vector
    loss, diag = method.transfer_loss(model, *feats.split([2, 2]), 1.0)
    loss.backward()
    assert model.heads[-1].weight.grad is not None and "discrepancy" in diag
    assert create_method("dann", feature_dim=16).features_of(out) is out.features


# --------------------------------------------------------------------------- train_step


@pytest.mark.parametrize("method", [m for m in list_methods() if method_serves(m, "landmarks")])
def test_train_step_returns_named_losses(method, toy):
    src, tgt, _, _ = toy
    cfg = _cfg(method, task_kwargs={"heatmap_weight": 0.1})
    model, m = build(cfg)
    opt = make_optimizer(model, m, cfg)
    out = train_step(model, m, opt, src.batch(0), tgt.batch(0), 5, cfg)
    want = {"loss", "landmarks", "coord", "coord_inter", "heatmap", "transfer", "src_nme_crop",
            "grl_coeff", "lr"}
    want |= {"dann": {"domain_acc"}, "daln": {"discrepancy"}}.get(method, set())
    assert want <= set(out), want - set(out)
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    assert out["loss"] == pytest.approx(out["landmarks"] + cfg.trade_off * out["transfer"], rel=1e-5)
    assert out["grl_coeff"] == grl_coeff(5, cfg.steps, cfg.grl_alpha)


@pytest.mark.parametrize("method", ["dann", "daln"])
def test_transfer_reaches_the_backbone_only_after_warm_start(method, toy):
    src, tgt, _, _ = toy

    def grads(trade_off, step):
        cfg = _cfg(method, trade_off=trade_off, augment=False)
        model, m = build(cfg)
        train_step(model, m, make_optimizer(model, m, cfg), src.batch(0), tgt.batch(0), step, cfg)
        return {k: p.grad.clone() for k, p in model.named_parameters()}

    assert not torch.allclose(grads(1.0, 8)["stem.0.weight"], grads(0.0, 8)["stem.0.weight"])
    a, b = grads(1.0, 0), grads(0.0, 0)  # reversal weight 0 at step 0
    assert torch.equal(a["stem.0.weight"], b["stem.0.weight"])
    if method == "daln":  # ... while the critic (the last heatmap head) is trained already
        assert not torch.equal(a["heads.1.weight"], b["heads.1.weight"])


# --------------------------------------------------------------------------- augmentation


def _centroids(images):
    """Brightness-weighted centroid per image, (x, y) pixel-centre coordinates."""
    w = images.sum(1)  # (B, H, W)
    ys, xs = torch.meshgrid(torch.arange(w.shape[1]), torch.arange(w.shape[2]), indexing="ij")
    tot = w.sum((1, 2))
    return torch.stack([(w * xs).sum((1, 2)) / tot, (w * ys).sum((1, 2)) / tot], -1)


def test_geometry_moves_points_with_the_image():
    imgs, pts = _dots(6, seed=3, k=1)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()
    p = torch.from_numpy(pts)
    before = _centroids(x.float())
    assert (before - p[:, 0]).abs().max() < 0.05  # the dots are where the labels say
    geo = GeometryConfig(max_scale=0.1, max_translate=6.0, p=1.0)
    gen = torch.Generator().manual_seed(0)
    y, q = augment_landmarks(x, gen, p[:4], geo, AugmentConfig.off())  # 4 labeled of 6
    assert y.shape == x.shape and q.shape == (4, 1, 2)
    assert (q - p[:4]).abs().max() > 1.0  # it moved them
    assert (_centroids(y)[:4] - q[:, 0]).abs().max() < 0.1
    y2, q2 = augment_landmarks(x, torch.Generator().manual_seed(0), p[:4], geo, AugmentConfig.off())
    assert torch.equal(y, y2) and torch.equal(q, q2)
    # p = 0: exact identity (no resampling)
    y0, q0 = augment_landmarks(x, gen, p, GeometryConfig.off(), AugmentConfig.off())
    assert torch.equal(q0, p) and torch.allclose(y0, x.float() / 255, atol=1e-6)


# --------------------------------------------------------------------------- the loop


def test_short_run_learns_the_toy_dots(toy, tmp_path):
    src, tgt, val_s, val_t = toy
    cfg = _cfg("source_only", steps=30, eval_every=30, ckpt_every=30, log_every=5, augment=False)
    before = evaluate(build(cfg)[0], val_s)["source_nme_crop"]
    res = train(cfg, src, None, tmp_path, val_source=val_s)
    first, last = res.history[0]["loss"], res.history[-1]["loss"]
    assert last < 0.6 * first, (first, last)
    assert res.final_metrics["source_nme_crop"] < 0.8 * before, (before, res.final_metrics)


class _RaiseAt:
    def __init__(self, inner, at):
        self.inner, self.at, self.batch_size = inner, at, inner.batch_size

    def batch(self, step):
        if step == self.at:
            raise KeyboardInterrupt
        return self.inner.batch(step)


def _states(path):
    ck = load_checkpoint(path)
    return ck, {**{f"model.{k}": v for k, v in ck["model_state"].items()},
                **{f"method.{k}": v for k, v in ck["method_state"].items()}}


def test_resume_reproduces_the_uninterrupted_run(toy, tmp_path):
    """DALN on heatmaps with geometry augmentation: 8 steps in one go == stopped in
    step 6 (last.pt at 4) + resumed, bit for bit; the checkpoints record the task."""
    src, tgt, val_s, val_t = toy
    cfg = _cfg("daln", select="entropy", steps=8, eval_every=4, ckpt_every=4, log_every=2)
    full = train(cfg, src, tgt, tmp_path / "full", val_source=val_s, val_target=val_t)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, _RaiseAt(src, 6), tgt, tmp_path / "cut", val_source=val_s, val_target=val_t)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["step"] == 4
    resumed = train(cfg, src, tgt, tmp_path / "cut", val_source=val_s, val_target=val_t)
    ck_a, a = _states(tmp_path / "full" / "last.pt")
    ck_b, b = _states(tmp_path / "cut" / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history == full.history
    assert (resumed.best_step, resumed.best_score) == (full.best_step, full.best_score)
    assert ck_a["task"] == "landmarks" and ck_a["train_config"]["task"] == "landmarks"
    assert load_checkpoint(tmp_path / "full" / "best.pt")["task"] == "landmarks"
    final = full.final_metrics
    for key in ("source_nme_crop", "target_entropy", "target_im", "target_bnm",
                "target_snd_features", "target_nme_crop", "discrepancy", "src_nme_crop"):
        assert math.isfinite(final[key]), key
    assert 0 < final["target_entropy"] <= final["target_max_entropy"]
    # a landmark checkpoint cannot warm-start a run of another task or model
    with pytest.raises(ValueError, match="model"):
        train(TrainConfig(steps=1, batch_size=8, select="source_error"), src, None, tmp_path / "g",
              val_source=val_s, init_weights=tmp_path / "full" / "last.pt")


def test_evaluate_68_points_and_predictor(tmp_path):
    torch.manual_seed(0)
    cfg = _cfg("source_only", model_kwargs={"channels": 8, "stacks": 1, "num_points": 68})
    model = build(cfg)[0].eval()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 128, 128), generator=g, dtype=torch.uint8)
    pts = 30 + 60 * torch.rand(6, 68, 2, generator=g)
    res = evaluate(model, {"image": images, "points": pts}, {"image": images}, chunk=4)
    assert {"source_nme_crop", "source_nme_io", "target_entropy", "target_bnm"} <= set(res)
    assert res["target_max_entropy"] == pytest.approx(math.log(32 * 32))
    path = save_checkpoint(tmp_path / "m.pt", model, None, None, 0, cfg.to_dict())
    net = load_model(path)
    with torch.no_grad():
        assert torch.equal(LandmarkPredictor(net)(images), net(images).coords)
        lt = LabelTransfer(num_dense=68, num_out=5, hidden=8)
        assert LandmarkPredictor(net, lt).predict_batches(images, 4).shape == (6, 5, 2)


def test_resuming_a_checkpoint_from_before_tasks_existed(tmp_path):
    """A gaze last.pt written before the task fields existed resumes as the gaze task: from
    its own step (not from scratch), to the weights of a run never interrupted."""
    x = np.random.default_rng(0).integers(0, 255, (16, 36, 60), dtype=np.uint8)
    y = np.zeros((16, 2), np.float32)
    cfg = TrainConfig(model_kwargs={"widths": (4, 8, 8, 8), "depths": (1, 1, 1, 1),
                                    "feature_dim": 16}, steps=2, batch_size=4, warmup=0,
                      eval_every=2, ckpt_every=1, log_every=1, select="source_error")
    src = ArraySource(x, 4, 0, labels={"pitchyaw": y})
    val = src.gather(range(4))
    full = train(cfg, src, None, tmp_path / "full", val_source=val)
    with pytest.raises(KeyboardInterrupt):  # stopped before step 2; last.pt holds step 1
        train(cfg, _RaiseAt(src, 1), None, tmp_path / "old", val_source=val)
    ck = torch.load(tmp_path / "old" / "last.pt", weights_only=True)
    assert ck["step"] == 1
    for key in ("task", "task_kwargs"):
        ck["train_config"].pop(key)
    ck["train_config"].update(reg="l1", reg_alpha=0.1)  # then top-level fields
    torch.save(ck, tmp_path / "old" / "last.pt")
    calls = []
    res = train(cfg, src, None, tmp_path / "old", val_source=val,
                callback=lambda step, m: calls.append(step))
    assert calls == [2]  # only step 2 ran: resumed at 1, not started over
    assert res.steps == 2 and res.history == full.history
    ck_a, a = _states(tmp_path / "full" / "last.pt")
    ck_b, b = _states(tmp_path / "old" / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ck_b["step"] == 2 and ck_b["train_config"]["task"] == "gaze"


def test_the_face_augmentation_is_the_task_s_when_asked_for(toy):
    """``augment="faces"``: the task runs models.landmark_augment with the config's mirror
    (points and visibility move with the pixels); a mirror that is no involution is refused."""
    import torch

    from models.landmark_augment import FaceAugmentConfig, augment_faces
    from models.registry import create_task

    src, *_ = toy
    batch = src.batch(0)
    identity = list(range(K))  # the dots are told apart by colour, not by side
    cfg = _cfg("source_only", task_kwargs={"augment": "faces", "mirror": identity})
    task = create_task("landmarks")
    labels = task.labels(batch, torch.device("cpu"))
    x, got = task.augment(batch["image"], labels, torch.Generator().manual_seed(3), cfg)
    want = augment_faces(batch["image"], torch.Generator().manual_seed(3), labels["points"],
                         labels["visible"], identity, FaceAugmentConfig())
    assert torch.equal(x, want.images) and torch.equal(got["points"], want.points)
    assert not torch.allclose(got["points"], labels["points"])  # something moved
    with pytest.raises(ValueError, match="own inverse"):
        _cfg("source_only", task_kwargs={"augment": "faces", "mirror": [1, 2, 0]})
