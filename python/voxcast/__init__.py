"""voxcast: a Python client for ``voxcast serve`` (remote rendering of large volumes).

Example::

    import asyncio, voxcast

    async def main():
        async with await voxcast.connect("ws://localhost:8080") as v:
            v.camera.zoom = 2
            v.dims.ndisplay = 3
            v.layers[0].colormap = "magma"
            img = await v.screenshot()        # numpy (H, W, 3) uint8
            print(img.shape, v.scene["camera"])

    asyncio.run(main())

Modules: :mod:`voxcast.protocol` (frame header, messages), :mod:`voxcast.scene` (merge
patches), :mod:`voxcast.components` (camera, dims, canvas, layers), :mod:`voxcast.decode`
(PyAV decoding), :mod:`voxcast.h264` (SPS parsing), :mod:`voxcast.yuv` (colour
conversion), :mod:`voxcast.client` (the asyncio session), :mod:`voxcast.frames` (its pixel
channel), :mod:`voxcast.outgoing` (messages awaiting replies), :mod:`voxcast.rest` (the HTTP
routes: datasets, screenshots).
"""

from .client import Viewer, connect
from .components import Colormap
from .connection import Endpoint, parse_url
from .errors import AuthenticationError, ServerError, VoxcastConnectionError, VoxcastError
from .protocol import FrameHeader, ProtocolError, parse_header

__version__ = "0.4.0"  # = project(VERSION) in CMakeLists.txt


def wire_client(host: str = "127.0.0.1", port: int = 0, **kwargs):
    """The fast data path of ``voxcast serve --wire PORT`` (raw sub-volumes and frames as
    NumPy arrays over UCX); see :mod:`voxcast.fastpath`. Imported on use, since it
    needs the compiled ``_voxcast_wire`` module."""
    from .fastpath import wire_client as make

    return make(host, port, **kwargs)

__all__ = [
    "wire_client",
    "AuthenticationError",
    "Colormap",
    "Endpoint",
    "FrameHeader",
    "ProtocolError",
    "ServerError",
    "Viewer",
    "VoxcastConnectionError",
    "VoxcastError",
    "connect",
    "parse_header",
    "parse_url",
]
