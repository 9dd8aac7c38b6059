"""CIFAR-10 and CIFAR-100 readers for both official distributions.

Formats (``format=``):

- ``"python"``: ``cifar-10-batches-py`` (``data_batch_1`` .. ``data_batch_5``, ``test_batch``,
  ``batches.meta``) or ``cifar-100-python`` (``train``, ``test``, ``meta``): pickled dicts with
  ``b'data'`` (n, 3072) uint8 and ``b'labels'`` (CIFAR-100: ``b'fine_labels'``,
  ``b'coarse_labels'``). They are read with a restricted unpickler that builds only plain
  containers, bytes/str and NumPy arrays (as Python 2 wrote them, or Python 3 re-pickles them at
  protocol 2 to 5); any other global (``os.system``, ...) is refused before anything runs.
- ``"binary"``: ``cifar-10-batches-bin`` (``data_batch_1.bin`` .. ``data_batch_5.bin``,
  ``test_batch.bin``, ``batches.meta.txt``): records of 1 label byte + 3072 pixel bytes; or
  ``cifar-100-binary`` (``train.bin``, ``test.bin``, ``coarse_label_names.txt``,
  ``fine_label_names.txt``): records of 2 label bytes (coarse, fine) + 3072 pixel bytes.

In both, the 3072 pixel bytes are the R, G and B planes of a 32x32 image, each row-major, so a
batch reshapes to NCHW without moving a byte. Each format is read from its extracted folder or
straight from its official ``.tar.gz`` in ``root``.

Checksums: the official archives have known md5s, checked (in 1 MiB chunks) before an archive is
read or extracted. Extracted files have no official checksums: a folder is validated by its file
sizes, record counts and label ranges instead. ``verify_md5=False`` loads copies whose bytes
differ from the official release (a re-encoded or converted copy) and says so with a warning.
"""
from __future__ import annotations

import os
import pickle
import warnings

import numpy as np

from .._checks import check_bool
from . import download as _dl

_SITE = "https://www.cs.toronto.edu/~kriz/"
_MD5 = {   # official archives; the only files with published checksums
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530",
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
    "cifar-100-binary.tar.gz": "03b5dce01913d631647c71ecec9e9cb8",
}
_PIXELS = 3 * 32 * 32
_FORMATS = ("python", "binary")

# What the official pickles contain besides plain containers: NumPy array reconstruction. The
# reconstruct functions are taken from the running NumPy (their modules moved in NumPy 2).
_RECONSTRUCT = np.empty(0, np.uint8).__reduce__()[0]
_FROMBUFFER = np.empty(0, np.uint8).__reduce_ex__(5)[0]     # protocol 5 arrays


def _latin1_bytes(text, encoding):
    """``_codecs.encode`` as Python 3 pickles bytes at protocol 2: ``encode(str, 'latin1')``;
    nothing else (no other codec, no other argument types)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode is only allowed as encode(str, 'latin1'), "
                                     f"got encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


def _empty_bytes(*args):
    """``bytes()`` as Python 3 pickles ``b''`` at protocol 2; no arguments allowed."""
    if args:
        raise pickle.UnpicklingError("bytes(...) is only allowed without arguments (b'')")
    return b""


def _array_from_buffer(buf, dtype, shape, order, *axis_order):
    """NumPy's protocol-5 ``_frombuffer``, for plain (non-object) dtypes only."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError(f"only plain arrays are allowed, got dtype {dtype!r}")
    return _FROMBUFFER(buf, dtype, shape, order, *axis_order)


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _array_from_buffer,
    ("numpy._core.numeric", "_frombuffer"): _array_from_buffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batches: only plain data and NumPy arrays, py2 strings as bytes."""

    def __init__(self, file, who, path):
        super().__init__(file, encoding="bytes")
        self._who, self._path = who, path

    def find_class(self, module, name):
        obj = _ALLOWED_GLOBALS.get((module, name))
        if obj is None:
            raise _RefusedGlobal(
                f"{self._who}: refusing to unpickle '{module}.{name}' from {self._path}: "
                "only plain data is allowed in CIFAR batches")
        return obj


class _Layout:
    """One format's folder, archive and data files; ``names`` maps a class-names attribute to
    (meta file, pickle key) -- the key is None for the binary format's text files."""

    def __init__(self, folder, archive, train, test, names):
        self.folder, self.archive = folder, archive
        self.train, self.test, self.names = tuple(train), tuple(test), dict(names)
        self.meta = tuple(dict.fromkeys(file for file, _ in self.names.values()))


class _CIFAR:
    """Shared reader; subclasses fill in names, label fields and the expected record counts."""

    _name = ""            # "CIFAR10", used in every error message
    _title = ""           # "CIFAR-10", used in prose
    _layouts = {}         # format -> _Layout
    _records = {}         # split -> records per data file (the official sizes; tests shrink it)
    _py_labels = {}       # attribute -> pickle key of that label list
    _bin_labels = ()      # attributes of the label bytes of a binary record, in order
    _num_classes = {}     # attribute -> number of classes

    def __init__(self, root, train=True, download=False, format=None, verify_md5=True):
        """Load the train or test split.

        Args:
            root: folder holding the extracted folder(s) or the official ``.tar.gz``; it may also
                be the extracted folder itself.
            train: the training split (else the test split).
            download: when ``root`` has no extracted folder, fetch the official archive (python
                format unless ``format='binary'``) unless it is already there, verify it and
                extract it into ``root``.
            format: ``None``/``'auto'`` (first found of: python folder, binary folder, python
                archive, binary archive), ``'python'`` or ``'binary'``.
            verify_md5: check official archives against their md5 before reading them. False
                skips the check with a warning, for trusted copies that differ from the
                official bytes.

        Attributes:
            data: (N, 3, 32, 32) uint8, NCHW, RGB channels.
            targets: (N,) int64 class indices.
            classes: list of the class names.
            format, source: the format read and the folder or archive it came from.
        """
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"{self._name}: root must be a path, got {type(root).__name__}")
        train = check_bool(self._name, "train", train)
        download = check_bool(self._name, "download", download)
        verify_md5 = check_bool(self._name, "verify_md5", verify_md5)
        if format not in (None, "auto") + _FORMATS:
            raise ValueError(f"{self._name}: format must be None, 'auto', 'python' or 'binary', "
                             f"got {format!r}")
        self.root, self.train = os.fspath(root), train
        formats = _FORMATS if format in (None, "auto") else (format,)
        found = self._locate(formats)
        if download and (found is None or found[1] == "archive"):
            # download=True leaves an extracted folder behind: later loads skip md5 and gunzip
            found = self._download(found[0] if found else formats[0], verify_md5)
        if found is None:
            raise FileNotFoundError(self._not_found_message(formats))
        self.format, kind, self.source = found
        layout = self._layouts[self.format]
        if kind == "archive":
            if verify_md5:
                _dl.check_md5(self._name, self.source, _MD5[layout.archive])
            else:
                self._warn_unverified(self.source, stacklevel=2)
            names = self._files(layout) + layout.meta
            src = _dl.TarSource(self._name, self.source, layout.folder, names)
        else:                         # an extracted folder has no md5 to check: no warning
            src = _dl.FolderSource(self.source)
        read = self._read_python if self.format == "python" else self._read_binary
        read(src, layout)

    # -- locating, downloading ----------------------------------------------------------------
    def _files(self, layout):
        return layout.train if self.train else layout.test

    def _folder_of(self, layout):
        """The extracted folder of ``layout`` under root, or root itself if it is one."""
        inside = os.path.join(self.root, layout.folder)
        if os.path.isdir(inside):
            return inside
        probe = (layout.train[0],) + layout.meta
        if all(os.path.isfile(os.path.join(self.root, n)) for n in probe):
            return self.root
        return None

    def _locate(self, formats):
        """(format, 'folder' | 'archive', path) of the first data found, else None."""
        for fmt in formats:
            folder = self._folder_of(self._layouts[fmt])
            if folder is not None:
                return fmt, "folder", folder
        for fmt in formats:
            archive = os.path.join(self.root, self._layouts[fmt].archive)
            if os.path.isfile(archive):
                return fmt, "archive", archive
        return None

    def _not_found_message(self, formats):
        looked = []
        for fmt in formats:
            layout = self._layouts[fmt]
            looked += [os.path.join(self.root, layout.folder) + os.sep,
                       os.path.join(self.root, layout.archive)]
        url = _SITE + self._layouts[formats[0]].archive
        return (f"{self._name}: no {self._title} data in {self.root}: looked for "
                f"{', '.join(looked)}; pass download=True to fetch {url}, or put one of these "
                "there by hand")

    def _download(self, fmt, verify_md5):
        layout = self._layouts[fmt]
        os.makedirs(self.root, exist_ok=True)
        archive = os.path.join(self.root, layout.archive)
        expected = _MD5[layout.archive] if verify_md5 else None
        if not os.path.isfile(archive):
            hint = (f", or extract it there so that {os.path.join(self.root, layout.folder)}"
                    f"{os.sep} exists")
            _dl.download_url(self._name, _SITE + layout.archive, archive, expected, hint)
        elif verify_md5:
            _dl.check_md5(self._name, archive, expected)
        _dl.extract_tar(self._name, archive, self.root)
        folder = self._folder_of(layout)
        if folder is None:
            raise ValueError(f"{self._name}: {archive} did not contain {layout.folder}/")
        return fmt, "folder", folder

    def _warn_unverified(self, path, stacklevel):
        """Say that md5 is skipped. ``stacklevel`` counts from the caller of this method, as
        ``warnings.warn`` counts from its own caller: 2 from ``__init__`` is the user's call."""
        warnings.warn(f"{self._name}: verify_md5=False: loading {path} without checking the "
                      "official md5 (file sizes, record counts and labels are still checked)",
                      UserWarning, stacklevel=stacklevel + 1)

    # -- reading --------------------------------------------------------------------------------
    def _missing(self, src, name):
        return ValueError(f"{self._name}: {src.describe(name)} is missing; the folder or archive "
                          "is incomplete: delete it and download or extract it again")

    def _allocate(self, layout):
        n = self._records["train" if self.train else "test"]
        total = n * len(self._files(layout))
        self.data = np.empty((total, 3, 32, 32), np.uint8)
        labels = {attr: np.empty(total, np.int64) for attr in self._num_classes}
        return n, labels

    def _read_binary(self, src, layout):
        n, labels = self._allocate(layout)
        nlab = len(self._bin_labels)
        record = nlab + _PIXELS
        for i, name in enumerate(self._files(layout)):
            size = src.size(name)
            if size is None:
                raise self._missing(src, name)
            if size != n * record:
                raise ValueError(
                    f"{self._name}: {src.describe(name)} is {size:,} bytes, expected "
                    f"{n * record:,} ({n} records of {record} bytes); the download is truncated "
                    "or corrupt: delete it and download again")
            with src.open(name) as f:
                rec = np.frombuffer(f.read(), np.uint8).reshape(n, record)
            self.data[i * n:(i + 1) * n] = rec[:, nlab:].reshape(n, 3, 32, 32)
            for j, attr in enumerate(self._bin_labels):
                labels[attr][i * n:(i + 1) * n] = rec[:, j]
                self._check_labels(attr, labels[attr][i * n:(i + 1) * n], src.describe(name))
        for attr, values in labels.items():
            setattr(self, attr, values)
        for attr, (name, _) in layout.names.items():
            if not src.has(name):
                raise self._missing(src, name)
            with src.open(name) as f:
                text = f.read().decode("utf-8", errors="replace")
            self._set_names(attr, [line.strip() for line in text.splitlines() if line.strip()],
                            src.describe(name))

    def _read_python(self, src, layout):
        n, labels = self._allocate(layout)
        for i, name in enumerate(self._files(layout)):
            batch = self._unpickle(src, name)
            data = batch.get(b"data")
            if not (isinstance(data, np.ndarray) and data.dtype == np.uint8
                    and data.shape == (n, _PIXELS)):
                got = (f"{type(data).__name__} {getattr(data, 'dtype', '')} "
                       f"{getattr(data, 'shape', '')}")
                raise ValueError(f"{self._name}: {src.describe(name)}: b'data' should be a "
                                 f"({n}, {_PIXELS}) uint8 array, got {got}; the file is corrupt "
                                 "or not a CIFAR batch")
            self.data[i * n:(i + 1) * n] = data.reshape(n, 3, 32, 32)
            for attr, key in self._py_labels.items():
                values = batch.get(key)
                if not isinstance(values, (list, tuple, np.ndarray)) or len(values) != n:
                    got = ("none" if values is None else f"{len(values)}"
                           if isinstance(values, (list, tuple, np.ndarray))
                           else type(values).__name__)
                    raise ValueError(f"{self._name}: {src.describe(name)}: expected {n} labels "
                                     f"under {key!r}, got {got}; the file is corrupt")
                ints = np.asarray(values)       # an int list, or an integer array: nothing else
                if ints.dtype.kind not in "iu" or ints.ndim != 1:
                    raise ValueError(f"{self._name}: {src.describe(name)}: labels under {key!r} "
                                     f"are not integers (got {ints.dtype}); the file is corrupt")
                labels[attr][i * n:(i + 1) * n] = ints
                self._check_labels(attr, labels[attr][i * n:(i + 1) * n], src.describe(name))
        for attr, values in labels.items():
            setattr(self, attr, values)
        for attr, (name, key) in layout.names.items():
            names = self._unpickle(src, name).get(key)
            if not isinstance(names, list):
                raise ValueError(f"{self._name}: {src.describe(name)} has no list {key!r} of "
                                 "class names; the file is corrupt")
            names = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in names]
            self._set_names(attr, names, src.describe(name))

    def _unpickle(self, src, name):
        if not src.has(name):
            raise self._missing(src, name)
        where = src.describe(name)
        try:
            with src.open(name) as f:
                obj = _RestrictedUnpickler(f, self._name, where).load()
        except _RefusedGlobal:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError) as exc:
            raise ValueError(f"{self._name}: cannot unpickle {where} ({type(exc).__name__}: "
                             f"{exc}); the file is truncated or corrupt: delete it and download "
                             "again") from exc
        if not isinstance(obj, dict):
            raise ValueError(f"{self._name}: {where} holds a {type(obj).__name__}, expected a "
                             "dict; the file is not a CIFAR batch")
        return {k.encode("utf-8") if isinstance(k, str) else k: v for k, v in obj.items()}

    def _check_labels(self, attr, values, where):
        k = self._num_classes[attr]
        bad = np.flatnonzero((values < 0) | (values >= k))
        if bad.size:
            raise ValueError(f"{self._name}: {where} has label {int(values[bad[0]])} at record "
                             f"{int(bad[0])}, expected 0..{k - 1}; the file is corrupt")

    def _set_names(self, attr, names, where):
        k = self._num_classes["targets" if attr == "classes" else "coarse_targets"]
        if len(names) != k:
            raise ValueError(f"{self._name}: {where} lists {len(names)} class names, expected "
                             f"{k}; the file is corrupt")
        setattr(self, attr, names)

    # -- dataset protocol -----------------------------------------------------------------------
    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        """(image (3, 32, 32) uint8, label int) for an int index; arrays for a slice/array."""
        label = self.targets[index]
        return self.data[index], (int(label) if np.ndim(label) == 0 else label)

    def __repr__(self):
        split = "train" if self.train else "test"
        return (f"{self._name}({split}, {len(self)} images, format={self.format!r}, "
                f"source={self.source!r})")


class CIFAR10(_CIFAR):
    """CIFAR-10: 50,000 train and 10,000 test 32x32 RGB images in 10 classes.

    ``CIFAR10(root, train=True, download=False, format=None, verify_md5=True)``; see
    ``_CIFAR.__init__`` for the arguments. ``data`` is (N, 3, 32, 32) uint8 NCHW, ``targets``
    (N,) int64, ``classes`` the 10 class names.
    """

    _name, _title = "CIFAR10", "CIFAR-10"
    _layouts = {
        "python": _Layout("cifar-10-batches-py", "cifar-10-python.tar.gz",
                          [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                          {"classes": ("batches.meta", b"label_names")}),
        "binary": _Layout("cifar-10-batches-bin", "cifar-10-binary.tar.gz",
                          [f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"],
                          {"classes": ("batches.meta.txt", None)}),
    }
    _records = {"train": 10000, "test": 10000}
    _py_labels = {"targets": b"labels"}
    _bin_labels = ("targets",)
    _num_classes = {"targets": 10}


class CIFAR100(_CIFAR):
    """CIFAR-100: 50,000 train and 10,000 test 32x32 RGB images in 100 classes (20 superclasses).

    Same arguments as ``CIFAR10``. ``targets`` are the fine labels (0..99) with ``classes`` their
    names; ``coarse_targets`` (0..19) and ``coarse_classes`` hold the superclasses.
    """

    _name, _title = "CIFAR100", "CIFAR-100"
    _layouts = {
        "python": _Layout("cifar-100-python", "cifar-100-python.tar.gz", ["train"], ["test"],
                          {"classes": ("meta", b"fine_label_names"),
                           "coarse_classes": ("meta", b"coarse_label_names")}),
        "binary": _Layout("cifar-100-binary", "cifar-100-binary.tar.gz", ["train.bin"],
                          ["test.bin"], {"classes": ("fine_label_names.txt", None),
                                         "coarse_classes": ("coarse_label_names.txt", None)}),
    }
    _records = {"train": 50000, "test": 10000}
    _py_labels = {"targets": b"fine_labels", "coarse_targets": b"coarse_labels"}
    _bin_labels = ("coarse_targets", "targets")
    _num_classes = {"targets": 100, "coarse_targets": 20}
