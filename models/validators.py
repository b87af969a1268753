"""Label-free model selection on the unlabeled target domain ("validators").

Unsupervised DA has no target labels to select checkpoints or hyperparameters with;
these scores use only the model's outputs on target images. All take tensors and
return a Python float. ``logits_list`` is one ``(N, K_h)`` logit tensor per
categorical head (for gaze: pitch bins, yaw bins); per-head scores are averaged.

Which one to select with (see notes/domain-adaptation.md, Musgrave et al. 2022,
arXiv 2208.07360): none is reliable everywhere, and each can be gamed by the method
being tuned. BNM scores exactly the nuclear norm DALN maximises, so selecting DALN
runs with BNM is circular; SND rewards collapsed features; entropy rewards confident
predictions, including confidently wrong, collapsed ones (IM's diversity term guards
against that). The training loop selects with entropy by default and reports the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "bnm_score",
    "information_maximization",
    "prediction_entropy",
    "snd_score",
    "unsupervised_scores",
]


def _as_list(logits_list: Tensor | Sequence[Tensor]) -> list[Tensor]:
    if isinstance(logits_list, Tensor):
        logits_list = [logits_list]
    out = [t.detach().double() for t in logits_list]
    if not out or any(t.ndim != 2 or t.shape[0] == 0 for t in out):
        raise ValueError("expected one or more non-empty (N, K) logit tensors")
    return out


def _entropy(p: Tensor, log_p: Tensor) -> Tensor:
    # 0 * log 0 = 0: where p underflows to 0, log_softmax is finite anyway
    return -(p * log_p).sum(-1)


def prediction_entropy(logits_list: Tensor | Sequence[Tensor]) -> float:
    r"""Mean prediction entropy (lower = more confident; nats):

    .. math::
        \mathcal{H} = \frac{1}{|H|}\sum_h \frac{1}{N}\sum_i
                      -\sum_k p^{h}_{ik}\log p^{h}_{ik}, \qquad p^h_i = \mathrm{softmax}(z^h_i)

    Entropy minimisation as a UDA objective and validator: Grandvalet & Bengio,
    "Semi-supervised learning by entropy minimization", NeurIPS 2004; used as a
    validator by Morerio et al., "Minimal-entropy correlation alignment", ICLR 2018.
    """
    hs = [_entropy(torch.softmax(z, 1), F.log_softmax(z, 1)).mean() for z in _as_list(logits_list)]
    return float(torch.stack(hs).mean())


def information_maximization(logits_list: Tensor | Sequence[Tensor]) -> float:
    r"""Information maximisation score (higher = confident *and* diverse):

    .. math::
        \mathrm{IM} = \frac{1}{|H|}\sum_h \Big[ H\big(\bar p^h\big)
                      - \frac{1}{N}\sum_i H\big(p^h_i\big) \Big],
        \qquad \bar p^h = \frac{1}{N}\sum_i p^h_i

    i.e. the mutual information between inputs and predicted classes. Confident but
    collapsed predictions (all in one bin) score ~0, like uniform ones. Gomes, Krause
    & Perona, "Discriminative clustering by regularized information maximization",
    NeurIPS 2010; as a UDA objective in SHOT (Liang et al., ICML 2020).
    """
    scores = []
    for z in _as_list(logits_list):
        p, log_p = torch.softmax(z, 1), F.log_softmax(z, 1)
        p_mean = p.mean(0)
        h_mean = -(p_mean * torch.log(p_mean.clamp_min(1e-300))).sum()
        scores.append(h_mean - _entropy(p, log_p).mean())
    return float(torch.stack(scores).mean())


def bnm_score(logits_list: Tensor | Sequence[Tensor]) -> float:
    r"""Batch nuclear-norm score (higher = confident and diverse):

    .. math::
        \mathrm{BNM} = \frac{1}{|H|}\sum_h \frac{\|P^h\|_*}{N},
        \qquad P^h = \mathrm{softmax}(Z^h) \in \mathbb{R}^{N \times K_h}

    ``||.||_*`` is the nuclear norm (sum of singular values); ``N`` one-hot rows in
    ``N <= K`` distinct classes score 1. Cui et al., "Towards discriminability and
    diversity: batch nuclear-norm maximization under label insufficient situations",
    CVPR 2020; as a validator, Musgrave et al. 2022. Circular for selecting DALN,
    whose loss is a difference of exactly these norms.
    """
    scores = []
    for z in _as_list(logits_list):
        p = torch.softmax(z, 1)
        scores.append(torch.linalg.svdvals(p).sum() / p.shape[0])
    return float(torch.stack(scores).mean())


def snd_score(features: Tensor, temperature: float = 0.05) -> float:
    r"""Soft Neighborhood Density (higher = denser target neighbourhoods):

    .. math::
        s_{ij} = \frac{x_i^\top x_j}{\|x_i\|\|x_j\|}\ (j \ne i), \qquad
        q_{ij} = \mathrm{softmax}_j\!\big(s_{ij} / T\big), \qquad
        \mathrm{SND} = \frac{1}{N}\sum_i -\sum_{j \ne i} q_{ij} \log q_{ij}

    with ``T = 0.05``. Saito, Kim, Teterwak, Sclaroff, Darrell & Saenko, "Tune it the
    right way: unsupervised validation of domain adaptation via soft neighborhood
    density", ICCV 2021. The paper computes it on the classifier's softmax vectors
    (pass the concatenated per-head probabilities); any ``(N, D)`` embedding works.
    Caveat: fully collapsed features score the maximum ``log(N - 1)``.
    """
    x = features.detach().double().flatten(1)
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"snd_score needs at least 3 samples, got {n}")
    x = F.normalize(x, dim=1)
    sim = x @ x.T
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    sim = sim[~eye].view(n, n - 1) / temperature
    q, log_q = torch.softmax(sim, 1), F.log_softmax(sim, 1)
    return float(_entropy(q, log_q).mean())


def unsupervised_scores(logits_list: Sequence[Tensor], features: Tensor | None = None,
                        prefix: str = "", snd_max: int = 4096) -> dict[str, float]:
    """All scores at once: ``entropy``, ``im``, ``bnm``, ``snd`` (on the per-head
    softmax vectors, as in the paper) and, when ``features`` is given, ``snd_features``
    (on the bottleneck features). Also ``max_entropy``, the uniform-prediction entropy,
    to read ``entropy`` against. SND uses the first ``snd_max`` samples only (its
    similarity matrix is N x N)."""
    zs = list(logits_list)
    probs = torch.cat([torch.softmax(z.detach().double(), 1) for z in zs], dim=1)
    out = {
        "entropy": prediction_entropy(zs),
        "im": information_maximization(zs),
        "bnm": bnm_score(zs),
        "snd": snd_score(probs[:snd_max]),
        "max_entropy": sum(math.log(z.shape[1]) for z in zs) / len(zs),
    }
    if features is not None:
        out["snd_features"] = snd_score(features[:snd_max])
    return {prefix + k: v for k, v in out.items()}
