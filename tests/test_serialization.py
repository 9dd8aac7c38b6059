"""save/load: round trips of nested state, no pickle, atomic writes, clear errors."""
import gc
import os
import warnings

import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl import serialization


def test_roundtrip_nested(tmp_path):
    obj = {"model": {"w": minidl.randn(3, 2), "b": minidl.zeros(2, dtype=minidl.float64)},
           "opt": {"state": {0: {"step": 3, "buf": np.arange(4.0)}}, "betas": (0.9, 0.999)},
           "epoch": 7, "name": "resnet20", "flag": True, "none": None, "lst": [1, 2.5, "x"]}
    path = tmp_path / "ck.npz"
    minidl.save(obj, path)
    back = minidl.load(path)
    assert back["epoch"] == 7 and back["name"] == "resnet20" and back["flag"] is True
    assert back["none"] is None and back["lst"] == [1, 2.5, "x"]
    assert back["opt"]["betas"] == (0.9, 0.999)
    assert list(back["opt"]["state"]) == [0]                       # int keys survive
    np.testing.assert_array_equal(back["opt"]["state"][0]["buf"], np.arange(4.0))
    assert isinstance(back["model"]["w"], minidl.Tensor)
    np.testing.assert_array_equal(back["model"]["w"].numpy(), obj["model"]["w"].numpy())
    assert back["model"]["b"].dtype == np.float64


def test_module_state_dict_roundtrip(tmp_path):
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    minidl.save(m.state_dict(), tmp_path / "m.npz")
    m2 = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    m2.load_state_dict(minidl.load(tmp_path / "m.npz"))
    x = minidl.randn(2, 4)
    np.testing.assert_array_equal(m(x).numpy(), m2(x).numpy())


def test_file_is_plain_npz_without_pickles(tmp_path):
    minidl.save({"a": minidl.ones(2)}, tmp_path / "x.npz")
    with np.load(tmp_path / "x.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def test_unsupported_objects_refused(tmp_path):
    with pytest.raises(TypeError, match="save: cannot save object at obj\\['f'\\]"):
        minidl.save({"f": object()}, tmp_path / "x.npz")
    assert not os.path.exists(tmp_path / "x.npz")


def test_truncated_and_garbage_files(tmp_path):
    path = tmp_path / "ck.npz"
    minidl.save({"w": minidl.randn(100, 100)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="not a readable minidl checkpoint"):
            minidl.load(path)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], "file left open"
    path.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a readable minidl checkpoint"):
        minidl.load(path)
    np.savez(path, x=np.zeros(2))
    with pytest.raises(ValueError, match="no minidl metadata"):
        minidl.load(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        minidl.load(tmp_path / "missing.npz")


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    minidl.save({"v": 1}, path)

    def boom(f, **arrays):
        f.write(b"partial")
        raise KeyboardInterrupt
    monkeypatch.setattr(serialization.np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        minidl.save({"v": 2}, path)
    monkeypatch.undo()
    assert minidl.load(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]          # no temp files left


def test_saved_file_gets_the_usual_permissions(tmp_path):
    minidl.save({"v": 1}, tmp_path / "x.npz")
    mask = os.umask(0)
    os.umask(mask)
    assert (os.stat(tmp_path / "x.npz").st_mode & 0o777) == 0o666 & ~mask


def test_saving_over_a_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "private.npz"
    minidl.save({"v": 1}, path)
    os.chmod(path, 0o600)
    minidl.save({"v": 2}, path)
    assert (os.stat(path).st_mode & 0o777) == 0o600 and minidl.load(path) == {"v": 2}


def test_paths_of_every_kind_and_long_names(tmp_path):
    minidl.save({"v": 1}, os.fsencode(str(tmp_path / "b.npz")))      # bytes, as os accepts
    assert minidl.load(str(tmp_path / "b.npz")) == {"v": 1}
    long_name = tmp_path / ("c" * 250 + ".npz")                      # 254 characters
    minidl.save({"v": 3}, long_name)
    assert minidl.load(long_name) == {"v": 3}
    with pytest.raises(TypeError, match="save: path must be a str or os.PathLike, got int"):
        minidl.save({"v": 1}, 3)


def test_unsaveable_scalars_and_cycles_refused(tmp_path):
    with pytest.raises(TypeError, match=r"save: scalar at obj\['z'\] has dtype complex128"):
        minidl.save({"z": np.complex128(1j)}, tmp_path / "x.npz")
    loop = [1]
    loop.append(loop)
    with pytest.raises(ValueError, match=r"save: obj\['a'\]\[1\] contains itself"):
        minidl.save({"a": loop}, tmp_path / "x.npz")
    assert not os.path.exists(tmp_path / "x.npz")


def _with_meta(path, meta):
    """An archive holding one array and ``meta`` as its metadata."""
    raw = np.frombuffer(__import__("json").dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, a0=np.zeros(2), **{serialization._META_KEY: raw})


@pytest.mark.parametrize("meta,match", [
    ([1, 2], r"metadata is not minidl's \(format None\)"),
    ({"format": "other"}, "format 'other'"),
    ({"format": serialization._FORMAT, "tree": {"__tensor__": 3}}, "array 3, which the archive"),
    ({"format": serialization._FORMAT, "tree": {"__dict__": 5}}, "kind '__dict__' holding int"),
    ({"format": serialization._FORMAT, "tree": {"x": 1, "y": 2}}, r"keys \['x', 'y'\]"),
    ({"format": serialization._FORMAT, "tree": {"__tensor__": [0]}}, r"array \[0\]"),
])
def test_corrupt_metadata_is_a_clear_error(tmp_path, meta, match):
    path = tmp_path / "bad.npz"
    _with_meta(path, meta)
    with pytest.raises(ValueError, match="load: .*not a readable minidl checkpoint.*" + match):
        minidl.load(path)


def test_foreign_and_odd_files_are_value_errors(tmp_path):
    """A lone .npy array, metadata nested past Python's recursion limit, a string array where
    a tensor should be: each the documented ValueError, not TypeError or RecursionError."""
    np.save(tmp_path / "x.npy", np.arange(3))
    with pytest.raises(ValueError, match="holds a single array, not a minidl archive"):
        minidl.load(tmp_path / "x.npy")
    nested = None
    for _ in range(700):              # JSON encodes it; decoding takes two frames a level
        nested = [nested]
    raw = np.frombuffer(__import__("json").dumps(
        {"format": serialization._FORMAT, "tree": nested}).encode(), dtype=np.uint8)
    np.savez(tmp_path / "deep.npz", **{serialization._META_KEY: raw})
    with pytest.raises(ValueError, match="load: .*not a readable minidl checkpoint"):
        minidl.load(tmp_path / "deep.npz")
    raw = np.frombuffer(__import__("json").dumps(
        {"format": serialization._FORMAT, "tree": {"__tensor__": 0}}).encode(), dtype=np.uint8)
    np.savez(tmp_path / "str.npz", a0=np.array(["x"]), **{serialization._META_KEY: raw})
    with pytest.raises(ValueError, match="a tensor of dtype <U1"):
        minidl.load(tmp_path / "str.npz")
