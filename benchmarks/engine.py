"""Engine benchmark: exact likelihood speed and accuracy, PC / ODE sampling quality, any data shape.

    python benchmarks/engine.py [--threads 1] [--quick] [--json-out FILE] [--only ll_speed,ll_error,sample,shapes,digits]
        [--digits-workdir DIR] [--digits-iters N]

Workloads (one JSON line each, then Markdown tables):
* ``ll_speed/*``: log_likelihood on a D=192 ([3, 8, 8]) mean-zero two-component mixture, batch 64,
  rtol=atol=1e-5, with (a) the exact mixture score and (b) a fixed 4-layer width-256 time-conditioned
  MLP score. Reports wall s, NFE, ms per NFE, the cost of one forward+backward (VJP w.r.t. the input)
  of the MLP measured in the same run, their ratio per NFE (target <= 1.5), and the split of the wall
  time into score forward, score backward (VJP) and solver bookkeeping (score calls timed by a
  wrapper). The same for torchdiffeq's dopri5 and for a numpy/scipy round-trip reference that
  evaluates the score twice per right-hand side (the original research-code pattern).
* ``ll_error/*``: mean abs error in nats vs the exact log p_eps: exact trace at D=2 (each SDE), and
  Hutchinson (Rademacher) at D=192 with n_probes = 1, 4, 16.
* ``sample/*``: pc_sample (N=1000 and N=100) and ode_sample on the 2-D 0.2/0.8 mixture, 2048 points:
  wall s, NFE, mode-weight error, sliced Wasserstein to exact samples, excess spread of the narrow mode.
* ``shapes/*``: log_likelihood, bits_per_dim and the samplers on [B, 2], [B, L] and [B, C, H, W].
* ``ll_digits/ncsnpp/ve``: bits/dim (mean and standard error) of the whole 300-image digits test split
  under a VE NCSN++ trained with configs/ve/digits.py (EMA weights from ``--digits-workdir``; trained
  there through ``training.train.train`` for ``--digits-iters`` steps when it holds no checkpoint),
  with the config's eval likelihood settings; NFE, wall s and s per image; for reference the same
  network untrained (n_iters = 0, in ``<digits-workdir>_untrained``) and the uniform model, log2(17).
  ``--quick``: 200 training steps (separate workdir) and the first 32 test images.
"""
from __future__ import annotations

import math
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import Stopwatch, base_parser, best_time, emit, print_table, setup, write_json  # noqa: E402
from likelihood import bits_per_dim, log_likelihood  # noqa: E402
from quality import mode_spread, mode_weights_error, sliced_wasserstein  # noqa: E402
from sde_lib import VESDE, VPSDE, subVPSDE  # noqa: E402
from sde_lib.checks import batch_view  # noqa: E402
from sde_lib.mixture import GaussianMixture, two_mode_mixture  # noqa: E402

Tensor = torch.Tensor
RTOL = ATOL = 1e-5
EPS_LL = 1e-5


# ---------------------------------------------------------------------------- fixtures
def make_sdes(N: int = 1000) -> dict:
    return {"vesde": VESDE(sigma_min=0.01, sigma_max=20., N=N), "vpsde": VPSDE(N=N), "subvpsde": subVPSDE(N=N)}


def mean_zero_mixture(shape=(3, 8, 8), seed: int = 0) -> GaussianMixture:
    """Two components, weights 0.3/0.7 at -0.7 mu and 0.3 mu (|mu| = 2), stds 0.5/0.8: mean zero."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(shape, generator=g, dtype=torch.float64)
    mu = mu / mu.norm() * 2.
    return GaussianMixture([0.3, 0.7], torch.stack([-0.7 * mu, 0.3 * mu]), [0.5, 0.8])


class TimeMLP(nn.Module):
    """4 linear layers of width 256 with SiLU; the time enters as 16 random Fourier features of t."""

    def __init__(self, data_shape, width: int = 256, n_fourier: int = 8, seed: int = 0):
        super().__init__()
        self.data_shape = tuple(data_shape)
        dim = math.prod(self.data_shape)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.register_buffer("freqs", torch.randn(n_fourier) * 4.)
            self.net = nn.Sequential(nn.Linear(dim + 2 * n_fourier, width), nn.SiLU(),
                                     nn.Linear(width, width), nn.SiLU(),
                                     nn.Linear(width, width), nn.SiLU(),
                                     nn.Linear(width, dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        a = t.reshape(-1, 1).to(x.dtype) * self.freqs
        h = torch.cat((x.reshape(x.shape[0], -1), torch.sin(a), torch.cos(a)), dim=1)
        return self.net(h).reshape(x.shape)


def mlp_score_fn(sde, net: TimeMLP):
    """The network as a noise predictor: score = -net(x, t) / s(t) (VP convention)."""
    def score_fn(x: Tensor, t: Tensor) -> Tensor:
        return sde.model_output_to_score(net(x, t), t)
    return score_fn


class _Mark(torch.autograd.Function):
    """Identity that records the wall-clock time when the backward pass reaches it."""

    @staticmethod
    def forward(ctx, x, log, key):
        ctx.log, ctx.key = log, key
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        ctx.log[ctx.key].append(time.perf_counter())
        return g, None, None


def timed_score(score_fn, log: dict):
    """Wrap a score function to time its forward calls and the VJPs through it (CPU wall clock)."""
    def fn(x, t):
        t0 = time.perf_counter()
        out = score_fn(_Mark.apply(x, log, "bwd_end"), t)
        out = _Mark.apply(out, log, "bwd_start")
        log["fwd"] += time.perf_counter() - t0
        return out
    return fn


def forward_backward_cost(score_fn, x: Tensor, t: Tensor, number: int, repeat: int, device,
                          clock=time.perf_counter) -> float:
    """Seconds for one score forward + one VJP w.r.t. the input (the unit of the 1.5x target)."""
    v = torch.randn_like(x)

    def fb():
        xx = x.detach().requires_grad_(True)
        torch.autograd.grad(score_fn(xx, t), xx, v)
    return best_time(fb, number=number, repeat=repeat, device=device, clock=clock)


def numpy_reference_log_likelihood(sde, score_fn, x: Tensor, probe: Tensor, rtol: float, atol: float):
    """The research-code pattern: scipy RK45 on a numpy state, the score evaluated twice per call
    (once for the drift, once more under autograd for the Hutchinson divergence). Returns (logp, nfe)."""
    import numpy as np
    from scipy import integrate

    shape, B, n = x.shape, x.shape[0], x.numel()
    calls = [0]

    def drift_fn(xx, t):
        f, g = sde._sde(xx, t)
        return f - batch_view(0.5 * g ** 2, xx) * score_fn(xx, t)

    def ode_func(t, y):
        calls[0] += 2
        xx = torch.from_numpy(y[:n].reshape(shape)).to(x.dtype)
        vec_t = torch.full((B,), t, dtype=x.dtype)
        with torch.no_grad():
            drift = drift_fn(xx, vec_t)
        with torch.enable_grad():
            xg = xx.detach().requires_grad_(True)
            grad = torch.autograd.grad((drift_fn(xg, vec_t) * probe).sum(), xg)[0]
        div = (grad * probe).reshape(B, -1).sum(1)
        return np.concatenate([drift.numpy().reshape(-1), div.numpy()]).astype(np.float64)

    y0 = np.concatenate([x.numpy().reshape(-1), np.zeros(B)])
    sol = integrate.solve_ivp(ode_func, (EPS_LL, sde.T), y0, rtol=rtol, atol=atol, method="RK45")
    z = torch.from_numpy(sol.y[:n, -1].reshape(shape)).to(x.dtype)
    delta = torch.from_numpy(sol.y[n:, -1]).to(x.dtype)
    return sde._prior_logp(z) + delta, calls[0]


# ---------------------------------------------------------------------------- workloads
def bench_likelihood_speed(args, records):
    dev = torch.device(args.device)
    batch = 64
    repeat = 3 if args.quick else 9
    sde = VPSDE()
    mix = mean_zero_mixture()
    x = mix.sample(batch, generator=torch.Generator().manual_seed(1), device=dev)
    ref = mix.log_prob(x.double(), torch.full((batch,), EPS_LL, dtype=torch.float64, device=dev), sde)
    net = TimeMLP((3, 8, 8)).to(dev)
    for p in net.parameters():
        p.requires_grad_(False)          # a fixed score: the VJP is w.r.t. the input only
    scores = {"exact_score": mix.score_fn(sde), "mlp_score": mlp_score_fn(sde, net)}
    t_mid = torch.full((batch,), 0.5, device=dev)
    cpu_clock = dev.type == "cpu" and torch.get_num_threads() == 1
    for name, score_fn in scores.items():
        forward_backward_cost(score_fn, x, t_mid, number=20, repeat=2, device=dev)        # warm-up
        for method in ("rk45", "dopri5"):
            walls, cpus, fbs, fbs_cpu, nfe, lp = [], [], [], [], 0, None
            for _ in range(repeat):
                # paired measurement: the reference forward+backward cost right before each solve, so
                # that both see the same machine load; the ratio is the median of the paired ratios
                fbs.append(forward_backward_cost(score_fn, x, t_mid, number=10, repeat=3, device=dev))
                fbs_cpu.append(forward_backward_cost(score_fn, x, t_mid, number=10, repeat=3, device=dev,
                                                     clock=time.process_time))
                with Stopwatch(dev) as sw:
                    lp, _, nfe = log_likelihood(sde, score_fn, x, rtol=RTOL, atol=ATOL, method=method,
                                                generator=torch.Generator().manual_seed(2))
                walls.append(sw.seconds)
                cpus.append(sw.cpu_seconds)
            wall, fb = min(walls), min(fbs)
            ratios = sorted(w / nfe / f for w, f in zip(walls, fbs))
            rec = {"workload": f"ll_speed/{name}/{method}", "D": 192, "batch": batch, "wall_s": wall, "nfe": nfe,
                   "ms_per_nfe": 1e3 * wall / nfe, "fwd_bwd_ms": 1e3 * fb, "ratio_per_nfe": ratios[len(ratios) // 2],
                   "ratio_per_nfe_min_max": [ratios[0], ratios[-1]]}
            if cpu_clock:   # CPU-time ratio: less sensitive to other processes on a shared machine
                rc = sorted(c / nfe / f for c, f in zip(cpus, fbs_cpu))
                rec["ratio_per_nfe_cpu"] = rc[len(rc) // 2]
            log = {"fwd": 0., "bwd_start": [], "bwd_end": []}
            with Stopwatch(dev) as sw:
                log_likelihood(sde, timed_score(score_fn, log), x, rtol=RTOL, atol=ATOL, method=method,
                               generator=torch.Generator().manual_seed(2))
            bwd = sum(e - s for s, e in zip(log["bwd_start"], log["bwd_end"]))
            # fractions of the (wrapper-instrumented) solve: score forward, score VJP, everything else
            # (host wall clock: meaningful on CPU; on an accelerator the split would need syncs)
            rec.update({"score_fwd_frac": log["fwd"] / sw.seconds, "score_bwd_frac": bwd / sw.seconds,
                        "bookkeeping_frac": 1. - (log["fwd"] + bwd) / sw.seconds})
            if name == "exact_score":     # (the random MLP is not a model of the mixture)
                rec["mean_abs_err_nats"] = float((lp.double() - ref).abs().mean())
            emit(rec, records)
        if not args.quick and dev.type == "cpu":
            probe = torch.where(torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) < 0.5, -1., 1.)
            fb = forward_backward_cost(score_fn, x, t_mid, number=10, repeat=3, device=dev)
            fb_cpu = forward_backward_cost(score_fn, x, t_mid, number=10, repeat=3, device=dev, clock=time.process_time)
            with Stopwatch(dev) as sw:
                lp, nfe = numpy_reference_log_likelihood(sde, score_fn, x, probe, RTOL, ATOL)
            # nfe counts both score evaluations of each right-hand side; the ratio is per right-hand side
            emit({"workload": f"ll_speed/{name}/numpy_scipy_2x_reference", "D": 192, "batch": batch,
                  "note": "nfe = score calls (2 per right-hand side); ratio per right-hand side",
                  "wall_s": sw.seconds, "nfe": nfe, "ms_per_nfe": 1e3 * sw.seconds / nfe, "fwd_bwd_ms": 1e3 * fb,
                  "ratio_per_nfe": 2 * sw.seconds / nfe / fb,
                  "ratio_per_nfe_cpu": 2 * sw.cpu_seconds / nfe / fb_cpu if cpu_clock else None,
                  "mean_abs_err_nats": float((lp.double() - ref).abs().mean()) if name == "exact_score" else None},
                 records)


def bench_likelihood_error(args, records):
    dev = torch.device(args.device)
    # exact trace at D = 2, each SDE
    mix = two_mode_mixture()
    n2 = 256 if args.quick else 1024
    x2 = mix.sample(n2, generator=torch.Generator().manual_seed(3), device=dev)
    for name, sde in make_sdes().items():
        ref = mix.log_prob(x2.double(), torch.full((n2,), EPS_LL, dtype=torch.float64, device=dev), sde)
        for dtype in (torch.float32, torch.float64):
            with Stopwatch(dev) as sw:
                lp, z, nfe = log_likelihood(sde, mix.score_fn(sde), x2.to(dtype), hutchinson="exact",
                                            rtol=RTOL, atol=ATOL)
            err = lp.double() - ref
            # the same with the exact p_T instead of the prior: the ODE's own error
            zd = z.double()
            ode_err = err - sde._prior_logp(zd) + mix.log_prob(zd, torch.ones_like(ref) * sde.T, sde)
            emit({"workload": f"ll_error/exact_trace_D2/{name}/{str(dtype)[6:]}", "D": 2, "batch": n2,
                  "hutchinson": "exact", "n_probes": 0, "wall_s": sw.seconds, "nfe": nfe,
                  "mean_abs_err_nats": float(err.abs().mean()), "max_abs_err_nats": float(err.abs().max()),
                  "ode_only_mean_abs_err": float(ode_err.abs().mean())}, records)
    # Hutchinson at D = 192
    sde = VPSDE()
    mixd = mean_zero_mixture()
    nb = 32 if args.quick else 64
    xd = mixd.sample(nb, generator=torch.Generator().manual_seed(4), device=dev)
    ref = mixd.log_prob(xd.double(), torch.full((nb,), EPS_LL, dtype=torch.float64, device=dev), sde)
    for kind, probes in (("rademacher", (1, 4) if args.quick else (1, 4, 16)), ("gaussian", (1,))):
        for P in probes:
            with Stopwatch(dev) as sw:
                lp, _, nfe = log_likelihood(sde, mixd.score_fn(sde), xd, hutchinson=kind, n_probes=P,
                                            rtol=RTOL, atol=ATOL, generator=torch.Generator().manual_seed(5))
            err = lp.double() - ref
            emit({"workload": f"ll_error/hutchinson_D192/{kind}/P{P}", "D": 192, "batch": nb, "hutchinson": kind,
                  "n_probes": P, "wall_s": sw.seconds, "nfe": nfe, "mean_abs_err_nats": float(err.abs().mean()),
                  "max_abs_err_nats": float(err.abs().max()), "bias_nats": float(err.mean()),
                  "bias_std_err": float(err.std() / math.sqrt(nb))}, records)


def _load_samplers():
    try:
        import samplers
        return samplers
    except Exception as exc:  # noqa: BLE001 - the samplers package is developed in parallel
        print(f"# samplers not importable ({type(exc).__name__}: {exc}); sampling rows skipped", file=sys.stderr)
        return None


def bench_sampling(args, records):
    samplers = _load_samplers()
    if samplers is None:
        emit({"workload": "sample/skipped", "note": "samplers package not importable"}, records)
        return
    dev = torch.device(args.device)
    mix = two_mode_mixture()
    n = 512 if args.quick else 2048
    exact, lab_exact = mix.sample(n, generator=torch.Generator().manual_seed(6), device=dev, return_labels=True)
    spread_exact = mode_spread(exact, mix.component_index(exact), 0)
    exact2 = mix.sample(n, generator=torch.Generator().manual_seed(7), device=dev)
    emit({"workload": "sample/exact_samples_floor", "n": n,
          "sliced_w": sliced_wasserstein(exact2, exact, generator=torch.Generator().manual_seed(0)),
          "mode_w_err": mode_weights_error(mix.mode_weights(exact2), mix.weights)}, records)
    Ns = (100,) if args.quick else (1000, 100)
    runs = []
    for sde_name in ("vesde", "vpsde"):
        for N in Ns:
            runs.append((f"pc/{sde_name}/N{N}/rd+langevin(snr=0.16)", make_sdes(N)[sde_name], "pc"))
            runs.append((f"pc/{sde_name}/N{N}/rd+none", make_sdes(N)[sde_name], "pc_none"))
        runs.append((f"ode_rk45/{sde_name}", make_sdes()[sde_name], "ode"))
    for label, sde, kind in runs:
        score_fn = mix.score_fn(sde)
        g = torch.Generator().manual_seed(8)
        with Stopwatch(dev) as sw:
            if kind.startswith("pc"):
                x, nfe = samplers.pc_sample(sde, score_fn, (n, 2), generator=g, device=dev,
                                            corrector="none" if kind == "pc_none" else "langevin")
            else:
                x, nfe = samplers.ode_sample(sde, score_fn, (n, 2), generator=g, device=dev)
        ok = bool(torch.isfinite(x).all())
        rec = {"workload": f"sample/{label}", "n": n, "wall_s": sw.seconds, "nfe": nfe, "finite": ok}
        if ok:
            idx = mix.component_index(x)
            rec.update({"mode_w_err": mode_weights_error(mix.mode_weights(x), mix.weights),
                        "sliced_w": sliced_wasserstein(x, exact, generator=torch.Generator().manual_seed(0)),
                        "narrow_spread_excess": mode_spread(x, idx, 0) / spread_exact - 1.})
        emit(rec, records)


def bench_shapes(args, records):
    dev = torch.device(args.device)
    samplers = _load_samplers()
    sde = VPSDE(N=50)
    base = mean_zero_mixture((48,), seed=1)
    cases = {"[B,2]": two_mode_mixture(),
             "[B,L]": base,
             "[B,C,H,W]": GaussianMixture(base.weights, base.means.reshape(2, 3, 4, 4), base.stds)}
    B = 8
    warm = two_mode_mixture()
    log_likelihood(sde, warm.score_fn(sde), warm.sample(2, device=dev))       # first-call warm-up
    for label, mix in cases.items():
        x = mix.sample(B, generator=torch.Generator().manual_seed(9), device=dev)
        rec = {"workload": f"shapes/{label}", "shape": list(x.shape), "hutchinson": "rademacher"}
        with Stopwatch(dev) as sw:
            lp, z, nfe = log_likelihood(sde, mix.score_fn(sde), x, generator=torch.Generator().manual_seed(10))
        rec.update({"wall_s": sw.seconds, "nfe": nfe, "ll_ok": bool(torch.isfinite(lp).all()) and z.shape == x.shape,
                    "mean_abs_err_nats": float((lp.double() - mix.log_prob(
                        x.double(), torch.full((B,), EPS_LL, dtype=torch.float64, device=dev), sde)).abs().mean())})
        xq = ((x.clamp(-4, 4) + 4) / 8 * 255).floor() / 256        # discrete levels in [0, 1)
        bpd = bits_per_dim(sde, mix.score_fn(sde), xq, generator=torch.Generator().manual_seed(11))
        rec["bpd_ok"] = bool(torch.isfinite(bpd).all()) and bpd.shape == (B,)
        if samplers is not None:
            s1, _ = samplers.pc_sample(sde, mix.score_fn(sde), tuple(x.shape), generator=torch.Generator().manual_seed(12),
                                       device=dev)
            s2, _ = samplers.ode_sample(sde, mix.score_fn(sde), tuple(x.shape),
                                        generator=torch.Generator().manual_seed(13), device=dev)
            rec["samplers_ok"] = s1.shape == x.shape and s2.shape == x.shape and bool(
                torch.isfinite(s1).all() and torch.isfinite(s2).all())
        emit(rec, records)


# ---------------------------------------------------------------------------- trained digits NCSN++
DIGITS_CONFIG = "configs/ve/digits.py"
DIGITS_ITERS, DIGITS_ITERS_QUICK, DIGITS_N_QUICK = 3000, 200, 32
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _digits_config(args, n_iters: int):
    """configs/ve/digits.py (VE SDE, tiny NCSN++) on ``args.device`` with ``n_iters`` training steps."""
    from configs.ve.digits import get_config

    config = get_config()
    config.device = args.device
    config.training.n_iters = int(n_iters)
    return config


def _ensure_trained(config, workdir: str) -> dict:
    """Train through ``training.train.train`` when ``workdir`` holds no checkpoint; the training wall
    time of that run is kept in ``<workdir>/bench_train.json`` so later runs can report it."""
    import json

    from training.checkpoint import CheckpointManager
    from training.train import checkpoint_dir, train

    info_path = os.path.join(workdir, "bench_train.json")
    if CheckpointManager(checkpoint_dir(workdir), keep=1).load_latest() is None:
        print(f"# digits: no checkpoint in {workdir}; training {config.training.n_iters} steps", file=sys.stderr)
        with Stopwatch(config.device) as sw:
            train(config, workdir, progress=False)
        with open(info_path, "w", encoding="utf-8") as fh:
            json.dump({"train_steps": int(config.training.n_iters), "train_s": sw.seconds,
                       "threads": torch.get_num_threads()}, fh)
    if os.path.exists(info_path):
        with open(info_path, encoding="utf-8") as fh:
            return json.load(fh)
    return {}


def _digits_bpd(config, workdir: str, x: Tensor, device) -> dict:
    """Bits/dim of the EMA weights in ``workdir`` on ``x`` with ``config.eval``'s likelihood settings
    (the same keywords as ``training.evaluate.likelihood_stats``); NFE counted by a wrapper."""
    from training.data import data_range, n_bins
    from training.evaluate import _mean_se, load_trained, score_fn_for

    sde, model, step, _ = load_trained(config, workdir, device=device)
    score_fn = score_fn_for(config, sde, model)
    calls = [0]

    def counted(xx, t):
        calls[0] += 1
        return score_fn(xx, t)
    e = config.eval
    max_batch = max(1, int(e.batch_size))
    g = torch.Generator(device=device).manual_seed(int(config.seed) + 11)
    with Stopwatch(device) as sw:
        bpd = bits_per_dim(sde, counted, x.to(device), data_range=tuple(data_range(config)),
                           n_bins=int(n_bins(config)), hutchinson=str(e.hutchinson), rtol=float(e.rtol),
                           atol=float(e.atol), eps=float(config.training.eps), generator=g,
                           n_probes=int(e.n_probes), max_batch=max_batch)
    mean, se = _mean_se(bpd)
    n_batches = math.ceil(x.shape[0] / max_batch)
    return {"step": step, "bpd": mean, "bpd_se": se, "nfe_total": calls[0], "nfe_per_batch": calls[0] / n_batches,
            "n_batches": n_batches, "wall_s": sw.seconds, "cpu_s": sw.cpu_seconds}


def bench_digits(args, records):
    """Bits/dim of the digits test split under a trained VE NCSN++ (configs/ve/digits.py), with the
    untrained model (same architecture, n_iters = 0) and the uniform model over 17 levels for reference."""
    from training.data import get_dataset

    dev = torch.device(args.device)
    n_iters = args.digits_iters if args.digits_iters is not None else (
        DIGITS_ITERS_QUICK if args.quick else DIGITS_ITERS)
    workdir = args.digits_workdir or os.path.join(
        _ROOT, "bench_out", "digits_ncsnpp_quick" if args.quick else "digits_ncsnpp")
    config = _digits_config(args, n_iters)
    train_info = _ensure_trained(config, workdir)
    untrained_dir = workdir.rstrip("/") + "_untrained"
    _ensure_trained(_digits_config(args, 0), untrained_dir)
    test = get_dataset(config, "test")
    n_test_split = int(test.shape[0])
    if args.quick:
        test = test[:DIGITS_N_QUICK]
    n = int(test.shape[0])
    trained = _digits_bpd(config, workdir, test, dev)
    untrained = _digits_bpd(config, untrained_dir, test, dev)
    e = config.eval
    train_steps = trained["step"]
    train_s = train_info.get("train_s") if train_info.get("train_steps") == train_steps else None
    emit({"workload": "ll_digits/ncsnpp/ve", "config": DIGITS_CONFIG, "workdir": workdir, "n": n,
          "n_test_split": n_test_split, "D": int(test[0].numel()), "weights": str(e.ckpt),
          "hutchinson": str(e.hutchinson), "n_probes": int(e.n_probes), "rtol": float(e.rtol), "atol": float(e.atol),
          "bpd": trained["bpd"], "bpd_se": trained["bpd_se"],
          "nfe_per_batch": trained["nfe_per_batch"], "nfe_total": trained["nfe_total"],
          "n_batches": trained["n_batches"], "wall_s": trained["wall_s"], "s_per_image": trained["wall_s"] / n,
          "cpu_s_per_image": trained["cpu_s"] / n, "train_steps": train_steps, "train_s": train_s,
          "train_steps_per_s": train_steps / train_s if train_s else None,
          "untrained_bpd": untrained["bpd"], "untrained_bpd_se": untrained["bpd_se"],
          "untrained_nfe_per_batch": untrained["nfe_per_batch"],
          "uniform_bpd": math.log2(int(config.data.n_bins))}, records)


SECTIONS = {"ll_speed": bench_likelihood_speed, "ll_error": bench_likelihood_error, "sample": bench_sampling,
            "shapes": bench_shapes, "digits": bench_digits}


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run, from {','.join(SECTIONS)}")
    parser.add_argument("--digits-workdir", "--digits_workdir", dest="digits_workdir", default=None,
                        help="digits section: workdir of a trained configs/ve/digits.py model, trained here "
                             "when it holds no checkpoint (default bench_out/digits_ncsnpp; "
                             "bench_out/digits_ncsnpp_quick with --quick)")
    parser.add_argument("--digits-iters", "--digits_iters", dest="digits_iters", type=int, default=None,
                        help=f"digits section: training steps when a model must be trained (default "
                             f"{DIGITS_ITERS}, about 3-4 min on one CPU thread; {DIGITS_ITERS_QUICK} with --quick)")
    args = parser.parse_args(argv)
    setup(args)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        parser.error(f"--only: unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    records: list = []
    t0 = time.perf_counter()
    for name in only:
        SECTIONS[name](args, records)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n# engine benchmark: {time.perf_counter() - t0:.1f} s total, {torch.get_num_threads()} thread(s), "
          f"device {args.device}, {os.cpu_count()} CPUs, load average {load:.2f} (timings on a loaded machine "
          f"are pessimistic; ratio_per_nfe is the median of paired ratios)")
    print_table([r for r in records if r["workload"].startswith("ll_speed")],
                ["workload", "batch", "wall_s", "nfe", "ms_per_nfe", "fwd_bwd_ms", "ratio_per_nfe", "ratio_per_nfe_min_max",
                 "ratio_per_nfe_cpu", "score_fwd_frac", "score_bwd_frac", "bookkeeping_frac", "mean_abs_err_nats"],
                title="log_likelihood speed (D=192, batch 64, rtol=atol=1e-5)")
    print_table([r for r in records if r["workload"].startswith("ll_error")],
                ["workload", "batch", "nfe", "wall_s", "mean_abs_err_nats", "max_abs_err_nats",
                 "ode_only_mean_abs_err", "bias_nats", "bias_std_err"],
                title="log_likelihood error vs exact log p_eps (nats)")
    print_table([r for r in records if r["workload"].startswith("sample")],
                ["workload", "n", "wall_s", "nfe", "mode_w_err", "sliced_w", "narrow_spread_excess"],
                title="Sampling the 2-D 0.2/0.8 mixture with its exact score")
    print_table([r for r in records if r["workload"].startswith("shapes")],
                ["workload", "shape", "nfe", "wall_s", "ll_ok", "hutchinson", "mean_abs_err_nats", "bpd_ok",
                 "samplers_ok"],
                title="Any data shape")
    print_table([r for r in records if r["workload"].startswith("ll_digits")],
                ["workload", "n", "hutchinson", "n_probes", "rtol", "bpd", "bpd_se", "nfe_per_batch", "n_batches",
                 "wall_s", "s_per_image", "train_steps", "train_s", "untrained_bpd", "uniform_bpd"],
                title="Bits/dim of the digits test split, trained VE NCSN++ (configs/ve/digits.py; nfe per "
                      "batch of eval.batch_size, EMA weights)")
    write_json(args.json_out, records)


if __name__ == "__main__":
    main()
