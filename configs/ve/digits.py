"""VE SDE on the 8x8 digits (17 grey levels in [0, 1]) with a tiny NCSN++ (Fourier embedding,
FIR resampling, output divided by sigma), PC sampling with reverse diffusion + Langevin."""
from configs.vp.digits import get_config as vp_digits


def get_config():
    config = vp_digits()
    config.training.sde = "vesde"
    config.training.reduce_mean = False
    config.data.centered = False
    model = config.model
    model.name = "ncsnpp"
    model.embedding_type = "fourier"
    model.fourier_scale = 16.
    model.scale_by_sigma = True
    model.sigma_min = 0.01
    model.sigma_max = 5.                   # > the largest distance between two training digits (4.5)
    sampling = config.sampling
    sampling.predictor = "reverse_diffusion"
    sampling.corrector = "langevin"
    sampling.snr = 0.16
    return config
