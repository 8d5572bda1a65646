"""Digits section of ``benchmarks/fewstep.py``: a trained score model instead of a closed form.

A tiny VP DDPM++ (``configs/vp/digits.py``) is trained here on scikit-learn's 8x8 digits (17 levels,
centred to [-1, 1]) with the public API only: ``training.get_loss_fn``, ``models.get_model``,
``models.ExponentialMovingAverage``, ``models.get_score_fn``; the EMA weights are cached in
``--digits-workdir`` (default ``bench_out/fewstep_digits``). Every sampler starts from the same x_T;
error = RMS distance to the model's own converged probability-flow ODE (dopri5, rtol = atol = 1e-6)
and ``quality.mmd_rbf`` to the held-out digits.
"""
from __future__ import annotations

import math
import os
import time

import torch

from benchmarks import fewstep_peers as peers
from samplers.fast import fast_sample
from samplers.fast_reference import pf_ode_reference

ITERS, ITERS_QUICK = 2000, 100


def _train(args, workdir: str):
    from configs.vp.digits import get_config
    from models import ExponentialMovingAverage, get_model
    from sde_lib import get_sde
    from sklearn.datasets import load_digits
    from training import get_loss_fn

    config = get_config()
    iters = args.digits_iters or (ITERS_QUICK if args.quick else ITERS)
    data = torch.tensor(load_digits().images, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16. * 2. - 1.
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(data.shape[0], generator=g)
    train_x, test_x = data[perm[300:]], data[perm[:300]]
    torch.manual_seed(0)
    model = get_model(config)
    path = os.path.join(workdir, f"ema_{iters}.pt")
    sde = get_sde(config)
    if os.path.exists(path):
        model.load_state_dict(torch.load(path))
        return config, sde, model, test_x, {"train_steps": iters, "cached": True}
    loss_fn = get_loss_fn(sde, train=True, reduce_mean=True, continuous=True)
    opt = torch.optim.Adam(model.parameters(), lr=float(config.optim.lr))
    ema = ExponentialMovingAverage(model.parameters(), decay=float(config.model.ema_rate))
    t0 = time.perf_counter()
    model.train()
    for step in range(iters):
        idx = torch.randint(0, train_x.shape[0], (int(config.training.batch_size),), generator=g)
        loss = loss_fn(model, train_x[idx])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.)
        for group in opt.param_groups:
            group["lr"] = float(config.optim.lr) * min(1., (step + 1) / 100.)
        opt.step()
        ema.update(model.parameters())
    ema.copy_to(model.parameters())
    os.makedirs(workdir, exist_ok=True)
    torch.save(model.state_dict(), path)
    return config, sde, model, test_x, {"train_steps": iters, "train_s": time.perf_counter() - t0}


def bench_digits(args, toolkit: dict, steps_for) -> tuple[list[dict], list[dict]]:
    from models import get_score_fn
    from quality import mmd_rbf

    try:
        config, sde, model, test_x, info = _train(args, args.digits_workdir)
    except Exception as exc:  # noqa: BLE001 - the training stack is developed in parallel
        msg = f"digits section skipped ({type(exc).__name__}: {exc})"
        print(f"# {msg}")
        return [], [{"workload": "digits", "note": msg[:300]}]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    score_fn = get_score_fn(sde, model, continuous=True)
    n = 128 if args.quick else 300
    z = sde.prior_sampling((n, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, ref_nfe = pf_ode_reference(sde, score_fn, z, rtol=1e-6, atol=1e-6, eps=1e-3)
    nfes = (5, 10) if args.quick else (5, 6, 8, 10, 15, 20)
    rows = []

    def record(family, name, budget, steps, x, nfe):
        rows.append({"workload": "digits_vp_ddpmpp", "family": family, "sampler": name, "budget": budget,
                     "steps": steps, "nfe": nfe, "rms": float((x - ref).flatten(1).pow(2).sum(1).mean().sqrt()),
                     "mmd": mmd_rbf(x.flatten(1).clamp(-1, 1), test_x[:n].flatten(1))})
    with torch.no_grad():
        for name, nfe_of in toolkit.items():
            for b in nfes:
                s = steps_for(nfe_of, b)
                x, nfe = fast_sample(sde, score_fn, tuple(z.shape), solver=name, steps=s, z=z)
                record("toolkit", name, b, s, x, nfe)
        for family, name, run in peers.available_peers():
            for b in nfes:
                try:
                    x, nfe, s = run(sde, score_fn, z, b, 1e-3)
                except Exception:  # noqa: BLE001
                    continue
                if bool(torch.isfinite(x).all()):
                    record(family, name, b, s, x, nfe)
    summary = [{"workload": "digits_vp_ddpmpp", "ref_nfe": ref_nfe, "n": n,
                "ref_mmd": mmd_rbf(ref.flatten(1).clamp(-1, 1), test_x[:n].flatten(1)), **info}]
    for b in nfes:
        sel = [r for r in rows if r["budget"] == b and math.isfinite(r["rms"])]
        tk = min((r for r in sel if r["family"] == "toolkit"), key=lambda r: r["rms"])
        pr = [r for r in sel if r["family"] != "toolkit"]
        rec = {"workload": "digits_vp_ddpmpp", "nfe": b, "toolkit_best": tk["sampler"], "toolkit_rms": tk["rms"],
               "toolkit_mmd": tk["mmd"]}
        if pr:
            bp = min(pr, key=lambda r: r["rms"])
            rec.update({"peer_best": f"{bp['family']}:{bp['sampler']}", "peer_rms": bp["rms"], "peer_mmd": bp["mmd"],
                        "ratio": tk["rms"] / bp["rms"]})
        summary.append(rec)
    return rows, summary
