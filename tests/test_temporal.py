"""Temporal backbones, heads and losses."""

import pytest
import torch

from salesfusion.models.heads import PointHead, QuantileHead
from salesfusion.models.temporal import BACKBONES, BackboneShape
from salesfusion.training.losses import LOSSES, make_loss


def _batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    history = torch.randn(4, 10, 3, generator=generator)
    mask = torch.ones(4, 10, dtype=torch.bool)
    mask[1, :6] = False  # launched recently
    mask[2] = False  # cold start: no history at all
    context = torch.randn(4, 5, generator=generator)
    return history, mask, context


@pytest.mark.parametrize("name", sorted(BACKBONES))
@pytest.mark.parametrize("layers", [1, 3])
def test_backbones_shapes_gradients_and_masks(name, layers):
    torch.manual_seed(0)
    history, mask, context = _batch()
    cls = BACKBONES[name]
    shape = BackboneShape(input_dim=3, context_dim=5, horizon=4, future_dim=2,
                          static_dims=(5,))
    backbone = cls(shape, hidden=8, layers=layers).eval()
    if cls.selects_static:  # the TFT weighs each static variable itself
        context = [context]
    future = (torch.randn(4, 4, 2, generator=torch.Generator().manual_seed(1)),) \
        if cls.reads_future else ()
    out = backbone(history, mask, context, *future)
    assert out.shape == (4, backbone.out_dim) and torch.isfinite(out).all()
    changed = history.clone()
    changed[~mask] = 50.0  # masked periods must not matter
    torch.testing.assert_close(out, backbone(changed, mask, context, *future))
    backbone.train()
    backbone(history, mask, context, *future).sum().backward()
    dead = [n for n, p in backbone.named_parameters()
            if p.grad is None or not p.grad.abs().sum()]
    assert dead == []


def test_quantile_head_is_ordered():
    head = QuantileHead(6, horizon=3, quantiles=(0.9, 0.1, 0.5))
    out = head(torch.randn(20, 6) * 10)
    assert out.shape == (20, 3, 3) and head.quantiles == (0.1, 0.5, 0.9)
    assert (out[..., 1:] >= out[..., :-1]).all()
    assert PointHead(6, 3)(torch.randn(2, 6)).shape == (2, 3, 1)


def test_losses_against_hand_values():
    prediction = torch.tensor([[[1.0], [3.0]]])
    target = torch.tensor([[2.0, 7.0]])
    mask = torch.tensor([[True, True]])
    assert make_loss("mse")(prediction, target, mask).item() == pytest.approx((1 + 16) / 2)
    assert make_loss("rmse")(prediction, target, mask).item() == pytest.approx((17 / 2) ** 0.5)
    assert make_loss("mae")(prediction, target, mask).item() == pytest.approx(2.5)
    masked = torch.tensor([[True, False]])
    assert make_loss("mae")(prediction, target, masked).item() == pytest.approx(1.0)
    quantiles = torch.tensor([[[1.0, 2.0], [3.0, 9.0]]])
    value = make_loss("pinball", quantiles=(0.1, 0.9))(quantiles, target, mask).item()
    # errors y - q: 1, 0 ; 4, -2 -> 0.1*1, 0 ; 0.1*4, 0.1*2 (q=0.9: -0.1*-2)
    assert value == pytest.approx((0.1 + 0 + 0.4 + 0.2) / 4)


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_is_minimised_near_the_target(name):
    target = torch.full((1, 50), 3.0)
    mask = torch.ones(1, 50, dtype=torch.bool)
    parameter = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.Adam([parameter], lr=0.1)
    loss = make_loss(name, quantiles=(0.5,))
    for _ in range(400):
        optimiser.zero_grad()
        loss(parameter.expand(1, 50)[..., None], target, mask).backward()
        optimiser.step()
    fitted = parameter.exp().item() if LOSSES[name].log_link else parameter.item()
    assert fitted == pytest.approx(3.0, rel=0.05)


def test_tft_shapes_masks_gradients_and_explanations():
    from salesfusion.models.temporal.tft import TFTBackbone

    torch.manual_seed(0)
    tft = TFTBackbone(BackboneShape(input_dim=3, context_dim=0, horizon=4, future_dim=2,
                                    static_dims=(5, 2, 1)), hidden=16).eval()
    history, mask, _ = _batch()
    statics = [torch.randn(4, 5), torch.randn(4, 2), torch.randn(4, 1)]
    future = torch.randn(4, 4, 2)
    out = tft(history, mask, statics, future)
    assert out.shape == (4, 4 * 16) and torch.isfinite(out).all()
    changed = history.clone()
    changed[~mask] = 50.0
    torch.testing.assert_close(out, tft(changed, mask, statics, future))
    weights = tft.explanations["static_weights"]
    assert weights.shape == (4, 3) and torch.allclose(weights.sum(-1), torch.ones(4))
    decoder_weights = tft.explanations["future_weights"]  # step embedding + 2 known inputs
    assert decoder_weights.shape == (4, 4, 3)
    assert torch.allclose(decoder_weights.sum(-1), torch.ones(4, 4))
    # A known input of the last forecast step changes that step, not the earlier ones.
    later = future.clone()
    later[:, 3] += 5.0
    moved = (tft(history, mask, statics, later) - out).view(4, 4, 16).abs().sum(-1)
    assert (moved[:, 3] > 0).all() and (moved[:, :3] == 0).all()
    attention = tft.explanations["attention"]
    assert attention.shape == (4, 4, 14)
    assert attention[2, :, :10].abs().sum() == 0  # cold start: no history to attend to
    assert (attention[0, 0, 11:] == 0).all()  # the first forecast step cannot see later ones
    tft.train()
    tft(history, mask, statics, future).sum().backward()
    dead = [n for n, p in tft.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert dead == []
