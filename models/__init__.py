"""Score networks: registry, the MLP / NCSN++ / DDPM++ / NCSNv2 models, score conversion and EMA.

    model = get_model(config)                       # by config.model.name, forward(x, cond)
    score_fn = get_score_fn(sde, model, continuous)  # score_fn(x, t)
    ema = ExponentialMovingAverage(model.parameters(), decay=config.model.ema_rate)
"""
from .registry import MODELS, get_model, register_model
from . import mlp, ncsnpp, ddpmpp, ncsnv2, classifier  # noqa: F401  (register the models)
from .ema import ExponentialMovingAverage
from .conditioning import NoiseConditioning
from .layers import count_parameters
from .score import get_score_fn
from .importers import IMPORTERS, import_checkpoint

__all__ = ["MODELS", "get_model", "register_model", "get_score_fn", "ExponentialMovingAverage",
           "NoiseConditioning", "count_parameters", "import_checkpoint", "IMPORTERS"]
