"""napari-like views of a remote scene: ``camera``, ``dims``, ``canvas`` and ``layers``.

Reading an attribute returns the client's local scene (the last acknowledged scene with the
updates still in flight applied on top); setting one sends a ``state.update`` with the
minimal patch, without waiting for the reply. Any object with ``_local_scene()`` and
``_send_patch(patch)`` can own them, which is how they are tested without a server.

Example::

    >>> class Fake:
    ...     def __init__(self): self.sent = []; self.s = {"camera": {"zoom": 1.0},
    ...         "layers": [{"name": "a", "colormap": "gray"}, {"name": "b", "colormap": "gray"}]}
    ...     def _local_scene(self): return self.s
    ...     def _send_patch(self, patch): self.sent.append(patch)
    >>> owner = Fake()
    >>> Camera(owner).zoom = 2
    >>> LayerList(owner)["b"].colormap = "magma"
    >>> owner.sent
    [{'camera': {'zoom': 2}}, {'layers': [{}, {'colormap': 'magma'}]}]
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence, Tuple, Union

from .scene import LAYER_FIELDS, field_patch, get_path, layer_patch, to_json_value


class Colormap(str):
    """A layer's colormap: its name, compared as a string (``layer.colormap == "magma"``),
    with napari's ``.name``. Assign a name or any object with ``.name``.

    >>> c = Colormap("magma")
    >>> c.name, c == "magma", repr(c)
    ('magma', True, "Colormap('magma')")
    """

    __slots__ = ()

    @property
    def name(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"Colormap({str(self)!r})"


def _world_axes(owner: Any) -> list:
    """The non-channel axes of level 0 of the owner's dataset (``voxcast info --json``), as
    (name, scale, translation); [] when the owner does not know its dataset."""
    info_of = getattr(owner, "_dataset_info", None)
    info = info_of() if info_of else None
    if not isinstance(info, dict) or not info.get("levels"):
        return []
    lv = info["levels"][0]
    axes = info.get("axes") or []
    out = []
    for d, _ in enumerate(lv.get("shape") or ()):
        ax = axes[d] if d < len(axes) and isinstance(axes[d], dict) else {}
        if ax.get("type") == "channel":
            continue
        scale = (lv.get("scale") or [1] * (d + 1))[d] or 1
        t = (lv.get("translation") or [0] * (d + 1))[d] or 0
        out.append((ax.get("name") or str(len(out)), float(scale), float(t)))
    return out


def _tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuple(v) for v in value)
    return value


def _field(section: str, name: str, doc: str) -> property:
    def fget(self):
        return _tuple(get_path(self._owner._local_scene(), (section, name)))

    def fset(self, value):
        self._owner._send_patch(field_patch((section, name), value))

    return property(fget, fset, doc=doc)


class _Section:
    __slots__ = ("_owner",)
    _section = ""
    _fields: Tuple[str, ...] = ()

    def __init__(self, owner: Any):
        self._owner = owner

    def as_dict(self) -> dict:
        """A copy of this section of the local scene."""
        return dict(get_path(self._owner._local_scene(), (self._section,), {}) or {})

    def update(self, **fields: Any) -> None:
        """Sets several fields in one ``state.update``:
        ``v.camera.update(zoom=2, angles=(0, 30, 90))``."""
        unknown = [k for k in fields if k not in self._fields]
        if unknown:
            raise AttributeError(f"{self._section} has no field {unknown[0]!r} "
                                 f"(known: {', '.join(self._fields)})")
        self._owner._send_patch({self._section: to_json_value(fields)})

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields)
        return f"{type(self).__name__}({inner})"


class Camera(_Section):
    """``center`` (world z, y, x; 2D views use y, x), ``zoom`` (screen pixels per world unit),
    ``angles`` (napari 0.6 Euler angles, degrees), ``perspective`` (vertical field of view in
    degrees, 0 orthographic)."""

    __slots__ = ()
    _section = "camera"
    _fields = ("center", "zoom", "angles", "perspective")
    center = _field("camera", "center", "World point at the middle of the canvas.")
    zoom = _field("camera", "zoom", "Screen pixels per world unit.")
    angles = _field("camera", "angles", "Euler angles in degrees (napari 0.6).")
    perspective = _field("camera", "perspective", "Field of view in degrees; 0 orthographic.")


class Dims(_Section):
    """``ndisplay`` (2 or 3), ``order`` (axis permutation; the last ndisplay are displayed),
    ``point`` (world coordinates of the slice)."""

    __slots__ = ()
    _section = "dims"
    _fields = ("ndisplay", "order", "point")
    ndisplay = _field("dims", "ndisplay", "2 (a slice) or 3 (a volume).")
    order = _field("dims", "order", "Axis order; the last ndisplay axes are displayed.")
    point = _field("dims", "point", "World point the non-displayed axes are sliced at.")

    @property
    def ndim(self) -> int:
        return len(self.point or ())

    @property
    def axis_labels(self) -> Tuple[str, ...]:
        """napari's ``dims.axis_labels``: the names of the world axes (``("z", "y", "x")``),
        from the dataset's metadata; ``("0", "1", ...)`` when the server did not say."""
        axes = _world_axes(self._owner)
        if len(axes) == self.ndim:
            return tuple(a[0] for a in axes)
        return tuple(str(i) for i in range(self.ndim))

    @property
    def current_step(self) -> Tuple[int, ...]:
        """napari's ``dims.current_step``: ``point`` as a voxel index of level 0 per axis."""
        axes = _world_axes(self._owner)
        point = self.point or ()
        if len(axes) != len(point):
            return tuple(int(round(p)) for p in point)
        return tuple(int(round((p - t) / s)) for p, (_, s, t) in zip(point, axes))

    @current_step.setter
    def current_step(self, step: Sequence[int]) -> None:
        axes = _world_axes(self._owner)
        point = list(self.point or ())
        step = list(step)
        if len(step) != len(point):
            raise ValueError(f"current_step needs {len(point)} values (one per axis "
                             f"{self.axis_labels}), got {len(step)}")
        if len(axes) != len(point):
            axes = [("", 1.0, 0.0)] * len(point)
        self.point = [t + s * int(i) for i, (_, s, t) in zip(step, axes)]

    def set_point(self, axis: Union[int, Sequence[int]], value: Any) -> None:
        """napari's ``dims.set_point``: one axis (or several) of ``point``, in one update."""
        point = list(self.point or ())
        axes = [axis] if isinstance(axis, int) else list(axis)
        values = [value] if isinstance(axis, int) else list(value)
        for a, v in zip(axes, values):
            point[a] = v
        self.point = point


class Canvas(_Section):
    """``width``, ``height`` (pixels), ``size`` = (width, height), ``background`` (RGB in 0..1)."""

    __slots__ = ()
    _section = "canvas"
    _fields = ("width", "height", "background")
    width = _field("canvas", "width", "Canvas width in pixels.")
    height = _field("canvas", "height", "Canvas height in pixels.")
    background = _field("canvas", "background", "Background RGB, each in [0, 1].")

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height) in pixels."""
        return (self.width, self.height)

    @size.setter
    def size(self, value: Sequence[int]) -> None:
        w, h = value
        self._owner._send_patch({"canvas": {"width": int(w), "height": int(h)}})


def _layer_field(name: str) -> property:
    def fget(self):
        value = _tuple(get_path(self._owner._local_scene(), ("layers", self._index, name)))
        return Colormap(value) if name == "colormap" and isinstance(value, str) else value

    def fset(self, value):
        if name == "colormap" and not isinstance(value, str) and hasattr(value, "name"):
            value = str(value.name)
        self._owner._send_patch(layer_patch(self._index, {name: value}))

    return property(fget, fset, doc=f"The layer's {name!r}.")


class Layer:
    """One layer of the scene, by index: ``v.layers[0].colormap = "magma"``."""

    __slots__ = ("_owner", "_index")

    def __init__(self, owner: Any, index: int):
        self._owner = owner
        self._index = index

    @property
    def index(self) -> int:
        return self._index

    def as_dict(self) -> dict:
        return dict(get_path(self._owner._local_scene(), ("layers", self._index), {}) or {})

    @property
    def data(self) -> list:
        """napari's multiscale ``layer.data``: the layer's channel as lazy arrays, one per
        level, finest first (:class:`voxcast.lazy.LazyArray`); ``layer.data[0][5, 100:200]``
        reads only that box (``await layer.data[0].aget(key)`` on the event loop)."""
        from .lazy import layer_levels

        info_of = getattr(self._owner, "_dataset_info", None)
        info = info_of() if info_of else None
        if not isinstance(info, dict):
            raise AttributeError("layer.data: the server did not describe its dataset")
        d = self.as_dict()
        return layer_levels(self._owner.endpoint, self._owner.dataset, info,
                            int(d.get("channel") or 0))

    @property
    def multiscale(self) -> bool:
        return True

    @property
    def scale(self) -> Tuple[float, ...]:
        """napari's ``layer.scale``: world units per voxel of level 0, per world axis (from
        the dataset's metadata; read-only: the data's calibration)."""
        axes = _world_axes(self._owner)
        if axes:
            return tuple(a[1] for a in axes)
        n = len(get_path(self._owner._local_scene(), ("dims", "point"), ()) or ())
        return (1.0,) * n

    def update(self, **fields: Any) -> None:
        """Several fields in one update: ``layer.update(contrast_limits=(0, 2000), gamma=0.8)``."""
        unknown = [k for k in fields if k not in LAYER_FIELDS]
        if unknown:
            raise AttributeError(f"layers have no field {unknown[0]!r} "
                                 f"(known: {', '.join(LAYER_FIELDS)})")
        self._owner._send_patch(layer_patch(self._index, fields))

    @property
    def params(self) -> "PipelineParams":
        """A derived layer's pipeline parameters, live: ``v.layers[1].params.sigma = 3.0``
        sends a ``state.update`` of that parameter alone (docs/pipelines.md)."""
        return PipelineParams(self._owner, self._index)

    def __repr__(self) -> str:
        d = self.as_dict()
        return f"Layer({self._index}, name={d.get('name')!r}, colormap={d.get('colormap')!r})"


class PipelineParams:
    """The ``params`` of a derived layer's source (``{"pipeline", "input", "params"}``):
    reading gives the scene's values, defaults filled in by the server; assigning sends a
    ``state.update`` that merges into the layer's source. A value outside the pipeline's
    schema is an ``error`` that names the field (raised by ``sync()``)."""

    __slots__ = ("_owner", "_index")

    def __init__(self, owner: Any, index: int):
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_index", index)

    def as_dict(self) -> dict:
        src = get_path(self._owner._local_scene(), ("layers", self._index, "source"))
        if not isinstance(src, dict):
            raise AttributeError(f"layer {self._index} is not a derived layer (its source is "
                                 f"{src!r})")
        return dict(src.get("params") or {})

    def __getattr__(self, name: str) -> Any:
        params = self.as_dict()
        if name not in params:
            raise AttributeError(f"the pipeline has no parameter {name!r} "
                                 f"(known: {', '.join(params)})")
        return _tuple(params[name])

    def __setattr__(self, name: str, value: Any) -> None:
        self.update(**{name: value})

    def update(self, **params: Any) -> None:
        """Several parameters in one update."""
        self.as_dict()  # a derived layer, or AttributeError
        self._owner._send_patch(layer_patch(self._index, {"source": {"params": params}}))

    def __repr__(self) -> str:
        return f"PipelineParams({self.as_dict()!r})"


for _name in LAYER_FIELDS:
    setattr(Layer, _name, _layer_field(_name))
del _name


class LayerList:
    """The scene's layers: ``len``, iteration, indexing by position or by name."""

    __slots__ = ("_owner",)

    def __init__(self, owner: Any):
        self._owner = owner

    def _layers(self) -> list:
        return get_path(self._owner._local_scene(), ("layers",), []) or []

    def __len__(self) -> int:
        return len(self._layers())

    def __iter__(self) -> Iterator[Layer]:
        return (Layer(self._owner, i) for i in range(len(self)))

    def __getitem__(self, key: Union[int, str]) -> Layer:
        layers = self._layers()
        if isinstance(key, str):
            for i, layer in enumerate(layers):
                if layer.get("name") == key:
                    return Layer(self._owner, i)
            raise KeyError(f"no layer named {key!r} (layers: {[l.get('name') for l in layers]})")
        index = int(key)
        if index < 0:
            index += len(layers)
        if not 0 <= index < len(layers):
            raise IndexError(f"layer index {key} out of range ({len(layers)} layers)")
        return Layer(self._owner, index)

    def __contains__(self, name: object) -> bool:
        return any(layer.get("name") == name for layer in self._layers())

    @property
    def names(self) -> list:
        return [layer.get("name") for layer in self._layers()]

    def add(self, pipeline: str, input: Any = 0, layer: Mapping[str, Any] | None = None,
            **params: Any) -> Layer:
        """Appends a derived layer: ``pipeline`` applied to source ``input`` (0: the dataset;
        a derived layer's source for a chain) with ``params``; ``layer`` holds layer fields
        (``contrast_limits``, ``colormap``, ``name``, ...). Returns the new layer at once;
        ``await v.sync()`` raises the server's error if the pipeline or a parameter is bad."""
        fields = dict(layer or {})
        unknown = [k for k in fields if k not in LAYER_FIELDS]
        if unknown:
            raise AttributeError(f"layers have no field {unknown[0]!r} "
                                 f"(known: {', '.join(LAYER_FIELDS)})")
        fields["source"] = {"pipeline": pipeline, "input": input, "params": params}
        index = len(self)
        self._owner._send_patch(layer_patch(index, fields))
        return Layer(self._owner, index)

    def __repr__(self) -> str:
        return f"LayerList({self.names!r})"
