"""torch.export of every family: dynamic batch, and for Vim with ``dynamic_img_size=True`` dynamic height and width
(multiples of the patch stride, at least two patches each way: export specialises size-1 dims); the exported program matches eager at sizes other than the example's."""

from __future__ import annotations

import pytest
import timm
import torch
from torch.export import Dim, export

import vssm  # noqa: F401  (registers the families)

SMALL = {
    "vmamba_tiny_s1l8": dict(depths=(1, 1, 1, 1), embed_dim=16),
    "simba_s": dict(depths=(1, 1, 1, 1), embed_dims=(16, 32, 48, 64), stem_hidden_dim=8, d_state=8),
    "mambavision_t": dict(depths=(1, 1, 2, 2), embed_dim=16, stem_dim=8, window_size=(8, 8, 2, 1)),
}


def _close(program, model, shape):
    x = torch.randn(shape)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_export_dynamic_batch(name):
    torch.manual_seed(0)
    model = timm.create_model(name, **SMALL[name]).eval()
    program = export(model, (torch.randn(2, 3, 64, 64),), dynamic_shapes={"x": {0: Dim("batch", min=1, max=256)}})
    for batch in (1, 2, 5):
        _close(program, model, (batch, 3, 64, 64))


def test_export_vim_dynamic_batch_height_width():
    torch.manual_seed(0)
    model = timm.create_model("vim_tiny_patch16_224", depth=2, embed_dim=32, dynamic_img_size=True).eval()
    rows, cols = Dim("rows", min=2, max=64), Dim("cols", min=2, max=64)
    dynamic = {"x": {0: Dim("batch", min=1, max=256), 2: 16 * rows, 3: 16 * cols}}
    program = export(model, (torch.randn(2, 3, 64, 96),), dynamic_shapes=dynamic)
    for shape in [(2, 3, 64, 96), (3, 3, 224, 224), (1, 3, 32, 160), (1, 3, 32, 32)]:
        _close(program, model, shape)
