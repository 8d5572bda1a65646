"""Input validation shared by the whole toolkit.

Every public entry point checks what the user passes and raises ``ValueError`` naming the argument
exactly as in its signature. Internal hot loops call the unchecked code paths instead.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import torch

Tensor = torch.Tensor


def batch_view(v: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-sample vector ``v`` [batch] so it broadcasts against ``x`` [batch, *shape]."""
    return v.reshape(v.shape[0], *([1] * (x.dim() - 1)))


def check_tensor(name: str, x, min_dim: int = 1, finite: bool = True) -> Tensor:
    """``x`` must be a floating tensor with at least ``min_dim`` dims and (optionally) finite."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s) [batch, ...], "
                         f"got shape {tuple(x.shape)}")
    if min_dim >= 1 and x.shape[0] == 0:
        raise ValueError(f"{name} must have a non-empty batch dimension, got shape {tuple(x.shape)}")
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must contain only finite values (found NaN or inf)")
    return x


def check_times(name: str, t, batch: int | None, T: float) -> Tensor:
    """``t`` must be a finite float tensor [batch] with values in [0, T]."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [batch], got {type(t).__name__}")
    if t.dim() != 1:
        raise ValueError(f"{name} must have shape [batch], got shape {tuple(t.shape)}")
    if batch is not None and t.shape[0] != batch:
        raise ValueError(f"{name} must have shape [{batch}] (one time per sample), got {tuple(t.shape)}")
    if not torch.is_floating_point(t):
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must contain only finite values (found NaN or inf)")
    if bool((t < 0).any()) or bool((t > T).any()):
        raise ValueError(f"{name} must lie in [0, T] = [0, {T}], got values in "
                         f"[{float(t.min()):.6g}, {float(t.max()):.6g}]")
    return t


def check_shape(name: str, shape) -> tuple[int, ...]:
    """``shape`` must be a non-empty sequence of positive ints: [batch, *data_shape]."""
    try:
        out = tuple(int(s) for s in shape)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of ints [batch, *data_shape], got {shape!r}") from None
    if len(out) < 2 or any(s <= 0 for s in out) or any(int(s) != s for s in shape):
        raise ValueError(f"{name} must be [batch, *data_shape] with positive sizes (at least 2 entries), "
                         f"got {shape!r}")
    return out


def check_choice(name: str, value, choices: Iterable | Mapping):
    """``value`` must be one of ``choices`` (a registry or a list of names)."""
    names = sorted(choices.keys() if isinstance(choices, Mapping) else choices)
    if value not in names:
        raise ValueError(f"{name} must be one of {names}, got {value!r}")
    return value


def check_positive(name: str, value, integer: bool = False, allow_zero: bool = False):
    """``value`` must be a positive (or non-negative) finite number, an int if ``integer``."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        kind = "an int" if integer else "a number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    v = float(value)
    if v != v or v in (float("inf"), float("-inf")) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return value


def check_same_shape(name: str, x: Tensor, ref_name: str, ref: Tensor) -> None:
    if tuple(x.shape) != tuple(ref.shape):
        raise ValueError(f"{name} must have the same shape as {ref_name} {tuple(ref.shape)}, "
                         f"got {tuple(x.shape)}")


def check_generator(name: str, generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}")


def randn_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise shaped like ``x`` drawn from ``generator`` (on ``x``'s device/dtype).

    A generator on another device than ``x`` is allowed: the draw is made on the generator's device
    and moved, so a CPU generator gives the same numbers whatever device the samples live on.
    """
    return randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def randn(shape: Sequence[int], generator: torch.Generator | None = None, device="cpu",
          dtype=torch.float32) -> Tensor:
    """``torch.randn`` that honours a generator living on a different device than the output."""
    gdev = generator.device if generator is not None else torch.device(device)
    out = torch.randn(tuple(shape), generator=generator, device=gdev, dtype=dtype)
    return out.to(device)


def rand(shape: Sequence[int], generator: torch.Generator | None = None, device="cpu",
         dtype=torch.float32) -> Tensor:
    """``torch.rand`` (uniform on [0, 1)) honouring a generator on another device."""
    gdev = generator.device if generator is not None else torch.device(device)
    return torch.rand(tuple(shape), generator=generator, device=gdev, dtype=dtype).to(device)


# ---------------------------------------------------------------------------- score functions and solvers
class NonFiniteStateError(ValueError):
    """A solver met NaN or inf in its state or right-hand side (its error estimate is not finite).

    Raised by the adaptive solvers at the first non-finite error estimate instead of shrinking the
    step forever; the samplers and the likelihood re-raise it naming ``score_fn``."""


def check_score_output(score, x: Tensor, name: str = "score_fn") -> Tensor:
    """The first evaluation of a score function: a floating tensor shaped exactly like ``x`` (no
    broadcasting) and finite. One host synchronisation (the finiteness test; skipped on the meta
    device, which holds no values): call it once per solve, not per step."""
    if not isinstance(score, torch.Tensor):
        raise ValueError(f"{name} must return a torch.Tensor shaped like x {tuple(x.shape)}, "
                         f"got {type(score).__name__}")
    if tuple(score.shape) != tuple(x.shape):
        raise ValueError(f"{name} must return a tensor shaped exactly like x {tuple(x.shape)} (it is not "
                         f"broadcast), got shape {tuple(score.shape)}")
    if not torch.is_floating_point(score):
        raise ValueError(f"{name} must return a floating-point tensor, got dtype {score.dtype}")
    if score.device.type != "meta" and not bool(torch.isfinite(score).all()):
        raise ValueError(f"{name} returned non-finite values (NaN or inf) at its first evaluation "
                         f"(x of shape {tuple(x.shape)}); check the model (its weights) or the score's formula")
    return score


class FiniteNormWatch:
    """Wraps a solver's error norm ``norm(e) -> 0-d tensor`` and remembers, on the device and without a
    host synchronisation, whether it ever returned a non-finite value (``seen()`` synchronises once).

    For solvers such as torchdiffeq's that stop on their own (with an ``AssertionError``) once the
    state or the step size is not finite: the caller turns that stop into a ``NonFiniteStateError``."""

    def __init__(self, norm):
        self.norm = norm
        self.bad: Tensor | None = None

    def __call__(self, e: Tensor) -> Tensor:
        r = self.norm(e)
        bad = ~torch.isfinite(r)
        self.bad = bad if self.bad is None else self.bad | bad
        return r

    def seen(self) -> bool:
        return self.bad is not None and bool(self.bad)


def raise_if_non_finite(err: AssertionError, watch: FiniteNormWatch | None) -> None:
    """Turn torchdiffeq's own stop (an ``AssertionError``: 'non-finite values in state', or 'underflow in
    dt' after a NaN error ratio) into ``NonFiniteStateError`` when the state or the error norm was not
    finite; returns for any other assertion (the caller re-raises it)."""
    msg = str(err)
    if "non-finite" in msg or (watch is not None and watch.seen()):
        raise NonFiniteStateError(f"torchdiffeq stopped at a non-finite error estimate or state "
                                  f"({msg[:120]})") from err
