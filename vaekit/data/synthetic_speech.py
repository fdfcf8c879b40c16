"""A speech corpus with known style factors, spoken by espeak-ng: every combination of

=========  ====  =============================================================================================
word       20    the ten digits and ten commands (yes, no, up, down, left, right, on, off, stop, go)
voice      5     en, en+m3, en-us (male), en+f2, en+f4 (female) -- espeak-ng voices and variants
speed      4     120, 150, 185, 220 words per minute (``espeak-ng -s``)
pitch      5     20, 35, 50, 65, 80 (``espeak-ng -p``, 0-99: the voice's base pitch; about 75-120 Hz for the male
                 voices and 105-225 Hz for the female ones, monotone but not linear)
=========  ====  =============================================================================================

2,000 utterances. Each is made by ``espeak-ng -v VOICE -s SPEED -p PITCH -w out.wav WORD`` (22,050 Hz), trimmed
of leading and trailing silence (below 1% of its peak, 20 ms kept each side) as FSDD is, resampled to 8 kHz
(vaekit.core.audio.resample) and written as 16-bit PCM WAV. ``manifest.json`` records each file's factor values, sample
count and sha256, the espeak-ng version, and the sha256 of all the files in order. Measured on the 2-core CPU here
(both cores busy with other jobs): 2,000 files in 21-23 s, 2 parallel espeak-ng processes; 14.7 MB.

The corpus is deterministic (espeak-ng's output is a function of its arguments; resampling is done in float64) and
cached in ``data.dir`` (the set's folder or its parent), else ``$VAEKIT_DATA/synthetic_speech``, else the user cache
(a folder that cannot be written, or whose mode has no write bit, falls back to the user cache), in a subfolder
named by the format version and a hash of the factor lists, so another set of factors is another corpus. Every
load checks the manifest's version and the files' sha256; a bad cache is a DataError naming the file (delete the
folder to regenerate). Without espeak-ng on PATH the set says so in one line.

Splits: a test and a validation share per voice (``data.test_fraction``, ``data.val_fraction``), by a fixed seeded
permutation (validation served in a seeded shuffled order, so the figures' first batch is mixed). Batches
(vaekit.data.speech) add ``speed`` (wpm) and ``pitch`` (espeak's 0-99) to ``y`` (the word) and ``speaker`` (the
voice).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path
from typing import Annotated, Any

import torch
from annotated_types import Ge, Le, MinLen

from vaekit.core.audio import MelSettings, read_wav, resample, write_wav
from vaekit.data.files import DataError, cache_dir, read_manifest, writable
from vaekit.data.registry import DataConfig, Splits, register_data
from vaekit.data.speech import VOCAB_SIZE, SpeechExamples, log_mels_of, mel_statistics, stratified_split, text_to_ids

VERSION = 1  # bump when the recipe of a file (trimming, resampling, naming) changes
SAMPLE_RATE = 8000
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
WORDS = DIGITS + COMMANDS
VOICES = ("en", "en+m3", "en-us", "en+f2", "en+f4")
SPEEDS = (120, 150, 185, 220)
PITCHES = (20, 35, 50, 65, 80)
TRIM_LEVEL = 0.01  # of the peak: quieter samples at either end are silence
TRIM_MARGIN = 0.02  # seconds of silence kept at either end
# sha256 of the default corpus as generated here (eSpeak NG 1.51, Debian): another espeak-ng version may speak a
# little differently; that gives a warning, not an error (the corpus's own checksums still hold).
REFERENCE_SHA256 = "178086b1beeb9dbede1e707beefc431240805935cc40c506681bf1a8b21e9f7f"


def espeak() -> str:
    """The espeak-ng executable, or a one-line DataError saying how to get it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DataError("espeak-ng is not on PATH: the synthetic_speech corpus is spoken by it "
                        "(Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install espeak-ng)")
    return exe


def espeak_version() -> str:
    out = subprocess.run([espeak(), "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("Data at")[0].strip()


@dataclass(frozen=True)
class Utterance:
    word: str
    voice: str
    speed: int
    pitch: int

    @property
    def file(self) -> str:
        return f"{self.word}_{self.voice.replace('+', '-')}_s{self.speed}_p{self.pitch}.wav"


def utterances(words: tuple[str, ...] = WORDS, voices: tuple[str, ...] = VOICES, speeds: tuple[int, ...] = SPEEDS,
               pitches: tuple[int, ...] = PITCHES) -> list[Utterance]:
    """Every combination of the factors, in a fixed order (word slowest, pitch fastest)."""
    return [Utterance(*c) for c in product(words, voices, speeds, pitches)]


def trim(samples: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Cut leading and trailing silence: keep from TRIM_MARGIN before the first sample above TRIM_LEVEL of the
    peak to TRIM_MARGIN after the last."""
    loud = (samples.abs() > TRIM_LEVEL * samples.abs().max()).nonzero()
    if not len(loud):
        return samples
    margin = round(TRIM_MARGIN * sample_rate)
    return samples[max(0, int(loud[0]) - margin) : int(loud[-1]) + 1 + margin]


def speak_one(u: Utterance, out: Path, scratch: Path) -> None:
    """espeak-ng's recording of ``u``, trimmed and resampled to 8 kHz, written to ``out``."""
    raw = scratch / f"raw-{out.name}"
    cmd = [espeak(), "-v", u.voice, "-s", str(u.speed), "-p", str(u.pitch), "-w", str(raw), u.word]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not raw.exists():
        raise DataError(f"{' '.join(cmd)}: failed ({done.stderr.strip() or done.returncode})")
    samples, rate = read_wav(raw)
    raw.unlink()
    write_wav(out, resample(trim(samples, rate).double(), rate, SAMPLE_RATE), SAMPLE_RATE)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generate(folder: str | os.PathLike, us: list[Utterance], jobs: int = 0) -> Path:
    """Speak every utterance of ``us`` into ``folder`` (created whole: written beside it, then renamed) with
    ``manifest.json``; ``jobs`` espeak-ng processes at a time (0: one per CPU). Returns the manifest's path."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    version = espeak_version()
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        scratch = tmp / "scratch"
        scratch.mkdir()
        with ThreadPoolExecutor(jobs or os.cpu_count() or 1) as pool:  # each thread waits on its subprocess
            list(pool.map(lambda u: speak_one(u, tmp / u.file, scratch), us))
        scratch.rmdir()
        files, total = [], hashlib.sha256()
        for u in us:
            data = (tmp / u.file).read_bytes()
            total.update(data)
            files.append({**asdict(u), "file": u.file, "samples": (len(data) - 44) // 2,
                          "sha256": hashlib.sha256(data).hexdigest()})
        manifest = {"format": "vaekit synthetic speech (espeak-ng, trimmed, 8 kHz 16-bit PCM mono)",
                    "version": VERSION, "espeak_ng": version, "sample_rate": SAMPLE_RATE,
                    "factors": {"word": sorted({u.word for u in us}, key=[u.word for u in us].index),
                                "voice": list(dict.fromkeys(u.voice for u in us)),
                                "speed": list(dict.fromkeys(u.speed for u in us)),
                                "pitch": list(dict.fromkeys(u.pitch for u in us))},
                    "count": len(us), "files": files, "sha256": total.hexdigest()}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        for p in (tmp, *tmp.iterdir()):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)  # mkdtemp makes 0700: the cache is data like any other
        if (folder / "manifest.json").exists():
            return folder / "manifest.json"  # another process finished the same corpus meanwhile: keep theirs
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / "manifest.json"


_VERIFIED: set[tuple[str, str]] = set()


def load_manifest(folder: str | os.PathLike, verify: bool = True) -> dict[str, Any]:
    """The manifest of a generated corpus, its version and (once per process) every file's sha256 checked."""
    path = Path(folder) / "manifest.json"
    hint = f"delete {Path(folder)} to regenerate it"
    manifest = read_manifest(path, "the corpus", hint)
    if not isinstance(manifest, dict) or manifest.get("version") != VERSION or not isinstance(manifest.get("files"),
                                                                                                 list):
        raise DataError(f"{path}: not a version-{VERSION} synthetic speech manifest; {hint}")
    key = (str(path.resolve()), str(manifest.get("sha256")))
    if verify and key not in _VERIFIED:
        total = hashlib.sha256()
        for entry in manifest["files"]:
            wav = Path(folder) / entry["file"]
            try:
                data = wav.read_bytes()
            except OSError:
                raise DataError(f"{wav}: missing from the corpus; {hint}") from None
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise DataError(f"{wav}: sha256 differs from manifest.json's (corrupt); {hint}")
            total.update(data)
        if total.hexdigest() != manifest["sha256"]:
            raise DataError(f"{path}: the files' sha256 {total.hexdigest()} is not the manifest's; {hint}")
        _VERIFIED.add(key)
    return manifest


# ------------------------------------------------------------------------------------------------- the data set


@dataclass
class SyntheticSpeechConfig(DataConfig):
    name: str = "synthetic_speech"
    batch_size: Annotated[int, Ge(1)] = 32
    words: Annotated[list[str], MinLen(1)] = field(default_factory=lambda: list(WORDS))
    voices: Annotated[list[str], MinLen(1)] = field(default_factory=lambda: list(VOICES))
    speeds: Annotated[list[Annotated[int, Ge(80), Le(450)]], MinLen(1)] = field(default_factory=lambda: list(SPEEDS))
    pitches: Annotated[list[Annotated[int, Ge(0), Le(99)]], MinLen(1)] = field(
        default_factory=lambda: list(PITCHES))
    val_fraction: Annotated[float, Ge(0), Le(0.4)] = 0.1  # per voice
    test_fraction: Annotated[float, Ge(0), Le(0.4)] = 0.1  # per voice
    split_seed: int = 0
    jobs: Annotated[int, Ge(0)] = 0  # espeak-ng processes at once while generating (0: one per CPU)
    mel: MelSettings = field(default_factory=MelSettings)

    def __post_init__(self) -> None:
        for w in self.words:
            text_to_ids(w)  # a word must be spelled in the model's characters
        for v in self.voices:  # a voice names a file of the corpus: a name, never a path espeak-ng would follow
            if not re.fullmatch(r"[A-Za-z0-9_+-]+", v):
                raise ValueError(f"data.voices: {v!r} is not an espeak-ng voice name (letters, digits, _ + -)")


def corpus_folder(cfg: SyntheticSpeechConfig, generate_missing: bool = True) -> Path:
    """The folder of the corpus ``cfg`` names, generated there if it is missing."""
    factors = {"words": list(cfg.words), "voices": list(cfg.voices), "speeds": list(cfg.speeds),
               "pitches": list(cfg.pitches)}
    stem = f"v{VERSION}-" + hashlib.sha256(json.dumps(factors).encode()).hexdigest()[:10]
    base = cfg.dir if cfg.dir is not None else os.environ.get("VAEKIT_DATA") or None
    fallback = cache_dir() / "synthetic_speech" / stem
    preferred = fallback
    if base is not None:
        b = Path(base).expanduser()
        preferred = (b if b.name == "synthetic_speech" else b / "synthetic_speech") / stem
    for folder in dict.fromkeys((preferred, fallback)):
        if (folder / "manifest.json").exists():
            return folder
    if not generate_missing:
        raise DataError(f"{preferred}: no synthetic speech corpus there (it is generated on first use)")
    espeak()
    target = preferred if writable(preferred.parent) else fallback
    us = utterances(tuple(cfg.words), tuple(cfg.voices), tuple(cfg.speeds), tuple(cfg.pitches))
    print(f"synthetic_speech: speaking {len(us):,} utterances with espeak-ng into {target} (once)")
    manifest = load_manifest(generate(target, us, cfg.jobs).parent)
    if us == utterances() and manifest["sha256"] != REFERENCE_SHA256:
        import warnings

        warnings.warn(f"{target}: sha256 {manifest['sha256']} differs from the reference corpus's (espeak-ng "
                      f"{manifest['espeak_ng']!r}; the reference was spoken by eSpeak NG 1.51)", stacklevel=2)
    return target


@register_data("synthetic_speech", SyntheticSpeechConfig)
def build_synthetic_speech(cfg: SyntheticSpeechConfig) -> Splits:
    """Words spoken by espeak-ng with known voice, speed and pitch (generated, cached), 80-bin log-mels."""
    if cfg.mel.sample_rate != SAMPLE_RATE:
        raise DataError(f"data.mel.sample_rate={cfg.mel.sample_rate}: the corpus is written at {SAMPLE_RATE} Hz")
    folder = corpus_folder(cfg)
    files = load_manifest(folder)["files"]
    paths = [folder / f["file"] for f in files]
    mels = log_mels_of(paths, cfg.mel, SAMPLE_RATE)
    voices = list(cfg.voices)
    everything = SpeechExamples(
        mels, [text_to_ids(f["word"]) for f in files],
        {"y": torch.tensor([list(cfg.words).index(f["word"]) for f in files]),
         "speaker": torch.tensor([voices.index(f["voice"]) for f in files]),
         "speed": torch.tensor([float(f["speed"]) for f in files]),
         "pitch": torch.tensor([float(f["pitch"]) for f in files])},
        [str(p) for p in paths], names={"y": list(cfg.words), "speaker": voices})
    groups = [f["voice"] for f in files]
    rest, test = stratified_split(groups, cfg.test_fraction, cfg.split_seed)
    kept, held = stratified_split([groups[i] for i in rest], cfg.val_fraction / max(1e-9, 1 - cfg.test_fraction),
                                  cfg.split_seed + 1)
    train, val = everything.select([rest[j] for j in kept]), everything.select([rest[j] for j in held])
    val = val.select(torch.randperm(len(val), generator=torch.Generator().manual_seed(cfg.split_seed)).tolist())
    defaults = {"input_shape": (cfg.mel.n_mels,), "vocab_size": VOCAB_SIZE, "mel": asdict(cfg.mel),
                "likelihood": "gaussian", **mel_statistics(train.mels)}
    return Splits(train=train, val=val, test=everything.select(test), observation="continuous", defaults=defaults)
