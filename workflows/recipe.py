"""``--mode recipe``: the NCSNv2 recipe (``training.recipes``: sigma_max, L noise levels, the Langevin step
for T steps per level) read off the training set -> workdir/recipe/recipe.json and config.py."""
from __future__ import annotations

import os

from scoredata import get_dataset
from training.recipes import propose, write_recipe_config

from .common import cli, out_dir, write_json
from .options import controllable_options


@cli
def mode_recipe(config, workdir: str, progress: bool = True) -> int:
    """Print the recipe; write it as JSON and as a config file ``workdir/recipe/config.py`` (the current
    config with the recipe applied)."""
    opts = controllable_options(config)
    x = get_dataset(config, "train")
    T = int(opts.recipe_n_steps) or (int(config.sampling.n_steps_each) if str(config.sampling.corrector) == "ald"
                                     else 5)
    sigma_min = float(opts.recipe_sigma_min) or float(config.model.sigma_min)
    recipe = propose(x, sigma_min=sigma_min, n_steps_each=T)
    out = out_dir(workdir, "recipe")
    write_json(os.path.join(out, "recipe.json"), recipe.as_dict())
    cfg_path = write_recipe_config(recipe, os.path.join(out, "config.py"), base=config)
    print(recipe)
    print(f"recipe written to {os.path.join(out, 'recipe.json')}; config with the recipe applied: {cfg_path}")
    return 0
