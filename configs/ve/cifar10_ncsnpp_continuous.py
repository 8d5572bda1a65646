"""NCSN++ (continuous VE SDE) on CIFAR-10 with the published hyperparameters of Song et al. 2021
(score_sde ``configs/ve/cifar10_ncsnpp_continuous.py``; FID 2.45 / IS 9.73 with PC sampling).

For a GPU. Data: a local .npz with uint8 arrays x_train / x_test ([n, 32, 32, 3] or [n, 3, 32, 32]);
set --config.data.path=/path/to/cifar10.npz (nothing is downloaded).
"""
from configs.default import get_default_configs


def get_config():
    config = get_default_configs()
    training = config.training
    training.sde = "vesde"
    training.continuous = True
    training.reduce_mean = False
    training.likelihood_weighting = False
    training.batch_size = 128
    training.n_iters = 1300001
    training.log_freq = 50
    training.eval_freq = 100
    training.snapshot_freq = 50000
    training.snapshot_freq_for_preemption = 10000
    training.keep_checkpoints = 5
    training.n_snapshot_samples = 64

    sampling = config.sampling
    sampling.method = "pc"
    sampling.predictor = "reverse_diffusion"
    sampling.corrector = "langevin"
    sampling.snr = 0.16
    sampling.n_steps_each = 1
    sampling.noise_removal = True
    sampling.probability_flow = False
    sampling.num_samples = 50000
    sampling.batch_size = 1024

    evaluate = config.eval
    evaluate.batch_size = 1024
    evaluate.num_samples = 50000
    evaluate.enable_bpd = False
    evaluate.enable_sampling = True

    data = config.data
    data.dataset = "npz"
    data.path = "data/cifar10.npz"
    data.shape = (3, 32, 32)
    data.centered = False
    data.random_flip = True
    data.n_bins = 256

    model = config.model
    model.name = "ncsnpp"
    model.sigma_min = 0.01
    model.sigma_max = 50.
    model.num_scales = 1000
    model.scale_by_sigma = True
    model.ema_rate = 0.999
    model.nf = 128
    model.ch_mult = (1, 2, 2, 2)
    model.num_res_blocks = 4
    model.attn_resolutions = (16,)
    model.resamp_with_conv = True
    model.conditional = True
    model.fir = True
    model.fir_kernel = (1, 3, 3, 1)
    model.skip_rescale = True
    model.resblock_type = "biggan"
    model.progressive_input = "residual"
    model.embedding_type = "fourier"
    model.fourier_scale = 16.
    model.init_scale = 0.
    model.dropout = 0.1

    optim = config.optim
    optim.optimizer = "Adam"
    optim.lr = 2e-4
    optim.beta1 = 0.9
    optim.eps = 1e-8
    optim.weight_decay = 0.
    optim.warmup = 5000
    optim.grad_clip = 1.
    return config
