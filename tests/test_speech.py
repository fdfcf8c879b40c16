"""The speech VAE (Zhang, Pan, He & Ling, ICASSP 2019): audio features and their inverse, WAV checks, the two speech
data sets, the reference encoder's padding invariance, the objective, and short end-to-end runs of both recipes
with `vaekit speak` and the measures."""

from __future__ import annotations

import csv
import json
import math
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.core import audio
from vaekit.core.audio import MelSettings
from vaekit.core.schedules import Ramp
from vaekit.data import DataError, build_data
from vaekit.data.speech import pad_mels, pad_texts, text_to_ids
from vaekit.run.config import data_config, load_config

SETTINGS = MelSettings()
HAS_ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng is not installed")
TINY_MODEL = {"latent_dim": 4, "embed": 16, "text_convs": 1, "ref_channels": (8, 8), "ref_time_strides": (2, 1),
              "ref_gru": 16, "decoder_hidden": 16, "decoder_layers": 1}
TINY_CORPUS = ["data.words=[two,go]", "data.voices=[en,en+f2]", "data.speeds=[120,220]", "data.pitches=[20,50,80]"]


def _fsdd(data_dir: Path) -> Path:
    folder = data_dir / "fsdd" / "recordings"
    if not folder.is_dir():
        pytest.skip("FSDD not found beside MNIST (shared/data/fsdd)")
    return folder


def _model(**kw: object) -> torch.nn.Module:
    from vaekit.models import registry

    torch.manual_seed(0)
    return registry.build("speech_vae", registry.get("speech_vae").config(**{**TINY_MODEL, **kw}))


def _tone(hz: float, seconds: float = 1.0, rate: int = 8000) -> torch.Tensor:
    return 0.5 * torch.sin(2 * math.pi * hz * torch.arange(int(seconds * rate)) / rate)


# -- features -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hz", [300.0, 1000.0, 2500.0])
def test_the_mel_of_a_pure_tone_peaks_in_the_band_centred_nearest_it(hz: float) -> None:
    mel = audio.log_mel(_tone(hz), SETTINGS)
    assert mel.shape == (SETTINGS.frames(8000), 80)
    edges = audio.mel_to_hz(torch.linspace(0.0, float(audio.hz_to_mel(torch.tensor(4000.0))), 82))
    assert int(mel[5:-5].mean(0).argmax()) == int((edges[1:-1] - hz).abs().argmin())


def test_slaney_filterbank_has_unit_area_triangles_and_no_empty_band() -> None:
    fb = audio.mel_filterbank(SETTINGS)
    assert fb.shape == (80, 257) and bool((fb >= 0).all()) and bool((fb.sum(1) > 0).all())
    edges = audio.mel_to_hz(torch.linspace(0.0, float(audio.hz_to_mel(torch.tensor(4000.0))), 82))
    # each triangle of height 2 / (f_{i+2} - f_i) and base f_{i+2} - f_i: unit area (Slaney normalisation)
    bin_hz = 8000 / 512
    areas = fb.double().sum(1) * bin_hz
    assert torch.allclose(areas[10:], torch.ones(70, dtype=torch.float64), atol=0.05), areas
    torch.testing.assert_close(audio.mel_to_hz(audio.hz_to_mel(edges)), edges)
    assert float(audio.hz_to_mel(torch.tensor(1000.0))) == pytest.approx(15.0)


def test_mel_matches_librosa_where_it_is_installed() -> None:
    librosa = pytest.importorskip("librosa")
    fb = librosa.filters.mel(sr=8000, n_fft=512, n_mels=80, fmin=0.0, fmax=4000.0)
    torch.testing.assert_close(audio.mel_filterbank(SETTINGS), torch.from_numpy(fb).float(), atol=1e-6, rtol=1e-4)
    x = _tone(440.0) + 0.1 * _tone(1800.0)
    ref = librosa.feature.melspectrogram(y=x.numpy(), sr=8000, n_fft=512, hop_length=80, win_length=400, power=1.0,
                                         n_mels=80, pad_mode="constant")
    torch.testing.assert_close(audio.mel_magnitude(x, SETTINGS), torch.from_numpy(ref.T).float(), atol=1e-3,
                               rtol=1e-3)


def test_griffin_lim_recovers_a_signal_from_its_magnitude() -> None:
    """A chirp plus a tone: 60 iterations of fast Griffin-Lim from random phase leave a spectral convergence
    ||S - |STFT(y)||| / ||S|| below 0.08 (0.05 measured); through the 80-bin mel and back, below 0.25 (0.15)."""
    t = torch.arange(8000) / 8000
    x = 0.3 * torch.sin(2 * math.pi * (200 * t + 400 * t**2)) + 0.2 * torch.sin(2 * math.pi * 600 * t)
    magnitude = audio.stft(x, SETTINGS).abs()
    y = audio.griffin_lim(magnitude, SETTINGS, n_iter=60, length=len(x))
    assert y.shape == x.shape
    assert audio.spectral_convergence(magnitude, audio.stft(y, SETTINGS).abs()) < 0.08
    z = audio.mel_to_audio(audio.log_mel(x, SETTINGS), SETTINGS)
    assert audio.spectral_convergence(magnitude[:, :-1], audio.stft(z, SETTINGS).abs()[:, : magnitude.shape[1] - 1]) \
        < 0.25


def test_resampling_keeps_a_tone_and_removes_what_lies_above_the_new_nyquist() -> None:
    t = torch.arange(22050) / 22050
    y = audio.resample(torch.sin(2 * math.pi * 440 * t), 22050, 8000)
    assert y.shape == (8000,)
    expected = torch.sin(2 * math.pi * 440 * torch.arange(8000) / 8000)
    assert float((y - expected)[50:-50].abs().max()) < 2e-3
    alias = audio.resample(torch.sin(2 * math.pi * 6000 * t), 22050, 8000)  # would fold to 2 kHz
    assert float(alias[50:-50].pow(2).mean().sqrt()) < 2e-3


# -- WAV files ------------------------------------------------------------------------------------------------
def _write(path: Path, channels: int = 1, width: int = 2, rate: int = 8000, frames: int = 800) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x01" * frames * channels * width)
    return path


def test_a_wav_with_a_bad_header_is_refused_naming_the_file(tmp_path: Path) -> None:
    samples, rate = audio.read_wav(_write(tmp_path / "good.wav"), 8000)
    assert rate == 8000 and samples.shape == (800,)
    bad = {"stereo.wav": dict(channels=2), "8bit.wav": dict(width=1), "22k.wav": dict(rate=22050)}
    for name, kw in bad.items():
        with pytest.raises(DataError, match=name):
            audio.read_wav(_write(tmp_path / name, **kw), 8000)
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00junk that is no wave file")
    with pytest.raises(DataError, match="junk.wav: not a readable WAV"):
        audio.read_wav(tmp_path / "junk.wav")
    raw = _write(tmp_path / "cut.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(raw[:-300])
    with pytest.raises(DataError, match="cut.wav: truncated"):
        audio.read_wav(tmp_path / "cut.wav")
    # written and read back, any rate, resampled on request
    path = audio.write_wav(tmp_path / "tone.wav", _tone(440.0, 0.5, 16000), 16000)
    assert audio.load_wav(path, 8000).shape == (4000,)


def test_fsdd_names_a_bad_recording(tmp_path: Path) -> None:
    folder = tmp_path / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    for name in ("0_alice_0.wav", "0_alice_5.wav", "1_bob_6.wav"):
        audio.write_wav(folder / name, _tone(300.0, 0.3))
    _write(folder / "1_bob_7.wav", channels=2)
    with pytest.raises(DataError, match="1_bob_7.wav: 2 channel"):
        build_data(data_config({"name": "fsdd", "dir": str(tmp_path)}))
    (folder / "1_bob_7.wav").unlink()
    (folder / "notes.wav").write_bytes(b"")
    with pytest.raises(DataError, match="notes.wav: not an FSDD file name"):
        build_data(data_config({"name": "fsdd", "dir": str(tmp_path)}))


def test_fsdd_official_split_and_batches(data_dir: Path) -> None:
    _fsdd(data_dir)
    splits = build_data(data_config({"name": "fsdd", "dir": str(data_dir)}))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (2430, 270, 300)
    assert set(splits.test.labels["index"].tolist()) == set(range(5))
    assert not set(splits.val.labels["index"].tolist()) & set(range(5))
    assert splits.val.labels["speaker"].bincount().tolist() == [45] * 6  # stratified by speaker
    assert splits.defaults["input_shape"] == (80,) and splits.observation == "continuous"
    batch = splits.val.head(8)
    assert batch["x"].shape[:2] == (8, int(batch["lengths"].max())) and batch["x"].shape[2] == 80
    for i in range(8):  # each text is its digit's name, and the padding is zero
        assert batch["text"][i, : batch["text_lengths"][i]].tolist() == text_to_ids(splits.val.names["y"][
            int(batch["y"][i])])
        assert not batch["x"][i, int(batch["lengths"][i]) :].any()
    assert len(set(splits.val.head(32)["speaker"].tolist())) > 2  # the figures' batch is mixed


# -- the synthetic corpus -------------------------------------------------------------------------------------
@needs_espeak
def test_synthetic_corpus_records_its_factors_and_is_deterministic(tmp_path: Path) -> None:
    from vaekit.data.synthetic_speech import generate, load_manifest, utterances

    us = utterances(("two", "yes"), ("en", "en+f2"), (120, 220), (20, 80))
    a, b = (load_manifest(generate(tmp_path / name, us, jobs=2).parent) for name in ("a", "b"))
    assert a["sha256"] == b["sha256"] and a["count"] == len(us) == 16
    assert a["factors"] == {"word": ["two", "yes"], "voice": ["en", "en+f2"], "speed": [120, 220], "pitch": [20, 80]}
    by = {(f["word"], f["voice"], f["speed"], f["pitch"]): f for f in a["files"]}
    assert set(by) == {(u.word, u.voice, u.speed, u.pitch) for u in us}
    for (word, voice, _, pitch), f in by.items():  # faster speech is shorter
        assert f["samples"] < by[(word, voice, 120, pitch)]["samples"] or f["speed"] == 120
        samples, rate = audio.read_wav(tmp_path / "a" / f["file"], 8000)
        assert len(samples) == f["samples"] and samples.abs().max() > 0.05
    f = a["files"][3]
    (tmp_path / "a" / f["file"]).write_bytes(b"RIFF")
    from vaekit.data import synthetic_speech

    synthetic_speech._VERIFIED.clear()
    with pytest.raises(DataError, match=f["file"]):
        load_manifest(tmp_path / "a")


def test_without_espeak_the_corpus_says_so_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vaekit.data import synthetic_speech

    monkeypatch.setattr(synthetic_speech.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="espeak-ng is not on PATH") as err:
        build_data(data_config({"name": "synthetic_speech", "dir": str(tmp_path), "words": ["two"]}))
    assert "\n" not in str(err.value)


# -- the model ------------------------------------------------------------------------------------------------
def _batch(lengths: list[int], texts: list[str], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x, lens = pad_mels([-6 + 2 * torch.randn(n, 80, generator=g) for n in lengths])
    text, text_lengths = pad_texts([text_to_ids(t) for t in texts])
    return {"x": x, "lengths": lens, "text": text, "text_lengths": text_lengths}


@pytest.mark.parametrize("strides", [(2, 2, 1), (1, 2, 2)])
def test_padding_does_not_change_z(strides: tuple[int, ...]) -> None:
    """A clip of 31 frames alone, and padded (with noise, not zeros) in a batch beside a clip of 77: the same
    q(z | mel)."""
    model = _model(ref_channels=(8, 8, 8), ref_time_strides=strides).eval()
    batch = _batch([31, 77], ["two", "seven"])
    noisy = batch["x"].clone()
    noisy[0, 31:] = torch.randn(46, 80) * 5
    alone = model.encode_style(batch["x"][:1, :31], torch.tensor([31]))
    padded = model.encode_style(noisy, batch["lengths"])
    torch.testing.assert_close(padded.mean[0], alone.mean[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded.log_var[0], alone.log_var[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(padded.mean[1], alone.mean[0])  # the other clip has its own z


@pytest.mark.parametrize("decoder", ["aligned", "attention"])
def test_loss_is_the_annealed_negative_elbo_and_logs_kl_per_dimension(decoder: str) -> None:
    model = _model(decoder=decoder, kl_weight=Ramp(0.0, 1.0, length=10))
    batch = _batch([20, 33, 12], ["one", "three", "no"])
    model.on_train_step(5, 0)
    out = model.loss(batch)
    t = out.terms
    assert float(model.kl_weight) == 0.5 and all(v.shape == (3,) for v in t.values())
    torch.testing.assert_close(out.loss, -(t["rec"] - 0.5 * t["kl"]).mean())
    torch.testing.assert_close(t["elbo"], t["rec"] - t["kl"])
    torch.testing.assert_close(t["rec"], t["log_p_mel"] + t["log_p_length"])
    torch.testing.assert_close(sum(t[f"kl_{j}"] for j in range(4)), t["kl"])
    assert bool((t["kl"] > 0).all())
    out.loss.backward()
    # a padded example's likelihood counts only its own frames
    short = model.eval().mel_distribution(torch.zeros(1, 3, 16), torch.tensor([3]), torch.tensor([12]), 40)
    x = torch.randn(1, 40, 80)
    y = x.clone()
    y[:, 12:] = 99.0
    torch.testing.assert_close(short.log_prob(x), short.log_prob(y))


def test_synthesize_follows_given_lengths_and_styles() -> None:
    model = _model().eval()
    text, text_lengths = pad_texts([text_to_ids("seven"), text_to_ids("go")])
    mel, lengths = model.synthesize(text, text_lengths, z=torch.zeros(2, 4), lengths=torch.tensor([30, 17]))
    assert mel.shape == (2, 30, 80) and lengths.tolist() == [30, 17] and not mel[1, 17:].any()
    free, free_lengths = model.synthesize(text)  # z = 0 and the model's own lengths
    assert free.shape[0] == 2 and bool((free_lengths >= 2).all())
    z = torch.randn(2, 4)
    other, _ = model.synthesize(text, text_lengths, z=z, lengths=torch.tensor([30, 17]))
    assert not torch.allclose(other, mel)  # z moves the output
    batch = _batch([25, 40], ["seven", "go"])
    ref, _ = model.synthesize(text, text_lengths, reference=batch["x"], reference_lengths=batch["lengths"],
                              lengths=torch.tensor([30, 17]))
    by_z, _ = model.synthesize(text, text_lengths, z=model.encode_style(batch["x"], batch["lengths"]).mean,
                               lengths=torch.tensor([30, 17]))
    torch.testing.assert_close(ref, by_z)


# -- end to end -----------------------------------------------------------------------------------------------
FAST = ["trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "train.epochs=1", "train.log_every_n_steps=1",
        "train.figures_every_n_epochs=1", "trainer.max_time=null", "data.batch_size=8",
        *(f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY_MODEL.items())]


def _logged_kl(run: Path) -> list[float]:
    with open(run / "logs" / "metrics.csv") as f:
        return [float(r["train/kl"]) for r in csv.DictReader(f) if r.get("train/kl")]


def test_fsdd_recipe_trains_speaks_and_is_measured(tmp_path: Path, data_dir: Path) -> None:
    from vaekit.cli import main
    from vaekit.run.fit import fit
    from vaekit.views.speech_eval import fsdd_transfer, kl_during_training

    recordings = _fsdd(data_dir)
    cfg = load_config("configs/speech_vae_fsdd.yaml", [*FAST, f"data.dir={data_dir}"])
    run = tmp_path / "run"
    module, trainer = fit(cfg, run)
    assert trainer.global_step == 3
    kl = _logged_kl(run)
    assert len(kl) == 3 and min(kl) > 0
    figures = {p.name for p in (run / "figures").iterdir()}
    assert figures == {"reconstructions_epoch0001.png", "transfer_epoch0001.png",
                       "reconstruction_audio_epoch0001.wav"}
    assert audio.read_wav(run / "figures" / "reconstruction_audio_epoch0001.wav", 8000)[0].numel() > 800

    ref = recordings / "3_theo_7.wav"
    assert main(["speak", str(run), "--text", "seven", "--reference", str(ref), "-o", str(tmp_path / "t.wav"),
                 "--iterations", "4"]) == 0
    assert audio.read_wav(tmp_path / "t.wav", 8000)[0].numel() > 0 and (tmp_path / "t.png").stat().st_size > 1000
    assert main(["speak", str(run), "--text", "two", "--z", "1,-1", "-o", str(tmp_path / "z.wav"), "--frames", "40",
                 "--iterations", "4"]) == 0
    assert audio.read_wav(tmp_path / "z.wav", 8000)[0].numel() == 39 * 80
    assert main(["speak", str(run), "--text", "two", "--traverse", "1", "--steps", "3", "-o",
                 str(tmp_path / "tr.wav"), "--iterations", "4"]) == 0
    assert {p.name for p in tmp_path.glob("tr_*")} == {"tr_z1_-3.0.wav", "tr_z1_+0.0.wav", "tr_z1_+3.0.wav",
                                                        "tr_z1.png"}
    assert main(["speak", str(run), "--text", "two", "--z", "1,2,3,4,5"]) == 2  # z has 4 dimensions

    splits = build_data(cfg.data)
    result = fsdd_transfer(module.model.eval(), splits.train, splits.test.subset(40))
    assert result["classifier_accuracy_real"]["speaker"] > 0.9 and result["n_pairs"] == 40
    assert 0 <= result["transfer"]["speaker_accuracy"] <= 1 and 0 <= result["transfer"]["word_accuracy"] <= 1
    assert kl_during_training(run)["always_above_zero"]
    # choosing is on the validation pairs, reporting on the test pairs: the two evaluations see different utterances
    from vaekit.views.speech_eval import evaluate_speech_run

    val = evaluate_speech_run(run, split="val")
    assert val["split"] == "val" and val["n_utterances"] == len(splits.val) != len(splits.test)
    assert val["fsdd"]["n_pairs"] == len(splits.val)


def test_f0_interval_and_per_setting_table() -> None:
    from vaekit.views.speech_eval import f0_by_setting, pearson_interval

    lo, hi = pearson_interval(0.82, 172)
    assert lo < 0.82 < hi and abs((hi - lo) - 0.105) < 0.01  # Fisher's z: about +-0.05 at n = 172
    wide = pearson_interval(0.82, 20)
    assert wide[0] < lo and wide[1] > hi and pearson_interval(float("nan"), 100) is None
    f0_out = np.array([100.0, 104.0, np.nan, 120.0, 118.0])
    f0_ref = np.array([98.0, 101.0, 99.0, 125.0, 123.0])
    rows = f0_by_setting(f0_out, f0_ref, np.array([20, 20, 20, 80, 80]))
    assert rows == [{"pitch_setting": 20, "voiced_pairs": 2, "median_f0_output_hz": 102.0,
                     "median_f0_reference_hz": 99.5},
                    {"pitch_setting": 80, "voiced_pairs": 2, "median_f0_output_hz": 119.0,
                     "median_f0_reference_hz": 124.0}]


@needs_espeak
def test_synthetic_recipe_trains_and_is_measured(tmp_path: Path) -> None:
    pytest.importorskip("parselmouth")
    from vaekit.run.fit import fit
    from vaekit.views.speech_eval import control, synthetic_transfer

    cfg = load_config("configs/speech_vae_synthetic.yaml", [*FAST, *TINY_CORPUS, f"data.dir={tmp_path / 'data'}"])
    module, trainer = fit(cfg, tmp_path / "run")
    assert trainer.global_step == 3 and min(_logged_kl(tmp_path / "run")) > 0
    assert (tmp_path / "data" / "synthetic_speech").is_dir()  # the corpus went where data.dir said
    splits = build_data(cfg.data)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 24
    assert set(splits.test.__getitems__([0])) >= {"speed", "pitch", "speaker", "y"}
    model = module.model.eval()
    result = synthetic_transfer(model, splits.train, splits.train.subset(6))
    assert set(result) >= {"f0_correlation", "rate_correlation", "f0_vocoder_ceiling"} and result["n_pairs"] == 6
    knobs = control(model, ["two"], steps=3)
    assert len(knobs["per_dimension"]) == 4 and knobs["pitch_dimension"]["dim"] in range(4)
    json.dumps(result)
    json.dumps(knobs)


def test_a_voice_is_a_name_never_a_path() -> None:
    """Each voice names corpus files, and espeak-ng follows relative paths: one with a path is refused."""
    from vaekit.run.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="not an espeak-ng voice name"):
        load_config({"model": {"name": "speech_vae"}}, ["data.name=synthetic_speech",
                                                        "data.voices=[en, '!v/../../../../tmp/x']"])


def test_the_length_distribution_is_normalised_over_the_integers() -> None:
    """P(T) sums to 1 over T = 1, 2, ... and each mass is the log-normal's CDF difference over its bin, also far in
    the upper tail where a naive difference of CDFs cancels to 0; so log P(T) is a log-probability of the integer
    length and ``elbo`` = log p(mel | T) + log P(T) - KL is a bound on log p(mel, T)."""
    from scipy.stats import norm

    from vaekit.core.likelihoods import QuantizedLogNormal

    loc, scale = torch.tensor([0.3, math.log(40.0), math.log(200.0)], dtype=torch.float64), \
        torch.tensor([0.8, 0.2, 0.05], dtype=torch.float64)
    d = QuantizedLogNormal(loc[:, None], scale[:, None])
    n = torch.arange(1, 20001, dtype=torch.float64)[None, :]
    p = d.log_prob(n).exp()
    torch.testing.assert_close(p.sum(-1), torch.ones(3, dtype=torch.float64), atol=1e-9, rtol=0)
    ref = norm.cdf((np.log(n.numpy() + 0.5) - loc[:, None].numpy()) / scale[:, None].numpy()) - np.where(
        n.numpy() > 1, norm.cdf((np.log(np.maximum(n.numpy() - 0.5, 0.5)) - loc[:, None].numpy())
                                / scale[:, None].numpy()), 0.0)
    torch.testing.assert_close(p, torch.from_numpy(ref), atol=1e-12, rtol=1e-6)
    # upper tail: 3 sigma above the median, the difference of two CDFs near 1 would lose every digit
    far = torch.tensor([[60.0]], dtype=torch.float64)
    tail = QuantizedLogNormal(torch.tensor([[math.log(40.0)]], dtype=torch.float64),
                              torch.tensor([[0.1]], dtype=torch.float64)).log_prob(far)
    z = lambda n: (math.log(n) - math.log(40.0)) / 0.1  # noqa: E731
    exact = math.log(norm.sf(z(59.5)) - norm.sf(z(60.5)))
    assert abs(float(tail) - exact) < 1e-6
