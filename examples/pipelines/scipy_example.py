#!/usr/bin/env python3
"""Two scipy.ndimage filters as voxcast pipelines, run out of process by `voxcast serve`.

    voxcast serve DATA --pipelines examples/pipelines/pipelines.json
    voxcast pipelines --pipelines examples/pipelines/pipelines.json

Each function gets the chunk with its halo (float32, (z, y, x); (y, x) for 2D data) and
returns the filtered block; the halo is cropped by voxcast.pipeline. With scipy's default
boundary ('reflect', as voxcast pads the array's edges) and a halo of the filter's radius, a
chunk computed alone equals the same region filtered as a whole array.
"""

import scipy.ndimage as ndi

from voxcast import pipeline as vp


@vp.pipeline("scipy_log", version="1.0",
             description="Laplacian of Gaussian, negated: bright blobs of size ~sigma light up",
             params={"sigma": vp.number(1.5, min=0.3, max=8, step=0.1,
                                        description="Gaussian sigma, in voxels")},
             halo=lambda p: int(4.0 * p["sigma"] + 0.5))  # scipy's radius with truncate=4
def log_filter(block, sigma):
    return -ndi.gaussian_laplace(block, sigma)


@vp.pipeline("scipy_median", version="1.0", description="scipy.ndimage.median_filter",
             params={"radius": vp.integer(1, min=0, max=4, step=1, description="voxels")},
             halo=lambda p: p["radius"], output_dtype="input")
def median(block, radius):
    return ndi.median_filter(block, size=2 * radius + 1)


if __name__ == "__main__":
    raise SystemExit(vp.main())
