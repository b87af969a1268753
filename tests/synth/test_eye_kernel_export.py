"""What the eye renderer's ahead-of-time export captures: every tensor it computes with
comes in as an input. A tensor built inside the traced function (such as a table written
as a literal) becomes a constant of the exported program, and the export failed now and
then in Dask workers on exactly such a constant ("a fake tensor in the exported program
constant's list")."""

import functools

import torch

from synth.eye_distribution import default_eye_distribution
from synth.eye_generator import sample_scenes
from synth.eye_kernel import _Renderer
from synth.eye_renderer import EYE_FACTORS, _render, draw_eye_noise, palette


def test_the_exported_renderer_has_no_tensor_constants():
    dist = default_eye_distribution()
    spec = dist.image
    scenes = sample_scenes(dist, 4, 0)
    f = {k: torch.as_tensor(scenes[k], dtype=torch.float32).view(4, 1, 1, 1) for k in EYE_FACTORS}
    noise = draw_eye_noise(4, spec, torch.Generator().manual_seed(0), "cpu")
    render = functools.partial(_render, h=spec.height, w=spec.width, centre="corners")
    exported = torch.export.export(_Renderer(render), (f, noise, palette(spec.channels, "cpu")),
                                   strict=False)
    assert dict(exported.constants) == {}
    # and it still renders what the eager function renders
    eager_images, _ = render(f, noise, palette(spec.channels, "cpu"))
    images, _ = exported.module()(f, noise, palette(spec.channels, "cpu"))
    assert torch.equal(images, eager_images)
