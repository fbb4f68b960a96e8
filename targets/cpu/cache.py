"""Compiled objects cached in memory (per process) and on disk (across processes).

Key: SHA-256 of the printed loop IR, the host triple, CPU name and features, the -O level, the thread
count, Niche's version and a digest of the code generator's own source files (so any change to the
CPU target invalidates old entries), plus llvmlite's version.

Disk layout: `<cache dir>/cpu/<key[:2]>/<key>.o`, where the cache dir is the `cache_dir` option, else
`$XDG_CACHE_HOME/niche`, else `~/.cache/niche`. An entry is a header line `NICHE-OBJ 1 <sha256 of the
payload>` followed by the ELF object. Writes go to a temporary file in the same directory and are
renamed over the entry (atomic on POSIX), so two processes compiling the same kernel never see a
half-written entry and the last rename wins with identical bytes. A read that fails the header or
checksum test is a corrupted entry: it is removed and reported as a miss, and the caller rebuilds it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path

_MAGIC = b"NICHE-OBJ 1 "
_SOURCES = ("codegen", "vmath", "jit.py", "compile.py", "canonical.py")


@functools.cache
def generator_digest() -> str:
    """A digest of the CPU code generator's sources and the versions it depends on."""
    import llvmlite

    from compiler import __version__
    digest = hashlib.sha256(f"niche {__version__} llvmlite {llvmlite.__version__}".encode())
    root = Path(__file__).parent
    for entry in _SOURCES:
        path = root / entry
        files = sorted(path.glob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def cache_key(loop_ir: str, triple: str, cpu: str, features: str, opt_level: int, threads: int) -> str:
    digest = hashlib.sha256()
    for part in (generator_digest(), triple, cpu, features, f"O{opt_level}", f"threads={threads}", loop_ir):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/niche, else ~/.cache/niche (the XDG base-directory convention)."""
    base = os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "niche" if base else Path.home() / ".cache" / "niche"


class DiskCache:
    """Object files by key under `root`/cpu."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / "cpu" / key[:2] / f"{key}.o"

    def load(self, key: str) -> bytes | None:
        """The object stored under `key`, or None (missing, unreadable or corrupted: then removed)."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        header, newline, payload = data.partition(b"\n")
        if newline and header.startswith(_MAGIC):
            expected = header[len(_MAGIC):].decode("ascii", "replace")
            if hashlib.sha256(payload).hexdigest() == expected:
                return payload
        self.discard(key)
        return None

    def store(self, key: str, payload: bytes) -> bool:
        """Write atomically; returns False (and leaves no partial file) when the directory is unwritable."""
        path = self.path(key)
        header = _MAGIC + hashlib.sha256(payload).hexdigest().encode("ascii") + b"\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:16]}.", suffix=".tmp")
        except OSError:
            return False
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(header + payload)
            os.replace(temp, path)
            return True
        except OSError:
            Path(temp).unlink(missing_ok=True)
            return False

    def discard(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except OSError:
            pass
