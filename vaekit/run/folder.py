"""A run folder's safety: one writer at a time, no silent overwrite, and a checksum for every weights file.

- ``claim(run_dir)`` takes ``.vaekit.lock`` (``filelock``: an OS lock, released when the process dies) before
  anything is written; while it is held the lock file names its holder, so a second training into the same
  folder is refused with one line saying who has it.
- ``holds_run(run_dir)``: the files that make a folder a run; training into one needs ``--resume`` or
  ``--overwrite``, and ``clear_run`` removes exactly those before an overwrite.
- ``SHA256SUMS`` (the format ``sha256sum -c`` reads) records the digest of each weights and checkpoint file as it
  is renamed into place; ``verify`` names a file whose bytes no longer match, ``check_run`` reports on a run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from vaekit.core.errors import OneLineError

LOCK = ".vaekit.lock"
SUMS = "SHA256SUMS"
# What a training writes into its folder; an overwrite removes these and nothing else.
RUN_FILES = ("config.yaml", "model.safetensors", "best.safetensors", SUMS, "metrics.csv", "history.csv")
RUN_FOLDERS = ("checkpoints", "figures", "snapshots", "metrics", "logs", "lightning_logs", "tensorboard", "mlruns",
               "wandb")


class RunFolderError(OneLineError, RuntimeError):
    """A run folder is busy, holds a run that would be replaced, or has a damaged file."""


@contextlib.contextmanager
def claim(run_dir: Path) -> Iterator[bool]:
    """Hold ``run_dir``'s lock for the block; yields whether the folder was created here. A folder created here
    and left with nothing but the lock (the run failed before it wrote anything) is removed again."""
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"{run_dir}: cannot write there ({e.strerror or e})") from None
    lock_path = run_dir / LOCK
    lock = FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = _read(lock_path) or "another process"
        raise RunFolderError(f"{run_dir} is in use by {holder}; wait for it to finish or train into another "
                             f"--out") from None
    try:
        lock_path.write_text(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}: "
                             f"{' '.join(sys.argv)}\n")
        yield created
    finally:
        lock_path.write_text("")  # the holder's name goes with the hold, so the folder is as it was
        lock.release()
        if created and {p.name for p in run_dir.iterdir()} <= {LOCK}:
            shutil.rmtree(run_dir, ignore_errors=True)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def holds_run(run_dir: Path) -> list[str]:
    """The run files in ``run_dir`` (config, weights, checkpoints); empty when it holds no run."""
    found = [n for n in ("config.yaml", "model.safetensors", "best.safetensors") if (run_dir / n).exists()]
    if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
        found.append("checkpoints/")
    return found


def clear_run(run_dir: Path) -> None:
    """Remove what an earlier training wrote into ``run_dir`` (``--overwrite``); other files stay."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        if (run_dir / name).is_dir():
            shutil.rmtree(run_dir / name)
    for stale in run_dir.glob("eval_*.json"):
        stale.unlink()


# -- checksums --------------------------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(run_dir: Path) -> dict[str, list[str]]:
    """{relative path: [sha256, ...]} from ``run_dir/SHA256SUMS``; empty for a run made before checksums were kept.
    A name has two digests only while its file is being replaced (either content is whole)."""
    sums: dict[str, list[str]] = {}
    for line in _read(run_dir / SUMS).splitlines():
        digest, _, name = line.partition("  ")
        if digest and name:
            sums.setdefault(name, []).append(digest)
    return sums


def _write_sums(run_dir: Path, sums: dict[str, list[str]]) -> None:
    text = "".join(f"{d}  {n}\n" for n, ds in sorted(sums.items()) for d in ds)
    tmp = run_dir / f".{SUMS}.{os.getpid()}.tmp"
    tmp.write_text(text)
    os.replace(tmp, run_dir / SUMS)


def replace_recorded(tmp: Path, path: Path, run_dir: Path) -> None:
    """Rename the finished ``tmp`` over ``path`` and record its checksum in ``run_dir/SHA256SUMS``. The new digest
    is recorded beside the old one before the rename and alone after it, so a process killed at any point leaves
    a file that verifies (the old one or the new one)."""
    digest, name = sha256(tmp), path.resolve().relative_to(run_dir.resolve()).as_posix()
    sums = read_sums(run_dir)
    _write_sums(run_dir, {**sums, name: [*sums.get(name, []), digest]})
    os.replace(tmp, path)
    _write_sums(run_dir, {**sums, name: [digest]})


def verify(path: Path, run_dir: Path) -> None:
    """Raise naming ``path`` when its bytes differ from the checksum recorded for it (no record: nothing to do)."""
    try:
        name = path.resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:
        return
    expected = read_sums(run_dir).get(name)
    if expected and sha256(path) not in expected:
        raise RunFolderError(f"{path}: damaged or truncated (its SHA-256 differs from the one in {run_dir / SUMS}); "
                             f"`vaekit check {run_dir}` lists the run's files")


def check_run(run_dir: Path) -> list[tuple[str, str]]:
    """(file, verdict) for every file a run depends on; a verdict other than ``ok`` means the run is not whole."""
    report: list[tuple[str, str]] = []
    sums = read_sums(run_dir)
    weights = sorted({*sums, *(p.relative_to(run_dir).as_posix() for pattern in
                               ("*.safetensors", "snapshots/*.safetensors", "checkpoints/*.ckpt")
                               for p in run_dir.glob(pattern))})
    for name in weights:
        path = run_dir / name
        if not path.exists():
            report.append((name, "missing (recorded in SHA256SUMS)"))
        elif name not in sums:
            report.append((name, "ok (no checksum recorded)"))
        else:
            report.append((name, "ok" if sha256(path) in sums[name] else "damaged: SHA-256 differs from SHA256SUMS"))
    return report
