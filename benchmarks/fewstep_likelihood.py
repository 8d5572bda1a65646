"""Likelihood section of ``benchmarks/fewstep.py``: NFE at rtol = atol = 1e-5 against k-diffusion.

For each closed-form workload of dimension <= 16 (exact trace affordable): the toolkit's
``log_likelihood`` (exact trace, rk45) integrating in t and in sigma, k-diffusion's own
``log_likelihood`` (torchdiffeq dopri5 in sigma on the VE-equivalent state, one Rademacher probe), and
k-diffusion's scheme with the exact trace (same integration, exact divergence) for an equal-accuracy
comparison. Error: mean |log p - log p_eps| in nats against the mixture's closed form at eps = 1e-5;
``ode_err`` the same with the exact log p_T(z) in place of the Gaussian prior (the integration's own
error, free of the prior mismatch that dominates VE with a small sigma_max).
"""
from __future__ import annotations

import math

import torch

from benchmarks import fewstep_peers as peers
from likelihood import log_likelihood

EPS_LL = 1e-5
TOL = 1e-5


def _kd_scheme_exact(sde, score_fn, x: torch.Tensor):
    """k-diffusion's log_likelihood integration (dopri5 in sigma, tuple state (y, delta),
    prior N(0, sigma_max^2)) with the exact divergence; returns (log p_x, nfe)."""
    from torchdiffeq import odeint

    den = peers.Denoiser(sde, score_fn)
    tt = torch.tensor([EPS_LL, float(sde.T)], dtype=torch.float64)
    smin, smax = sde.noise_level(tt).tolist()
    m_eps = float(sde.marginal_coeffs(tt)[0][0])
    B, D = x.shape[0], x[0].numel()

    def fn(sigma, state):
        with torch.enable_grad():
            y = state[0].detach().requires_grad_(True)
            d = (y - den(y, sigma)) / sigma
            div = torch.zeros(B, dtype=y.dtype)
            flat = d.reshape(B, -1)
            for i in range(D):
                g = torch.autograd.grad(flat[:, i].sum(), y, retain_graph=i < D - 1)[0]
                div = div + g.reshape(B, -1)[:, i]
        return d.detach(), div

    y0 = (x / m_eps, x.new_zeros(B))
    sol = odeint(fn, y0, x.new_tensor([smin, smax]), atol=TOL, rtol=TOL, method="dopri5")
    latent, delta = sol[0][-1], sol[1][-1]
    prior = torch.distributions.Normal(0., smax).log_prob(latent).flatten(1).sum(1)
    return prior + delta - D * math.log(m_eps), den.nfe, latent, prior


def bench_likelihood(args, workloads: dict) -> list[dict]:
    out = []
    n = 128 if args.quick else 512
    try:
        K = peers.load_k_diffusion_sampling()
    except ImportError as exc:
        K = None
        print(f"# likelihood: k-diffusion rows skipped ({exc})")
    for wl, (sde, mix, _) in workloads.items():
        if mix.dim > 16:
            continue
        x = mix.sample(n, generator=torch.Generator().manual_seed(3))
        ref = mix.log_prob(x, torch.full((n,), EPS_LL, dtype=torch.float64), sde)
        score_fn = mix.score_fn(sde)
        T = torch.full((n,), float(sde.T), dtype=torch.float64)
        m_T = float(sde.marginal_coeffs(T[:1])[0][0])

        def ode_err(lp, z, prior):        # swap the Gaussian prior for the exact log p_T(z)
            return float((lp - prior + mix.log_prob(z, T, sde) - ref).abs().mean())
        for var in ("auto", "t", "sigma"):
            lp, z, nfe = log_likelihood(sde, score_fn, x, hutchinson="exact", rtol=TOL, atol=TOL, eps=EPS_LL,
                                        variable=var)
            out.append({"workload": wl, "method": f"toolkit rk45, variable={var}, exact trace", "nfe": nfe,
                        "mean_abs_err_nats": float((lp - ref).abs().mean()),
                        "ode_err_nats": ode_err(lp, z, sde._prior_logp(z))})
        if K is None:
            continue
        den = peers.Denoiser(sde, score_fn)
        tt = torch.tensor([EPS_LL, float(sde.T)], dtype=torch.float64)
        smin, smax = sde.noise_level(tt).tolist()
        m_eps = float(sde.marginal_coeffs(tt)[0][0])
        with torch.random.fork_rng():
            torch.manual_seed(0)
            ll, _ = K.log_likelihood(den, x / m_eps, smin, smax, atol=TOL, rtol=TOL)
        ll = ll - mix.dim * math.log(m_eps)
        out.append({"workload": wl, "method": "k-diffusion log_likelihood (dopri5 in sigma, Hutchinson)",
                    "nfe": den.nfe, "mean_abs_err_nats": float((ll - ref).abs().mean())})
        ll, nfe, latent, prior = _kd_scheme_exact(sde, score_fn, x)
        exact_T = mix.log_prob(latent * m_T, T, sde) + mix.dim * math.log(m_T)
        out.append({"workload": wl, "method": "k-diffusion scheme, exact trace", "nfe": nfe,
                    "mean_abs_err_nats": float((ll - ref).abs().mean()),
                    "ode_err_nats": float((ll - prior + exact_T - ref).abs().mean())})
    return out
