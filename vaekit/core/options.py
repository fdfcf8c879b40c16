"""What a command-line option or a ``trainer:`` setting may hold, checked where it is read.

Each ``argparse`` type below raises ``ArgumentTypeError`` with a sentence naming what is allowed, so ``vaekit
train --epochs 0`` stops at parse time with one line (``vaekit train: error: argument --epochs: ...``) before
anything is loaded or written. The Lightning settings (accelerator, devices, precision, max_time; the
strategy, which needs Lightning's registry, in ``vaekit.run.config``) have one checker each, shared by the CLI
flag and the recipe key, so ``--max-time bogus`` and ``trainer.max_time=bogus`` are refused in the same words.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from vaekit.core.errors import one_line

SEED_MAX = 2**32 - 1  # numpy's seeding limit: a larger seed would fail deep inside a metric


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def as_type(name: str, check: Callable[[str], Any]) -> Callable[[str], Any]:
    """``check`` under a readable ``__name__`` (argparse names the type in some of its own messages)."""
    def convert(text: str) -> Any:
        try:
            return check(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = name
    return convert


def integer(lo: int, hi: int) -> Callable[[str], int]:
    """An integer from ``lo`` to ``hi``."""
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"must be an integer from {lo} to {hi}, got {text!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be an integer from {lo} to {hi}, got {value}")
        return value

    return as_type("integer", check)


def number(lo: float, hi: float, *, above: bool = True) -> Callable[[str], float]:
    """A finite number in (``lo``, ``hi``] (``above``) or [``lo``, ``hi``]."""
    left = "above" if above else "from"

    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"must be a number {left} {lo:g} up to {hi:g}, got {text!r}") from None
        if not math.isfinite(value) or value < lo or (above and value == lo) or value > hi:
            raise ValueError(f"must be a number {left} {lo:g} up to {hi:g}, got {text}")
        return value

    return as_type("number", check)


def count(hi: int) -> Callable[[str], int]:
    return integer(1, hi)


seed = integer(0, SEED_MAX)
port = integer(0, 65535)


def _nonempty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


text = as_type("text", _nonempty)


def _out_path(text: str) -> str:
    _nonempty(text)
    return text


out_path = as_type("path", _out_path)


def _existing(text: str) -> str:
    _nonempty(text)
    if not Path(text).expanduser().exists():
        raise ValueError(f"{text}: no such file or directory")
    return text


existing_path = as_type("path", _existing)


def _existing_file(text: str) -> str:
    _existing(text)
    if not Path(text).expanduser().is_file():
        raise ValueError(f"{text}: not a file")
    return text


existing_file = as_type("file", _existing_file)


def _resume(text: str) -> str:
    if text == "auto":
        return text
    try:
        return _existing_file(text)
    except ValueError as e:
        raise ValueError(f"must be 'auto' or a checkpoint file ({e})") from None


resume = as_type("resume", _resume)


def _host(text: str) -> str:
    if text != "localhost":
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise ValueError(f"must be an IP address or localhost, got {text!r}") from None
    return text


host = as_type("host", _host)


def _vector(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"must be comma-separated numbers such as 0.5,-1, got {text!r}") from None
    if not all(math.isfinite(v) and abs(v) <= 100 for v in values):
        raise ValueError(f"values must be finite and within -100..100, got {text!r}")
    return values


def _vector_text(text: str) -> str:
    _vector(text)
    return text  # kept as text for the verb that reads it


vector = as_type("vector", _vector_text)


def names(known: Callable[[], list[str]], what: str) -> Callable[[str], str]:
    """Comma-separated names, each one of ``known()`` (evaluated when the option is given)."""
    def check(text: str) -> str:
        given = [n.strip() for n in text.split(",") if n.strip()]
        allowed = known()
        if not given or any(n not in allowed for n in given):
            bad = next((n for n in given if n not in allowed), text)
            raise ValueError(f"unknown {what} {bad!r}; choose from: {', '.join(allowed)}")
        return text

    return as_type(what.replace(" ", "_"), check)


def one_of(known: Callable[[], list[str]], what: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        if text not in (allowed := known()):
            raise ValueError(f"unknown {what} {text!r}; choose one of: {', '.join(allowed)}")
        return text

    return as_type(what.replace(" ", "_"), check)


# -- Lightning's settings, shared by trainer.* keys and their flags ---------------------------------------------
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("32-true", "32", "64-true", "64", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true",
              "transformer-engine", "transformer-engine-float16")


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_accelerator(value: str) -> str:
    if value not in ACCELERATORS:
        raise ValueError(f"accelerator {value!r} is not one of: {', '.join(ACCELERATORS)}")
    if value in ("gpu", "cuda") and not _gpus():
        raise ValueError(f"accelerator {value!r}: this machine has no CUDA GPU (use cpu or auto)")
    if value == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise ValueError("accelerator 'mps': this machine has no Apple GPU (use cpu or auto)")
    return value


def check_devices(value: int | str | list[int]) -> int | str | list[int]:
    """``auto``, a count (``-1``: all), or GPU indices as ``"0,1"`` or a list."""
    if value == "auto" or value == -1 or value == "-1":
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1 or value > 1024:
            raise ValueError(f"devices={value} must be auto, -1 (all) or a count from 1 to 1024")
        return value
    if isinstance(value, str) and value.strip().isdigit() and "," not in value:
        check_devices(int(value))
        return value
    indices = value if isinstance(value, list) else str(value).split(",")
    try:
        ids = [int(str(i).strip()) for i in indices if str(i).strip()]
    except ValueError:
        raise ValueError(f"devices={value!r} must be auto, a count, or GPU indices such as 0,1") from None
    if not ids or min(ids) < 0 or len(set(ids)) != len(ids):
        raise ValueError(f"devices={value!r} must be auto, a count, or distinct GPU indices such as 0,1")
    if max(ids) >= (gpus := _gpus()):
        raise ValueError(f"devices={value!r}: GPU {max(ids)} does not exist (this machine has {gpus})")
    return value


def check_precision(value: str | int) -> str | int:
    if str(value) not in PRECISIONS:
        raise ValueError(f"precision {value!r} is not one of: {', '.join(PRECISIONS)}")
    return value


def check_max_time(value: str | None) -> str | None:
    """Lightning's wall-clock budget, ``DD:HH:MM:SS``, more than zero."""
    if value is None:
        return value
    parts = str(value).split(":")
    if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"max_time {value!r} must be DD:HH:MM:SS, e.g. 00:01:30:00 for 90 minutes")
    days, hours, minutes, seconds = (int(p) for p in parts)
    if hours > 23 or minutes > 59 or seconds > 59 or days + hours + minutes + seconds == 0:
        raise ValueError(f"max_time {value!r} must be DD:HH:MM:SS with HH < 24, MM and SS < 60, more than zero")
    return value


def check_device(value: str) -> str:
    """Where ``evaluate`` runs a model: auto, cpu, cuda or cuda:N, one that exists."""
    if value in ("auto", "cpu"):
        return value
    kind, _, index = value.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"device {value!r} must be auto, cpu, cuda or cuda:N")
    gpus = _gpus()
    if not gpus or (index and int(index) >= gpus):
        raise ValueError(f"device {value!r}: this machine has {gpus} CUDA GPU{'s' * (gpus != 1)}")
    return value


accelerator = as_type("accelerator", check_accelerator)
devices = as_type("devices", check_devices)
precision = as_type("precision", check_precision)
max_time = as_type("duration", check_max_time)
device = as_type("device", check_device)


def jobs() -> Callable[[str], int]:
    """Processes at once: 1 up to four per core."""
    return count(4 * (os.cpu_count() or 1))


def is_rank_zero() -> bool:
    """True outside distributed training and in its first process (Lightning's launcher sets these)."""
    return all(os.environ.get(k, "0") == "0" for k in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def say(message: str) -> None:
    """A status line, printed once however many processes train (DDP starts one per device)."""
    if is_rank_zero():
        print(message, file=sys.stdout, flush=True)
