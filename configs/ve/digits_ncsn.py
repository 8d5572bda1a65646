"""NCSN on the 8x8 digits: the discretized VE case, trained with the discrete SMLD loss over
``VESDE.discrete_sigmas`` and sampled with annealed Langevin dynamics (predictor "none" + corrector
"ald"), with the NCSNv2 recipe's numbers for this data set (``python main.py --mode recipe``):

* Technique 1: sigma_max = 4.46, the largest distance between two training digits (in [0, 1]);
* Technique 2: gamma = 1.3609 for D = 64  ->  L = 21 noise levels from 4.46 down to sigma_min = 0.01;
* Technique 3: s(x, sigma) = f(x) / sigma (the ``ncsnv2`` network, NCSNv2 of ermongroup/ncsnv2 at
  ngf = 16, has no noise embedding);
* Technique 4: T = 5 Langevin steps per level -> eps = 2.39e-5 (the ``ald`` step alpha_i =
  2 (snr sigma_i)^2 = eps sigma_i^2 / sigma_L^2, so snr = sqrt(eps / (2 sigma_L^2)) = 0.3457);
* Technique 5: EMA of the parameters.
"""
import ml_collections

from configs.ve.digits import get_config as ve_digits
from models.classifier import CLASSIFIER_DEFAULTS
from workflows.options import CONTROLLABLE_DEFAULTS


def get_config():
    config = ve_digits()
    training = config.training
    training.sde = "vesde"
    training.continuous = False            # discrete SMLD loss over the L = num_scales levels
    training.reduce_mean = True
    training.n_iters = 5000

    model = config.model
    model.name = "ncsnv2"                  # ermongroup's NCSNv2 (InstanceNorm++, ELU, RefineNet): 8x8 ->
    model.nf = 16                          # res2 pools to 4x4, res3/res4 dilate; ngf 16: 0.47M parameters
    model.normalization = "InstanceNorm++"
    model.nonlinearity = "elu"
    model.scale_by_sigma = True
    model.sigma_min = 0.01
    model.sigma_max = 4.46
    model.num_scales = 21
    model.ema_rate = 0.99

    sampling = config.sampling
    sampling.method = "pc"
    sampling.predictor = "none"
    sampling.corrector = "ald"
    sampling.n_steps_each = 5
    sampling.snr = 0.3457
    sampling.noise_removal = True

    # classifiers for --mode train_classifier / conditional_sample, options of the research workflows
    config.classifier = ml_collections.ConfigDict(dict(CLASSIFIER_DEFAULTS))
    config.controllable = ml_collections.ConfigDict(dict(CONTROLLABLE_DEFAULTS))
    return config
