"""Data files on disk: md5 in chunks, download with progress, safe extraction, and the two
places a dataset's files are read from (an extracted folder or a .tar.gz read in place).

Stdlib only (hashlib, urllib, tarfile) plus tqdm for the progress bar. Every function takes the
name of the caller (``who``, e.g. ``"CIFAR10"``) so its errors say which dataset failed.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib

from tqdm.auto import tqdm

_CHUNK = 1 << 20   # 1 MiB: hashing and copying never hold a whole archive in memory


def md5sum(path, chunk_size=_CHUNK):
    """The md5 of a file as a hex string, read ``chunk_size`` bytes at a time."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def md5_mismatch_message(who, path, expected, actual):
    """The one wording of an md5 failure, shared by local files and downloads."""
    return (f"{who}: md5 mismatch for {path}: expected {expected}, got {actual}; the file is "
            "truncated, corrupt or not the official archive: delete it and download again "
            "(or pass verify_md5=False to load a copy you trust)")


def check_md5(who, path, expected):
    """Raise ValueError unless the md5 of ``path`` is ``expected``."""
    actual = md5sum(path)
    if actual != expected:
        raise ValueError(md5_mismatch_message(who, path, expected, actual))


def download_url(who, url, path, expected_md5=None, manual_hint="", timeout=60.0):
    """Download ``url`` to ``path`` through ``path + '.part'``, with a tqdm progress bar.

    The md5 is computed while the bytes arrive; the ``.part`` file is renamed to ``path`` only when
    the download is complete and (if ``expected_md5`` is given) its md5 matches, so an
    interrupted or corrupt download never looks like a finished archive.

    Raises:
        RuntimeError: the URL could not be fetched (offline, HTTP error); the message names the
            URL and, through ``manual_hint``, where to put the file by hand.
        ValueError: md5 mismatch (the ``.part`` file is deleted).
    """
    part = path + ".part"
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length") if response.headers else None
            total = int(length) if length and str(length).isdigit() else None
            with open(part, "wb") as f, tqdm(total=total, unit="B", unit_scale=True,
                                             unit_divisor=1024,
                                             desc=os.path.basename(path)) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as exc:
        _remove(part)
        raise RuntimeError(
            f"{who}: could not download {url} ({exc}). If this machine is offline, fetch that "
            f"file elsewhere and put it at {path}{manual_hint}") from exc
    if total is not None and os.path.getsize(part) != total:
        got = os.path.getsize(part)
        _remove(part)
        raise RuntimeError(
            f"{who}: download of {url} stopped after {got:,} of {total:,} bytes; "
            "run again, or fetch the file by hand and put it at " + path)
    if expected_md5 is not None and digest.hexdigest() != expected_md5:
        _remove(part)
        raise ValueError(md5_mismatch_message(who, url, expected_md5, digest.hexdigest()))
    os.replace(part, path)
    return path


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _safe_target(who, archive, name, dest):
    """The path ``name`` extracts to, or ValueError for names that would escape ``dest``."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"{who}: refusing to extract {archive}: member {name!r} has an "
                         "absolute path")
    if ".." in parts:
        raise ValueError(f"{who}: refusing to extract {archive}: member {name!r} contains '..'")
    return os.path.join(dest, *[p for p in parts if p not in ("", ".")])


def extract_tar(who, archive, dest):
    """Extract regular files and folders of a tar(.gz) into ``dest``, refusing anything unsafe.

    Members with absolute paths or ``..`` components, links and device files are refused before
    anything is written. Extraction goes to a temporary folder inside ``dest`` whose top-level
    entries are then moved into place, so a failure never leaves a half-written dataset folder.
    Existing top-level entries of the same name are replaced.
    """
    os.makedirs(dest, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                _safe_target(who, archive, m.name, dest)
                if not (m.isfile() or m.isdir()):
                    raise ValueError(f"{who}: refusing to extract {archive}: member {m.name!r} "
                                     "is a link or special file, not a regular file")
            tmp = tempfile.mkdtemp(prefix=".extract-", dir=dest)
            try:
                for m in members:
                    target = _safe_target(who, archive, m.name, tmp)
                    if m.isdir():
                        os.makedirs(target, exist_ok=True)
                        continue
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with tar.extractfile(m) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, _CHUNK)
                _read_to_end(tar)                  # the gzip CRC, before anything moves
                for entry in os.listdir(tmp):
                    final = os.path.join(dest, entry)
                    if os.path.isdir(final) and not os.path.islink(final):
                        shutil.rmtree(final)
                    os.replace(os.path.join(tmp, entry), final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"{who}: cannot extract {archive} ({exc}); the archive is truncated "
                         "or corrupt: delete it and download again") from exc


def _read_to_end(tar):
    """Read the rest of a tar's compressed stream: the tar reader stops at the archive's end
    marker, before the gzip trailer, so a corrupt byte in a member went unnoticed (with the
    md5 skipped); reading to the end makes gzip check its CRC (BadGzipFile when it fails)."""
    while tar.fileobj.read(_CHUNK):
        pass


class FolderSource:
    """An extracted folder as a source of files."""

    def __init__(self, path):
        self.path = path

    def describe(self, name):
        return os.path.join(self.path, name)

    def size(self, name):
        return os.path.getsize(self.describe(name)) if self.has(name) else None

    def has(self, name):
        return os.path.isfile(self.describe(name))

    def open(self, name):
        return open(self.describe(name), "rb")


class TarSource:
    """The wanted members of a .tar.gz, read into memory in one streaming pass."""

    def __init__(self, who, path, folder, names):
        self.path, self.folder = path, folder
        wanted = {f"{folder}/{n}": n for n in names}
        self.blobs = {}
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:
                    key = member.name[2:] if member.name.startswith("./") else member.name
                    name = wanted.get(key)
                    if name is not None and member.isfile():
                        self.blobs[name] = tar.extractfile(member).read()
                _read_to_end(tar)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise ValueError(f"{who}: cannot read {path} ({exc}); the archive is truncated or "
                             "corrupt: delete it and download again") from exc

    def describe(self, name):
        return f"{self.path}:{self.folder}/{name}"

    def size(self, name):
        blob = self.blobs.get(name)
        return None if blob is None else len(blob)

    def has(self, name):
        return name in self.blobs

    def open(self, name):
        return io.BytesIO(self.blobs[name])
