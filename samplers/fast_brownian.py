"""Per-sample Brownian paths for adaptive SDE steps: rejection sampling with memory (RSwM).

Redrawing the noise after a rejected step biases an adaptive SDE solver (steps with large noise
are rejected more often, so the accepted increments are too small where the drift is stiff). RSwM
(Rackauckas & Nie 2017) keeps the revealed path instead: each sample stores the already drawn
future of its Brownian motion as consecutive pieces (dt_k, dW_k). A step of size h uses the pieces
that fit in [0, h], splits the next one with the Brownian bridge

    W(r) | W(H) = w  ~  N((r / H) w, r (H - r) / H),        0 < r < H,

or extends the path with fresh N(0, r) noise. An accepted step consumes its pieces; a rejected one
leaves them (now split at h) for the retry, so the path has the law of a Brownian motion whatever
the accept/reject decisions are.
"""
from __future__ import annotations

import torch

from sde_lib.checks import batch_view

Tensor = torch.Tensor


class BrownianStack:
    """Revealed future Brownian increments of every sample: ``dt`` [B, K] (float64), ``dw`` [B, K, *shape]."""

    def __init__(self, like: Tensor):
        B = like.shape[0]
        self.dt = torch.zeros(B, 0, dtype=torch.float64, device=like.device)
        self.dw = like.new_zeros((B, 0, *like.shape[1:]))
        self.n = torch.zeros(B, dtype=torch.long, device=like.device)

    def step(self, idx: Tensor, h: Tensor, xi_split: Tensor, xi_fresh: Tensor):
        """Increment W(h) for the samples ``idx`` (h [A] float64, xi_* standard normal [A, *shape]).

        Returns (W [A, *shape], pending) where ``pending`` is the proposal for the stacks of these
        samples after the step; pass it to ``commit`` with the accept mask.
        """
        dt, dw, n = self.dt[idx], self.dw[idx], self.n[idx]
        A, K = dt.shape
        # one zero column of padding so every row can gain a piece
        dt = torch.cat([dt, dt.new_zeros(A, 1)], 1)
        dw = torch.cat([dw, dw.new_zeros((A, 1, *dw.shape[2:]))], 1)
        ks = torch.arange(K + 1, device=dt.device).expand(A, K + 1)
        valid = ks < n[:, None]
        tol = 1e-12 * h
        covered = valid & (dt.cumsum(1) <= (h + tol)[:, None])
        m = covered.sum(1)                                   # whole pieces inside [0, h]
        cw = covered.to(dw.dtype).reshape(A, K + 1, *([1] * (dw.dim() - 2)))
        W = (dw * cw).sum(1)
        rem = (h - (dt * covered).sum(1)).clamp(min=0.)
        has_rem = rem > tol
        split = has_rem & (m < n)
        fresh = has_rem & (m >= n)

        # piece m (the one straddling h) for the bridge split
        mi = m.clamp(max=K)
        h_m = dt.gather(1, mi[:, None]).squeeze(1)
        w_m = dw[torch.arange(A, device=dt.device), mi]
        safe_hm = torch.where(split, h_m, torch.ones_like(h_m))
        a = torch.where(split, rem / safe_hm, torch.zeros_like(rem))
        s_bridge = torch.where(split, (rem * (safe_hm - rem) / safe_hm).clamp(min=0.).sqrt(), torch.zeros_like(rem))
        W1 = batch_view(a.to(dw.dtype), w_m) * w_m + batch_view(s_bridge.to(dw.dtype), w_m) * xi_split
        W2 = batch_view(rem.sqrt().to(dw.dtype), xi_fresh) * xi_fresh
        W = W + torch.where(batch_view(split, W), W1, torch.zeros_like(W1)) \
              + torch.where(batch_view(fresh, W), W2, torch.zeros_like(W2))

        # new rows: split rows insert (rem, W1) at m and (h_m - rem, w_m - W1) at m + 1, shifting the rest;
        # fresh rows append (rem, W2) at n
        src = ks - (split[:, None] & (ks > m[:, None])).long()
        src = src.clamp(max=K)
        new_dt = dt.gather(1, src)
        new_dw = dw.gather(1, src.reshape(A, K + 1, *([1] * (dw.dim() - 2))).expand_as(dw))
        at_m = split[:, None] & (ks == m[:, None])
        at_m1 = split[:, None] & (ks == (m + 1)[:, None])
        at_n = fresh[:, None] & (ks == n[:, None])
        new_dt = torch.where(at_m, rem[:, None], new_dt)
        new_dt = torch.where(at_m1, (h_m - rem)[:, None], new_dt)
        new_dt = torch.where(at_n, rem[:, None], new_dt)
        view = lambda mask: mask.reshape(A, K + 1, *([1] * (dw.dim() - 2)))  # noqa: E731
        new_dw = torch.where(view(at_m), W1[:, None], new_dw)
        new_dw = torch.where(view(at_m1), (w_m - W1)[:, None], new_dw)
        new_dw = torch.where(view(at_n), W2[:, None], new_dw)
        new_n = n + has_rem.long()
        used = m + has_rem.long()                            # pieces that make up [0, h]
        return W, (new_dt, new_dw, new_n, used)

    def commit(self, idx: Tensor, accept: Tensor, pending) -> None:
        """Keep the split path for rejected samples; drop the used pieces of accepted ones."""
        new_dt, new_dw, new_n, used = pending
        A, K1 = new_dt.shape
        shift = torch.where(accept, used, torch.zeros_like(used))
        ks = torch.arange(K1, device=new_dt.device).expand(A, K1)
        src = ks + shift[:, None]
        keep = src < new_n[:, None]
        src = src.clamp(max=K1 - 1)
        out_dt = torch.where(keep, new_dt.gather(1, src), torch.zeros_like(new_dt))
        shp = (A, K1, *([1] * (new_dw.dim() - 2)))
        out_dw = new_dw.gather(1, src.reshape(shp).expand_as(new_dw))
        out_dw = torch.where(keep.reshape(shp), out_dw, torch.zeros_like(out_dw))
        out_n = new_n - shift
        # write back, growing the stacks to K1 columns if needed
        if self.dt.shape[1] < K1:
            grow = K1 - self.dt.shape[1]
            B = self.dt.shape[0]
            self.dt = torch.cat([self.dt, self.dt.new_zeros(B, grow)], 1)
            self.dw = torch.cat([self.dw, self.dw.new_zeros((B, grow, *self.dw.shape[2:]))], 1)
        self.dt[idx] = out_dt
        self.dw[idx] = out_dw
        self.n[idx] = out_n
        width = int(self.n.max()) if self.n.numel() else 0
        if width < self.dt.shape[1]:
            self.dt = self.dt[:, :width].contiguous()
            self.dw = self.dw[:, :width].contiguous()
