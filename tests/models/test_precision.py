"""bf16 on the CPU only where the CPU has it: a recipe asking for it trains in float32
elsewhere (emulated bf16 was 11x slower), and says so once."""

import logging

import torch

from models import precision
from models.train import _mixed_precision
from models.train_config import TrainConfig

CPU = torch.device("cpu")


def test_the_override_decides_both_ways(monkeypatch):
    monkeypatch.setenv(precision.ENV_VAR, "1")
    assert precision.cpu_has_native_bf16()
    monkeypatch.setenv(precision.ENV_VAR, "0")
    assert not precision.cpu_has_native_bf16()
    monkeypatch.delenv(precision.ENV_VAR)
    assert precision.cpu_has_native_bf16() == precision._detected()


def test_cpu_amp_is_honoured_only_with_native_bf16(monkeypatch):
    cfg = TrainConfig(cpu_amp=True)
    monkeypatch.setenv(precision.ENV_VAR, "1")
    assert _mixed_precision(cfg, CPU)
    monkeypatch.setenv(precision.ENV_VAR, "0")
    assert not _mixed_precision(cfg, CPU)
    assert not _mixed_precision(TrainConfig(cpu_amp=False), CPU)


def test_a_cpu_without_bf16_says_it_trains_in_float32(monkeypatch, caplog):
    monkeypatch.setenv(precision.ENV_VAR, "0")
    with caplog.at_level(logging.WARNING, logger="models.precision"):
        assert not precision.use_bf16(CPU, True, "landmarks training")
    assert "landmarks training: this CPU has no native bf16" in caplog.text
    caplog.clear()
    assert not precision.use_bf16(CPU, False, "x") and not caplog.text  # not asked: silent
    assert precision.use_bf16(torch.device("cuda"), True, "x")  # a GPU: always as asked
