"""The sampler-comparison figure: sample quality against NFE, one line per sampler (log-log axes)."""
from __future__ import annotations


def plot_comparison(rows: list[dict], path: str, title: str = "") -> str:
    """Quality against NFE (log-log), one line per sampler; the converged ODE as a dashed level."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if not r.get("error") and r.get("finite", True) and r.get("nfe")]
    conv = [r for r in ok if "converged" in r["sampler"]]
    ok = [r for r in ok if "converged" not in r["sampler"]]
    panels = [k for k in ("sw", "mode_weight_err", "spread_rel", "mmd") if any(k in r for r in ok)]
    labels = {"sw": "sliced Wasserstein to data", "mode_weight_err": "mode-weight error (vs truth)",
              "spread_rel": "|narrow-mode spread / converged ODE - 1|", "mmd": "MMD^2 (RBF) to test data"}
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.5), squeeze=False)
    groups: dict[tuple, list] = {}
    for r in ok:
        groups.setdefault((r["family"], r["sampler"]), []).append(r)
    styles = {"pc": ("o", "-"), "ode": ("s", ":"), "ald": ("^", "-."), "fast": ("D", "--")}
    cmap = plt.get_cmap("tab20")
    for ax, key in zip(axes[0], panels):
        for i, ((fam, name), rs) in enumerate(sorted(groups.items())):
            rs = sorted((r for r in rs if key in r), key=lambda r: r["nfe"])
            if not rs:
                continue
            ys = [max(abs(r[key]), 1e-4) for r in rs]
            marker, ls = styles.get(fam, ("x", "-"))
            ax.plot([r["nfe"] for r in rs], ys, marker=marker, ls=ls, ms=4, lw=1, color=cmap(i % 20),
                    label=f"{fam}: {name}")
        for r in conv:
            if key in ("sw", "mode_weight_err", "mmd") and key in r:
                ax.axhline(max(r[key], 1e-4), color="k", ls="--", lw=0.8,
                           label=f"converged PF ODE ({r['nfe']} NFE)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("NFE (score evaluations)")
        ax.set_ylabel(labels[key])
        ax.grid(True, which="both", alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    axes[0][-1].legend(handles, names, fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
