"""vaekit explore without a browser: the app's endpoints through FastAPI's test client (decode, encode a test
example or an upload, bad and huge uploads as JSON errors), loopback-only serving, and every registered model."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from tiny_runs import TINY, tiny_run

from vaekit.models import registry

pytest.importorskip("fastapi", reason="vaekit explore needs the explore extra: pip install 'vaekit[explore]'")
try:  # Starlette's test client runs on httpx2, or on httpx
    import httpx2  # noqa: F401
except ImportError:
    pytest.importorskip("httpx", reason="FastAPI's test client needs httpx (pip install 'vaekit[dev]')")

from fastapi.testclient import TestClient  # noqa: E402

from vaekit.views.explore.app import create_app, is_loopback, load_explorer, serve  # noqa: E402


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "tiny_runs"


def client(run: Path, **kwargs: object) -> tuple[TestClient, object]:
    explorer, title = load_explorer(run, examples=16)
    app = create_app(explorer, title, **kwargs)
    return TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False), explorer


def png_of(array: torch.Tensor | None = None, size: tuple[int, int] = (28, 28), mode: str = "L") -> bytes:
    buf = io.BytesIO()
    if array is None:
        Image.new(mode, size, 255).save(buf, format="PNG")
    else:
        Image.fromarray((array.clamp(0, 1) * 255).round().byte().numpy(), "L").save(buf, format="PNG")
    return buf.getvalue()


def decoded(c: TestClient, z: list[float], controls: dict | None = None) -> torch.Tensor:
    r = c.post("/api/decode", json={"z": z, "controls": controls or {}})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and float(r.headers["x-decode-ms"]) >= 0
    return torch.tensor(list(Image.open(io.BytesIO(r.content)).getdata()), dtype=torch.float32)


def test_endpoints_of_a_vae(tiny_root: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tiny_run("vae", tiny_root, data_dir, monkeypatch)
    c, explorer = client(run)
    page = c.get("/")
    assert page.status_code == 200 and "tiny_vae" in page.text and "http" not in page.text.split("<script>")[0]
    spec = c.get("/api/spec").json()
    assert spec["kind"] == "latent" and [s["name"] for s in spec["sliders"]] == ["z0", "z1", "z2"]
    model = explorer.model
    x = explorer.examples["x"]
    torch.testing.assert_close(torch.tensor(spec["start"]), model.encode(x[:1]).mean[0].clamp(-4, 4))

    # decode: the model's mean image at z, as PNG grey levels
    z = [0.5, -1.0, 2.0]
    expected = (model.decode(torch.tensor([z])).mean[0, 0].flatten() * 255).round()
    assert (decoded(c, z) - expected).abs().max() <= 1
    assert not torch.equal(decoded(c, z), decoded(c, [-2.0, 1.0, 0.0]))  # the picture follows the sliders

    # encode a test example: its posterior mean
    e = c.post("/api/encode/example", json={"index": 5, "controls": {}}).json()
    torch.testing.assert_close(torch.tensor(e["z"]), model.encode(x[5:6]).mean[0].clamp(-4, 4))
    assert e["controls"] == {"example": 5, "upload": ""}

    # an uploaded image of the right size: its posterior mean
    digit = x[5, 0]
    r = c.post("/api/encode/upload", files={"file": ("five.png", png_of(digit), "image/png")})
    assert r.status_code == 200, r.text
    torch.testing.assert_close(torch.tensor(r.json()["z"]), model.encode(x[5:6]).mean[0].clamp(-4, 4), atol=1e-2,
                               rtol=0)
    # the raw body works too (curl --data-binary @five.png)
    raw = c.post("/api/encode/upload", content=png_of(digit), headers={"content-type": "image/png"}).json()
    assert raw["z"] == r.json()["z"]
    # another size: cropped, resized, inverted (dark on light, where the data are light on dark), and said so
    big = c.post("/api/encode/upload", files={"file": ("w.png", png_of(size=(90, 60)), "image/png")}).json()
    assert "resized from 90x60 to 28x28" in big["message"] and "inverted" in big["message"] and len(big["z"]) == 3
    assert c.get("/api/example/3.png").headers["content-type"] == "image/png"


@pytest.mark.parametrize(("request_args", "status", "message"), [
    ({"json": {"z": [1.0], "controls": {}}}, 400, "expected 3 slider values, got 1"),
    ({"json": {"z": ["a", 1, 2]}}, 400, "z must be a list of numbers"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "must be a JSON object"),
    ({"json": [1, 2, 3]}, 400, "must be a JSON object"),
])
def test_bad_decode_requests_get_json_errors(request_args: dict, status: int, message: str, tiny_root: Path,
                                             data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c, _ = client(tiny_run("vae", tiny_root, data_dir, monkeypatch))
    r = c.post("/api/decode", **request_args)
    assert r.status_code == status and message in r.json()["error"]


def test_bad_uploads_get_a_message_never_a_crash(tiny_root: Path, data_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    c, _ = client(tiny_run("vae", tiny_root, data_dir, monkeypatch), max_upload=2**20)
    cases = {
        "not an image": (b"hello, I am text", "not an image"),
        "empty": (b"", "empty"),
        "a truncated PNG": (png_of(size=(300, 300))[:60], "could not be decoded"),
    }
    for what, (data, message) in cases.items():
        r = c.post("/api/encode/upload", files={"file": ("x.png", data, "image/png")})
        assert r.status_code == 400 and message in r.json()["error"], (what, r.text)
    r = c.post("/api/encode/upload", files={"wrong_field": ("x.png", png_of(), "image/png")})
    assert r.status_code == 400 and "field 'file'" in r.json()["error"]
    # over the limit: refused from the Content-Length alone, or as the chunks of a streamed body add up
    huge = b"\0" * (2**20 + 10)
    r = c.post("/api/encode/upload", files={"file": ("huge.png", huge, "image/png")})
    assert r.status_code == 413 and "larger than the limit of 1 MiB" in r.json()["error"]
    chunks = (b"\0" * 2**16 for _ in range(40))  # no Content-Length: sent chunked
    r = c.post("/api/encode/upload", content=chunks, headers={"content-type": "image/png"})
    assert r.status_code == 413 and "larger than the limit" in r.json()["error"]
    # a decompression bomb: a small file with too many pixels
    buf = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buf, format="PNG")
    r = c.post("/api/encode/upload", files={"file": ("bomb.png", buf.getvalue(), "image/png")})
    assert r.status_code == 400 and "more than 40,000,000" in r.json()["error"]
    assert c.post("/api/encode/example", json={"index": 99}).json()["error"].startswith("test example 99 is out")
    assert c.post("/api/decode", json={"z": [0, 0, 0]}).status_code == 200  # still serving


def test_loopback_only(tiny_root: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture) -> None:
    from vaekit.cli import main

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.com")
    run = tiny_run("vae", tiny_root, data_dir, monkeypatch)
    assert main(["explore", str(run), "--host", "0.0.0.0"]) == 2
    assert "not a loopback address" in capsys.readouterr().err
    explorer, title = load_explorer(run, examples=4)
    with pytest.raises(ValueError, match="--allow-remote"):
        serve(explorer, title, host="10.1.2.3")
    c, _ = client(run)  # a page on another site that points its name at 127.0.0.1 (DNS rebinding) is refused
    assert c.get("/api/spec", headers={"host": "attacker.example"}).status_code == 400


def test_the_command_prints_the_url_of_a_free_port(tiny_root: Path, data_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys
    import urllib.request

    run = tiny_run("vae", tiny_root, data_dir, monkeypatch)
    proc = subprocess.Popen([sys.executable, "-m", "vaekit.cli", "explore", str(run), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for line in proc.stdout:
            if "open http://" in line:
                url = line.split("open ", 1)[1].split()[0]
                break
        assert url and url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
        with urllib.request.urlopen(url + "api/spec", timeout=30) as r:
            assert json.loads(r.read())["kind"] == "latent"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted({*registry.names(), "tdvae_moving_mnist"}))
def test_every_model_explores_from_a_tiny_run(name: str, tiny_root: Path, data_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert name in TINY, f"tests/tiny_runs.py has no tiny settings for {name}"
    c, explorer = client(tiny_run(name, tiny_root, data_dir, monkeypatch))
    spec = c.get("/api/spec").json()
    controls = {k["name"]: k["value"] for k in spec["controls"]}
    first = c.post("/api/decode", json={"z": spec["start"], "controls": controls})
    assert first.status_code == 200, first.text
    e = c.post("/api/encode/example", json={"index": 1, "controls": controls}).json()
    assert "error" not in e and len(e["z"]) == len(spec["sliders"])
    assert c.post("/api/decode", json={"z": e["z"], "controls": {**controls, **e["controls"]}}).status_code == 200
    assert c.get("/api/example/1.png").status_code == 200
    if spec["sliders"]:
        moved = [v + 1.5 for v in e["z"]]
        again = c.post("/api/decode", json={"z": moved, "controls": {**controls, **e["controls"]}})
        assert again.status_code == 200 and again.content != first.content
    expected_kind = {"iwae": "hierarchy", "ladder_vae": "hierarchy", "hierarchical_vae": "hierarchy",
                     "cvae_label": "conditional", "cvae_quadrants": "conditional", "regressor": "none",
                     "tdvae": "sequence", "tdvae_moving_mnist": "sequence", "lstm_predictor": "sequence",
                     "speech_vae": "speech"}.get(name, "latent")
    assert spec["kind"] == expected_kind
    if expected_kind == "hierarchy":
        assert {s["group"] for s in spec["sliders"]} == {"level 1 (next to x)", "level 2 (top)"}
    if expected_kind in ("latent", "hierarchy"):  # the start is test example 0's posterior mean: its reconstruction
        shown = Image.open(io.BytesIO(first.content))
        x0 = {k: v[:1] for k, v in explorer.examples.items()}
        with torch.no_grad():
            rec = explorer.model.reconstruct(x0)[0]
        png = torch.tensor(list(shown.getdata()), dtype=torch.float32).view(shown.height, shown.width, -1)
        assert (png.permute(2, 0, 1) - (rec * 255).round()).abs().max() <= 1
    if name == "cvae_label":
        assert [c["name"] for c in spec["controls"]] == ["example", "label"]
        other = c.post("/api/decode", json={"z": spec["start"], "controls": {**controls, "label": 7}})
        assert other.status_code == 200 and other.content != first.content
    if name.startswith("tdvae"):
        assert {"context", "horizon", "jump"} <= set(controls)
        bad = c.post("/api/decode", json={"z": spec["start"], "controls": {**controls, "context": 99}})
        assert bad.status_code == 400 and "context must be" in bad.json()["error"]
    if spec["upload"] == "image":
        r = c.post("/api/encode/upload", files={"file": ("a.png", png_of(size=(40, 30), mode="RGB"), "image/png")})
        assert r.status_code == 200 and len(r.json()["z"]) == len(spec["sliders"]), r.text
    elif not spec["upload"]:
        r = c.post("/api/encode/upload", files={"file": ("a.png", png_of(), "image/png")})
        assert r.status_code == 400 and "no uploads" in r.json()["error"]
    if name == "speech_vae":
        from vaekit.core.audio import write_wav

        wav = tiny_root / "tone.wav"
        t = torch.arange(4000) / 8000
        write_wav(wav, 0.3 * torch.sin(2 * torch.pi * 220 * t), 8000)
        r = c.post("/api/encode/upload", files={"file": ("tone.wav", wav.read_bytes(), "audio/wav")})
        assert r.status_code == 200 and len(r.json()["z"]) == len(spec["sliders"]), r.text
        assert "not a readable WAV" in c.post("/api/encode/upload", files={"file": ("a.png", png_of(),
                                                                                   "image/png")}).json()["error"]
        sound = c.post("/api/audio", json={"z": spec["start"], "controls": controls})
        assert sound.status_code == 200 and sound.content[:4] == b"RIFF"
