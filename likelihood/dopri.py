"""A lean adaptive Dormand-Prince 5(4) integrator for a flat state (the ``rk45`` method).

Same tableau and step-size controller as torchdiffeq's ``dopri5`` (safety 0.9, growth in [1, 10]
after an accepted step, shrink >= 0.2 after a rejected one, Hairer's initial step), with the
bookkeeping cut to what the likelihood needs:

* the stages live in one [7, n] buffer; each stage input is a single ``addmv``
  y_i = y + h sum_j a_ij k_j, and the right-hand side writes its result straight into the buffer;
* first-same-as-last: k_7 = f(t + h, y_new) becomes k_1 of the next step (6 evaluations a step);
* the last step is clipped to end exactly at t1 (no dense output, no evaluation past t1);
* one host synchronisation per step (the accept/reject decision), none inside the right-hand side.

Error control: err = h sum_j e_j k_j (5th minus embedded 4th order), tol = atol + rtol max(|y|, |y_new|),
accept when norm(err / tol) <= 1.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from sde_lib.checks import NonFiniteStateError

Tensor = torch.Tensor

_C = (0., 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1., 1.)
_A = ((),
      (1 / 5,),
      (3 / 40, 9 / 40),
      (44 / 45, -56 / 15, 32 / 9),
      (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
      (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
      (35 / 384, 0., 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84))
# embedded 4th-order weights of Shampine (1986), as in torchdiffeq's dopri5 (the classic Dormand-Prince
# pair 5179/57600, ... overestimates the error here: 12 more NFE per likelihood solve on the mixtures)
_B4 = (1951 / 21600, 0., 22642 / 50085, 451 / 720, -12231 / 42400, 649 / 6300, 1 / 60)
_E = tuple(b5 - b4 for b5, b4 in zip(_A[6] + (0.,), _B4))   # 5th-order minus embedded 4th-order weights
ORDER = 5
SAFETY, IFACTOR, DFACTOR = 0.9, 10.0, 0.2


def rms_norm(e: Tensor) -> Tensor:
    return e.pow(2).mean().sqrt()


def _initial_step(func, t0: float, y0: Tensor, f0: Tensor, rtol: float, atol: float, norm, out: Tensor) -> float:
    """Hairer, Norsett & Wanner (II.4) starting step; one extra right-hand-side evaluation."""
    scale = y0.abs().mul_(rtol).add_(atol)
    d0, d1 = torch.stack((norm(y0 / scale), norm(f0 / scale))).tolist()
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    f1 = func(t0 + h0, y0 + h0 * f0, out=out)
    d2 = float(norm((f1 - f0) / scale)) / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1. / ORDER)
    return min(100 * h0, h1)


def dormand_prince(func: Callable[..., Tensor], y0: Tensor, t0: float, t1: float, rtol: float, atol: float,
                   norm: Callable[[Tensor], Tensor] = rms_norm, max_steps: int = 100_000) -> Tensor:
    """Integrate dy/dt = func(t, y, out=buffer_row) from t0 to t1 (t1 > t0); returns y(t1).

    ``func`` receives t as a Python float and may write its result into ``out`` (a contiguous row of
    the stage buffer) and return it. A non-finite error estimate (NaN/inf anywhere in the step) raises
    ``NonFiniteStateError`` at once (its test rides on the step's one host sync).
    """
    if y0.dim() != 1:
        raise ValueError(f"y0 must be a flat state vector, got shape {tuple(y0.shape)}")
    n = y0.shape[0]
    K = y0.new_empty(7, n)
    KT = K.t()                                                   # [n, 7] view for the stage sums
    A = [y0.new_tensor(a) if a else None for a in _A]
    E = y0.new_tensor(_E)
    y = y0
    t = float(t0)
    t1 = float(t1)
    f = func(t, y, out=K[0])
    if f.data_ptr() != K[0].data_ptr():
        K[0].copy_(f)
    h = _initial_step(func, t, y, K[0], rtol, atol, norm, out=K[1])
    for _ in range(max_steps):
        if t >= t1:
            return y
        last = t + h >= t1
        if last:
            h = t1 - t
        if t + h <= t:
            raise RuntimeError(f"dormand_prince: step size underflow at t={t} (h={h})")
        for i in range(1, 7):
            yi = torch.addmv(y, KT[:, :i], A[i], alpha=h)
            fi = func(t + _C[i] * h, yi, out=K[i])
            if fi.data_ptr() != K[i].data_ptr():
                K[i].copy_(fi)
        y_new = yi                                               # stage 7 input = 5th-order solution
        err = torch.mv(KT, E).mul_(h)
        tol = torch.maximum(y.abs(), y_new.abs()).mul_(rtol).add_(atol)
        ratio = float(norm(err.div_(tol)))                      # the one host sync of the step
        if ratio <= 1.:
            t = t1 if last else t + h
            y = y_new
            K[0].copy_(K[6])                                     # first same as last
            factor = IFACTOR if ratio == 0. else min(IFACTOR, max(SAFETY * ratio ** (-1. / ORDER), 1.))
        elif math.isfinite(ratio):
            factor = min(1., max(SAFETY * ratio ** (-1. / ORDER), DFACTOR))
        else:                                     # NaN/inf in a stage: stop (shrinking would loop to max_steps)
            raise NonFiniteStateError(f"dormand_prince: non-finite error estimate (NaN or inf in the state or the "
                                      f"right-hand side) at t={t:.6g} with step h={h:.3g}")
        h = h * factor
    if t >= t1:
        return y
    raise RuntimeError(f"dormand_prince: max_steps={max_steps} exceeded at t={t} of [{t0}, {t1}]")
