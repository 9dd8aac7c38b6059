"""CIFAR readers (both formats, folders and tarballs, md5, download, safety) and the DataLoader,
on tiny synthetic CIFAR files built in tmp_path: no network, no ../shared."""
import gzip
import io
import os
import pathlib
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
import warnings
import zlib

import numpy as np
import pytest

import minidl
from minidl import backend
from minidl.data import CIFAR10, CIFAR100, DataLoader, cifar, md5sum
from minidl.data.download import extract_tar

from .helpers import host

N_TRAIN, N_TEST = 6, 10     # records per file in the synthetic sets (officially 10000 / 50000)


@pytest.fixture(autouse=True)
def small_records(monkeypatch):
    monkeypatch.setattr(CIFAR10, "_records", {"train": N_TRAIN, "test": N_TEST})
    monkeypatch.setattr(CIFAR100, "_records", {"train": N_TRAIN, "test": N_TEST})


class _Py2Pickler(pickle._Pickler):
    """Writes str and bytes the way Python 2's cPickle wrote str (BINSTRING), like the official
    python-format batches, which Python 3 reads back as bytes with encoding='bytes'."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else \
            pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_pickle(obj):
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # NumPy 1.x (which wrote the official files) names the reconstructor numpy.core.multiarray
    return buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def fake_split(kind, n_files, n, seed):
    rng = np.random.default_rng(seed)
    k = 10 if kind == "cifar10" else 100
    x = rng.integers(0, 256, (n_files * n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, k, n_files * n)
    coarse = y // 5
    return x, y, coarse


def make_cifar(root, kind="cifar10", fmt="python", tar=False):
    """Write a tiny CIFAR set in the official layout under root; return the expected arrays."""
    names = [f"c{i}" for i in range(10 if kind == "cifar10" else 100)]
    coarse_names = [f"s{i}" for i in range(20)]
    cls = CIFAR10 if kind == "cifar10" else CIFAR100
    layout = cls._layouts[fmt]
    folder = os.path.join(root, layout.folder)
    os.makedirs(folder, exist_ok=True)
    expect = {}
    for split, files, n, seed in (("train", layout.train, N_TRAIN, 1), ("test", layout.test,
                                                                          N_TEST, 2)):
        x, y, coarse = fake_split(kind, len(files), n, seed)
        expect[split] = (x, y, coarse)
        for i, name in enumerate(files):
            sl = slice(i * n, (i + 1) * n)
            path = os.path.join(folder, name)
            if fmt == "binary":
                labels = [y[sl, None]] if kind == "cifar10" else [coarse[sl, None], y[sl, None]]
                rec = np.concatenate(labels + [x[sl].reshape(n, -1)], axis=1).astype(np.uint8)
                rec.tofile(path)
            else:
                d = {"data": x[sl].reshape(n, 3072), "batch_label": f"batch {i}",
                     "filenames": [f"img{j}.png" for j in range(n)]}
                if kind == "cifar10":
                    d["labels"] = [int(v) for v in y[sl]]
                else:
                    d["fine_labels"] = [int(v) for v in y[sl]]
                    d["coarse_labels"] = [int(v) for v in coarse[sl]]
                with open(path, "wb") as f:
                    f.write(py2_pickle(d))
    if fmt == "binary":
        for attr, (name, _) in layout.names.items():
            lines = names if attr == "classes" else coarse_names
            with open(os.path.join(folder, name), "w") as f:
                f.write("\n".join(lines) + "\n\n")
    else:
        meta = ({"label_names": names, "num_cases_per_batch": N_TRAIN, "num_vis": 3072}
                if kind == "cifar10" else
                {"fine_label_names": names, "coarse_label_names": coarse_names})
        with open(os.path.join(folder, next(iter(layout.names.values()))[0]), "wb") as f:
            f.write(py2_pickle(meta))
    expect["classes"], expect["coarse_classes"] = names, coarse_names
    if tar:
        archive = os.path.join(root, layout.archive)
        with tarfile.open(archive, "w:gz") as t:
            t.add(folder, arcname=layout.folder)
        _rmtree(folder)
        expect["archive"] = archive
    return expect


def _rmtree(path):
    import shutil
    shutil.rmtree(path)


def check_split(ds, expect, split, kind):
    x, y, coarse = expect[split]
    assert ds.data.dtype == np.uint8 and ds.data.shape == x.shape
    assert ds.targets.dtype == np.int64 and ds.targets.shape == y.shape
    np.testing.assert_array_equal(ds.data, x)
    np.testing.assert_array_equal(ds.targets, y)
    assert ds.classes == expect["classes"]
    if kind == "cifar100":
        np.testing.assert_array_equal(ds.coarse_targets, coarse)
        assert ds.coarse_classes == expect["coarse_classes"]
    image, label = ds[3]
    np.testing.assert_array_equal(image, x[3])
    assert label == y[3] and isinstance(label, int)
    assert len(ds) == len(y)


# -- readers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["cifar10", "cifar100"])
@pytest.mark.parametrize("fmt", ["python", "binary"])
@pytest.mark.parametrize("tar", [False, True], ids=["folder", "tar"])
def test_roundtrip(tmp_path, monkeypatch, kind, fmt, tar):
    expect = make_cifar(str(tmp_path), kind, fmt, tar)
    cls = CIFAR10 if kind == "cifar10" else CIFAR100
    if tar:     # the synthetic archive stands in for the official one
        monkeypatch.setitem(cifar._MD5, cls._layouts[fmt].archive, md5sum(expect["archive"]))
    for train in (True, False):
        ds = cls(tmp_path, train=train)
        assert ds.format == fmt
        check_split(ds, expect, "train" if train else "test", kind)
        ds = cls(tmp_path, train=train, format=fmt)
        assert ds.source.endswith(cls._layouts[fmt].archive if tar else cls._layouts[fmt].folder)


def test_root_may_be_the_extracted_folder(tmp_path):
    expect = make_cifar(str(tmp_path), "cifar10", "binary")
    ds = CIFAR10(tmp_path / "cifar-10-batches-bin", train=False)
    check_split(ds, expect, "test", "cifar10")


def test_not_found_names_places_and_url(tmp_path):
    make_cifar(str(tmp_path), "cifar10", "python")
    with pytest.raises(FileNotFoundError) as err:
        CIFAR10(tmp_path, format="binary")
    msg = str(err.value)
    assert "CIFAR10: no CIFAR-10 data in" in msg and "cifar-10-batches-bin" in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in msg


def test_md5_mismatch(tmp_path, monkeypatch):
    expect = make_cifar(str(tmp_path), "cifar10", "python", tar=True)
    monkeypatch.setitem(cifar._MD5, "cifar-10-python.tar.gz", "0" * 32)
    with pytest.raises(ValueError) as err:
        CIFAR10(tmp_path)
    msg = str(err.value)
    assert "CIFAR10: md5 mismatch for" in msg and expect["archive"] in msg
    assert "expected " + "0" * 32 in msg and "got " + md5sum(expect["archive"]) in msg


def test_verify_md5_false_warns_and_loads(tmp_path):
    expect = make_cifar(str(tmp_path), "cifar10", "binary", tar=True)   # md5 is not official
    with pytest.warns(UserWarning, match="verify_md5=False: loading .* without checking") as w:
        ds = CIFAR10(tmp_path, train=False, verify_md5=False)
    assert w[0].filename == __file__      # points at this call, not inside the reader
    check_split(ds, expect, "test", "cifar10")
    make_cifar(str(tmp_path / "f"), "cifar10", "binary")
    with warnings.catch_warnings():          # an extracted folder has no md5 to skip
        warnings.simplefilter("error")
        CIFAR10(tmp_path / "f", verify_md5=False)


def test_truncated_binary_file(tmp_path):
    make_cifar(str(tmp_path), "cifar10", "binary")
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError) as err:
        CIFAR10(tmp_path)
    full = N_TRAIN * 3073
    assert (f"data_batch_3.bin is {full - 100:,} bytes, expected {full:,} ({N_TRAIN} records "
            "of 3073 bytes); the download is truncated or corrupt") in str(err.value)
    CIFAR10(tmp_path, train=False)     # the test split does not need that file


def test_truncated_pickle_and_missing_file(tmp_path):
    make_cifar(str(tmp_path), "cifar10", "python")
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match="CIFAR10: cannot unpickle .*data_batch_2 .*truncated"):
        CIFAR10(tmp_path)
    path.unlink()
    with pytest.raises(ValueError, match="data_batch_2 is missing; the folder or archive is "
                                         "incomplete"):
        CIFAR10(tmp_path)


def test_truncated_archive(tmp_path):
    expect = make_cifar(str(tmp_path), "cifar100", "binary", tar=True)
    data = pathlib.Path(expect["archive"]).read_bytes()
    pathlib.Path(expect["archive"]).write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="md5 mismatch"):
        CIFAR100(tmp_path)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="cannot read .*truncated"):
        CIFAR100(tmp_path, verify_md5=False)


def test_bad_labels_and_shapes(tmp_path):
    make_cifar(str(tmp_path), "cifar10", "binary")
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    rec = np.fromfile(path, np.uint8).reshape(N_TEST, 3073)
    rec[4, 0] = 200
    rec.tofile(path)
    with pytest.raises(ValueError, match="test_batch.bin has label 200 at record 4, expected 0..9"):
        CIFAR10(tmp_path, train=False)
    make_cifar(str(tmp_path / "p"), "cifar10", "python")
    bad = {"data": np.zeros((N_TEST, 3000), np.uint8), "labels": [0] * N_TEST}
    (tmp_path / "p" / "cifar-10-batches-py" / "test_batch").write_bytes(py2_pickle(bad))
    with pytest.raises(ValueError, match=r"b'data' should be a \(10, 3072\) uint8 array"):
        CIFAR10(tmp_path / "p", train=False)
    for labels, match in [(5, "expected 10 labels under b'labels', got int"),
                          ([1.5] * N_TEST, r"labels under b'labels' are not integers \(got "
                                           r"float64\)"),
                          ([2 ** 70] * N_TEST, "are not integers")]:
        bad = {"data": np.zeros((N_TEST, 3072), np.uint8), "labels": labels}
        (tmp_path / "p" / "cifar-10-batches-py" / "test_batch").write_bytes(py2_pickle(bad))
        with pytest.raises(ValueError, match=match):
            CIFAR10(tmp_path / "p", train=False)


def test_a_corrupt_byte_inside_a_tar_gz_is_caught_by_its_crc(tmp_path):
    """With the md5 skipped, the gzip CRC still guards the archive: the tar reader stopped at
    the archive's end marker, before gzip's trailer, and a flipped byte changed some pixels."""
    expect = make_cifar(str(tmp_path), "cifar10", "binary", tar=True)
    path = pathlib.Path(expect["archive"])
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[len(raw) // 2] ^= 0x01                          # one pixel bit: still a valid tar
    body = gzip.compress(bytes(raw))
    crc = struct.pack("<I", (zlib.crc32(bytes(raw)) ^ 0xFF) & 0xFFFFFFFF)
    path.write_bytes(body[:-8] + crc + body[-4:])       # a gzip whose CRC does not match
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="CRC check failed"):
        CIFAR10(tmp_path, verify_md5=False)


class _Exec:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)


@pytest.mark.parametrize("file", ["data_batch_1", "batches.meta"])
def test_malicious_pickle_is_refused_without_running(tmp_path, file):
    make_cifar(str(tmp_path), "cifar10", "python")
    marker = tmp_path / "marker"
    path = tmp_path / "cifar-10-batches-py" / file
    path.write_bytes(pickle.dumps({b"data": _Exec(f"open({str(marker)!r}, 'w').write('x')")}))
    with pytest.raises(pickle.UnpicklingError) as err:
        CIFAR10(tmp_path)
    assert f"CIFAR10: refusing to unpickle 'builtins.exec' from {path}: only plain data" \
        in str(err.value)
    # the classic: GLOBAL os.system, then REDUCE
    path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle 'os.system' from"):
        CIFAR10(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_py3_pickles_of_arrays_are_plain_data(tmp_path, protocol):
    """A batch re-pickled by Python 3 / NumPy 2 still loads: protocol 2 spells bytes as
    _codecs.encode(str, 'latin1') (b'' as bytes()), protocol 5 rebuilds arrays with
    numpy._core.numeric._frombuffer."""
    expect = make_cifar(str(tmp_path), "cifar10", "python")
    x, y, _ = expect["test"]
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({"data": x.reshape(N_TEST, 3072), "labels": y.tolist(),
                                   b"batch_label": b"testing batch 1 of 1", b"empty": b""},
                                  protocol=protocol))
    ds = CIFAR10(tmp_path, train=False)
    np.testing.assert_array_equal(ds.data, x)
    images, labels = ds[2:5]
    assert images.shape == (3, 3, 32, 32) and labels.tolist() == y[2:5].tolist()


def _numpy1_frombuffer(*args):
    """Stands in for NumPy 1's numpy.core.numeric._frombuffer when pickling."""
    raise AssertionError("never called: the reader maps the name to its own function")


def _pickle_arrays_as(function, obj, dtype=None):
    """A protocol-5 pickle of ``obj`` whose arrays are rebuilt by ``function(buffer, dtype,
    shape, order)``, as NumPy's ``_frombuffer`` is (``dtype`` overrides the arrays' dtype)."""
    class Pickler(pickle.Pickler):
        def reducer_override(self, a):
            if isinstance(a, np.ndarray):
                return function, (a.tobytes(), dtype or a.dtype, a.shape, "C")
            return NotImplemented
    buf = io.BytesIO()
    Pickler(buf, protocol=5).dump(obj)
    return buf.getvalue()


def test_protocol_5_pickle_from_numpy_1_loads(tmp_path, monkeypatch):
    import sys
    import types
    expect = make_cifar(str(tmp_path), "cifar10", "python")
    x, y, _ = expect["test"]
    fake = types.ModuleType("numpy.core.numeric")
    _numpy1_frombuffer.__module__, _numpy1_frombuffer.__qualname__ = fake.__name__, "_frombuffer"
    fake._frombuffer = _numpy1_frombuffer
    with monkeypatch.context() as m:
        m.setitem(sys.modules, fake.__name__, fake)
        data = _pickle_arrays_as(_numpy1_frombuffer, {"data": x.reshape(N_TEST, 3072),
                                                      "labels": y.tolist()})
    assert b"numpy.core.numeric" in data and b"_frombuffer" in data
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(data)
    np.testing.assert_array_equal(CIFAR10(tmp_path, train=False).data, x)


class _System:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return os.system, (self.cmd,)


class _Encode:
    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        import codecs
        return codecs.encode, self.args


@pytest.mark.parametrize("protocol", [2, 5])
def test_admitted_reconstructors_allow_nothing_else(tmp_path, protocol):
    """Admitting _codecs.encode, bytes and _frombuffer lets no code run and no other codec,
    argument or dtype through."""
    make_cifar(str(tmp_path), "cifar10", "python")
    marker = tmp_path / "marker"
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": _System(f"touch {marker}")}, protocol=protocol))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to unpickle '(posix|os|nt)\."
                                                     r"system'"):
        CIFAR10(tmp_path, train=False)
    for bad in (_Encode("x", "rot13"), _Encode(b"x", "latin1")):
        path.write_bytes(pickle.dumps({b"data": bad}, protocol=protocol))
        with pytest.raises(ValueError, match="only allowed as encode.str, 'latin1'"):
            CIFAR10(tmp_path, train=False)
    path.write_bytes(_pickle_arrays_as(cifar._FROMBUFFER, {b"data": np.zeros(2, np.int64)},
                                       dtype=np.dtype(object)))
    with pytest.raises(ValueError, match="only plain arrays are allowed, got dtype"):
        CIFAR10(tmp_path, train=False)
    assert not marker.exists()


# -- download and extraction -------------------------------------------------------------------

class _FakeResponse(io.BytesIO):
    def __init__(self, data, on_read):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}
        self.on_read = on_read

    def read(self, n=-1):
        self.on_read()
        return super().read(n)


def serve(monkeypatch, data, root, archive):
    """Make urlopen serve ``data``; record whether the .part file existed during the transfer."""
    seen = {"urls": [], "part": False}
    part = os.path.join(root, archive + ".part")

    def urlopen(url, timeout=None):
        seen["urls"].append(url)
        return _FakeResponse(data, lambda: seen.__setitem__("part", seen["part"]
                                                            or os.path.exists(part)))
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return seen


def test_download(tmp_path, monkeypatch, capsys):
    src = tmp_path / "server"
    expect = make_cifar(str(src), "cifar10", "python", tar=True)
    data = pathlib.Path(expect["archive"]).read_bytes()
    monkeypatch.setitem(cifar._MD5, "cifar-10-python.tar.gz", md5sum(expect["archive"]))
    root = tmp_path / "root"
    seen = serve(monkeypatch, data, str(root), "cifar-10-python.tar.gz")
    ds = CIFAR10(root, train=False, download=True)
    check_split(ds, expect, "test", "cifar10")
    assert seen["urls"] == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert seen["part"] and not (root / "cifar-10-python.tar.gz.part").exists()
    assert md5sum(str(root / "cifar-10-python.tar.gz")) == md5sum(expect["archive"])
    assert ds.source == str(root / "cifar-10-batches-py")
    assert "cifar-10-python.tar.gz" in capsys.readouterr().err     # the tqdm bar
    CIFAR10(root, download=True)          # already there: no second request
    assert len(seen["urls"]) == 1


def test_download_md5_mismatch_keeps_nothing(tmp_path, monkeypatch):
    expect = make_cifar(str(tmp_path / "server"), "cifar10", "binary", tar=True)
    root = tmp_path / "root"
    archive = pathlib.Path(expect["archive"]).read_bytes()
    serve(monkeypatch, archive, str(root), "cifar-10-binary.tar.gz")
    with pytest.raises(ValueError, match="md5 mismatch for https://.*cifar-10-binary.tar.gz: "
                                         "expected c32a1d4ab5d03f1284b67883e8d87530"):
        CIFAR10(root, format="binary", download=True)
    assert os.listdir(root) == []


def test_download_offline(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError) as err:
        CIFAR10(tmp_path, download=True)
    msg = str(err.value)
    assert "could not download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg
    assert "offline" in msg and str(tmp_path / "cifar-10-python.tar.gz") in msg
    assert str(tmp_path / "cifar-10-batches-py") in msg
    assert os.listdir(tmp_path) == []


def test_download_true_extracts_an_existing_archive(tmp_path, monkeypatch):
    expect = make_cifar(str(tmp_path), "cifar100", "python", tar=True)
    monkeypatch.setitem(cifar._MD5, "cifar-100-python.tar.gz", md5sum(expect["archive"]))
    monkeypatch.setattr(urllib.request, "urlopen", None)     # any request would fail
    ds = CIFAR100(tmp_path, download=True)
    assert ds.source == str(tmp_path / "cifar-100-python")
    check_split(ds, expect, "train", "cifar100")


@pytest.mark.parametrize("name,why", [("../evil.txt", "contains '..'"),
                                      ("/tmp/evil.txt", "absolute path"),
                                      ("a/../../evil.txt", "contains '..'")])
def test_extract_refuses_escaping_members(tmp_path, name, why):
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        for member in ("ok/file.txt", name):
            info = tarfile.TarInfo(member)
            info.size = 2
            t.addfile(info, io.BytesIO(b"hi"))
    dest = tmp_path / "dest"
    with pytest.raises(ValueError, match=f"refusing to extract .*{why}"):
        extract_tar("CIFAR10", str(archive), str(dest))
    assert os.listdir(dest) == [] and not (tmp_path / "evil.txt").exists()


def test_extract_refuses_links(tmp_path):
    archive = tmp_path / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        info = tarfile.TarInfo("ok/link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(info)
    with pytest.raises(ValueError, match="is a link or special file"):
        extract_tar("CIFAR10", str(archive), str(tmp_path / "dest"))


# -- DataLoader --------------------------------------------------------------------------------

def arrays(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8), np.arange(n) * 7


def collect(loader):
    out = [(host(x), host(y)) for x, y in loader]
    return np.concatenate([x for x, _ in out]), np.concatenate([y for _, y in out]), out


@pytest.mark.parametrize("preload", [False, True])
def test_loader_batches_in_order(device, preload):
    x, y = arrays()
    loader = DataLoader((x, y), 4, device=device, preload=preload)
    assert len(loader) == 3
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(4, 3, 4, 4), (4, 3, 4, 4), (2, 3, 4, 4)]
    for images, labels in batches:
        assert images.dtype == np.float32 and labels.dtype == np.int64
        assert images.device == device and labels.device == device
    xs, ys, _ = collect(DataLoader((x, y), 4, device=device, preload=preload))
    np.testing.assert_allclose(xs, x / np.float32(255), rtol=1e-7)
    np.testing.assert_array_equal(ys, y)


def test_loader_drop_last(device):
    x, y = arrays()
    loader = DataLoader((x, y), 4, drop_last=True, device=device)
    assert len(loader) == 2 and [b[1].shape for b in loader] == [(4,), (4,)]


def test_loader_shuffle_is_seeded_per_epoch(device):
    x, y = arrays(50)
    loader = DataLoader((x, y), 8, shuffle=True, seed=5, device=device)
    _, e0, _ = collect(loader)
    _, e1, _ = collect(loader)
    assert loader.epoch == 2
    assert sorted(e0) == sorted(y) and not np.array_equal(e0, e1)
    np.testing.assert_array_equal(e0, y[loader.permutation(0)])
    loader.set_epoch(1)
    np.testing.assert_array_equal(collect(loader)[1], e1)      # resume reproduces epoch 1
    other = DataLoader((x, y), 8, shuffle=True, seed=5, device=device)
    other.set_epoch(1)
    np.testing.assert_array_equal(collect(other)[1], e1)
    different = DataLoader((x, y), 8, shuffle=True, seed=6, device=device)
    assert not np.array_equal(collect(different)[1], e0)


def test_loader_batch_rng_streams():
    x, y = arrays(50)
    loader = DataLoader((x, y), 8, shuffle=True, seed=5)
    draw = lambda *key: np.random.default_rng(np.random.SeedSequence(5, spawn_key=key)).random(4)
    np.testing.assert_array_equal(loader.batch_rng(3, 2).random(4), draw(3, 1, 2))
    np.testing.assert_array_equal(loader.batch_rng(3, 2, 2).random(4), draw(3, 2, 2))
    with pytest.raises(ValueError, match="DataLoader.batch_rng: 'stream'"):
        loader.batch_rng(3, 2, 0)


def test_loader_seed_none_follows_manual_seed():
    x, y = arrays(50)
    minidl.manual_seed(1)
    a = DataLoader((x, y), 8, shuffle=True)
    minidl.manual_seed(1)
    b = DataLoader((x, y), 8, shuffle=True)
    assert a.seed == b.seed
    np.testing.assert_array_equal(a.permutation(3), b.permutation(3))


def test_loader_transform_runs_on_device_and_is_reproducible(device):
    from minidl.data import transforms as T
    x, y = arrays(20)
    seen = []

    def spy(images, rng):
        seen.append((images.dtype, backend.device_of(images), type(rng)))
        return T.Compose([T.RandomCrop(4, padding=2), T.RandomHorizontalFlip(),
                          T.Normalize((0.5, 0.5, 0.5), (0.2, 0.2, 0.2))])(images, rng)

    loader = DataLoader((x, y), 8, shuffle=True, seed=0, device=device, transform=spy)
    first, _, batches = collect(loader)
    assert seen[0] == (np.uint8, backend.Device(device), np.random.Generator)
    assert batches[0][0].dtype == np.float32
    loader.set_epoch(0)
    np.testing.assert_array_equal(collect(loader)[0], first)
    assert not np.array_equal(collect(loader)[0], first)      # epoch 1 augments differently
    pre = DataLoader((x, y), 8, shuffle=True, seed=0, device=device, transform=spy, preload=True)
    np.testing.assert_array_equal(collect(pre)[0], first)


def test_loader_over_a_dataset(tmp_path, device):
    expect = make_cifar(str(tmp_path), "cifar10", "binary")
    loader = DataLoader(CIFAR10(tmp_path, train=False), 4, device=device)
    xs, ys, _ = collect(loader)
    np.testing.assert_allclose(xs, expect["test"][0] / np.float32(255), rtol=1e-7)
    np.testing.assert_array_equal(ys, expect["test"][1])


def test_loader_errors():
    x, y = arrays()
    with pytest.raises(ValueError, match="DataLoader: 'batch_size' must be a positive int, got 0"):
        DataLoader((x, y), 0)
    with pytest.raises(ValueError, match=r"DataLoader: labels must be integers of shape \(10,\)"):
        DataLoader((x, y[:5]), 2)
    with pytest.raises(TypeError, match="DataLoader: expected a dataset with .data and .targets"):
        DataLoader(x, 2)
    with pytest.raises(ValueError, match="DataLoader: 'seed' must be a non-negative int, got -1"):
        DataLoader((x, y), 2, seed=-1)
    with pytest.raises(ValueError, match="DataLoader.set_epoch: 'epoch' must be a non-negative "
                                         "int, got -1"):
        DataLoader((x, y), 2).set_epoch(-1)
