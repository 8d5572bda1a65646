"""sub-VP SDE on the 8x8 digits: the VP digits config with ``training.sde = "subvpsde"``."""
from configs.vp.digits import get_config as vp_digits


def get_config():
    config = vp_digits()
    config.training.sde = "subvpsde"
    return config
