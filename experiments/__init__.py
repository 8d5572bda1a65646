"""Runnable reproductions of the classic score-matching / NCSN findings.

Run one as ``python -m experiments.<name> --out DIR`` (see each module's docstring); each writes
``DIR/<name>.png``, prints its figures as JSON and returns them from ``run(...)``.

* ``manifold``: sliced score matching on data on a 2-D plane in 20-D, without and with N(0, 1e-4) noise.
* ``low_density``: learned vs exact score of a two-mode mixture; error binned by data density.
* ``mixing``: Langevin vs annealed Langevin with the exact score of a 0.2/0.8 mixture (mode weights).
* ``ald_digits``: intermediate samples of annealed Langevin on the 8x8 digits, one column per noise level.
* ``pc_table``: the score SDE paper's Table 1 (P_N, P_2N, C_2N, PC_N for three predictors, VE and VP)
  on trained digits models, with MMD / KID / classifier entropy against held-out digits over seeds.
* ``identifiable``: separately trained models (seeds, widths) encode the same inputs to nearly the same
  probability-flow latents, against shuffled and untrained-model controls (2-D toy and digits).

Helpers (not experiments): ``common`` (CLI, settings, reports), ``trained_runs`` (cached training runs),
``pc_grid`` (the equal-compute grid and the claim verdicts), ``sample_quality`` (MMD, KID, entropy, floors).
"""
EXPERIMENTS = ("manifold", "low_density", "mixing", "ald_digits", "pc_table", "identifiable")
