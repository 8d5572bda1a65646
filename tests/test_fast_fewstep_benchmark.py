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
    assert rec[1]["worst_ratio"] == 1.        # no peer at NFE 6: relative to the best toolkit, it is the best
    assert rec[1]["recommended"] == acc[1]["toolkit_best"]
    assert F.auto_table(rec)["other"][0][0] == 1
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


def test_heldout_workloads_and_auto_ratio():
    """The held-out group: the diagonal mixture's closed-form score (against the isotropic mixture
    and against autograd of its log-density), and the acceptance rows carry the group and auto's ratio."""
    from benchmarks.fewstep_heldout import DiagonalMixture, make_heldout
    from sde_lib.mixture import GaussianMixture

    sde = VPSDE()
    means = torch.tensor([[1., -0.5, 0.2], [-0.8, 0.3, 0.]], dtype=torch.float64)
    iso = GaussianMixture([0.3, 0.7], means, [0.4, 0.1])
    diag = DiagonalMixture([0.3, 0.7], means, torch.tensor([[0.4] * 3, [0.1] * 3], dtype=torch.float64))
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = torch.full((16,), 0.2, dtype=torch.float64)
    assert torch.allclose(diag.score(x, t, sde), iso.score(x, t, sde), atol=1e-10)
    aniso = DiagonalMixture([0.6, 0.4], means[:, :2], torch.tensor([[1., 0.05], [0.2, 0.6]], dtype=torch.float64))
    xr = x[:, :2].clone().requires_grad_(True)
    m, s = sde.marginal_coeffs(t)
    var = m.reshape(-1, 1, 1) ** 2 * aniso.stds ** 2 + s.reshape(-1, 1, 1) ** 2
    d = aniso.means * m.reshape(-1, 1, 1) - xr.unsqueeze(1)
    logp = torch.logsumexp(torch.log(aniso.weights) - 0.5 * (torch.log(2 * torch.pi * var) + d ** 2 / var).sum(-1), 1)
    (grad,) = torch.autograd.grad(logp.sum(), xr)
    assert torch.allclose(aniso.score(x[:, :2], t, sde), grad, atol=1e-10)
    wls = make_heldout(True)
    assert len(wls) == 4 and not set(wls) & set(F.make_workloads(True))
    groups = F.workload_groups(True)
    assert {g for g, _ in groups.values()} == {"main", "held-out"}
    rows = [{"workload": "subvp_2d_five_mode", "family": "toolkit", "sampler": "unipc", "budget": 5, "nfe": 5,
             "rms": 0.5}, {"workload": "subvp_2d_five_mode", "family": "fake", "sampler": "p", "budget": 5,
                           "nfe": 5, "rms": 1.}]
    (rec,) = F.acceptance(rows, (5,), groups)
    assert rec["group"] == "held-out" and rec["auto"] == "unipc" and rec["auto_ratio"] == 0.5


def test_auto_table_matches_committed_results():
    """samplers.fast.AUTO is what the committed benchmark results recommend (rebuilt from fewstep.json),
    and the switch points fall halfway between measured budgets."""
    from samplers.fast import AUTO

    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks", "results", "fewstep", "fewstep.json")
    rows = json.load(open(path, encoding="utf-8"))["rows"]
    acc = F.acceptance([r for r in rows if not r["workload"].startswith("digits")], F.NFES, F.workload_groups(False))
    rec = F.recommend(rows, F.NFES, acc)
    assert len(rec) == 2 * len(F.NFES) and F.auto_table(rec) == AUTO
    fake = [{"sde_family": "drift_free (VE)", "nfe": n, "recommended": s} for n, s in ((5, "a"), (8, "b"), (20, "b"))]
    assert F.auto_table(fake) == {"drift_free": ((1, "a"), (7, "b"))}
