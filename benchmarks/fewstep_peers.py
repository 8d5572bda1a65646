"""diffusers and k-diffusion samplers driven by a toolkit score function (for ``benchmarks/fewstep.py``).

Both libraries are optional: ``available_peers()`` lists only what imports, ``missing_messages()``
says what is missing and how to install it.

Common ground: the VE-equivalent view of the SDE, y = x / m(t), sigma = s(t) / m(t), with the denoiser
D(y, sigma) = y + sigma^2 m score(m y, t(sigma)) (one score call). k-diffusion samplers take D directly
(their x is y). diffusers schedulers work on x_d = y / sqrt(1 + sigma^2) with
alphas_cumprod = 1 / (1 + sigma^2) at 1000 levels t_k = eps + k (T - eps) / 999 (``trained_betas``),
so that timestep 999 is t = T and timestep 0 is t = eps; the epsilon model is
eps = (y - D(y, sigma_i)) / sigma_i at the noise level sigma_i the scheduler uses at step i.
"""
from __future__ import annotations

import importlib.util
import math
import os
import sys
import types

import torch

Tensor = torch.Tensor


class Denoiser:
    """D(y, sigma) of ``sde`` and ``score_fn`` with a call counter ``nfe``."""

    def __init__(self, sde, score_fn):
        self.sde, self.score_fn, self.nfe = sde, score_fn, 0

    def coeffs(self, sigma: float) -> tuple[float, float]:
        """(t(sigma), m(t(sigma)))."""
        if sigma == 0.:
            return 0., float(self.sde.marginal_coeffs(torch.zeros(1, dtype=torch.float64))[0][0])
        t = self.sde.t_from_noise_level(torch.tensor([sigma], dtype=torch.float64))
        return float(t[0]), float(self.sde.marginal_coeffs(t)[0][0])

    def __call__(self, y: Tensor, sigma) -> Tensor:
        sigma = float(sigma.reshape(-1)[0]) if torch.is_tensor(sigma) else float(sigma)
        self.nfe += 1
        t, m = self.coeffs(sigma)
        tb = torch.full((y.shape[0],), t, dtype=y.dtype, device=y.device)
        return y + (sigma * sigma * m) * self.score_fn(y * m, tb)


def _start(sde, z: Tensor, den: Denoiser) -> tuple[Tensor, float]:
    """y_T = z / m(T) and sigma(T)."""
    T = torch.tensor([float(sde.T)], dtype=torch.float64)
    m = float(sde.marginal_coeffs(T)[0][0])
    return z / m, float(sde.noise_level(T)[0])


def _to_data(den: Denoiser, y: Tensor, sigma_last: float) -> Tensor:
    return y * den.coeffs(sigma_last)[1]


# ----------------------------------------------------------------------------- diffusers
DIFFUSERS = {
    # name -> (scheduler class name, kwargs, NFE of n inference steps)
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"solver_order": 2}),
    "dpmpp_3m": ("DPMSolverMultistepScheduler", {"solver_order": 3}),
    "dpmpp_3m_final_sigma_min": ("DPMSolverMultistepScheduler", {"solver_order": 3, "final_sigmas_type": "sigma_min"}),
    "unipc_bh1": ("UniPCMultistepScheduler", {"solver_order": 3, "solver_type": "bh1"}),
    "unipc_bh2": ("UniPCMultistepScheduler", {"solver_order": 3, "solver_type": "bh2"}),
    "unipc_bh1_final_sigma_min": ("UniPCMultistepScheduler", {"solver_order": 3, "solver_type": "bh1",
                                                              "final_sigmas_type": "sigma_min"}),
    "unipc_bh2_final_sigma_min": ("UniPCMultistepScheduler", {"solver_order": 3, "solver_type": "bh2",
                                                              "final_sigmas_type": "sigma_min"}),
    "deis_3": ("DEISMultistepScheduler", {"solver_order": 3}),
    "ddim": ("DDIMScheduler", {"clip_sample": False, "timestep_spacing": "trailing", "set_alpha_to_one": True}),
}
KARRAS_OK = {"DPMSolverMultistepScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler"}


def trained_betas(sde, eps: float, n: int = 1000) -> list[float]:
    """betas of a 1000-level chain with alphas_cumprod_k = 1 / (1 + sigma(t_k)^2), t_k uniform on [eps, T]."""
    t = torch.linspace(eps, float(sde.T), n, dtype=torch.float64)
    abar = 1. / (1. + sde.noise_level(t) ** 2)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    return (1. - abar / prev).tolist()


def _diffusers_runner(cls_name: str, kwargs: dict):
    import diffusers

    cls = getattr(diffusers, cls_name)

    def run(sde, score_fn, z: Tensor, budget: int, eps: float):
        den = Denoiser(sde, score_fn)
        sch = cls(trained_betas=trained_betas(sde, eps), prediction_type="epsilon", **kwargs)
        sch.set_timesteps(budget)
        abar = sch.alphas_cumprod.double()
        table = ((1 - abar) / abar).sqrt()
        sigmas = sch.sigmas.double() if hasattr(sch, "sigmas") else None
        y, _ = _start(sde, z, den)

        def level(i, t):
            return float(sigmas[i]) if sigmas is not None else float(table[int(t)])
        s0 = level(0, sch.timesteps[0])
        x = y / math.sqrt(1 + s0 * s0)
        for i, t in enumerate(sch.timesteps):
            s = level(i, t)
            yy = x * math.sqrt(1 + s * s)
            e = (yy - den(yy, s)) / s
            x = sch.step(e, t, x).prev_sample
        if sigmas is not None:
            s_last = float(sigmas[len(sch.timesteps)])
        else:                               # DDIM: set_alpha_to_one -> the last step lands on sigma = 0
            s_last = 0.
        return _to_data(den, x * math.sqrt(1 + s_last * s_last), s_last), den.nfe, budget
    return run


# ----------------------------------------------------------------------------- k-diffusion
def load_k_diffusion_sampling():
    """k_diffusion/sampling.py as a module without running the package __init__ (which imports
    torchvision, kornia, clip, wandb ...); its only use of k_diffusion.utils is append_dims."""
    if "k_diffusion.sampling" in sys.modules:
        return sys.modules["k_diffusion.sampling"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("k-diffusion is not installed (pip install --no-deps k-diffusion)")
    root = list(spec.submodule_search_locations)[0]
    pkg = types.ModuleType("k_diffusion")
    pkg.__path__ = [root]
    utils = types.ModuleType("k_diffusion.utils")

    def append_dims(x, target_dims):
        return x[(...,) + (None,) * (target_dims - x.ndim)]
    utils.append_dims = append_dims
    pkg.utils = utils
    sys.modules.setdefault("k_diffusion", pkg)
    sys.modules.setdefault("k_diffusion.utils", utils)
    sspec = importlib.util.spec_from_file_location("k_diffusion.sampling", os.path.join(root, "sampling.py"))
    mod = importlib.util.module_from_spec(sspec)
    sys.modules["k_diffusion.sampling"] = mod
    sspec.loader.exec_module(mod)
    return mod


#: name -> (sampler function name, NFE of n sigma levels before the final 0)
K_DIFFUSION = {"euler": ("sample_euler", lambda n: n), "heun": ("sample_heun", lambda n: 2 * n - 1),
               "dpm_2": ("sample_dpm_2", lambda n: 2 * n - 1), "lms": ("sample_lms", lambda n: n),
               "dpmpp_2m": ("sample_dpmpp_2m", lambda n: n)}


def _kd_runner(K, fn_name: str, nfe_of, grid: str):
    fn = getattr(K, fn_name)

    def run(sde, score_fn, z: Tensor, budget: int, eps: float):
        den = Denoiser(sde, score_fn)
        y, s_max = _start(sde, z, den)
        s_min = float(sde.noise_level(torch.tensor([eps], dtype=torch.float64))[0])
        n = max(s for s in range(1, budget + 1) if nfe_of(s) <= budget)
        if grid == "karras":
            sig = K.get_sigmas_karras(n, s_min, s_max, rho=7.)
        else:
            sig = K.get_sigmas_exponential(n, s_min, s_max)
        sig = sig.double()
        sig[0] = s_max                       # exactly where z lives (float32 round-off otherwise)
        out = fn(den, y, sig, disable=True)
        return _to_data(den, out, 0.), den.nfe, n
    return run


def _kd_fast_runner(K):
    def run(sde, score_fn, z: Tensor, budget: int, eps: float):
        den = Denoiser(sde, score_fn)
        y, s_max = _start(sde, z, den)
        s_min = float(sde.noise_level(torch.tensor([eps], dtype=torch.float64))[0])
        out = K.sample_dpm_fast(den, y, s_min, s_max, budget, disable=True)
        return _to_data(den, out, s_min), den.nfe, budget      # ends at sigma_min (no denoising)
    return run


# ----------------------------------------------------------------------------- registry
def _diffusers_ok():
    try:
        import diffusers  # noqa: F401
        return None
    except Exception as exc:  # noqa: BLE001
        return f"diffusers peers skipped ({type(exc).__name__}: {exc}); install with `pip install diffusers`"


def _kd_ok():
    try:
        load_k_diffusion_sampling()
        return None
    except Exception as exc:  # noqa: BLE001
        return (f"k-diffusion peers skipped ({type(exc).__name__}: {exc}); install with "
                f"`pip install --no-deps k-diffusion`")


def missing_messages() -> list[str]:
    return [m for m in (_diffusers_ok(), _kd_ok()) if m]


def available_peers() -> list[tuple[str, str, object]]:
    """(family, name, run(sde, score_fn, z, budget, eps) -> (x, nfe, steps)) for every installed peer."""
    out = []
    if _diffusers_ok() is None:
        for name, (cls_name, kw) in DIFFUSERS.items():
            out.append(("diffusers", name, _diffusers_runner(cls_name, kw)))
            if cls_name in KARRAS_OK:
                out.append(("diffusers", name + "_karras", _diffusers_runner(cls_name, {**kw, "use_karras_sigmas": True})))
    if _kd_ok() is None:
        K = load_k_diffusion_sampling()
        for name, (fn_name, nfe_of) in K_DIFFUSION.items():
            for grid in ("karras", "exponential"):
                out.append(("k-diffusion", f"{name}_{grid}", _kd_runner(K, fn_name, nfe_of, grid)))
        out.append(("k-diffusion", "dpm_fast", _kd_fast_runner(K)))
    return out
