"""The optimizer seam (trainer/optim.py): AdamW as before, SAM as a wrapper that owns its two
gradient passes, and checkpoint state that is AdamW's, key for key."""

from __future__ import annotations

import pytest
import torch

from trainer.config import TrainConfig
from trainer.optim import SAM, SAM_EPS, RowsAdamW, make_optimizer

TARGET = torch.tensor([[1.0, -2.0, 0.5]])


def config(**changes) -> TrainConfig:
    return TrainConfig(placeholder_token="cat", **changes)


def backward_for(rows: torch.nn.Parameter, passes: list):
    """The loss sum((rows - TARGET)^4): curved, so SAM's second gradient differs from its first."""
    def backward() -> torch.Tensor:
        loss = ((rows - TARGET) ** 4).sum()
        loss.backward()
        passes.append(rows.detach().clone())
        return loss.detach()
    return backward


def test_make_optimizer_builds_adamw_with_the_adam_settings():
    rows = torch.nn.Parameter(torch.zeros(1, 3))
    optimizer = make_optimizer(config(adam_beta1=0.8, adam_weight_decay=0.01), [rows], 1e-3)
    assert isinstance(optimizer, RowsAdamW) and isinstance(optimizer, torch.optim.AdamW)
    group = optimizer.param_groups[0]
    assert group["betas"] == (0.8, 0.999) and group["weight_decay"] == 0.01
    assert group["lr"] == 1e-3


def test_adamw_takes_one_pass():
    rows = torch.nn.Parameter(torch.zeros(1, 3))
    passes: list = []
    make_optimizer(config(), [rows], 1e-2).gradients(backward_for(rows, passes))
    assert len(passes) == 1


def test_sam_steps_with_the_gradient_at_the_ascended_point_and_returns_the_rows():
    start = torch.tensor([[0.3, 0.1, -0.4]])
    rows = torch.nn.Parameter(start.clone())
    sam = make_optimizer(config(optimizer="sam", sam_rho=0.05), [rows], 1e-2)
    assert isinstance(sam, SAM)
    passes: list = []
    sam.gradients(backward_for(rows, passes))
    # Algorithm 1 of Foret et al.: e = rho g / ||g||, the second pass at w + e, then back to w.
    g1 = 4 * (start - TARGET) ** 3
    e = g1 * (0.05 / (g1.norm() + SAM_EPS))
    assert torch.equal(passes[0], start) and torch.allclose(passes[1], start + e)
    # Back at w before the step ((w + e) - e: equal up to rounding, as in any SAM).
    assert torch.allclose(rows.detach(), start, rtol=0, atol=1e-7)
    assert torch.allclose(rows.grad, 4 * (start + e - TARGET) ** 3)

    reference = torch.nn.Parameter(start.clone())
    cfg = config()
    adamw = torch.optim.AdamW([reference], lr=1e-2, betas=(cfg.adam_beta1, cfg.adam_beta2),
                              eps=cfg.adam_epsilon, weight_decay=cfg.adam_weight_decay)
    reference.grad = rows.grad.clone()
    adamw.step()
    sam.step()
    assert torch.allclose(rows.detach(), reference.detach(), rtol=0, atol=1e-7)


def test_sam_with_a_zero_gradient_takes_its_second_pass_where_it_is():
    rows = torch.nn.Parameter(TARGET.clone())  # the minimum: the first gradient is 0
    sam = make_optimizer(config(optimizer="sam"), [rows], 1e-2)
    passes: list = []
    sam.gradients(backward_for(rows, passes))
    assert torch.equal(passes[0], passes[1]) and torch.equal(rows.detach(), TARGET)


def test_sam_checkpoints_exactly_what_adamw_checkpoints():
    rows_a, rows_b = (torch.nn.Parameter(torch.zeros(1, 3)) for _ in range(2))
    adamw = make_optimizer(config(), [rows_a], 1e-2)
    sam = make_optimizer(config(optimizer="sam"), [rows_b], 1e-2)
    for optimizer, rows in ((adamw, rows_a), (sam, rows_b)):
        optimizer.gradients(backward_for(rows, []))
        optimizer.step()
    a, b = adamw.state_dict(), sam.state_dict()
    assert a.keys() == b.keys() and a["param_groups"] == b["param_groups"]
    assert a["state"][0].keys() == b["state"][0].keys()
    # A checkpoint written by either loads into the other (and into a plain AdamW).
    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1, 3))], lr=1e-2).load_state_dict(b)
    sam.load_state_dict(a)


def test_an_unknown_optimizer_is_refused():
    rows = torch.nn.Parameter(torch.zeros(1, 3))
    cfg = config()
    object.__setattr__(cfg, "optimizer", "lion")
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer(cfg, [rows], 1e-3)
