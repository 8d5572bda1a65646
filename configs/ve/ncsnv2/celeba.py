"""CelebA 64x64 (NCSNv2) released by the authors of NCSNv2 (Song & Ermon 2020).

ORIGINAL is ermongroup/ncsnv2@1bcea03 ``configs/celeba.yml`` (its values, unchanged); ``get_config`` is
``configs.from_ncsnv2(ORIGINAL)``. Checkpoint: ``checkpoint_210000.pth`` (sampling.ckpt_id) of the
authors' pretrained-checkpoint folder linked from ermongroup/ncsnv2's README. Import, then sample::

    python main.py --config configs/ve/ncsnv2/celeba.py --workdir W --mode import --checkpoint PATH
    python main.py --config configs/ve/ncsnv2/celeba.py --workdir W --mode sample
"""
from configs.from_ncsnv2 import from_ncsnv2

# ermongroup/ncsnv2 configs/celeba.yml
ORIGINAL = {
    'training': {
        'batch_size': 128,
        'n_epochs': 500000,
        'n_iters': 210001,
        'snapshot_freq': 5000,
        'snapshot_sampling': True,
        'anneal_power': 2,
        'log_all_sigmas': False,
    },
    'sampling': {
        'batch_size': 64,
        'data_init': False,
        'step_lr': 3.3e-06,
        'n_steps_each': 5,
        'ckpt_id': 210000,
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
        'step_lr': 3.3e-06,
        'n_steps_each': 5,
        'begin_ckpt': 5000,
        'end_ckpt': 210000,
        'verbose': False,
        'ensemble': False,
    },
    'test': {
        'begin_ckpt': 5000,
        'end_ckpt': 210000,
        'batch_size': 100,
    },
    'data': {
        'dataset': 'CELEBA',
        'image_size': 64,
        'channels': 3,
        'logit_transform': False,
        'uniform_dequantization': False,
        'gaussian_dequantization': False,
        'random_flip': True,
        'rescaled': False,
        'num_workers': 32,
    },
    'model': {
        'sigma_begin': 90,
        'num_classes': 500,
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
