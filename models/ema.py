"""Exponential moving average of model parameters (NCSNv2 Technique 5; used by every score model).

    shadow <- shadow - (1 - d) (shadow - param),   d = min(decay, (1 + n) / (10 + n)) with warm-up
                                                   (n = number of updates so far, counted from 1),
                                                   d = decay otherwise.
"""
from __future__ import annotations

from typing import Iterable

import torch

Tensor = torch.Tensor


def _trainable(parameters: Iterable[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    return [p for p in parameters if p.requires_grad]


class ExponentialMovingAverage:
    """EMA of the trainable ``parameters`` (shadow copies live on each parameter's device/dtype)."""

    def __init__(self, parameters: Iterable[torch.nn.Parameter], decay: float,
                 use_num_updates: bool = True):
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0. <= decay <= 1.:
            raise ValueError(f"decay must be a number in [0, 1], got {decay!r}")
        self.decay = float(decay)
        self.num_updates: int | None = 0 if use_num_updates else None
        self.shadow_params = [p.detach().clone() for p in _trainable(parameters)]
        self.collected_params: list[Tensor] = []

    def _params(self, parameters, name: str = "parameters") -> list[torch.nn.Parameter]:
        params = _trainable(parameters)
        if len(params) != len(self.shadow_params) or any(
                p.shape != s.shape for p, s in zip(params, self.shadow_params)):
            raise ValueError(f"{name} must match the {len(self.shadow_params)} trainable tensors the EMA "
                             f"was built with (same order and shapes), got {len(params)}")
        return params

    def current_decay(self) -> float:
        """The decay the next ``update`` will use (with warm-up: min(decay, (1 + n) / (10 + n)))."""
        if self.num_updates is None:
            return self.decay
        n = self.num_updates + 1
        return min(self.decay, (1. + n) / (10. + n))

    @torch.no_grad()
    def update(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """shadow <- shadow - (1 - d) (shadow - param)."""
        params = self._params(parameters)
        decay = self.current_decay()
        if self.num_updates is not None:
            self.num_updates += 1
        one_minus = 1. - decay
        for s, p in zip(self.shadow_params, params):
            s.sub_(one_minus * (s - p.to(s.dtype)))

    @torch.no_grad()
    def copy_to(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Write the averaged values into ``parameters`` (e.g. for sampling)."""
        for s, p in zip(self.shadow_params, self._params(parameters)):
            p.copy_(s)

    def store(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Save a copy of ``parameters`` to put back later with :meth:`restore`."""
        self.collected_params = [p.detach().clone() for p in self._params(parameters)]

    @torch.no_grad()
    def restore(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Put back the values saved by :meth:`store` (``store``; ``copy_to``; evaluate; ``restore``)."""
        if not self.collected_params:
            raise ValueError("parameters: nothing to restore; call store(parameters) first")
        for c, p in zip(self.collected_params, self._params(parameters)):
            p.copy_(c)
        self.collected_params = []

    def to(self, device=None, dtype=None) -> "ExponentialMovingAverage":
        """Move the shadow tensors (e.g. after loading a CPU checkpoint onto a GPU)."""
        self.shadow_params = [s.to(device=device, dtype=dtype if s.is_floating_point() else None)
                              for s in self.shadow_params]
        return self

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates,
                "shadow_params": [s.clone() for s in self.shadow_params]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a :meth:`state_dict`; the tensors are copied onto the current shadows' device/dtype."""
        try:
            decay, num_updates, shadow = (state_dict["decay"], state_dict["num_updates"],
                                          state_dict["shadow_params"])
        except (KeyError, TypeError):
            raise ValueError("state_dict must have keys 'decay', 'num_updates', 'shadow_params'") from None
        if len(shadow) != len(self.shadow_params) or any(
                tuple(a.shape) != tuple(b.shape) for a, b in zip(shadow, self.shadow_params)):
            raise ValueError(f"state_dict['shadow_params'] must hold {len(self.shadow_params)} tensors "
                             f"with the shapes of this model's parameters")
        if not 0. <= float(decay) <= 1.:
            raise ValueError(f"state_dict['decay'] must be in [0, 1], got {decay!r}")
        self.decay = float(decay)
        self.num_updates = None if num_updates is None else int(num_updates)
        self.shadow_params = [a.detach().to(device=b.device, dtype=b.dtype).clone()
                              for a, b in zip(shadow, self.shadow_params)]
