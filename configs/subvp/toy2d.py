"""sub-VP SDE on the 2-D two-mode mixture: the VP toy config with ``training.sde = "subvpsde"``."""
from configs.vp.toy2d import get_config as vp_toy2d


def get_config():
    config = vp_toy2d()
    config.training.sde = "subvpsde"
    return config
