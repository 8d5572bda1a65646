"""VE SDE (continuous SMLD) on the 2-D two-mode mixture with a noise-conditional MLP.

sigma_max = 5 is of the order of the distances between the two modes (4.2 between their centres,
6.8 at most between two points; NCSNv2 technique 1). The MLP output is divided by sigma
(scale_by_sigma), so it only has to learn sigma * score. sigma_max = 10 trains to visibly worse
samples in the same 2000 steps.
"""
from configs.vp.toy2d import get_config as vp_toy2d


def get_config():
    config = vp_toy2d()
    config.training.sde = "vesde"
    model = config.model
    model.sigma_min = 0.01
    model.sigma_max = 5.
    model.scale_by_sigma = True
    return config
