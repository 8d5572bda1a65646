"""NCSNv2 on CIFAR-10 (Song & Ermon 2020) as a discrete VE model: 232 noise levels from sigma_max = 50
(technique 1 and 2), s(x, sigma) = s(x) / sigma (technique 3), EMA 0.999 (technique 5), sampling
with annealed Langevin dynamics, 5 steps per level (``ald`` corrector; snr 0.176 gives NCSNv2's step
size 2 * 0.176^2 * sigma_min^2 = 6.2e-6, technique 4). Score_sde ``configs/ve/ncsnv2/cifar10.py``.

For a GPU. Data: a local .npz with uint8 arrays x_train / x_test; set --config.data.path.
"""
from configs.default import get_default_configs


def get_config():
    config = get_default_configs()
    training = config.training
    training.sde = "vesde"
    training.continuous = False
    training.reduce_mean = False
    training.batch_size = 128
    training.n_iters = 300001
    training.log_freq = 50
    training.eval_freq = 100
    training.snapshot_freq = 10000
    training.snapshot_freq_for_preemption = 5000
    training.keep_checkpoints = 5
    training.n_snapshot_samples = 64

    sampling = config.sampling
    sampling.method = "pc"
    sampling.predictor = "none"
    sampling.corrector = "ald"
    sampling.n_steps_each = 5
    sampling.snr = 0.176
    sampling.noise_removal = True
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
    model.name = "ncsnv2"
    model.sigma_min = 0.01
    model.sigma_max = 50.
    model.num_scales = 232
    model.scale_by_sigma = True
    model.ema_rate = 0.999
    model.nf = 128                         # RefineNet stages of 128, 256, 256, 256 channels,
    model.ch_mult = (1, 2, 2, 2)           # stage 2 halves the resolution, stages 3-4 dilate
    model.num_res_blocks = 2
    model.dropout = 0.

    optim = config.optim
    optim.optimizer = "Adam"
    optim.lr = 1e-4
    optim.beta1 = 0.9
    optim.eps = 1e-8
    optim.weight_decay = 0.
    optim.warmup = 0
    optim.grad_clip = -1.
    return config
