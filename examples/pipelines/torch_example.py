#!/usr/bin/env python3
"""A small 3D convolutional model (PyTorch) as a voxcast pipeline, run out of process.

    voxcast serve DATA --pipelines examples/pipelines/pipelines.json

The model: Conv3d(1 -> 4, 3^3) -> ReLU -> Conv3d(4 -> 1, 3^3), both without padding, so
it needs a halo of 2 voxels and returns exactly the chunk. Its weights are built here,
deterministically (a seeded generator; nothing is downloaded): a stand-in for a trained
denoiser or segmenter a lab would load with torch.load().
"""

import os

import numpy as np
import torch

from voxcast import pipeline as vp

torch.set_num_threads(int(os.environ.get("VOXCAST_TORCH_THREADS", "1")))


def build_model() -> torch.nn.Module:
    g = torch.Generator().manual_seed(15)
    model = torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=0), torch.nn.ReLU(), torch.nn.Conv3d(4, 1, 3, padding=0))
    with torch.no_grad():
        for m in model:
            if isinstance(m, torch.nn.Conv3d):
                fan_in = m.in_channels * 27
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan_in ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


MODEL = build_model()


def apply(block: np.ndarray, scale: float, gain: float) -> np.ndarray:
    """The model on a (z, y, x) float32 block: the block shrinks by 2 on every side."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(block, np.float32))[None, None] / scale
        return (MODEL(x)[0, 0] * gain).numpy()


@vp.pipeline("torch_cnn", version="1.0", memory_mb=300,
             description="A small 3D CNN (PyTorch, weights built in): a learned-filter stand-in",
             params={"scale": vp.number(1000.0, min=1e-3, max=1e6,
                                        description="input values are divided by this"),
                     "gain": vp.number(1000.0, min=0, max=1e6, step=1,
                                       description="the output is multiplied by this")},
             halo=2)
def cnn(block, scale, gain, ctx):
    if ctx.spatial_dims == 2:
        raise ValueError("torch_cnn needs 3D data")
    return apply(block, scale, gain)


if __name__ == "__main__":
    raise SystemExit(vp.main())
