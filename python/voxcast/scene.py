"""Scene JSON patches: building minimal ones, applying them, and diffing two scenes.

A ``state.update`` carries a JSON Merge Patch (RFC 7396) of the scene with one extension:
``layers`` merges element by element (``[{}, {"colormap": "magma"}]`` changes the second
layer's colormap and leaves the first alone). See docs/protocol.md and docs/rendering.md.

Example::

    >>> from voxcast.scene import field_patch, layer_patch, merge_patch, diff
    >>> field_patch(("camera", "zoom"), 2)
    {'camera': {'zoom': 2}}
    >>> layer_patch(1, colormap="magma")
    {'layers': [{}, {'colormap': 'magma'}]}
    >>> scene = {"camera": {"zoom": 1, "angles": [0, 0, 90]},
    ...          "layers": [{"colormap": "gray"}, {"colormap": "gray"}]}
    >>> merge_patch(scene, layer_patch(1, colormap="magma"))["layers"]
    [{'colormap': 'gray'}, {'colormap': 'magma'}]
    >>> diff(scene, merge_patch(scene, {"camera": {"zoom": 3}}))
    {'camera': {'zoom': 3}}
"""

from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping, Sequence

#: Top-level keys of a scene and the keys of each section (docs/rendering.md).
SCENE_FIELDS = {
    "canvas": ("width", "height", "background"),
    "camera": ("center", "zoom", "angles", "perspective"),
    "dims": ("ndisplay", "order", "point"),
}
LAYER_FIELDS = ("name", "source", "channel", "visible", "opacity", "colormap",
                "contrast_limits", "gamma", "blending", "rendering", "iso_threshold",
                "attenuation", "interpolation")
RENDERINGS = ("mip", "minip", "attenuated_mip", "average", "translucent", "iso")
BLENDINGS = ("translucent", "additive", "opaque", "minimum")
INTERPOLATIONS = ("nearest", "linear")

#: Keys whose list values merge element by element (the protocol's one extension).
ELEMENTWISE_KEYS = frozenset({"layers"})


def to_json_value(value: Any) -> Any:
    """Plain JSON types from Python and numpy values: tuples and arrays become lists,
    numpy scalars plain numbers, mappings dicts (recursively).

    >>> import numpy as np
    >>> to_json_value((np.float32(1.5), np.arange(2)))
    [1.5, [0, 1]]
    """
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (str, bytes)) or value is None or isinstance(value, bool):
        return value
    if hasattr(value, "tolist") and not isinstance(value, (int, float)):
        return to_json_value(value.tolist())  # numpy array or scalar
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if hasattr(value, "__iter__"):
        return [to_json_value(v) for v in value]
    return value


def field_patch(path: Sequence[str], value: Any) -> dict:
    """The minimal patch setting one field: ``path`` is the keys from the scene's root.

    >>> field_patch(["dims", "point"], (1, 2.5, 3))
    {'dims': {'point': [1, 2.5, 3]}}
    """
    if not path:
        raise ValueError("field_patch needs a path of at least one key")
    patch: Any = to_json_value(value)
    for key in reversed(list(path)):
        patch = {key: patch}
    return patch


def layer_patch(index: int, fields: Mapping[str, Any] | None = None, **kwargs: Any) -> dict:
    """The minimal patch changing fields of layer ``index``: ``{}`` for the layers before it.

    >>> layer_patch(0, {"opacity": 0.5})
    {'layers': [{'opacity': 0.5}]}
    >>> layer_patch(2, visible=False)
    {'layers': [{}, {}, {'visible': False}]}
    """
    if index < 0:
        raise IndexError(f"layer index {index} is negative")
    changes = dict(fields or {})
    changes.update(kwargs)
    return {"layers": [{} for _ in range(index)] + [to_json_value(changes)]}


def merge_patch(target: Any, patch: Any, *, _key: str | None = None) -> Any:
    """Applies a merge patch (RFC 7396, ``layers`` element by element) to a copy of
    ``target`` and returns it; ``target`` is not modified.

    >>> merge_patch({"a": 1, "b": {"c": 2}}, {"a": None, "b": {"d": 3}})
    {'b': {'c': 2, 'd': 3}}
    >>> merge_patch({"layers": [{"x": 1}, {"x": 2}]}, {"layers": [{}, {"x": 5}]})
    {'layers': [{'x': 1}, {'x': 5}]}
    """
    if isinstance(patch, Mapping):
        result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            elif key in ELEMENTWISE_KEYS and isinstance(value, list):
                result[key] = _merge_elementwise(result.get(key), value)
            else:
                result[key] = merge_patch(result.get(key), value)
        return result
    return copy.deepcopy(patch)


def _merge_elementwise(target: Any, patch: list) -> list:
    items = list(copy.deepcopy(target)) if isinstance(target, list) else []
    for i, p in enumerate(patch):
        if i < len(items):
            items[i] = merge_patch(items[i], p)
        else:
            items.append(merge_patch({}, p))
    return items


def diff(old: Any, new: Any) -> Any:
    """The minimal merge patch that turns ``old`` into ``new`` (``{}`` when equal).

    Objects are diffed key by key (removed keys become null), ``layers`` element by
    element when ``new`` has at least as many layers, other lists are replaced whole.

    >>> diff({"dims": {"point": [0, 1, 2], "ndisplay": 2}},
    ...      {"dims": {"point": [0, 1, 3], "ndisplay": 2}})
    {'dims': {'point': [0, 1, 3]}}
    >>> diff({"layers": [{"a": 1}, {"a": 2}]}, {"layers": [{"a": 1}, {"a": 3}]})
    {'layers': [{}, {'a': 3}]}
    """
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        raise TypeError("diff takes two scene objects")
    patch: dict = {}
    for key in old:
        if key not in new:
            patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = copy.deepcopy(value)
            continue
        before = old[key]
        if before == value:
            continue
        if isinstance(before, Mapping) and isinstance(value, Mapping):
            patch[key] = diff(before, value)
        elif (key in ELEMENTWISE_KEYS and isinstance(before, list) and isinstance(value, list)
              and len(value) >= len(before)
              and all(isinstance(x, Mapping) for x in before + value)):
            elems = [diff(b, v) for b, v in zip(before, value)]
            if len(value) == len(before):
                # Trailing layers that did not change need no entry.
                while elems and elems[-1] == {}:
                    elems.pop()
            else:
                elems += [copy.deepcopy(v) for v in value[len(before):]]
            patch[key] = elems
        else:
            patch[key] = copy.deepcopy(value)
    return patch


def get_path(scene: Mapping, path: Iterable[Any], default: Any = None) -> Any:
    """The value at ``path`` (keys and list indices) or ``default`` when absent.

    >>> get_path({"layers": [{"colormap": "gray"}]}, ["layers", 0, "colormap"])
    'gray'
    """
    node: Any = scene
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return default
    return node
