"""Runnable reproductions of the classic score-matching / NCSN findings.

Run one as ``python -m experiments.<name> --out DIR`` (see each module's docstring); each writes
``DIR/<name>.png``, prints its figures as JSON and returns them from ``run(...)``.

* ``manifold``: sliced score matching on data on a 2-D plane in 20-D, without and with N(0, 1e-4) noise.
* ``low_density``: learned vs exact score of a two-mode mixture; error binned by data density.
* ``mixing``: Langevin vs annealed Langevin with the exact score of a 0.2/0.8 mixture (mode weights).
* ``ald_digits``: intermediate samples of annealed Langevin on the 8x8 digits, one column per noise level.
"""
EXPERIMENTS = ("manifold", "low_density", "mixing", "ald_digits")
