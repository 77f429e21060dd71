"""Losses of the CenterNet-style oriented-box detector.

* heatmap: penalty-reduced focal loss (CenterNet) with a per-pixel, per-channel mask (zero for
  categories a dataset does not label and around difficult objects);
* offset: L1 on the sub-cell centre offset;
* oriented labels: L1 on log length / log width and on (cos 2θ, sin 2θ);
* axis-aligned labels: L1 on the log of the predicted box's axis-aligned envelope against the
  label box (:func:`envelope_loss`), so the heading is never taught by them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WEIGHTS = {"hm": 1.0, "offset": 1.0, "size": 1.0, "angle": 1.0, "envelope": 1.0}


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, alpha: float = 2.0, beta: float = 4.0
) -> torch.Tensor:
    """CenterNet focal loss summed over pixels and normalised by the number of positive peaks."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = (target >= 1.0).float() * mask
    neg = (target < 1.0).float() * mask
    logp, log1p = F.logsigmoid(logits), F.logsigmoid(-logits)
    pos_loss = -(logp * (1 - p) ** alpha * pos).sum()
    neg_loss = -(log1p * p**alpha * (1 - target) ** beta * neg).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1.0)


def gather(feature: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
    """Values of ``feature`` [N, C, H, W] at flat indices ``ind`` [N, K] → [N, K, C]."""
    n, c = feature.shape[:2]
    flat = feature.reshape(n, c, -1)
    return flat.gather(2, ind.unsqueeze(1).expand(n, c, ind.shape[1])).permute(0, 2, 1)


def envelope_from_prediction(logsize: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Axis-aligned extent ``[..., (env_x, env_y)]`` of predicted boxes.

    Args:
        logsize: ``[..., 2]`` log length, log width (pixels).
        angle: ``[..., 2]`` (cos 2θ, sin 2θ), any magnitude; θ clockwise from image-up.

    ``env_x = l|sin θ| + w|cos θ|``, ``env_y = l|cos θ| + w|sin θ|`` with ``θ = atan2(sin 2θ, cos 2θ) / 2``.
    """
    size = torch.exp(logsize.clamp(-2.0, 8.0))
    theta = 0.5 * torch.atan2(angle[..., 1], angle[..., 0] + 1e-9)
    cos_t, sin_t = torch.cos(theta).abs(), torch.sin(theta).abs()
    length, width = size[..., 0], size[..., 1]
    return torch.stack([length * sin_t + width * cos_t, length * cos_t + width * sin_t], dim=-1)


def envelope_loss(
    logsize: torch.Tensor, angle: torch.Tensor, log_env_target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean L1 between log predicted envelope and log label envelope over ``mask``-ed objects."""
    env = envelope_from_prediction(logsize, angle)
    err = (torch.log(env.clamp(min=1e-3)) - log_env_target).abs().sum(-1)
    return (err * mask).sum() / mask.sum().clamp(min=1.0)


def detection_loss(
    out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total weighted loss and its parts (floats, for logging)."""
    hm = focal_loss(out["hm"], batch["hm"], batch["hm_mask"])
    ind, reg = batch["ind"], batch["reg_mask"]
    ori = reg * batch["oriented"]
    env_mask = reg * (1 - batch["oriented"])
    off = gather(out["offset"], ind)
    ls = gather(out["logsize"], ind)
    ang = gather(out["angle"], ind)
    n_reg = reg.sum().clamp(min=1.0)
    n_ori = ori.sum().clamp(min=1.0)
    l_off = ((off - batch["offset"]).abs().sum(-1) * reg).sum() / n_reg
    l_size = ((ls - batch["logsize"]).abs().sum(-1) * ori).sum() / n_ori
    l_ang = ((ang - batch["angle"]).abs().sum(-1) * ori).sum() / n_ori
    l_env = envelope_loss(ls, ang, batch["logenv"], env_mask)
    parts = {"hm": hm, "offset": l_off, "size": l_size, "angle": l_ang, "envelope": l_env}
    total = sum((WEIGHTS[k] * v for k, v in parts.items()), hm.new_zeros(()))
    return total, {k: float(v.detach()) for k, v in parts.items()}
