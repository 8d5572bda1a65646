"""NCSNv2 on CIFAR-10 (Song & Ermon 2020): an alias of ``configs/ve/ncsnv2/cifar10.py``, the authors'
``configs/cifar10.yml`` through ``configs.from_ncsnv2``: a discrete VE model with 232 noise levels from
sigma_max = 50 to 0.01 (techniques 1 and 2), s(x, i) = f(x) / sigma_i (technique 3, the 29.7M-parameter
NCSNv2 network), EMA 0.999 (technique 5), annealed Langevin sampling with 5 steps per level
(``ald`` corrector, snr 0.176 = sqrt(step_lr / 2) / sigma_min for step_lr = 6.2e-6, technique 4).

For a GPU. Data: a local .npz with uint8 arrays x_train / x_test; set --config.data.path.
"""
from configs.ve.ncsnv2.cifar10 import get_config as _released


def get_config():
    return _released()
