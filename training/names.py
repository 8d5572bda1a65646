"""Output names that say what made them, so runs with different settings never overwrite each other.

    sampler_tag(config)        "pc_reverse_diffusion-langevin_N1000_snr0.16x1", "ode_rk45_tol1e-05"
    likelihood_tag(config, n)  "rademacher1_tol1e-05_n500", "exact_rtol1e-05-atol1e-06_n64"
    output_name(kind, step, *tags, ext=None)  -> "<kind>_<tag>_..._<step>[.ext]"

The sampler tag holds the method and its settings: PC: predictor-corrector, N (``config.model.num_scales``,
the PC step count), snr x corrector steps when a corrector runs, ``pflow`` (probability-flow predictor);
ODE: the solver and its tolerances; both: ``eps<e>`` when ``config.sampling.eps`` is not 1e-3,
``nodenoise`` without the final denoising, corrector keyword arguments other than the corrector's
defaults (``step_norm-sample``), ``raw`` for the raw
(non-EMA) weights. Every file's JSON also records the step and, where it applies, the NFE. Settings
outside the name (the seed, batch sizes) give statistically equivalent outputs.
"""
from __future__ import annotations

import inspect

from samplers import CORRECTORS

from .inference import corrector_kwargs

DEFAULT_EPS = 1e-3


def _num(v) -> str:
    return f"{float(v):g}"


def tolerance_tag(rtol, atol) -> str:
    """``tol<r>`` when rtol == atol, else ``rtol<r>-atol<a>``."""
    return f"tol{_num(rtol)}" if float(rtol) == float(atol) else f"rtol{_num(rtol)}-atol{_num(atol)}"


def sampler_tag(config, n_steps: int | None = None, method: str | None = None) -> str:
    """The sampling settings of ``config.sampling`` (see the module docstring); ``n_steps`` overrides N,
    ``method`` config.sampling.method (the controllable workflows always run PC: ``method="pc"``)."""
    s = config.sampling
    method = str(s.method) if method is None else method
    if method == "pc":
        N = int(n_steps) if n_steps is not None else int(config.model.num_scales)
        parts = [f"pc_{s.predictor}-{s.corrector}_N{N}"]
        if str(s.corrector) != "none":
            parts.append(f"snr{_num(s.snr)}x{int(s.n_steps_each)}")
            params = inspect.signature(CORRECTORS[str(s.corrector)].__init__).parameters
            kw = {k: v for k, v in corrector_kwargs(config).items() if v != params[k].default}
            parts += [f"{k}-{kw[k]}" for k in sorted(kw)]
        if bool(s.probability_flow) and str(s.predictor) != "none":
            parts.append("pflow")
    else:
        parts = [f"{method}_{s.ode_method}", tolerance_tag(s.rtol, s.atol)]
    if float(s.eps) != DEFAULT_EPS:
        parts.append(f"eps{_num(s.eps)}")
    if not bool(s.noise_removal):
        parts.append("nodenoise")
    if str(getattr(config.eval, "ckpt", "ema")) == "raw":
        parts.append("raw")
    return "_".join(parts)


def likelihood_tag(config, n: int) -> str:
    """The likelihood settings of ``config.eval`` on ``n`` points: estimator (probes), tolerances, n."""
    e = config.eval
    est = str(e.hutchinson) + ("" if str(e.hutchinson) == "exact" else str(int(e.n_probes)))
    parts = [est, tolerance_tag(e.rtol, e.atol), f"n{int(n)}"]
    if str(getattr(e, "ckpt", "ema")) == "raw":
        parts.append("raw")
    return "_".join(parts)


def output_name(kind: str, step: int, *tags: str, ext: str | None = None) -> str:
    """``<kind>_<tag>_..._<step>`` (+ ``.ext``): the step last, as in ``samples_<tag>_<step>.png``."""
    name = "_".join([kind, *(t for t in tags if t), str(int(step))])
    return f"{name}.{ext}" if ext else name
