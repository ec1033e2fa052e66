"""Image transforms on whole uint8 arrays, batch-wise, so sources stay N x C x H x W uint8."""

from __future__ import annotations

import numpy as np


def resize_images(
    images: np.ndarray, size: int | tuple[int, int], *, batch_size: int = 4096
) -> np.ndarray:
    """Resize uint8 N x C x H x W images to ``size`` (bilinear, antialiased when shrinking).

    Used to give small sources (8x8 digits) the input size a network was designed for;
    the result is rounded back to uint8 so it flows through the same batching path.
    """
    import torch
    from torchvision.transforms.v2 import functional as F

    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 N x C x H x W, got {images.dtype} {images.shape}")
    height, width = (size, size) if isinstance(size, int) else size
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size}")
    if images.shape[2:] == (height, width):
        return images
    out = np.empty((*images.shape[:2], height, width), dtype=np.uint8)
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start : start + batch_size]).float()
        resized = F.resize(batch, [height, width], antialias=True)
        out[start : start + batch_size] = resized.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out
