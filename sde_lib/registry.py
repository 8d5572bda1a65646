"""Name -> SDE class registry and the config factory."""
from __future__ import annotations

from .base import SDE
from .checks import check_choice
from .ve import VESDE
from .vp import VPSDE, subVPSDE

SDES: dict[str, type[SDE]] = {"vesde": VESDE, "vpsde": VPSDE, "subvpsde": subVPSDE}


def get_sde(config) -> SDE:
    """Build the SDE named by ``config.training.sde`` (``vesde`` | ``vpsde`` | ``subvpsde``).

    Reads ``config.model.sigma_min/sigma_max`` (VE) or ``config.model.beta_min/beta_max`` (VP, sub-VP)
    and ``config.model.num_scales`` (N), with the published defaults when absent.
    """
    try:
        name = str(config.training.sde).lower()
    except AttributeError:
        raise ValueError("config.training.sde must be set to one of "
                         f"{sorted(SDES)}") from None
    check_choice("config.training.sde", name, SDES)
    model = getattr(config, "model", None)

    def get(key, default):
        return getattr(model, key, default) if model is not None else default

    N = int(get("num_scales", 1000))
    if name == "vesde":
        return VESDE(sigma_min=float(get("sigma_min", 0.01)), sigma_max=float(get("sigma_max", 50.)), N=N)
    return SDES[name](beta_min=float(get("beta_min", 0.1)), beta_max=float(get("beta_max", 20.)), N=N)
