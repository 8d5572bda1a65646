"""Forward SDEs for score-based generative modelling: VE (NCSN/SMLD), VP (DDPM) and sub-VP."""
from .base import SDE, ReverseSDE
from .ve import VESDE
from .vp import VPSDE, subVPSDE
from .registry import SDES, get_sde
from .mixture import GaussianMixture

__all__ = ["SDE", "ReverseSDE", "VESDE", "VPSDE", "subVPSDE", "SDES", "get_sde", "GaussianMixture"]
