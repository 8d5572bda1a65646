"""Reverse-SDE solvers: an adaptive step-size solver with an error controller, and torchsde's solvers.

Reverse SDE (time runs from T down to eps): with forward drift f and diffusion g,

    dx = [f(x, t) - g(t)^2 score(x, t)] dt + g(t) dw_bar,

both followed by the denoising step x0 = (x + s(eps)^2 score(x, eps)) / m(eps) (``denoise=True``).
"""
from __future__ import annotations


import torch
from tqdm.auto import tqdm

from sde_lib.checks import NonFiniteStateError, batch_view, check_choice, check_positive, randn_like
from .fast_brownian import BrownianStack
from .fast_common import check_eps, register_solver, tweedie_denoise

Tensor = torch.Tensor


def _reverse_drift(sde, score_fn, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Drift of the reverse SDE *per unit of decreasing time*, -(f - g^2 score), and g(t) [batch]."""
    f, g = sde._sde(x, t)
    return batch_view(g * g, x) * score_fn(x, t) - f, g


@register_solver("adaptive_sde")
def adaptive_sde(sde, score_fn, z: Tensor, steps: int, generator=None, progress: bool = False,
                 rtol: float = 0.05, atol: float = 0.0078, safety: float = 0.9, exponent: float = 0.9,
                 eps: float = 1e-3, denoise: bool = True, noise_on_reject: str = "bridge",
                 max_iters: int = 100000) -> Tensor:
    """Adaptive reverse-SDE solver of Jolicoeur-Martineau et al. (2021), "Gotta go fast", Algorithm 1,
    with rejection sampling with memory for the noise (``fast_brownian``).

    Per sample, from t with step h (initial h = (T - eps) / ``steps``) and Brownian increment W ~ N(0, h):
      x'  = x + h b(x, t) + g(t) W                             (Euler-Maruyama),
      x~  = x + h b(x', t - h) + g(t - h) W,   x'' = (x' + x~) / 2   (improved Euler),
    with b = g^2 score - f the reverse drift. Error E = ||(x' - x'') / delta||_2 / sqrt(dim),
    delta = max(atol, rtol * max(|x'|, |x'_prev|)) (elementwise, x'_prev: the last accepted x').
    Accept when E <= 1 (x <- x'', t <- t - h); in every case h <- min(t - eps, safety h E^(-exponent)).
    ``noise_on_reject="bridge"``: a rejected step keeps its increment W and the retry takes its part
    on [0, h_new] from the Brownian bridge (rejection sampling with memory, unbiased);
    ``"redraw"``: a fresh W ~ N(0, h) per attempt as in the paper (biased: rejections select small
    increments; on the 2-D mixture the narrow mode's weight ends up ~0.05-0.08 too high).
    Each attempt costs two batched score calls (only unfinished samples are evaluated).
    """
    check_choice("noise_on_reject", noise_on_reject, ("bridge", "redraw"))
    for name, value in (("rtol", rtol), ("atol", atol), ("safety", safety), ("exponent", exponent)):
        check_positive(name, value)
    check_eps(eps, sde.T)
    B = z.shape[0]
    dev, dt = z.device, z.dtype
    T = float(sde.T)
    t = torch.full((B,), T, dtype=torch.float64, device=dev)
    h = torch.full((B,), (T - eps) / steps, dtype=torch.float64, device=dev)
    x = z.clone()
    x_prev = z.clone()
    path = BrownianStack(z)
    bar = tqdm(total=T - eps, desc="adaptive_sde", disable=not progress)
    nonfinite = torch.zeros((), dtype=torch.bool, device=dev)
    for _ in range(max_iters):
        active = t > eps
        go, bad = torch.stack((active.any(), nonfinite)).tolist()   # one host sync, as before
        if bad:                       # a NaN/inf error estimate would be rejected and shrunk forever
            raise NonFiniteStateError("score_fn returned non-finite values (NaN or inf) during adaptive_sde: "
                                      "the error estimate of a step is not finite")
        if not go:
            break
        # full-batch draws, so the random stream does not depend on which samples are active
        xi_split, xi_fresh = randn_like(x, generator), randn_like(x, generator)
        idx = active.nonzero().squeeze(1)
        xa, ta, ha = x[idx], t[idx], h[idx]
        if noise_on_reject == "bridge":
            W, pending = path.step(idx, ha, xi_split[idx], xi_fresh[idx])
        else:
            W = batch_view(ha.sqrt().to(dt), xa) * xi_fresh[idx]
        ta_x, tnext_x = ta.to(dt), (ta - ha).to(dt)
        hv = batch_view(ha.to(dt), xa)
        b1, g1 = _reverse_drift(sde, score_fn, xa, ta_x)
        x1 = xa + hv * b1 + batch_view(g1, xa) * W
        b2, g2 = _reverse_drift(sde, score_fn, x1, tnext_x)
        x2 = 0.5 * (x1 + xa + hv * b2 + batch_view(g2, xa) * W)
        delta = torch.clamp(rtol * torch.maximum(x1.abs(), x_prev[idx].abs()), min=atol)
        err = ((x1 - x2) / delta).reshape(len(idx), -1).pow(2).mean(1).sqrt().to(torch.float64)
        nonfinite = ~torch.isfinite(err).all()
        accept = err <= 1.
        if noise_on_reject == "bridge":
            path.commit(idx, accept, pending)
        acc_idx = idx[accept]
        x[acc_idx] = x2[accept]
        x_prev[acc_idx] = x1[accept]
        t_new = torch.where(accept, ta - ha, ta)
        # land exactly on eps when within rounding of it
        t_new = torch.where(t_new - eps <= 1e-12, torch.full_like(t_new, eps), t_new)
        h_new = torch.minimum(t_new - eps, safety * ha * err.clamp(min=1e-10).pow(-exponent))
        t[idx] = t_new
        h[idx] = h_new
        if progress:                                  # progress of the slowest sample
            bar.update(max(0., (T - float(t.max())) - bar.n))
    else:
        raise RuntimeError(f"adaptive_sde did not reach eps within max_iters={max_iters} attempts")
    bar.close()
    return tweedie_denoise(sde, score_fn, x, eps) if denoise else x


# ----------------------------------------------------------------------------- torchsde
class _TorchsdeReverse(torch.nn.Module):
    """The reverse SDE in solver time tau = T - t on flattened states [B, D].

    The noise is additive (g depends on t only), so the Ito and Stratonovich forms coincide and one
    object serves both kinds of torchsde methods. ``f`` is memoised on (tau, the state tensor object):
    torchsde's shape check and its diagonal SRK re-evaluate the drift at identical arguments, and a
    repeat would cost a score evaluation for nothing.
    """

    def __init__(self, sde, score_fn, shape, sde_type: str, noise_type: str):
        super().__init__()
        self.sde_ = sde
        self.score_fn = score_fn
        self.shape = tuple(shape)
        self.sde_type = sde_type
        self.noise_type = noise_type
        self.T = float(sde.T)
        self._memo: list[tuple[float, Tensor, Tensor]] = []
        if noise_type == "diagonal":
            self.g = self._g_diagonal

    def _t(self, tau, y):
        return (self.T - tau).to(y.dtype).expand(y.shape[0]).contiguous()

    def f(self, tau, y):
        key = float(tau)
        for k, y_k, out in self._memo:
            if k == key and y_k is y:
                return out
        x = y.reshape(self.shape)
        b, _ = _reverse_drift(self.sde_, self.score_fn, x, self._t(tau, y))
        out = b.reshape(y.shape)
        self._memo = (self._memo + [(key, y, out)])[-8:]
        return out

    def _diffusion(self, tau, y):
        t = self._t(tau, y)
        _, g = self.sde_._sde(y.reshape(self.shape)[:1], t[:1])
        return g.reshape(())

    def g_prod(self, tau, y, v):
        return self._diffusion(tau, y) * v

    def _g_diagonal(self, tau, y):
        return self._diffusion(tau, y).expand_as(y)


#: torchsde method -> (sde_type, noise_type, Levy-area approximation it needs). "additive" noise
#: (m = D Brownian channels, only diffusion-vector products) for every method that accepts it;
#: reversible Heun needs the diffusion itself, given as "diagonal".
TORCHSDE_METHODS = {
    "euler": ("ito", "additive", "none"),
    "milstein": ("ito", "additive", "none"),
    "srk": ("ito", "additive", "space-time"),
    "euler_heun": ("stratonovich", "additive", "none"),
    "heun": ("stratonovich", "additive", "none"),
    "midpoint": ("stratonovich", "additive", "none"),
    "log_ode": ("stratonovich", "additive", "foster"),
    "reversible_heun": ("stratonovich", "diagonal", "none"),
}


def torchsde_solve(sde, score_fn, z: Tensor, steps: int, generator=None, progress: bool = False,
                   method: str = "srk", eps: float = 1e-3, denoise: bool = True) -> Tensor:
    """Reverse SDE from T to eps with ``torchsde.sdeint`` (fixed step (T - eps) / ``steps``).

    The Brownian motion is a ``torchsde.BrownianInterval`` whose entropy is drawn from ``generator``,
    so a seeded generator gives bitwise-reproducible samples (torchsde's own shape check draws from
    the global RNG; that draw is isolated with ``fork_rng`` and does not touch the result).
    """
    import torchsde

    sde_type, noise_type, levy = TORCHSDE_METHODS[method]
    check_eps(eps, sde.T)
    B = z.shape[0]
    y0 = z.reshape(B, -1)
    # solver time tau = T - t runs over [0, span]; every time is kept in z's dtype so the Brownian
    # interval, the output times and the solver's own time accumulation agree
    ts = torch.tensor([0., float(sde.T) - eps], dtype=torch.float64, device=z.device)
    span = float(ts[1])
    dt = span / steps
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator,
                             device=generator.device if generator is not None else "cpu"))
    bm = torchsde.BrownianInterval(t0=0., t1=span, size=tuple(y0.shape), dtype=z.dtype, device=z.device,
                                   entropy=seed, dt=dt, levy_area_approximation=levy)
    rev = _TorchsdeReverse(sde, score_fn, z.shape, sde_type, noise_type)
    devices = [z.device] if z.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        # a hair of slack so rounding in the time accumulation does not add a sliver of a step
        ys = torchsde.sdeint(rev, y0, ts, bm=bm, method=method, dt=dt * (1 + 1e-6))
    x = ys[-1].reshape(z.shape)
    return tweedie_denoise(sde, score_fn, x, eps) if denoise else x


def _make_torchsde_solver(method: str):
    def solver(sde, score_fn, z, steps, generator=None, progress=False, **kwargs):
        return torchsde_solve(sde, score_fn, z, steps, generator, progress, method=method, **kwargs)
    solver.forwards_to = torchsde_solve
    solver.__name__ = f"torchsde_{method}"
    solver.__doc__ = (f"torchsde '{method}' ({TORCHSDE_METHODS[method][0]}) on the reverse SDE, "
                      f"``steps`` fixed steps, then the denoising step.")
    return solver


for _method in TORCHSDE_METHODS:
    register_solver(f"torchsde_{_method}")(_make_torchsde_solver(_method))
