"""The SimGAN losses (Shrivastava et al., CVPR 2017), on the patch logits of
:mod:`models.patch_discriminator`.

* discriminator: cross-entropy of every patch of real images as real and of refined
  images as fake, averaged over patches and images;
* refiner, adversarial: cross-entropy of the refined images' patches as *real*
  (the non-saturating form the paper uses);
* refiner, self-regularisation: ``weight * mean |refined - synthetic|`` in image space
  ([0, 1] pixels), which keeps what the labels depend on (iris position, landmarks) in
  place while the adversarial term changes texture;
* refiner, label consistency (optional): ``weight * mean |probe(refined) -
  probe(synthetic)|`` for a frozen model ``probe`` of the labels (for eyes: a gaze model
  trained on the unrefined images, its answer in degrees). This is the paper's
  self-regularisation in a feature space, with the label itself as the feature (the
  semantic consistency of CyCADA, Hoffman et al., ICML 2018): pixels may move as far as
  realism asks, what the labels are read from may not.

Losses are means rather than the paper's sums, so the self-regularisation weight does
not depend on the image or patch-map size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["discriminator_loss", "refiner_adversarial_loss", "label_consistency_loss",
           "self_regularisation_loss"]


def discriminator_loss(real_logits: Tensor, refined_logits: Tensor) -> Tensor:
    """Mean patch cross-entropy: real patches labelled 1, refined patches 0. The two
    halves are averaged separately, so unequal batch sizes weigh the same."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(refined_logits, torch.zeros_like(refined_logits))
    return 0.5 * (real + fake)


def refiner_adversarial_loss(refined_logits: Tensor) -> Tensor:
    """Mean patch cross-entropy of refined patches labelled real."""
    return F.binary_cross_entropy_with_logits(refined_logits, torch.ones_like(refined_logits))


def self_regularisation_loss(refined: Tensor, synthetic: Tensor, weight: float) -> Tensor:
    """``weight * mean |refined - synthetic|`` over pixels, channels and images."""
    return weight * (refined - synthetic).abs().mean()


def label_consistency_loss(probe_refined: Tensor, probe_synthetic: Tensor, weight: float) -> Tensor:
    """``weight * mean |probe(refined) - probe(synthetic)|``; the synthetic side is a
    target (no gradient flows into it)."""
    return weight * (probe_refined - probe_synthetic.detach()).abs().mean()
