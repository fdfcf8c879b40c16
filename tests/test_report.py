"""vaekit report: one self-contained HTML page per run (nothing fetched when it opens), text escaped, every
registered model drawn from a tiny run, several runs compared side by side."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from tiny_runs import TINY, tiny_run

from vaekit.cli import main
from vaekit.models import registry
from vaekit.run.io import load
from vaekit.views.report import write_report


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "tiny_runs"


class Links(HTMLParser):
    """Every URL a page would load or link to, and its tags."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "data", "poster", "action", "srcset")]


def assert_self_contained(text: str) -> Links:
    links = Links()
    links.feed(text)
    assert links.urls, "a report with no inline images"
    external = [u[:60] for u in links.urls if not u.startswith(("data:", "#"))]
    assert not external, f"the page refers to other files: {external}"
    assert not re.search(r"url\(|@import|https?://", text.split("<body>", 1)[0]), "the style sheet fetches something"
    assert "script" not in links.tags and "link" not in links.tags and "iframe" not in links.tags
    return links


def sections(text: str) -> list[str]:
    return re.findall(r"<h[23]>(.*?)</h[23]>", text)


def test_tiny_vae_report_has_every_section_and_is_self_contained(tiny_root: Path, data_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture) -> None:
    import shutil

    run = tmp_path / "vae"
    shutil.copytree(tiny_run("vae", tiny_root, data_dir, monkeypatch), run)
    assert main(["evaluate", str(run), "--nll-samples", "4", "--limit", "16", "--quiet"]) == 0
    evaluated = json.loads((run / "eval_k4_n16.json").read_text())
    (run / "metrics").mkdir(exist_ok=True)  # what train.metrics writes, here made up: the report only reads it
    for step, mig in ((1, 0.1), (2, 0.25)):
        (run / "metrics" / f"step{step:07d}.json").write_text(json.dumps({"step": step, "mig": {
            "discrete_mig": mig, "seconds": 1.0}}))
    out = run.parent / "vae_report.html"
    assert main(["report", str(run), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text()
    assert_self_contained(text)
    assert sections(text) == ["Run", "Recipe", "Training curves", "Metrics over training steps", "Evaluation",
                              "Figures", "Traversals", "Rollouts"]
    assert "could not be drawn" not in text
    assert "latent_dim: 3" in text  # the recipe, as written
    assert f"{evaluated['nll']:.4f}".rstrip("0") in text and "active_units.z" in text  # the evaluation table
    assert "mig.discrete_mig" in text and "step 2" in text  # metrics over steps
    assert text.count("data:image/png;base64,") >= 8  # curves, samples, reconstructions, KL bars, traversals
    assert "is no sequence model" in text  # what it cannot show, with the reason


def test_report_escapes_what_it_shows(tiny_root: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "<b>run & co</b>"
    shutil.copytree(tiny_run("vae", tiny_root, data_dir, monkeypatch), run)
    evil = "<script>alert('x')</script>"
    config = (run / "config.yaml").read_text().replace("name: tiny_vae", f"name: \"{evil}\"")
    (run / "config.yaml").write_text(config)
    (run / "eval_k1.json").write_text(json.dumps({"model": evil, "nll": 1.5, "not_applicable": {"x": evil}}))
    text = write_report([run], tmp_path / "r.html").read_text()
    assert evil not in text and "<b>run" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text and "&lt;b&gt;run &amp; co&lt;/b&gt;" in text
    assert_self_contained(text)


def test_two_runs_side_by_side(tiny_root: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                               tmp_path: Path) -> None:
    from tiny_runs import FAST

    from vaekit.run.config import load_config
    from vaekit.run.fit import fit

    first = tiny_run("vae", tiny_root, data_dir, monkeypatch)
    second = tmp_path / "wider"
    fit(load_config({"model": "vae", "name": "tiny_vae_wide"}, [*FAST, "model.hidden=[16]", "model.latent_dim=5",
                                                               f"data.dir={data_dir}"]), second)
    (second / "eval_k9.json").write_text(json.dumps({"nll": 123.25, "active_units": {"z": 2}}))
    text = write_report([first, second], tmp_path / "both.html").read_text()
    assert_self_contained(text)
    heads = sections(text)
    assert heads[:4] == ["Runs", "Recipe differences", "Training curves, overlaid", "Evaluation"]
    assert heads.count("Figures") == 2 and heads.count("Traversals") == 2  # one column per run
    assert "tiny_vae" in heads and "tiny_vae_wide" in heads
    diff = text.split("Recipe differences", 1)[1].split("</table>", 1)[0]
    assert "model.latent_dim" in diff and "name" in diff and "model.hidden" not in diff  # only what differs
    assert "tiny_vae_wide · eval_k9" in text and "123.25" in text
    assert "grid-template-columns:repeat(2," in text


def test_report_of_a_run_whose_model_cannot_load_still_shows_its_logs(tiny_root: Path, data_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "broken"
    shutil.copytree(tiny_run("vae", tiny_root, data_dir, monkeypatch), run)
    for f in run.glob("*.safetensors"):
        f.write_bytes(b"not weights")
    text = write_report([run], tmp_path / "r.html").read_text()
    assert "could not be loaded" in text and "Training curves" in text and "damaged or truncated" in text


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted({*registry.names(), "tdvae_moving_mnist"}))
def test_every_model_reports_from_a_tiny_run(name: str, tiny_root: Path, data_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert name in TINY, f"tests/tiny_runs.py has no tiny settings for {name}"
    run = tiny_run(name, tiny_root, data_dir, monkeypatch)
    text = write_report([run], run.parent / f"{name}.html").read_text()
    assert_self_contained(text)
    assert "could not be drawn" not in text and "could not be read" not in text
    heads = sections(text)
    assert {"Run", "Recipe", "Training curves", "Evaluation", "Figures", "Traversals", "Rollouts"} <= set(heads)
    if "traversal" in load(run).abilities:
        assert "KL per latent" in text and "no traversal ability" not in text
    else:
        assert "no traversal ability" in text
    if name.startswith(("tdvae", "lstm")):
        assert "rolled out" in text
    if name == "speech_vae":
        assert "data:audio/wav;base64," in text
