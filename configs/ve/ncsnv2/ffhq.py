"""FFHQ 256x256 (NCSNv2Deepest) released by the authors of NCSNv2 (Song & Ermon 2020).

ORIGINAL is ermongroup/ncsnv2@1bcea03 ``configs/ffhq.yml`` (its values, unchanged); ``get_config`` is
``configs.from_ncsnv2(ORIGINAL)``. Checkpoint: ``checkpoint_80000.pth`` (sampling.ckpt_id) of the
authors' pretrained-checkpoint folder linked from ermongroup/ncsnv2's README. Import, then sample::

    python main.py --config configs/ve/ncsnv2/ffhq.py --workdir W --mode import --checkpoint PATH
    python main.py --config configs/ve/ncsnv2/ffhq.py --workdir W --mode sample
"""
from configs.from_ncsnv2 import from_ncsnv2

# ermongroup/ncsnv2 configs/ffhq.yml
ORIGINAL = {
    'training': {
        'batch_size': 32,
        'n_epochs': 500000,
        'n_iters': 80001,
        'snapshot_freq': 5000,
        'snapshot_sampling': True,
        'anneal_power': 2,
        'log_all_sigmas': False,
    },
    'sampling': {
        'batch_size': 36,
        'data_init': False,
        'step_lr': 9e-07,
        'n_steps_each': 3,
        'ckpt_id': 80000,
        'final_only': True,
        'fid': False,
        'denoise': True,
        'num_samples4fid': 10000,
        'inpainting': False,
        'interpolation': False,
        'n_interpolations': 8,
    },
    'fast_fid': {
        'batch_size': 1000,
        'num_samples': 1000,
        'step_lr': 9e-07,
        'n_steps_each': 3,
        'begin_ckpt': 100000,
        'end_ckpt': 80000,
        'verbose': False,
        'ensemble': False,
    },
    'test': {
        'begin_ckpt': 5000,
        'end_ckpt': 80000,
        'batch_size': 100,
    },
    'data': {
        'dataset': 'FFHQ',
        'image_size': 256,
        'channels': 3,
        'logit_transform': False,
        'uniform_dequantization': False,
        'gaussian_dequantization': False,
        'random_flip': True,
        'rescaled': False,
        'num_workers': 8,
    },
    'model': {
        'sigma_begin': 348,
        'num_classes': 2311,
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
        'eps': 0.001,
    },
}


def get_config():
    return from_ncsnv2(ORIGINAL)
