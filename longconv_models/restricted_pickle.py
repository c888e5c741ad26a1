"""A pickle module for ``torch.load(..., pickle_module=restricted_pickle)`` that runs no code.

Training checkpoints (PyTorch Lightning ``.ckpt``) pickle more than tensors: OmegaConf
hyper-parameters, optimizer state, callbacks. ``torch.load(weights_only=True)`` refuses them;
``weights_only=False`` would import and call whatever the file names. This unpickler resolves
only the functions that rebuild tensors (the same ones ``weights_only`` allows) and plain
containers; every other global becomes an inert :class:`Placeholder` class that records the
arguments and state it is given and never imports, calls or executes anything. Placeholder trees
of OmegaConf containers turn back into plain dicts and lists with :func:`to_plain`.
"""

from __future__ import annotations

import collections
import io
import pickle
import types

import torch
import torch._utils

# Globals that rebuild tensors and containers. Nothing here can run code from the file.
_TENSOR_REBUILDERS = {
    "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
    "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
}
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("collections", "defaultdict"): collections.defaultdict,
}
# Plain types (as values, e.g. OmegaConf's ref_type, or to build containers); "__builtin__" is
# how protocol-2 pickles written by Python 2 code paths name the module.
_BUILTINS = {t.__name__: t for t in (dict, list, tuple, set, frozenset, int, float, complex, str, bytes, bool,
                                      slice, type(None), object)}


class Placeholder:
    """Stands for a class or function the checkpoint named and that was not resolved. Calling,
    building or filling it only records what it was given (``args``, ``state``, ``items``)."""

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.__dict__["args"], obj.__dict__["state"], obj.__dict__["items"] = args, None, {}
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__["state"] = state

    def __setitem__(self, key, value):  # dict subclasses (e.g. Lightning's AttributeDict)
        self.__dict__["items"][key] = value

    def append(self, value):  # list subclasses
        self.__dict__["items"][len(self.__dict__["items"])] = value

    def extend(self, values):
        for v in values:
            self.append(v)

    def __repr__(self):
        return f"<unresolved {self.qualname}>"


def _placeholder(module: str, name: str) -> type:
    return type(name, (Placeholder,), {"qualname": f"{module}.{name}", "__module__": __name__})


class Unpickler(pickle.Unpickler):
    """Resolves tensor rebuilders, torch dtypes and plain containers; everything else becomes a
    :class:`Placeholder` subclass. ``unresolved`` lists what the file named."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unresolved: set[str] = set()

    def find_class(self, module, name):
        if module == "torch._utils" and name in _TENSOR_REBUILDERS:
            return getattr(torch._utils, name)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        self.unresolved.add(f"{module}.{name}")
        return _placeholder(module, name)


def load(file, **kwargs):
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs):
    return Unpickler(io.BytesIO(data), **kwargs).load()


def torch_load(path, map_location="cpu") -> tuple[object, set[str]]:
    """``torch.load`` through this unpickler: the object (tensors, plain containers and inert
    placeholders) and the names of the globals the file asked for and did not get."""
    unresolved: set[str] = set()

    class Recording(Unpickler):  # every unpickler torch makes reports into this call's set
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.unresolved = unresolved

    # torch.load takes a pickle module: Unpickler, load and a few names are what it reads.
    module = types.ModuleType(__name__ + ".call")
    module.Unpickler, module.Pickler, module.UnpicklingError = Recording, pickle.Pickler, pickle.UnpicklingError
    module.load = lambda file, **kwargs: Recording(file, **kwargs).load()
    module.HIGHEST_PROTOCOL = pickle.HIGHEST_PROTOCOL
    obj = torch.load(path, map_location=map_location, weights_only=False, pickle_module=module)
    return obj, unresolved


def to_plain(obj, _depth: int = 0):
    """Placeholders of OmegaConf ``DictConfig`` / ``ListConfig`` / value nodes, dict and list
    subclasses -> plain dicts, lists and values; other placeholders stay as they are."""
    if _depth > 100:
        raise ValueError("nesting too deep")
    if isinstance(obj, dict):
        return {k: to_plain(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [to_plain(v, _depth + 1) for v in obj]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, Placeholder):
        state = obj.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}  # (dict state, slot state)
        if isinstance(state, dict):
            if "_content" in state:  # DictConfig / ListConfig
                return to_plain(state["_content"], _depth + 1)
            if "_val" in state:  # ValueNode
                return to_plain(state["_val"], _depth + 1)
        if obj.items:  # dict / list subclass
            keys = list(obj.items)
            if keys == list(range(len(keys))):
                return [to_plain(obj.items[k], _depth + 1) for k in keys]
            return {k: to_plain(v, _depth + 1) for k, v in obj.items.items()}
    return obj
