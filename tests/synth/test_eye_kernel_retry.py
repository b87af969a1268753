"""The ahead-of-time compile of the eye renderer is tried again once when it fails (the
export fails now and then inside a Dask worker), and gives up after that."""

import pytest
import torch

from synth import eye_kernel


def _flaky_export(failures):
    calls = []

    def export(module, example, strict):
        calls.append(1)
        if len(calls) <= failures:
            raise RuntimeError("We found a fake tensor in the exported program constant's list")
        return "exported"
    return export, calls


def _package(exported, package_path):
    assert exported == "exported"
    with open(package_path, "wb") as fh:
        fh.write(b"package")


def test_a_failed_compile_is_tried_again_once(tmp_path, monkeypatch, capsys):
    export, calls = _flaky_export(failures=1)
    monkeypatch.setattr(torch.export, "export", export)
    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", _package)
    path = tmp_path / "eye-render-x.pt2"
    eye_kernel._compile_into(path, lambda *a: a, ())
    assert path.read_bytes() == b"package" and len(calls) == 2
    assert "trying again" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left


def test_a_compile_that_keeps_failing_raises(tmp_path, monkeypatch):
    export, calls = _flaky_export(failures=eye_kernel.COMPILE_ATTEMPTS)
    monkeypatch.setattr(torch.export, "export", export)
    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", _package)
    with pytest.raises(RuntimeError, match="fake tensor"):
        eye_kernel._compile_into(tmp_path / "eye-render-x.pt2", lambda *a: a, ())
    assert len(calls) == eye_kernel.COMPILE_ATTEMPTS
    assert not (tmp_path / "eye-render-x.pt2").exists()
