"""CIFAR-10 32x32 (NCSNv2) released by the authors of NCSNv2 (Song & Ermon 2020).

ORIGINAL is ermongroup/ncsnv2@1bcea03 ``configs/cifar10.yml`` (its values, unchanged); ``get_config`` is
``configs.from_ncsnv2(ORIGINAL)``. Checkpoint: ``checkpoint_300000.pth`` (sampling.ckpt_id) of the
authors' pretrained-checkpoint folder linked from ermongroup/ncsnv2's README. Import, then sample::

    python main.py --config configs/ve/ncsnv2/cifar10.py --workdir W --mode import --checkpoint PATH
    python main.py --config configs/ve/ncsnv2/cifar10.py --workdir W --mode sample
"""
from configs.from_ncsnv2 import from_ncsnv2

# ermongroup/ncsnv2 configs/cifar10.yml
ORIGINAL = {
    'training': {
        'batch_size': 128,
        'n_epochs': 500000,
        'n_iters': 300001,
        'snapshot_freq': 5000,
        'snapshot_sampling': True,
        'anneal_power': 2,
        'log_all_sigmas': False,
    },
    'sampling': {
        'batch_size': 100,
        'data_init': False,
        'step_lr': 6.2e-06,
        'n_steps_each': 5,
        'ckpt_id': 300000,
        'final_only': True,
        'fid': False,
        'denoise': True,
        'num_samples4fid': 10000,
        'inpainting': False,
        'interpolation': False,
        'n_interpolations': 15,
    },
    'fast_fid': {
        'batch_size': 1000,
        'num_samples': 1000,
        'step_lr': 6.2e-06,
        'n_steps_each': 5,
        'begin_ckpt': 5000,
        'end_ckpt': 300000,
        'verbose': False,
        'ensemble': False,
    },
    'test': {
        'begin_ckpt': 5000,
        'end_ckpt': 300000,
        'batch_size': 100,
    },
    'data': {
        'dataset': 'CIFAR10',
        'image_size': 32,
        'channels': 3,
        'logit_transform': False,
        'uniform_dequantization': False,
        'gaussian_dequantization': False,
        'random_flip': True,
        'rescaled': False,
        'num_workers': 4,
    },
    'model': {
        'sigma_begin': 50,
        'num_classes': 232,
        'ema': True,
        'ema_rate': 0.999,
        'spec_norm': False,
        'sigma_dist': 'geometric',
        'sigma_end': 0.01,
        'normalization': 'InstanceNorm++',
        'nonlinearity': 'elu',
        'ngf': 128,
    },
    'optim': {
        'weight_decay': 0.0,
        'optimizer': 'Adam',
        'lr': 0.0001,
        'beta1': 0.9,
        'amsgrad': False,
        'eps': 1e-08,
    },
}


def get_config():
    return from_ncsnv2(ORIGINAL)
