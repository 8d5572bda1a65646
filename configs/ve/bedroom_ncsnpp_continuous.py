"""VE SDE, NCSN++ (continuous) on LSUN 256x256: the released score_sde_pytorch checkpoint
``ve/bedroom_ncsnpp_continuous`` (reported: LSUN bedroom 256x256 samples); original config ``configs/ve/bedroom_ncsnpp_continuous.py``.

``ORIGINAL`` holds that config's values; ``configs.from_score_sde`` turns it into this toolkit's config, so
that the network has the original's 65,574,421 trainable parameters and sampling with the defaults
does what the original's defaults do. Import the released file, then use every mode on the workdir:

    python main.py --config configs/ve/bedroom_ncsnpp_continuous.py --workdir runs/bedroom_ncsnpp_continuous --mode import --checkpoint PATH.pth
    python main.py --config configs/ve/bedroom_ncsnpp_continuous.py --workdir runs/bedroom_ncsnpp_continuous --mode sample

Data for training / evaluation: set ``--config.data.path`` (nothing is downloaded).
"""
from configs.from_score_sde import from_score_sde

ORIGINAL = {
    'data': {'category': 'bedroom',
             'centered': False,
             'dataset': 'LSUN',
             'image_size': 256,
             'num_channels': 3,
             'random_flip': True,
             'uniform_dequantization': False},
    'eval': {'batch_size': 512,
             'begin_ckpt': 50,
             'bpd_dataset': 'test',
             'enable_bpd': False,
             'enable_loss': True,
             'enable_sampling': True,
             'end_ckpt': 96,
             'num_samples': 50000},
    'model': {'attention_type': 'ddpm',
              'attn_resolutions': [16],
              'beta_max': 20.0,
              'beta_min': 0.1,
              'ch_mult': [1, 1, 2, 2, 2, 2, 2],
              'conditional': True,
              'conv_size': 3,
              'dropout': 0.0,
              'ema_rate': 0.999,
              'embedding_type': 'fourier',
              'fir': True,
              'fir_kernel': [1, 3, 3, 1],
              'fourier_scale': 16,
              'init_scale': 0.0,
              'name': 'ncsnpp',
              'nf': 128,
              'nonlinearity': 'swish',
              'normalization': 'GroupNorm',
              'num_res_blocks': 2,
              'num_scales': 2000,
              'progressive': 'output_skip',
              'progressive_combine': 'sum',
              'progressive_input': 'input_skip',
              'resamp_with_conv': True,
              'resblock_type': 'biggan',
              'scale_by_sigma': True,
              'sigma_max': 378,
              'sigma_min': 0.01,
              'skip_rescale': True},
    'optim': {'beta1': 0.9,
              'eps': 1e-08,
              'grad_clip': 1.0,
              'lr': 0.0002,
              'optimizer': 'Adam',
              'warmup': 5000,
              'weight_decay': 0},
    'sampling': {'corrector': 'langevin',
                 'method': 'pc',
                 'n_steps_each': 1,
                 'noise_removal': True,
                 'predictor': 'reverse_diffusion',
                 'probability_flow': False,
                 'snr': 0.075},
    'seed': 42,
    'training': {'batch_size': 64,
                 'continuous': True,
                 'eval_freq': 100,
                 'likelihood_weighting': False,
                 'log_freq': 50,
                 'n_iters': 2400001,
                 'reduce_mean': False,
                 'sde': 'vesde',
                 'snapshot_freq': 50000,
                 'snapshot_freq_for_preemption': 5000,
                 'snapshot_sampling': True}
}


def get_config():
    return from_score_sde(ORIGINAL)
