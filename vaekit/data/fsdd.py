"""The Free Spoken Digit Dataset (Jackson et al., github.com/Jakobovski/free-spoken-digit-dataset): 3,000
recordings of the digits 0-9 by 6 speakers, 50 of each digit by each, 16-bit mono 8 kHz WAV, trimmed of leading
and trailing silence, named ``{digit}_{speaker}_{index}.wav``.

Splits: the dataset's own test set (index 0-4: 300 recordings); from the rest (index 5-49), a validation share
(``data.val_fraction``, default 0.1) held out per speaker by a fixed seeded permutation, so every speaker is in
every split; the others train (2,430 by default). The validation examples are served in a seeded shuffled order,
so its first batch (the training figures') mixes speakers and digits.

Every WAV header is checked (16-bit PCM mono at 8 kHz) and a bad file is named in the error. The log-mel
spectrograms (vaekit.core.audio, ``data.mel``) are computed once per process and held in memory (~3 s, ~45 MB).
Batches: see vaekit.data.speech (``y`` is the digit, ``speaker`` an index into the sorted speaker names, and the
text is the digit's English name).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import torch
from annotated_types import Ge, Le

from vaekit.core.audio import MelSettings
from vaekit.data.files import DataError, resolve_dir
from vaekit.data.registry import DataConfig, Splits, register_data
from vaekit.data.speech import VOCAB_SIZE, SpeechExamples, log_mels_of, mel_statistics, stratified_split, text_to_ids

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SAMPLE_RATE = 8000
TEST_INDICES = range(5)  # the official split
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


@dataclass
class FSDDConfig(DataConfig):
    name: str = "fsdd"
    batch_size: Annotated[int, Ge(1)] = 32
    val_fraction: Annotated[float, Ge(0), Le(0.5)] = 0.1  # of each speaker's training recordings
    split_seed: int = 0
    mel: MelSettings = field(default_factory=MelSettings)


@dataclass(frozen=True)
class Recording:
    path: Path
    digit: int
    speaker: str
    index: int


def recordings(folder: str | Path) -> list[Recording]:
    """The recordings in ``folder`` (or its ``recordings/``), sorted by file name; a WAV whose name is not
    ``{digit}_{speaker}_{index}.wav`` is a DataError naming it."""
    folder = Path(folder)
    if (folder / "recordings").is_dir():
        folder = folder / "recordings"
    files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    if not files:
        raise DataError(f"{folder}: no FSDD recordings (*.wav) found; get them from "
                        "github.com/Jakobovski/free-spoken-digit-dataset and pass --data-dir (or data.dir)")
    out = []
    for path in files:
        m = _NAME.match(path.name)
        if m is None:
            raise DataError(f"{path}: not an FSDD file name ({{digit}}_{{speaker}}_{{index}}.wav)")
        out.append(Recording(path, int(m[1]), m[2].lower(), int(m[3])))
    return out


def splits_of(recs: list[Recording], val_fraction: float, seed: int) -> tuple[list[int], list[int], list[int]]:
    """(train, val, test) positions in ``recs``: test = index 0-4; val = a per-speaker share of the rest."""
    test = [i for i, r in enumerate(recs) if r.index in TEST_INDICES]
    rest = [i for i, r in enumerate(recs) if r.index not in TEST_INDICES]
    kept, held = stratified_split([recs[i].speaker for i in rest], val_fraction, seed)
    return [rest[j] for j in kept], [rest[j] for j in held], test


@register_data("fsdd", FSDDConfig)
def build_fsdd(cfg: FSDDConfig) -> Splits:
    """Free Spoken Digit Dataset: 3,000 recordings of digits by 6 speakers as 80-bin log-mels, official test split."""
    if cfg.mel.sample_rate != SAMPLE_RATE:
        raise DataError(f"data.mel.sample_rate={cfg.mel.sample_rate}: FSDD is recorded at {SAMPLE_RATE} Hz")
    folder, _ = resolve_dir("fsdd", cfg.dir)
    recs = recordings(folder)
    mels = log_mels_of([r.path for r in recs], cfg.mel, SAMPLE_RATE)
    speakers = sorted({r.speaker for r in recs})
    everything = SpeechExamples(
        mels, [text_to_ids(DIGITS[r.digit]) for r in recs],
        {"y": torch.tensor([r.digit for r in recs]), "speaker": torch.tensor([speakers.index(r.speaker) for r in recs]),
         "index": torch.tensor([r.index for r in recs])},
        [str(r.path) for r in recs], names={"y": list(DIGITS), "speaker": speakers})
    train, val, test = (everything.select(i) for i in splits_of(recs, cfg.val_fraction, cfg.split_seed))
    val = val.select(torch.randperm(len(val), generator=torch.Generator().manual_seed(cfg.split_seed)).tolist())
    defaults = {"input_shape": (cfg.mel.n_mels,), "vocab_size": VOCAB_SIZE, "mel": asdict(cfg.mel),
                "likelihood": "gaussian", **mel_statistics(train.mels)}
    return Splits(train=train, val=val, test=test, observation="continuous", defaults=defaults)
