"""DDPM++ (continuous sub-VP SDE) on CIFAR-10 with the published hyperparameters of Song et al. 2021
(score_sde ``configs/subvp/cifar10_ddpmpp_continuous.py``): the VP settings with the sub-VP SDE.

For a GPU. Data: a local .npz with uint8 arrays x_train / x_test; set --config.data.path.
"""
from configs.vp.cifar10_ddpmpp_continuous import get_config as vp_config


def get_config():
    config = vp_config()
    config.training.sde = "subvpsde"
    return config
