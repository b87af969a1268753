"""Label transfer at test time: the trained network's dense points mapped to the 68
real points by a small network fitted on real labeled faces (:mod:`models.label_transfer`),
and the NME of every output route on held-out real faces."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from models.predictor import ROUTES, OutputLayout, make_predictor
from models.transfer_fits import DEFAULT_TRANSFER_FIT, fit_transfer
from realdata.landmarks import FaceSet
from realdata.real_faces import RealFaces, load_real_faces
from synthloop.landmarks.load import TRANSFER_FILE, load_landmark_predictor

__all__ = ["TransferredModel", "all_points", "default_route", "fit_and_save_transfer",
           "fit_transfer_on_real", "route_errors"]


@torch.no_grad()
def all_points(net: nn.Module, images: Tensor, batch_size: int = 64) -> Tensor:
    """All output channels of ``net`` on uint8 NCHW ``images`` (eval mode, CPU result)."""
    from models.predict import predict_points

    net.eval()
    return predict_points(net, images, amp=False, chunk=batch_size).cpu()


def route_errors(coords: Tensor, true68: np.ndarray, layout: OutputLayout,
                 transfer: nn.Module | None) -> dict[str, float]:
    """Mean inter-ocular NME (%) of every available route. Crop coordinates are an
    isotropic scale and shift of the originals, so the NME equals the original one."""
    from analysis.landmark_eval import nme
    from models.label_transfer import apply_label_transfer

    out = {}
    for route in ROUTES:
        if (route == "head68" and not layout.real_head) or (route == "transfer" and transfer is None):
            continue
        a, b = layout.channels(route)
        pred = coords[:, a:b]
        if route == "transfer":
            pred = apply_label_transfer(transfer, pred)
        out[route] = float(nme(pred.numpy(), true68).mean())
    return out


def default_route(layout: OutputLayout, has_transfer: bool) -> str:
    """Without held-out real faces: the head trained on real labels, else the transfer
    fitted on them, else the nearest dense points."""
    if layout.real_head:
        return "head68"
    return "transfer" if has_transfer else "dense68"


def fit_and_save_transfer(net: nn.Module, real: RealFaces, idx: np.ndarray, layout: OutputLayout,
                          steps: int, seed: int, out: Path, method: str = DEFAULT_TRANSFER_FIT) -> Any:
    """Fit the label-transfer network (``method``: a key of
    :data:`models.transfer_fits.TRANSFER_FITS`) on the trained dense head's predictions for
    the real faces ``idx``; saved as ``out/transfer.pt`` (self-describing). Returns the
    :class:`~models.label_transfer.LabelTransferFit`."""
    from models.label_transfer import save_label_transfer

    dev = next(net.parameters()).device
    a, b = layout.channels("transfer")
    dense = all_points(net, torch.from_numpy(real.nchw(idx)).to(dev))[:, a:b]
    fit = fit_transfer(dense, torch.from_numpy(real.points[idx]).float(), method=method,
                       steps=steps, seed=seed)
    save_label_transfer(out / TRANSFER_FILE, fit)
    return fit


class TransferredModel(NamedTuple):
    predictor: Any  # LandmarkPredictor on the "transfer" route
    fit: Any  # models.label_transfer.LabelTransferFit (errors, history, params)


def fit_transfer_on_real(model: str | Path | nn.Module, real: str | Path | FaceSet | RealFaces,
                         steps: int = 2000, seed: int = 0, method: str = DEFAULT_TRANSFER_FIT,
                         **fit_kwargs: Any) -> TransferredModel:
    """Test-time label transfer: keep the trained network, fit only the label-transfer
    network from its dense predictions on real labeled faces (e.g. the train half of
    :func:`realdata.splits.split_face_folder`) to their 68 points. ``method`` picks the
    fit (:data:`models.transfer_fits.TRANSFER_FITS`; ``steps``/``seed`` matter to ``mlp``),
    ``fit_kwargs`` go to it (``mlp``: hidden, layers, lr...)."""

    base = load_landmark_predictor(model)
    info = dict(getattr(base, "layout", {}) or {})
    layout = OutputLayout.from_dict(info) if "num_dense" in info else OutputLayout.infer(base.net)
    size = int(getattr(base.net, "input_size", 128))
    faces = load_real_faces(real, size)
    a, b = layout.channels("transfer")
    dev = next(base.net.parameters()).device
    dense = all_points(base.net, torch.from_numpy(faces.nchw()).to(dev))[:, a:b]
    fit = fit_transfer(dense, torch.from_numpy(faces.points).float(), method=method, steps=steps,
                       seed=seed, **fit_kwargs)
    return TransferredModel(make_predictor(base.net, layout, "transfer", fit.model.to(dev)), fit)

