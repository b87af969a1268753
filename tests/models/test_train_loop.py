"""The training loop: named step outputs, gradient identities, exact resume, determinism,
checkpoints and step-keyed batch sources. CPU, tiny models, a few seconds in all."""

import math
import os
import signal

import numpy as np
import pytest
import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.data import ArraySource, OnTheFlySource, ShardSource
from models.evaluate import evaluate
from models.registry import list_methods, load_model
from models.schedules import grl_coeff
from models.train import TrainConfig, build, lr_at, make_optimizer, train, train_step
from realdata.splits import holdout_size, holdout_split
from synthloop.errors import DataFormatError

TINY = {"widths": (4, 8, 8, 8), "depths": (1, 1, 1, 1), "feature_dim": 16}
BASE_KEYS = {"loss", "gaze", "ce_pitch", "ce_yaw", "reg_pitch", "reg_yaw", "transfer",
             "src_angular_error_deg", "grl_coeff", "lr"}
METHOD_KEYS = {"source_only": set(), "dann": {"domain_acc"}, "daln": {"discrepancy"}}



def _cfg(method="dann", **kw):
    base = dict(model_kwargs=TINY, method=method,
                method_kwargs={"hidden": 16} if method == "dann" else {},
                steps=20, batch_size=8, warmup=2, eval_every=5, ckpt_every=10, log_every=5)
    return TrainConfig(**{**base, **kw})


def _arrays(n=64, seed=0, bright=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 200, (n, 36, 60), dtype=np.uint8) + np.uint8(bright)
    pitchyaw = ((rng.random((n, 2)) - 0.5) * 0.8).astype(np.float32)
    return images, pitchyaw


def _sources(batch=8, target_seed=1, target_bright=40):
    (xs, ys), (xt, yt) = _arrays(seed=0), _arrays(seed=target_seed, bright=target_bright)
    src, tgt = ArraySource(xs, batch, seed=0, labels={"pitchyaw": ys}), ArraySource(xt, batch, seed=1)
    val_s = src.gather(range(32))
    val_t = ArraySource(xt, batch, 0, labels={"pitchyaw": yt}).gather(range(32))  # labels: benchmark only
    return src, tgt, val_s, val_t


def _states(path):
    ck = load_checkpoint(path)
    return ck, {**{f"model.{k}": v for k, v in ck["model_state"].items()},
                **{f"method.{k}": v for k, v in ck["method_state"].items()}}


def _assert_same_states(a, b):
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, diff


def _optimizer_tensors(ck):
    return [t for s in ck["optimizer_state"]["state"].values() for t in s.values()]


# --------------------------------------------------------------------------- train_step


@pytest.mark.parametrize("method", list_methods())
def test_train_step_returns_named_losses(method):
    cfg = _cfg(method)
    model, m = build(cfg)
    opt = make_optimizer(model, m, cfg)
    src, tgt, _, _ = _sources()
    out = train_step(model, m, opt, src.batch(3), tgt.batch(3), 7, cfg)
    assert BASE_KEYS | METHOD_KEYS.get(method, set()) <= set(out)
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    # the total is what the docstring says, and the schedules are the pure functions
    assert out["loss"] == pytest.approx(out["gaze"] + cfg.trade_off * out["transfer"], rel=1e-5)
    assert out["lr"] == lr_at(7, cfg)
    assert out["grl_coeff"] == grl_coeff(7, cfg.steps, cfg.grl_alpha)
    if method == "source_only":
        assert out["transfer"] == 0.0


def _grads_after_one_step(method, trade_off, step, **sources):
    cfg = _cfg(method, trade_off=trade_off, augment=False)
    model, m = build(cfg)
    opt = make_optimizer(model, m, cfg)
    src, tgt, _, _ = _sources(**sources)
    train_step(model, m, opt, src.batch(0), tgt.batch(0), step, cfg)
    return ({k: p.grad.clone() for k, p in model.named_parameters()},
            {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None})


@pytest.mark.parametrize("method", ["dann", "daln"])
def test_transfer_loss_reaches_the_feature_extractor(method):
    """The reference is the same method at trade_off=0: the source-only objective on the
    same concatenated forward pass. (A literal source_only run normalises its batch
    without the target images, so its gradients differ for BatchNorm's sake alone.)"""
    ref, _ = _grads_after_one_step(method, 0.0, step=10)
    da, extra = _grads_after_one_step(method, 1.0, step=10)
    assert not torch.allclose(da["stem.0.weight"], ref["stem.0.weight"])
    # at step 0 the warm-start reversal weight is 0: the features get exactly the task
    # gradient, while the critic (discriminator / DALN's head) is already trained
    ref0, _ = _grads_after_one_step(method, 0.0, step=0)
    da0, extra0 = _grads_after_one_step(method, 1.0, step=0)
    assert torch.equal(da0["stem.0.weight"], ref0["stem.0.weight"])
    assert torch.equal(da0["bottleneck.0.weight"], ref0["bottleneck.0.weight"])
    if method == "dann":
        assert extra0 and all(g.abs().sum() > 0 for g in extra0.values())
    else:
        assert not torch.equal(da0["fc_pitch.weight"], ref0["fc_pitch.weight"])


def test_source_only_ignores_trade_off_and_target():
    other_target = {"target_seed": 7, "target_bright": 0}  # other images, other brightness
    a, _ = _grads_after_one_step("source_only", 0.0, step=10)
    _assert_same_states(a, _grads_after_one_step("source_only", 5.0, step=10)[0])
    _assert_same_states(a, _grads_after_one_step("source_only", 0.0, step=10, **other_target)[0])
    # the swap is one a method that uses the target does see
    d, _ = _grads_after_one_step("dann", 1.0, step=10)
    d2, _ = _grads_after_one_step("dann", 1.0, step=10, **other_target)
    assert not torch.equal(d["stem.0.weight"], d2["stem.0.weight"])


# --------------------------------------------------------------------------- the loop


class _Interrupting:
    """Wraps a source: at ``batch(at)`` sends SIGINT to this process (what Ctrl-C does)
    or raises KeyboardInterrupt right there, in the middle of a step."""

    def __init__(self, inner, at, how):
        self.inner, self.at, self.how = inner, at, how
        self.batch_size = inner.batch_size

    def batch(self, step):
        if step == self.at:
            if self.how == "sigint":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise KeyboardInterrupt
        return self.inner.batch(step)


@pytest.mark.parametrize("how,at,saved_step", [("sigint", 9, 10), ("sigint", 13, 14),
                                               ("raise", 15, 10)])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, how, at, saved_step):
    """20 steps in one go == interrupted + resumed, bit for bit (DANN: discriminator and
    optimiser state included). SIGINT stops at the next step boundary and saves
    last.pt there; a KeyboardInterrupt mid-step keeps the previous last.pt."""
    cfg = _cfg("dann")
    src, tgt, val_s, val_t = _sources()
    full = train(cfg, src, tgt, tmp_path / "full", val_source=val_s, val_target=val_t)

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when started from a background shell
    with pytest.raises(KeyboardInterrupt):
        train(cfg, _Interrupting(src, at, how), tgt, tmp_path / "cut", val_source=val_s,
              val_target=val_t)
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["step"] == saved_step
    resumed = train(cfg, src, tgt, tmp_path / "cut", val_source=val_s, val_target=val_t)

    ck_a, a = _states(tmp_path / "full" / "last.pt")
    ck_b, b = _states(tmp_path / "cut" / "last.pt")
    assert ck_a["step"] == ck_b["step"] == 20
    _assert_same_states(a, b)
    oa, ob = _optimizer_tensors(ck_a), _optimizer_tensors(ck_b)
    assert len(oa) == len(ob) > 0 and all(torch.equal(x, y) for x, y in zip(oa, ob, strict=True))
    assert resumed.history == full.history
    assert (resumed.best_step, resumed.best_score) == (full.best_step, full.best_score)


def test_resume_refuses_a_different_config(tmp_path):
    src, tgt, val_s, val_t = _sources()
    train(_cfg("dann", steps=4, ckpt_every=2), src, tgt, tmp_path, val_target=val_t)
    with pytest.raises(ValueError, match="trade_off"):
        train(_cfg("dann", steps=4, trade_off=0.5), src, tgt, tmp_path, val_target=val_t)
    # resume=False starts over instead
    res = train(_cfg("dann", steps=4, trade_off=0.5), src, tgt, tmp_path, val_target=val_t,
                resume=False)
    assert res.steps == 4


def test_init_weights_warm_start_the_model_but_not_the_optimiser_or_step(tmp_path):
    """A fresh run given ``init_weights`` starts from that checkpoint's model weights;
    its optimiser, schedule, step and DA method start anew. The run's learning rate is
    effectively 0 (1e-12, no weight decay), so its weights after 3 steps are the ones it
    started from."""
    src, tgt, val_s, val_t = _sources()
    # the checkpoint: another seed, trained 6 steps (neither run's seeded initialisation)
    init_cfg = _cfg("dann", steps=6, seed=1, eval_every=6, ckpt_every=6)
    train(init_cfg, src, tgt, tmp_path / "init", val_source=val_s, val_target=val_t)
    init = load_checkpoint(tmp_path / "init" / "last.pt")
    assert init["step"] == 6

    cfg = _cfg("dann", steps=3, lr=1e-12, weight_decay=0.0, warmup=0, eval_every=3,
               ckpt_every=3, log_every=1)
    res = train(cfg, src, tgt, tmp_path / "warm", val_source=val_s, val_target=val_t,
                init_weights=tmp_path / "init" / "last.pt")
    warm = load_checkpoint(tmp_path / "warm" / "last.pt")
    fresh_model, fresh_method = build(cfg)  # the seeded initialisation of this config
    params = [name for name, _ in fresh_model.named_parameters()]  # not BN running stats
    for name in params:
        torch.testing.assert_close(warm["model_state"][name], init["model_state"][name],
                                   rtol=0, atol=1e-8, msg=name)
    cold = fresh_model.state_dict()
    assert any(not torch.allclose(cold[n], init["model_state"][n]) for n in params)
    # the step, the schedule and the optimiser's own step counts start at 0, not at 6
    assert warm["step"] == 3 and res.steps == 3
    assert [h["step"] for h in res.history] == [1, 2, 3]
    assert res.history[0]["lr"] == lr_at(0, cfg) != lr_at(6, cfg)  # the schedule restarted
    assert {float(s["step"]) for s in init["optimizer_state"]["state"].values()} == {6.0}
    assert {float(s["step"]) for s in warm["optimizer_state"]["state"].values()} == {3.0}
    # the DA method (the discriminator) is not taken from the checkpoint either
    fresh = fresh_method.state_dict()
    assert warm["method_state"].keys() == fresh.keys() == init["method_state"].keys()
    for name, _ in fresh_method.named_parameters():
        torch.testing.assert_close(warm["method_state"][name], fresh[name], rtol=0, atol=1e-8)
        assert not torch.allclose(warm["method_state"][name], init["method_state"][name])


def _run(tmp_path, name, **kw):
    src, tgt, val_s, val_t = _sources()
    cfg = _cfg("daln", steps=5, eval_every=5, **kw)
    res = train(cfg, src, tgt, tmp_path / name, val_source=val_s, val_target=val_t)
    return res, _states(tmp_path / name / "last.pt")[1]


def test_deterministic_given_the_seed_and_seed_sensitive(tmp_path):
    ra, a = _run(tmp_path, "a")
    rb, b = _run(tmp_path, "b")
    _assert_same_states(a, b)
    assert ra.history == rb.history
    _, c = _run(tmp_path, "c", seed=1)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_train_reports_metrics_selects_and_calls_back(tmp_path):
    src, tgt, val_s, val_t = _sources()
    calls = []
    res = train(_cfg("dann", steps=10), src, tgt, tmp_path, val_source=val_s, val_target=val_t,
                callback=lambda step, m: calls.append((step, m)))
    assert [s for s, _ in calls] == [5, 10] and [h["step"] for h in res.history] == [5, 10]
    final = res.final_metrics
    for k in ("source_angular_error_deg", "target_entropy", "target_im", "target_bnm",
              "target_snd", "target_angular_error_deg", "domain_acc", "loss"):
        assert math.isfinite(final[k]), k
    assert res.best_step in (5, 10)
    assert res.best_score == min(h["target_entropy"] for h in res.history)
    assert load_checkpoint(tmp_path / "best.pt")["step"] == res.best_step
    assert res.samples_per_s > 0 and res.checkpoint_dir == tmp_path
    with pytest.raises(ValueError, match="val_target"):
        train(_cfg("dann"), src, tgt, tmp_path / "x")  # entropy selection needs target images


def test_config_round_trip():
    cfg = _cfg("dann", model_kwargs={"widths": [4, 8, 8, 8], "depths": (1, 1, 1, 1)})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(TypeError, match="bogus"):
        TrainConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError):
        TrainConfig(select="target_angular_error_deg")  # never a selection criterion


# --------------------------------------------------------------------------- checkpoints


def _trained_model():
    cfg = _cfg("dann")
    model, m = build(cfg)
    opt = make_optimizer(model, m, cfg)
    src, tgt, _, _ = _sources()
    for s in range(3):
        train_step(model, m, opt, src.batch(s), tgt.batch(s), s + 5, cfg)
    return cfg, model, m, opt


def test_load_model_round_trip(tmp_path):
    cfg, model, m, opt = _trained_model()
    save_checkpoint(tmp_path / "last.pt", model, opt, m, 3, cfg.to_dict())
    x = torch.from_numpy(_arrays(16, seed=5)[0]).unsqueeze(1)
    model.eval()
    with torch.no_grad():
        want = model(x)
        got = load_model(tmp_path / "last.pt")(x)  # the caller never names the class
    for a, b in zip(want, got, strict=True):
        assert torch.equal(a, b)
    # a run folder resolves to best.pt when there is one, else last.pt
    torch.manual_seed(1)
    other = build(_cfg("dann", seed=1))[0]
    save_checkpoint(tmp_path / "best.pt", other, None, None, 2, cfg.to_dict())
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path)(x).pitchyaw, other.eval()(x).pitchyaw)
        (tmp_path / "best.pt").unlink()
        assert torch.equal(load_model(tmp_path)(x).pitchyaw, want.pitchyaw)


def test_bad_checkpoints_raise_data_format_error_naming_the_file(tmp_path):
    cfg, model, m, opt = _trained_model()
    good = save_checkpoint(tmp_path / "good.pt", model, opt, m, 3, cfg.to_dict())
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": model.state_dict()}, foreign)
    for p in (garbage, truncated, foreign, tmp_path / "missing.pt"):
        with pytest.raises(DataFormatError) as e:
            load_model(p)
        assert p.name in str(e.value) and e.value.path == p
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(DataFormatError, match="best.pt or last.pt"):
        load_model(empty)
    # a corrupt last.pt stops a resume loudly instead of silently starting over
    src, tgt, _, val_t = _sources()
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"\0" * 100)
    with pytest.raises(DataFormatError, match="last.pt"):
        train(cfg, src, tgt, run, val_target=val_t)


# --------------------------------------------------------------------------- sources


@pytest.fixture(scope="module")
def gaze_batch(tmp_path_factory):
    from synth.generate import generate_batch
    from synth.shards import BatchReader

    path = tmp_path_factory.mktemp("data") / "b512"
    generate_batch(path, n=512, seed=0)
    return BatchReader(path)


def _check_step_keyed(source, labeled=True):
    a, a2, b = source.batch(3), source.batch(3), source.batch(4)
    assert a["image"].dtype == torch.uint8 and a["image"].shape == (source.batch_size, 1, 36, 60)
    assert torch.equal(a["image"], a2["image"])
    assert not torch.equal(a["image"], b["image"])
    if labeled:
        assert a["pitchyaw"].dtype == torch.float32 and a["pitchyaw"].shape == (source.batch_size, 2)
        assert torch.equal(a["pitchyaw"], a2["pitchyaw"])
    else:
        assert "pitchyaw" not in a


def test_shard_source_is_step_keyed_and_labels_match(gaze_batch):
    src = ShardSource(gaze_batch, 16, seed=0)
    _check_step_keyed(src)
    assert not torch.equal(src.batch(3)["image"], ShardSource(gaze_batch, 16, seed=1).batch(3)["image"])
    meta = gaze_batch.metadata
    keep, hold = holdout_split(len(gaze_batch), holdout_size(len(gaze_batch), 0.25), seed=0)
    val = ShardSource(gaze_batch, 16, 0, indices=hold).gather([0, 5])
    assert np.array_equal(val["image"][:, 0].numpy(), gaze_batch.images(hold[[0, 5]]))
    np.testing.assert_allclose(val["pitchyaw"].numpy(),
                               meta[["pitch", "yaw"]].to_numpy()[hold[[0, 5]]], rtol=1e-6)


def test_array_source_is_step_keyed():
    x, y = _arrays(40)
    _check_step_keyed(ArraySource(x, 8, seed=0, labels={"pitchyaw": y}))
    _check_step_keyed(ArraySource(x, 8, seed=0), labeled=False)
    _check_step_keyed(ArraySource(x[:, None], 8, seed=0), labeled=False)  # (N, 1, H, W) too
    big = ArraySource(x[:5], 8, seed=0).batch(0)  # batch larger than the set: with replacement
    assert big["image"].shape[0] == 8


def test_on_the_fly_source_is_step_keyed(gaze_batch):
    from synth.eye_generator import chunk_seed, sample_scenes

    src = OnTheFlySource(gaze_batch.distribution, 8, seed=0)
    _check_step_keyed(src)
    scenes = sample_scenes(gaze_batch.distribution, 8, chunk_seed(0, 3))
    np.testing.assert_allclose(src.batch(3)["pitchyaw"][:, 0].numpy(), scenes["gaze_pitch"], rtol=1e-6)


def test_short_source_only_run_learns(gaze_batch, tmp_path):
    """Minimum functionality on rendered eyes: held-out source error falls."""
    keep, hold = holdout_split(len(gaze_batch), holdout_size(len(gaze_batch), 0.25), seed=0)
    src = ShardSource(gaze_batch, 32, seed=0, indices=keep)
    val = ShardSource(gaze_batch, 32, 0, indices=hold).gather(range(len(hold)))
    cfg = TrainConfig(steps=120, batch_size=32, lr=1e-2, warmup=5, eval_every=40, ckpt_every=120,
                      log_every=40, select="source_error")
    before = evaluate(build(cfg)[0], val)["source_angular_error_deg"]
    res = train(cfg, src, None, tmp_path, val_source=val)
    after = res.final_metrics["source_angular_error_deg"]
    assert after < 0.85 * before, (before, after)
    assert res.best_score <= after


def test_gaze_loss_options_are_task_kwargs_and_old_configs_read_back():
    assert TrainConfig(task_kwargs={"reg": "mse", "reg_alpha": 1.0}).task_kwargs["reg"] == "mse"
    with pytest.raises(ValueError, match="reg must be"):
        TrainConfig(task_kwargs={"reg": "huber"})
    # configs saved when reg/reg_alpha were top-level fields: defaults vanish, others move
    old = {**TrainConfig().to_dict(), "reg": "l1", "reg_alpha": 0.1}
    old.pop("task_kwargs")
    assert TrainConfig.from_dict(old) == TrainConfig()
    old.update(reg="mse")
    assert TrainConfig.from_dict(old).task_kwargs == {"reg": "mse"}


def test_cpu_amp_trains_in_bf16_and_resumes_either_way(tmp_path):
    """``cpu_amp``: bf16 autocast and channels_last on the CPU; the run converges like
    fp32 would (finite losses) and a run may resume with it switched."""
    src, tgt, val_s, val_t = _sources()
    res = train(_cfg("dann", steps=10, cpu_amp=True), src, tgt, tmp_path, val_source=val_s,
                val_target=val_t)
    assert all(math.isfinite(h["loss"]) for h in res.history)
    ck = load_checkpoint(tmp_path / "last.pt")
    assert ck["step"] == 10 and all(v.dtype == torch.float32 for v in ck["model_state"].values()
                                    if v.is_floating_point())  # weights stay fp32
    # the same run read back without cpu_amp: accepted as the same config (resume-free)
    again = train(_cfg("dann", steps=10), src, tgt, tmp_path, val_source=val_s, val_target=val_t)
    assert again.steps == 10
