"""Reports of a sampler comparison (``evaluation.sampler_comparison.compare`` rows): a Markdown table,
one log line per row, and the compare.{md,json,png} files."""
from __future__ import annotations

import json
import os

from plotting import plot_comparison

COLUMNS = [("family", "family", "{}"), ("sampler", "sampler", "{}"), ("setting", "setting", "{}"),
           ("nfe", "NFE", "{}"), ("wall_s", "wall (s)", "{:.2f}"), ("sw", "SW", "{:.4f}"),
           ("sw_rel", "SW vs ODE", "{:+.1%}"), ("mode_weight_err", "mode-weight err", "{:.4f}"),
           ("mode_weight_err_vs_ode", "weight err vs ODE", "{:.4f}"),
           ("spread_rel", "narrow spread vs ODE", "{:+.1%}"), ("mmd", "MMD", "{:.5f}")]


def format_row(row: dict) -> str:
    """One log line for a comparison row."""
    if row.get("error"):
        return f"{row['family']:5s} {row['sampler']:34s} {row['setting']:28s} ERROR {row['error']}"
    parts = [f"{row['family']:5s} {row['sampler']:34s} {row['setting']:28s} NFE {row['nfe']:5d} {row['wall_s']:7.2f}s"]
    for key, _, fmt in COLUMNS[5:]:
        if row.get(key) is not None:
            parts.append(f"{key}={fmt.format(row[key])}")
    return " ".join(parts)


def markdown_table(rows: list[dict]) -> str:
    """The rows as a GitHub Markdown table (only the columns some row has)."""
    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            cells.append("" if v is None else fmt.format(v))
        if r.get("error"):
            cells[-1] = "error: " + r["error"][:60]
        elif not r.get("finite", True):
            cells[-1] = "non-finite samples"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(rows: list[dict], out_dir: str, title: str = "", meta: dict | None = None,
                 stem: str = "compare") -> dict:
    """Write <stem>.md, <stem>.json and <stem>.png to ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, f"{stem}.{k}") for k in ("md", "json", "png")}
    with open(paths["json"], "w") as f:
        json.dump({"title": title, "meta": meta or {}, "rows": rows}, f, indent=1)
    with open(paths["md"], "w") as f:
        f.write(f"# {title}\n\n" if title else "")
        f.write(markdown_table(rows) + "\n")
    plot_comparison(rows, paths["png"], title)
    return paths
