"""PNG figures: scatter plots, image grids, loss curves (``png``), samples and interpolation paths in the
data's own form (``samples``), the sampler comparison (``comparison``). Matplotlib with the Agg backend;
nothing here computes a figure's numbers."""
from .comparison import plot_comparison
from .png import enlarge_png, image_grid, loss_curve, scatter_2d
from .samples import save_samples_png, save_strip

__all__ = ["scatter_2d", "image_grid", "loss_curve", "enlarge_png", "save_samples_png", "save_strip",
           "plot_comparison"]
