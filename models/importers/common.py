"""Pieces every importer shares: the network a config builds, and the key-by-key comparison of a
mapped checkpoint against it (the first differing key or shape is the error)."""
from __future__ import annotations

import torch

Tensor = torch.Tensor


def expected_state_dict(config) -> dict[str, Tensor]:
    """State dict (names, shapes, dtypes, buffer values) of ``get_model(config)``, built on the CPU."""
    from models.registry import get_model
    with torch.device("cpu"):
        return get_model(config).state_dict()


def check_state_dict(mapped: dict[str, Tensor], expected: dict[str, Tensor], path: str,
                     hint: str = "") -> dict[str, Tensor]:
    """``mapped`` (checkpoint weights under this toolkit's names) checked against ``expected``.

    Returns a new dict in ``expected``'s order with each tensor cast to the expected dtype. Raises
    ValueError naming the first weight the config's network has and the file lacks, the first weight
    the file has and the network lacks, or the first shape that differs.
    """
    tail = f" ({hint})" if hint else ""
    for key, ref in expected.items():
        if key not in mapped:
            raise ValueError(f"config does not match checkpoint {path}: the network the config builds has "
                             f"weight {key!r} {tuple(ref.shape)}, which the checkpoint lacks{tail}")
        if tuple(mapped[key].shape) != tuple(ref.shape):
            raise ValueError(f"config does not match checkpoint {path}: weight {key!r} has shape "
                             f"{tuple(mapped[key].shape)} in the checkpoint but {tuple(ref.shape)} in the "
                             f"network the config builds{tail}")
    extra = [k for k in mapped if k not in expected]
    if extra:
        raise ValueError(f"config does not match checkpoint {path}: the checkpoint has weight {extra[0]!r} "
                         f"{tuple(mapped[extra[0]].shape)}, which the network the config builds lacks{tail}")
    return {k: mapped[k].detach().to(dtype=ref.dtype).clone() for k, ref in expected.items()}


def check_buffer(name: str, got: Tensor, want: Tensor, path: str, config_keys: str,
                 rtol: float = 1e-5) -> None:
    """A checkpoint buffer that the config determines (e.g. the noise ladder ``sigmas``) must agree."""
    got64, want64 = got.detach().double().flatten(), want.detach().double().flatten()
    if got64.shape != want64.shape or not torch.allclose(got64, want64, rtol=rtol, atol=0.):
        g = got64[:3].tolist() if got64.numel() else []
        w = want64[:3].tolist() if want64.numel() else []
        raise ValueError(f"config does not match checkpoint {path}: its {name} ({got64.numel()} values, "
                         f"starting {g}) differ from what {config_keys} give ({want64.numel()} values, "
                         f"starting {w})")
