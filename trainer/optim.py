"""The optimizer seam: `make_optimizer(config, params, lr)` and the update rules it builds.

Every optimizer here is a torch optimizer (so `GradScaler.unscale_/step`, `param_groups` and
`state_dict` work as usual) with one more method, `gradients(backward)`: it runs the gradient
passes one update needs and returns the loss of the last. The loop hands it a closure that
runs forward and backward over the update's micro-batches and averages the gradient over
processes; it never needs to know how many passes a rule takes.

* `RowsAdamW`: AdamW (torch's), one pass. Its state_dict is AdamW's, key for key, so
  checkpoints written before this module existed load unchanged.
* `SAM`: sharpness-aware minimisation around any base optimizer (Foret et al., "Sharpness-Aware
  Minimization for Efficiently Improving Generalization", ICLR 2021, Algorithm 1): a first
  pass finds the gradient g at the rows w; the rows move to w + e with e = rho g / ||g||; a
  second pass takes the gradient there; the rows go back to w, and the base optimizer steps
  with that second gradient. The wrapper owns e and rho; e exists only inside one update, so
  the checkpointed state is the base optimizer's alone (the same bytes as before).

Adding an optimizer means one more branch in `make_optimizer` and, if it needs more than one
gradient pass, a `gradients` of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from trainer.config import TrainConfig

__all__ = ["OPTIMIZERS", "SAM", "RowsAdamW", "make_optimizer"]

OPTIMIZERS = ("adamw", "sam")
"""The --optimizer names."""

SAM_EPS = 1e-12
"""Added to ||g|| before dividing, so a tiny gradient cannot blow e up."""

Backward = Callable[[], torch.Tensor]
"""Runs forward and backward over one update's micro-batches (gradients averaged over the
processes) and returns the update's mean loss, detached."""


class RowsAdamW(torch.optim.AdamW):
    """torch's AdamW with the one-pass `gradients` of the update-rule interface."""

    def gradients(self, backward: Backward) -> torch.Tensor:
        """One pass: the gradient at the current rows. Returns the loss."""
        return backward()


class SAM:
    """Sharpness-aware minimisation wrapped around `base` (ICLR 2021, Algorithm 1).

    Behaves as `base` for everything torch and the loop ask of an optimizer (`param_groups`,
    `state`, `step`, `zero_grad`, `state_dict`, `load_state_dict`), so a GradScaler unscales
    and steps it as it would `base`. `gradients` runs the two passes. The ascent uses the
    first pass's gradient as it comes: a GradScaler's loss scale cancels out of g / ||g||.
    """

    def __init__(self, base: torch.optim.Optimizer, rho: float):
        if not rho > 0:
            raise ValueError(f"SAM's rho must be positive; got {rho!r}")
        self.base = base
        """The optimizer that takes the step (AdamW here)."""
        self.rho = rho
        """The neighbourhood radius: ||e|| = rho, in embedding units."""
        self._ascent: list[torch.Tensor] | None = None
        """e per parameter while the rows sit at w + e (only inside `gradients`)."""
        self._ascent_params: list[torch.Tensor] = []

    # --- the optimizer interface, from the base ---------------------------------------------
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The base optimizer's groups: the loop writes each update's rate into them."""
        return self.base.param_groups

    @property
    def state(self) -> Any:
        """The base optimizer's per-parameter state (AdamW's moments)."""
        return self.base.state

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """The base optimizer's step, with the gradient taken at w + e."""
        return self.base.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of the trained rows."""
        self.base.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state: e never outlives an update, so there is nothing else."""
        return self.base.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the base optimizer (a checkpoint of an AdamW run loads too)."""
        self.base.load_state_dict(state)

    # --- the two passes -----------------------------------------------------------------------
    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.base.param_groups for p in group["params"]]

    def gradients(self, backward: Backward) -> torch.Tensor:
        """Pass 1 at w, move to w + e, pass 2 there, move back to w. Returns pass 2's loss.

        When pass 1's gradient is zero or not finite there is no direction to climb: pass 2
        then runs at w itself (plain AdamW for that update), as the loop did before.
        """
        backward()
        self._climb()
        loss = backward()
        self._return()
        return loss

    def _climb(self) -> None:
        params = [p for p in self._params() if p.grad is not None]
        grads = [p.grad for p in params]
        self.zero_grad(set_to_none=True)
        if not grads:
            return
        norms = [g.norm() for g in grads]
        # One tensor (the usual case): its own norm, bit for bit what the loop computed.
        norm = norms[0] if len(norms) == 1 else torch.stack(norms).norm()
        if not torch.isfinite(norm) or norm == 0:
            return
        self._ascent = [g * (self.rho / (norm + SAM_EPS)) for g in grads]
        with torch.no_grad():
            for p, e in zip(params, self._ascent):
                p.add_(e)
        self._ascent_params = params

    def _return(self) -> None:
        if self._ascent is None:
            return
        with torch.no_grad():
            for p, e in zip(self._ascent_params, self._ascent):
                p.sub_(e)
        self._ascent = None


def make_optimizer(config: TrainConfig, params: Iterable[torch.nn.Parameter],
                   lr: float) -> RowsAdamW | SAM:
    """The optimizer --optimizer names, over `params` (the trained rows), starting at `lr`.

    AdamW's betas, epsilon and weight decay come from the --adam_* settings; SAM wraps the
    same AdamW with --sam_rho. Raises ValueError for a name not in `OPTIMIZERS` (TrainConfig
    validation refuses it first).
    """
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; choose one of "
                         f"{', '.join(OPTIMIZERS)}")
    adamw = RowsAdamW(list(params), lr=lr, betas=(config.adam_beta1, config.adam_beta2),
                      eps=config.adam_epsilon, weight_decay=config.adam_weight_decay)
    return SAM(adamw, config.sam_rho) if config.optimizer == "sam" else adamw
