"""ml_collections configs: ``default.get_default_configs`` plus one file per (SDE, data set), and the
converters from the original code bases' configurations (score_sde_pytorch, ermongroup/ncsnv2, diffusers)."""
from .from_score_sde import from_score_sde
from .from_diffusers import from_diffusers
from .from_ncsnv2 import from_ncsnv2  # noqa: F401  (ermongroup/ncsnv2 YAML -> config)

__all__ = ["from_score_sde", "from_diffusers"]
