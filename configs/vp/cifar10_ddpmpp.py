"""VP SDE, DDPM++ (discrete) on CIFAR10 32x32: the released score_sde_pytorch checkpoint
``vp/cifar10_ddpmpp`` (reported: FID 2.78, IS 9.64); original config ``configs/vp/cifar10_ddpmpp.py``.

``ORIGINAL`` holds that config's values; ``configs.from_score_sde`` turns it into this toolkit's config, so
that the network has the original's 61,804,419 trainable parameters and sampling with the defaults
does what the original's defaults do. Import the released file, then use every mode on the workdir:

    python main.py --config configs/vp/cifar10_ddpmpp.py --workdir runs/cifar10_ddpmpp --mode import --checkpoint PATH.pth
    python main.py --config configs/vp/cifar10_ddpmpp.py --workdir runs/cifar10_ddpmpp --mode sample

Data for training / evaluation: set ``--config.data.path`` (nothing is downloaded).
"""
from configs.from_score_sde import from_score_sde

ORIGINAL = {
    'data': {'centered': True,
             'dataset': 'CIFAR10',
             'image_size': 32,
             'num_channels': 3,
             'random_flip': True,
             'uniform_dequantization': False},
    'eval': {'batch_size': 1024,
             'begin_ckpt': 9,
             'bpd_dataset': 'test',
             'enable_bpd': False,
             'enable_loss': True,
             'enable_sampling': False,
             'end_ckpt': 26,
             'num_samples': 50000},
    'model': {'attention_type': 'ddpm',
              'attn_resolutions': [16],
              'beta_max': 20.0,
              'beta_min': 0.1,
              'ch_mult': [1, 2, 2, 2],
              'conditional': True,
              'conv_size': 3,
              'dropout': 0.1,
              'ema_rate': 0.9999,
              'embedding_type': 'positional',
              'fir': False,
              'fir_kernel': [1, 3, 3, 1],
              'fourier_scale': 16,
              'init_scale': 0.0,
              'name': 'ncsnpp',
              'nf': 128,
              'nonlinearity': 'swish',
              'normalization': 'GroupNorm',
              'num_res_blocks': 4,
              'num_scales': 1000,
              'progressive': 'none',
              'progressive_combine': 'sum',
              'progressive_input': 'none',
              'resamp_with_conv': True,
              'resblock_type': 'biggan',
              'scale_by_sigma': False,
              'sigma_max': 50,
              'sigma_min': 0.01,
              'skip_rescale': True},
    'optim': {'beta1': 0.9,
              'eps': 1e-08,
              'grad_clip': 1.0,
              'lr': 0.0002,
              'optimizer': 'Adam',
              'warmup': 5000,
              'weight_decay': 0},
    'sampling': {'corrector': 'none',
                 'method': 'pc',
                 'n_steps_each': 1,
                 'noise_removal': True,
                 'predictor': 'ancestral_sampling',
                 'probability_flow': False,
                 'snr': 0.16},
    'seed': 42,
    'training': {'batch_size': 128,
                 'continuous': False,
                 'eval_freq': 100,
                 'likelihood_weighting': False,
                 'log_freq': 50,
                 'n_iters': 1300001,
                 'reduce_mean': True,
                 'sde': 'vpsde',
                 'snapshot_freq': 50000,
                 'snapshot_freq_for_preemption': 10000,
                 'snapshot_sampling': True}
}


def get_config():
    return from_score_sde(ORIGINAL)
