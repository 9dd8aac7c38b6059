"""Saving and loading state dicts and checkpoints as NumPy ``.npz`` files, never pickle.

``save(obj, path)`` accepts nested dicts, lists and tuples of Tensors, arrays, numbers,
strings, booleans and None (a model's ``state_dict()``, an optimizer's, a whole checkpoint).
Arrays go into the archive as ``.npy`` members; the structure goes beside them as JSON, so
``load`` rebuilds it with ``np.load(allow_pickle=False)``: loading a file can never run code.

Writes are atomic: the archive is written to a temporary file in the same folder, flushed to
disk, then renamed over the target, so a crash or kill at any moment leaves either the old file
or the new one, never a half-written one.
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
import zipfile

import numpy as np

from . import backend
from .tensor import Tensor

_META_KEY = "__minidl_meta__"
_FORMAT = "minidl-npz-1"


def _encode(obj, arrays, where, path=()):
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"save: scalar at {where} has dtype {obj.dtype}; only numeric and "
                            "boolean scalars can be saved")
        return obj.item()
    if isinstance(obj, Tensor):
        arrays.append(backend.as_numpy(obj.data))
        return {"__tensor__": len(arrays) - 1}
    if backend.is_array(obj):
        host = backend.as_numpy(obj)
        if host.dtype.kind not in "biuf":
            raise TypeError(f"save: array at {where} has dtype {host.dtype}; only numeric and "
                            "boolean arrays can be saved")
        arrays.append(host)
        return {"__array__": len(arrays) - 1}
    if isinstance(obj, (tuple, list, dict)):
        if id(obj) in path:
            raise ValueError(f"save: {where} contains itself; a saved tree cannot have cycles")
        path = path + (id(obj),)
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays, f"{where}[{i}]", path)
                              for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, arrays, f"{where}[{i}]", path) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"save: dict keys must be str or int, got {type(k).__name__} "
                                f"at {where}")
            items.append([k, _encode(v, arrays, f"{where}[{k!r}]", path)])
        return {"__dict__": items}
    raise TypeError(f"save: cannot save {type(obj).__name__} at {where}; allowed are Tensors, "
                    "arrays, numbers, strings, bools, None and dicts/lists/tuples of them")


class _Corrupt(ValueError):
    """The archive's structure does not describe a saved tree."""


def _decode(node, arrays, device):
    if isinstance(node, list):
        return [_decode(v, arrays, device) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) != 1:
        raise _Corrupt(f"a node with keys {sorted(node)}")
    (kind, value), = node.items()
    if kind in ("__tensor__", "__array__"):
        if not isinstance(value, int) or isinstance(value, bool) or value not in arrays:
            raise _Corrupt(f"a reference to array {value!r}, which the archive lacks")
        array = arrays[value]
        if kind == "__tensor__" and array.dtype.kind not in "biuf":
            raise _Corrupt(f"a tensor of dtype {array.dtype}")
        return array if kind == "__array__" else Tensor(backend.to_device(array, device))
    if kind == "__tuple__" and isinstance(value, list):
        return tuple(_decode(v, arrays, device) for v in value)
    if kind == "__dict__" and isinstance(value, list) and all(
            isinstance(kv, list) and len(kv) == 2 and isinstance(kv[0], (str, int))
            for kv in value):
        return {k: _decode(v, arrays, device) for k, v in value}
    raise _Corrupt(f"a node of kind {kind!r} holding {type(value).__name__}")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _path(op, path):
    """``path`` (str, bytes or os.PathLike) as a str, or a TypeError naming ``op``."""
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"{op}: path must be a str or os.PathLike, got "
                        f"{type(path).__name__}") from None


def atomic_write(path, write):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it into place.

    The new file gets the permissions of the file it replaces (or the usual ones for a new
    file: 0666 less the umask)."""
    path = _path("atomic_write", path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    # the temporary name stays short enough for a file name that is itself near the limit
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path)[:100] + ".",
                               suffix=".tmp")
    try:
        os.chmod(tmp, mode)                  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save(obj, path):
    """Save ``obj`` (state dicts, checkpoints: see module docstring) to ``path`` atomically."""
    path = _path("save", path)
    arrays = []
    meta = {"format": _FORMAT, "tree": _encode(obj, arrays, "obj")}
    payload = {f"a{i}": a for i, a in enumerate(arrays)}
    payload[_META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **payload))


def load(path, map_location="cpu"):
    """Load what ``save`` wrote; Tensors are placed on ``map_location``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is truncated, corrupt, or not a minidl archive.
    """
    path = _path("load", path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no checkpoint at {path}")
    try:
        # the file is opened here, not by np.load, which leaves it open when the zip is bad
        with open(path, "rb") as f:
            z = np.load(f, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):       # a lone .npy array
                raise ValueError("it holds a single array, not a minidl archive")
            with z:
                meta, arrays = _read_archive(z)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, NotImplementedError,
            RuntimeError, json.JSONDecodeError) as exc:   # (zipfile's for odd archives)
        raise ValueError(f"load: {path} is not a readable minidl checkpoint (truncated or "
                         f"corrupt?): {exc}") from None
    try:
        return _decode(meta["tree"], arrays, map_location)
    except (_Corrupt, RecursionError) as exc:
        raise ValueError(f"load: {path} is not a readable minidl checkpoint (corrupt "
                         f"metadata: {exc})") from None


def _read_archive(z):
    """(metadata, {index: array}) of an open .npz archive that ``save`` wrote."""
    if _META_KEY not in z.files:
        raise ValueError("it has no minidl metadata")
    meta = json.loads(bytes(z[_META_KEY]).decode("utf-8"))
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt != _FORMAT or "tree" not in meta:
        raise ValueError(f"its metadata is not minidl's (format {fmt!r})")
    return meta, {int(k[1:]): z[k] for k in z.files if k != _META_KEY}
