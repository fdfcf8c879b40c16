"""Where data lives: --data-dir, else $VAEKIT_DATA/<set>, else a user cache that a download fills."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

# DataError is defined in core (core/audio.py raises it for a bad WAV) and is the data package's error.
from vaekit.core.errors import DataError


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vaekit"


def resolve_dir(name: str, data_dir: str | os.PathLike | None) -> tuple[Path, bool]:
    """The directory holding data set ``name`` and whether it may be downloaded into.

    An explicit ``data_dir`` may be the set's own folder or its parent (``shared/data`` or
    ``shared/data/mnist`` both work)."""
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        return (d / name if (d / name).is_dir() else d), False
    env = os.environ.get("VAEKIT_DATA")
    if env:
        d = Path(env).expanduser()
        return (d / name if (d / name).is_dir() else d), False
    return cache_dir() / name, True


def read_manifest(path: Path, what: str, hint: str) -> Any:
    """The JSON beside a generated cache; a missing or unreadable one is a DataError naming it and the remedy."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found ({what} is incomplete; {hint})") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable ({e}); {hint}") from None


def writable(folder: Path) -> bool:
    """Whether a cache can be written into ``folder``. A folder (or its nearest existing parent) whose mode has
    no write bit counts as read-only even for root, who could write it: a shared data folder is marked so."""
    existing = next((d for d in (folder, *folder.parents) if d.exists()), None)
    if existing is not None and not existing.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
        return True
    except OSError:
        return False


def md5_of_gzip_content(path: Path) -> str:
    """md5 of the uncompressed bytes (gzip headers carry timestamps; the content is what must match)."""
    h = hashlib.md5()
    try:
        with gzip.open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable gzip file ({e})") from None
    return h.hexdigest()


def download(urls: list[str], dest: Path, check: Callable[[Path], None] | None = None) -> None:
    """Fetch ``dest`` from the first mirror that answers with a file ``check`` accepts (it raises DataError
    otherwise, e.g. on a checksum mismatch). The file is verified under a temporary name and only then moved into
    place, so nothing unverified is ever used; a mirror serving a bad file is skipped for the next."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        tmp = dest.with_suffix(dest.suffix + ".part")
        try:
            print(f"downloading {url} -> {dest}")
            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
            if check is not None:
                check(tmp)
            tmp.replace(dest)
            return
        except (OSError, DataError) as e:
            errors.append(f"{url}: {e}")
            tmp.unlink(missing_ok=True)
    raise DataError(f"could not download {dest.name}: " + "; ".join(errors))
