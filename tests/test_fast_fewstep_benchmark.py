"""Smoke test of benchmarks/fewstep.py: toolkit rows, acceptance and recommendation tables, report files."""
from __future__ import annotations

import json
import os

import torch

from benchmarks import fewstep as F
from benchmarks import fewstep_peers as peers
from samplers.fast_reference import pf_ode_reference
from sde_lib import VPSDE
from sde_lib.mixture import two_mode_mixture


def test_fewstep_pieces(tmp_path):
    sde, mix = VPSDE(), two_mode_mixture()
    z = sde.prior_sampling((128, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    score_fn = mix.score_fn(sde)
    ref, _ = pf_ode_reference(sde, score_fn, z, rtol=1e-6, atol=1e-6, eps=F.EPS)
    rows = F.toolkit_rows("vp_2d", sde, score_fn, z, ref, (5, 6))
    assert {r["sampler"] for r in rows} == set(F.TOOLKIT)
    assert all(r["nfe"] <= r["budget"] for r in rows)
    assert [r["nfe"] for r in rows if r["sampler"] == "heun"] == [5, 5]       # 2 steps - 1
    assert all(r["nfe"] == r["budget"] for r in rows if r["sampler"] != "heun")
    # a fake peer to exercise the acceptance table
    rows.append({"workload": "vp_2d", "family": "fake", "sampler": "p", "budget": 5, "nfe": 5, "rms": 1.})
    acc = F.acceptance(rows, (5, 6))
    assert acc[0]["nfe"] == 5 and acc[0]["ratio"] == acc[0]["toolkit_rms"] and "ratio" not in acc[1]
    rec = F.recommend(rows, (5, 6), acc)
    assert rec[0]["recommended"] in F.TOOLKIT and rec[0]["sde_family"] == "other (VP)"
    assert rec[1]["geomean_ratio_to_best_peer"] == 1.        # no peer at NFE 6: relative to the best toolkit
    paths = F.write_report(str(tmp_path), rows, [], acc, {"recommended": rec})
    assert all(os.path.getsize(p) > 0 for p in paths.values())
    assert json.load(open(paths["json"]))["acceptance"][0]["nfe"] == 5


def test_peer_denoiser_and_betas():
    """The peers' common ground: D(y, sigma) from the score, and a 1000-level chain whose
    alphas_cumprod are 1 / (1 + sigma(t_k)^2) (timestep 999 at T, 0 at eps)."""
    sde, mix = VPSDE(), two_mode_mixture()
    den = peers.Denoiser(sde, mix.score_fn(sde))
    y = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.full((8,), 0.3, dtype=torch.float64)
    m, s = sde.marginal_coeffs(t)
    sigma = float(s[0] / m[0])
    expect = (y * m[0] + s[0] ** 2 * mix.score(y * m[0], t, sde)) / m[0]            # Tweedie at x = m y
    assert torch.allclose(den(y, sigma), expect, atol=1e-10) and den.nfe == 1
    betas = torch.tensor(peers.trained_betas(sde, 1e-3), dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    ends = sde.noise_level(torch.tensor([1e-3, 1.], dtype=torch.float64))
    assert torch.allclose(abar[[0, -1]], 1 / (1 + ends ** 2), rtol=1e-9)
