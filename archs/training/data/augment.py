"""Batch operations of the trainer's hot loop: whole batches of uint8 images, no per-sample Python."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archs.training.config import AUGMENTATIONS


def augment_batch(x: torch.Tensor, mode: str, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random pad-and-crop and/or horizontal flip of a whole batch ``N x C x H x W``.

    ``mode`` is one of ``"none"``, ``"crop"``, ``"flip"``, ``"crop-flip"``. The crop pads with
    zeros by ``pad`` pixels and cuts a window of the original size at a random offset per image
    (torchvision's ``Pad(pad)`` + ``RandomCrop(size)``, done for all images at once).
    """
    if mode not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {mode!r}")
    if mode == "none":
        return x
    n, _, h, w = x.shape
    device = x.device
    if "crop" in mode and pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n, 1, 1), device=device, generator=generator)
        ox = torch.randint(0, 2 * pad + 1, (n, 1, 1), device=device, generator=generator)
        rows = oy + torch.arange(h, device=device).view(1, h, 1)  # n x h x 1
        cols = ox + torch.arange(w, device=device).view(1, 1, w)  # n x 1 x w
        batch = torch.arange(n, device=device).view(n, 1, 1)
        x = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # n x c x h x w
    if "flip" in mode:
        flip = torch.rand(n, device=device, generator=generator) < 0.5
        x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    return x


def normalize_batch(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, memory_format=torch.contiguous_format):
    """uint8 ``N x C x H x W`` to normalised float32 in the requested memory format."""
    x = x.to(memory_format=memory_format).float()
    return x.div_(255.0).sub_(mean).div_(std)
