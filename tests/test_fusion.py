"""Fusion modules: shapes, gradients into every parameter, and masks that really mask."""

import pytest
import torch

from salesfusion.fusion import FUSIONS, ModalityInput

DIMS = {"static": 6, "text": 8, "image": 10}


def _inputs(batch: int = 5, present: dict | None = None, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    present = present or {}
    out = {}
    for name, dim in DIMS.items():
        if name == "text":  # a word sequence with padding
            values = torch.randn(batch, 4, dim, generator=generator)
            token_mask = torch.tensor([[True, True, True, False]] * batch)
        else:
            values = torch.randn(batch, dim, generator=generator)
            token_mask = None
        flags = present.get(name, torch.ones(batch, dtype=torch.bool))
        out[name] = ModalityInput(values, flags, token_mask)
    return out


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_shape_and_gradient_reaches_every_parameter(name):
    torch.manual_seed(0)
    fusion = FUSIONS[name](DIMS, 12)
    inputs = _inputs()
    absent = torch.tensor([True, True, True, True, False])
    for item in inputs.values():  # the last item knows nothing: exercises `nothing_known`
        item.present = item.present & absent
    out = fusion(inputs)
    assert out.shape == (5, 12)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    dead = [n for n, p in fusion.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert dead == []


@pytest.mark.parametrize("name", sorted(FUSIONS))
@pytest.mark.parametrize("missing", ["image", "text", "static"])
def test_absent_modality_values_are_ignored(name, missing):
    torch.manual_seed(0)
    fusion = FUSIONS[name](DIMS, 12).eval()
    flags = {missing: torch.tensor([False, True, False, True, True])}
    first = fusion(_inputs(present=flags, seed=1))
    changed = _inputs(present=flags, seed=1)
    changed[missing].values = changed[missing].values * 100 + 7
    second = fusion(changed)
    rows = ~flags[missing]
    torch.testing.assert_close(first[rows], second[rows])
    # Every row where the modality is present uses its values: each such row moves.
    moved = (first[~rows] - second[~rows]).abs().amax(dim=-1)
    assert (moved > 1e-3).all(), moved


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_a_row_with_nothing_known_ignores_every_value(name):
    torch.manual_seed(0)
    fusion = FUSIONS[name](DIMS, 12).eval()
    flags = {m: torch.tensor([True, True, False]) for m in DIMS}
    first = fusion(_inputs(batch=3, present=flags, seed=3))
    changed = _inputs(batch=3, present=flags, seed=4)
    second = fusion(changed)
    torch.testing.assert_close(first[2], second[2])
    if fusion.nothing_known is not None:  # the learned "nothing known" vector, as it is
        torch.testing.assert_close(second[2], fusion.nothing_known.detach())


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_padding_tokens_are_ignored(name):
    torch.manual_seed(0)
    fusion = FUSIONS[name](DIMS, 12).eval()
    inputs = _inputs(seed=2)
    before = fusion(inputs)
    inputs["text"].values[:, 3] = 1e3  # the padded position
    torch.testing.assert_close(before, fusion(inputs))
