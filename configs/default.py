"""Shared defaults for every config. Each ``configs/<sde>/<name>.py`` starts from these.

The schema is the contract between models (``config.model``), data (``config.data``) and training
(``config.training``, ``config.optim``, ``config.sampling``, ``config.eval``).
"""
import ml_collections


def get_default_configs() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 42
    config.device = "auto"                 # "auto" -> cuda if available else cpu

    config.training = training = ml_collections.ConfigDict()
    training.sde = "vpsde"                 # vesde | vpsde | subvpsde
    training.continuous = True
    training.reduce_mean = False
    training.likelihood_weighting = False
    training.objective = "dsm"             # dsm | ssm | exact_sm
    training.eps = 1e-5                    # smallest training time
    training.batch_size = 128
    training.n_iters = 1000
    training.log_freq = 50
    training.eval_freq = 500
    training.snapshot_freq = 500           # kept checkpoints (last keep_checkpoints of them)
    training.snapshot_freq_for_preemption = 100   # the frequent resume checkpoint
    training.keep_checkpoints = 3
    training.restart_from_scratch = False  # train from step 0 in a workdir whose checkpoints are all unreadable
    training.snapshot_sampling = True      # write a PNG of samples at every snapshot
    training.n_snapshot_samples = 64
    training.mixed_precision = "none"      # none | bf16 | fp16 (CUDA: autocast float16 + GradScaler)
    training.compile = False
    training.num_threads = 0               # torch.set_num_threads (0: leave as is)

    config.sampling = sampling = ml_collections.ConfigDict()
    sampling.method = "pc"                 # pc | ode
    sampling.predictor = "reverse_diffusion"
    sampling.corrector = "langevin"
    sampling.snr = 0.16
    sampling.n_steps_each = 1
    sampling.noise_removal = True
    sampling.probability_flow = False
    sampling.ode_method = "rk45"
    sampling.rtol = 1e-5
    sampling.atol = 1e-5
    sampling.eps = 1e-3
    sampling.num_samples = 1024
    sampling.batch_size = 1024

    config.eval = evaluate = ml_collections.ConfigDict()
    evaluate.batch_size = 256
    evaluate.enable_bpd = True
    evaluate.enable_sampling = True
    evaluate.num_samples = 1024
    evaluate.bpd_num_batches = 0           # 0: the whole test split
    evaluate.hutchinson = "rademacher"
    evaluate.n_probes = 1
    evaluate.rtol = 1e-5
    evaluate.atol = 1e-5
    evaluate.ckpt = "ema"                  # evaluate the EMA weights (or "raw")
    evaluate.fid = False                   # --mode eval: FID against the training split (needs torch-fidelity)

    config.data = data = ml_collections.ConfigDict()
    data.dataset = "toy2d"                 # toy2d | digits | npz | image_folder
    data.toy = "two_mode"                  # two_mode | eight_gaussians | moons | swiss_roll | checkerboard
    data.shape = (2,)                      # per-sample shape: (D,) or (C, H, W)
    data.centered = False                  # images: [-1, 1] instead of [0, 1]
    data.path = ""                         # npz / image_folder: a local path
    data.n_train = 20000                   # toy sets: samples drawn for training
    data.n_test = 2000
    data.n_bins = 256                      # discrete levels for bits/dim
    data.random_flip = False
    data.num_workers = 0

    config.model = model = ml_collections.ConfigDict()
    model.name = "mlp"                     # mlp | ncsnpp | ddpmpp | ncsnv2
    model.sigma_min = 0.01
    model.sigma_max = 50.
    model.num_scales = 1000
    model.beta_min = 0.1
    model.beta_max = 20.
    model.ema_rate = 0.999
    model.dropout = 0.0
    model.scale_by_sigma = False
    model.embedding_type = "fourier"       # fourier | positional
    model.fourier_scale = 16.
    model.nf = 128                         # width (MLP hidden size / U-Net base channels)
    model.n_layers = 4                     # MLP depth
    model.ch_mult = (1, 2, 2, 2)
    model.num_res_blocks = 2
    model.attn_resolutions = (16,)
    model.resamp_with_conv = True
    model.skip_rescale = True
    model.init_scale = 0.
    model.conditional = True

    config.optim = optim = ml_collections.ConfigDict()
    optim.optimizer = "Adam"
    optim.lr = 2e-4
    optim.beta1 = 0.9
    optim.eps = 1e-8
    optim.weight_decay = 0.
    optim.warmup = 5000
    optim.grad_clip = 1.
    return config
