"""What the speech data sets share: the character vocabulary, log-mel features computed once per process, and
batches of variable-length mel spectrograms with the text spoken in them.

A batch (zero-padded; the model masks the padding with the lengths):

    {"x": [B, T_max, n_mels] log-mels, "lengths": [B] frames, "text": [B, N_max] character ids (0 pads),
     "text_lengths": [B], "y": [B] word, "speaker": [B], and whatever else a set records per example}
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from vaekit.core.audio import MelSettings, log_mel, read_wav
from vaekit.data.batches import BatchServing

PAD = 0
CHARACTERS = "abcdefghijklmnopqrstuvwxyz' "  # ids 1.. ; 0 is padding
VOCAB_SIZE = len(CHARACTERS) + 1


def text_to_ids(text: str) -> list[int]:
    """Character ids of a word or phrase (lower-cased); anything outside the vocabulary is refused."""
    text = text.strip().lower()
    bad = sorted({c for c in text if c not in CHARACTERS})
    if not text or bad:
        raise ValueError(f"text {text!r}: use the letters a-z, space and apostrophe" + (f" (not {bad})" if bad else ""))
    return [CHARACTERS.index(c) + 1 for c in text]


def ids_to_text(ids: Sequence[int]) -> str:
    return "".join(CHARACTERS[i - 1] for i in ids if i != PAD)


def pad_texts(texts: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    """Character ids [B, N_max] (0-padded) and the lengths [B] of several texts."""
    lengths = torch.tensor([len(t) for t in texts])
    ids = torch.zeros(len(texts), int(lengths.max()) if len(texts) else 0, dtype=torch.long)
    for row, t in zip(ids, texts, strict=True):
        row[: len(t)] = torch.as_tensor(t)
    return ids, lengths


def pad_mels(mels: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Mels [B, T_max, n_mels] (0-padded) and the lengths [B] of several [T_i, n_mels] spectrograms."""
    lengths = torch.tensor([len(m) for m in mels])
    x = torch.zeros(len(mels), int(lengths.max()) if len(mels) else 0, mels[0].shape[-1] if len(mels) else 0)
    for row, m in zip(x, mels, strict=True):
        row[: len(m)] = m
    return x, lengths


class SpeechExamples(BatchServing):
    """Log-mel spectrograms [T_i, n_mels] of utterances, the character ids of their text, and per-example labels
    (``{"y": words, "speaker": ..., ...}``, each a tensor with one row per example). ``paths`` names each
    utterance's WAV (for measures that need the audio, e.g. F0); ``names`` the values of index labels
    (``{"speaker": ["george", ...]}``)."""

    def __init__(self, mels: list[Tensor], texts: list[list[int]], labels: dict[str, Tensor],
                 paths: list[str] | None = None, names: dict[str, list[str]] | None = None) -> None:
        if len(texts) != len(mels) or any(len(v) != len(mels) for v in labels.values()):
            raise ValueError("every example needs a mel, a text and a value of every label")
        self.mels, self.texts, self.labels, self.paths, self.names = mels, texts, labels, paths, names or {}

    def __len__(self) -> int:
        return len(self.mels)

    def __getitems__(self, idx: list[int]) -> dict[str, Tensor]:
        x, lengths = pad_mels([self.mels[i] for i in idx])
        text, text_lengths = pad_texts([self.texts[i] for i in idx])
        index = torch.as_tensor(list(idx), dtype=torch.long)
        return {"x": x, "lengths": lengths, "text": text, "text_lengths": text_lengths,
                **{k: v.index_select(0, index) for k, v in self.labels.items()}}

    def select(self, idx: Sequence[int]) -> SpeechExamples:
        """The examples at ``idx``, served the same way."""
        idx = list(idx)
        index = torch.as_tensor(idx, dtype=torch.long)
        return SpeechExamples([self.mels[i] for i in idx], [self.texts[i] for i in idx],
                              {k: v.index_select(0, index) for k, v in self.labels.items()},
                              None if self.paths is None else [self.paths[i] for i in idx], self.names)

    def subset(self, n: int) -> SpeechExamples:
        """The first n examples."""
        return self.select(range(min(n, len(self))))


def mel_statistics(mels: Sequence[Tensor]) -> dict[str, float]:
    """Mean and standard deviation of every log-mel value of ``mels`` (the model's input normalisation)."""
    values = torch.cat([m.reshape(-1) for m in mels]).double()
    return {"mel_mean": round(float(values.mean()), 4), "mel_std": round(float(values.std()), 4)}


_MELS: dict[tuple, list[Tensor]] = {}  # computed once per process: (files and their stamps, settings) -> mels


def log_mels_of(paths: Sequence[Path], settings: MelSettings, sample_rate: int | None = None) -> list[Tensor]:
    """Log-mel spectrograms [T, n_mels] of WAV files (each checked: 16-bit PCM mono at ``sample_rate``), kept in
    memory for the rest of the process, keyed by the files' paths, sizes and modification times."""
    stamps = []
    for p in paths:
        st = os.stat(p)
        stamps.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
    key = (hashlib.sha256("\n".join(stamps).encode()).hexdigest(), settings, sample_rate)
    if key not in _MELS:
        mels = []
        for p in paths:
            samples, _ = read_wav(p, sample_rate)
            mels.append(log_mel(samples, settings))
        while len(_MELS) >= 2:  # the two corpora of a session (FSDD: 3,000 utterances, ~45 MB)
            _MELS.pop(next(iter(_MELS)))
        _MELS[key] = mels
    return _MELS[key]


def stratified_split(groups: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held out): ``round(fraction * n_g)`` examples of each group g held out, drawn by a fixed seeded
    permutation; both lists sorted."""
    g = torch.Generator().manual_seed(seed)
    kept, held = [], []
    for group in sorted(set(groups)):
        members = [i for i, v in enumerate(groups) if v == group]
        order = torch.randperm(len(members), generator=g).tolist()
        n_held = round(fraction * len(members))
        held += [members[j] for j in order[:n_held]]
        kept += [members[j] for j in order[n_held:]]
    return sorted(kept), sorted(held)
