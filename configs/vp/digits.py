"""VP SDE on scikit-learn's 8x8 digits (17 grey levels, centred to [-1, 1]) with a tiny DDPM++.

Sized for a CPU: a few hundred steps already lower the test bits/dim far below an untrained model's;
a few thousand give recognisable digits.
"""
from configs.default import get_default_configs


def get_config():
    config = get_default_configs()
    training = config.training
    training.sde = "vpsde"
    training.continuous = True
    training.reduce_mean = True
    training.batch_size = 64
    training.n_iters = 5000
    training.log_freq = 50
    training.eval_freq = 500
    training.snapshot_freq = 1000
    training.snapshot_freq_for_preemption = 100
    training.n_snapshot_samples = 64

    data = config.data
    data.dataset = "digits"
    data.shape = (1, 8, 8)
    data.n_bins = 17
    data.centered = True
    data.random_flip = False

    model = config.model
    model.name = "ddpmpp"
    model.nf = 16
    model.ch_mult = (1, 2)
    model.num_res_blocks = 1
    model.attn_resolutions = (4,)
    model.embedding_type = "positional"
    model.dropout = 0.
    model.ema_rate = 0.99
    model.num_scales = 1000
    model.beta_min = 0.1
    model.beta_max = 20.

    optim = config.optim
    optim.lr = 2e-3
    optim.warmup = 100
    optim.grad_clip = 1.

    sampling = config.sampling
    sampling.method = "pc"
    sampling.predictor = "euler_maruyama"
    sampling.corrector = "none"
    sampling.num_samples = 64
    sampling.batch_size = 64

    evaluate = config.eval
    evaluate.batch_size = 100
    evaluate.bpd_num_batches = 1           # bits/dim on the first 100 test digits (0: all 300)
    evaluate.num_samples = 64
    evaluate.rtol = 1e-4
    evaluate.atol = 1e-4
    return config
