"""Samplers driven by a score function: predictor-corrector, probability-flow ODE, annealed Langevin."""
from .predictors import PREDICTORS, Predictor, register_predictor
from .correctors import CORRECTORS, Corrector, register_corrector
from .pc import pc_sample, CountedScore
from .ode import ode_sample, encode, decode, ODE_METHODS
from .langevin import annealed_langevin, langevin_dynamics
from .fast import fast_sample, SOLVERS
from .controllable import inpaint, colorize, annealed_langevin_inpaint, conditional_score_fn

__all__ = ["PREDICTORS", "Predictor", "register_predictor", "CORRECTORS", "Corrector", "register_corrector",
           "pc_sample", "CountedScore", "ode_sample", "encode", "decode", "ODE_METHODS",
           "annealed_langevin", "langevin_dynamics", "fast_sample", "SOLVERS",
           "inpaint", "colorize", "annealed_langevin_inpaint", "conditional_score_fn"]
