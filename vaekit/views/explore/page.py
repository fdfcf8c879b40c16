"""The explorer's one page: inline CSS and JavaScript, nothing fetched from elsewhere. It builds its sliders and
controls from /api/spec, asks /api/decode for a new picture as a slider moves (one request in flight at a time;
the newest values are sent when it returns, so a fast drag never queues stale work), and shows how long the server
took and the whole round trip."""

from __future__ import annotations

from vaekit.views.webpage import esc

PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title><link rel="icon" href="data:,">
<style>
[hidden]{display:none!important}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d232a;background:#fbfbfc}
header{padding:10px 18px;border-bottom:1px solid #d8dde3;background:#fff}h1{font-size:1.2em;margin:0}
main{display:flex;gap:22px;padding:14px 18px;flex-wrap:wrap}#left{flex:0 0 auto;width:min(460px,100%)}
#right{flex:1 1 420px;min-width:300px}#out{width:100%;max-width:440px;image-rendering:pixelated;
border:1px solid #d8dde3;background:#fff;min-height:120px}.wide #out{max-width:100%}
.speech #out{width:auto;height:280px;max-width:100%}
#timing{font:12px ui-monospace,monospace;color:#555;margin:4px 0}
#message{min-height:1.3em;margin:6px 0;font-size:.9em}#message.error{color:#a40000;font-weight:600}
#message.ok{color:#255d00}fieldset{border:1px solid #d8dde3;border-radius:5px;margin:0 0 10px;padding:6px 10px}
legend{font-size:.85em;color:#444}.row{display:flex;align-items:center;gap:6px;margin:2px 0;font-size:.8em}
.row label{width:64px;font-family:ui-monospace,monospace}.row input[type=range]{flex:1}
.row .v{width:44px;text-align:right;font-family:ui-monospace,monospace}.row.idle label{color:#aaa}
.ctl{display:flex;align-items:center;gap:6px;margin:4px 0;font-size:.9em;flex-wrap:wrap}
.ctl label{min-width:150px}#example{image-rendering:pixelated;height:64px;max-width:100%;object-fit:contain;
border:1px solid #d8dde3;vertical-align:middle}button{font-size:.85em}.muted{color:#666;font-size:.8em}
#sliders{max-height:70vh;overflow-y:auto;padding-right:6px}
</style></head><body>
<header><h1>__TITLE__</h1><div class=muted id=kind></div></header>
<main>
<section id=left>
  <fieldset id=controls><legend>controls</legend></fieldset>
  <fieldset id=start><legend>start from</legend>
    <div class=ctl><button id=encode-example type=button>posterior mean of the test example</button>
      <img id=example alt="test example"></div>
    <div class=ctl id=upload-row><input id=file type=file><button id=upload type=button>encode upload</button></div>
    <div class=ctl><button id=zero type=button>prior mean (all 0)</button>
      <button id=random type=button>random draw</button></div>
  </fieldset>
  <div id=sliders></div>
</section>
<section id=right>
  <img id=out alt="decoded output">
  <div id=timing></div>
  <div id=message role=status></div>
  <div id=audio-row hidden><button id=play type=button>play</button> <audio id=player controls></audio></div>
  <p class=muted id=note></p>
</section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const state = {spec: null, z: [], controls: {}, inflight: false, pending: false, url: null};
window.vaekit = {timings: [], decodes: 0, state};

function say(text, error) {
  const m = $("message");
  m.textContent = text || "";
  m.className = error ? "error" : "ok";
}

async function failure(resp) {
  try { const j = await resp.json(); return j.error || resp.statusText; } catch (e) { return resp.statusText; }
}

async function post(path, body) {
  const resp = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                  body: JSON.stringify(body)});
  if (!resp.ok) throw new Error(await failure(resp));
  return resp;
}

// One decode in flight; moves during it are folded into the next request (the newest values win).
function schedule() {
  if (state.inflight) { state.pending = true; return; }
  decode();
}

async function decode() {
  state.inflight = true; state.pending = false;
  const t0 = performance.now();
  try {
    const resp = await post("/api/decode", {z: state.z, controls: state.controls});
    const server = parseFloat(resp.headers.get("X-Decode-Ms"));
    const blob = await resp.blob();
    const url = URL.createObjectURL(blob);
    const img = $("out");
    img.src = url;
    await img.decode();
    if (state.url) URL.revokeObjectURL(state.url);
    state.url = url;
    const roundtrip = performance.now() - t0;
    window.vaekit.timings.push({server, roundtrip});
    window.vaekit.decodes += 1;
    $("timing").textContent = `server ${server.toFixed(1)} ms · round trip ${roundtrip.toFixed(1)} ms`;
    if ($("message").className === "error") say("");
  } catch (e) {
    say(e.message, true);
  } finally {
    state.inflight = false;
    if (state.pending) schedule();
  }
}

function setZ(values) {
  state.z = values.slice();
  document.querySelectorAll("#sliders input[type=range]").forEach((el) => {
    const i = +el.dataset.index;
    el.value = state.z[i];
    el.parentNode.querySelector(".v").textContent = (+state.z[i]).toFixed(2);
  });
}

function setControls(update) {
  Object.assign(state.controls, update);
  for (const [name, value] of Object.entries(update)) {
    const el = document.querySelector(`[data-control="${name}"]`);
    if (el) el.value = value;
  }
  if ("example" in update) $("example").src = `/api/example/${state.controls.example}.png`;
}

async function encodeExample() {
  try {
    const resp = await post("/api/encode/example", {index: +state.controls.example, controls: state.controls});
    const j = await resp.json();
    setControls(j.controls); setZ(j.z); say(j.message);
    schedule();
  } catch (e) { say(e.message, true); }
}

async function encodeUpload() {
  const file = $("file").files[0];
  if (!file) { say("choose a file first", true); return; }
  const form = new FormData();
  form.append("file", file);
  form.append("controls", JSON.stringify(state.controls));
  try {
    const resp = await fetch("/api/encode/upload", {method: "POST", body: form});
    if (!resp.ok) throw new Error(await failure(resp));
    const j = await resp.json();
    setControls(j.controls);
    if (j.z.length) setZ(j.z);
    say(`${file.name}: ${j.message}`);
    schedule();
  } catch (e) { say(`${file.name}: ${e.message}`, true); }
}

function gaussian() {
  const u = 1 - Math.random(), v = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

function buildControls(spec) {
  const box = $("controls");
  if (!spec.controls.length) { box.hidden = true; return; }
  for (const c of spec.controls) {
    const row = document.createElement("div");
    row.className = "ctl";
    const label = document.createElement("label");
    label.textContent = c.label || c.name;
    let el;
    if (c.type === "select") {
      el = document.createElement("select");
      for (const o of c.options) {
        const opt = document.createElement("option");
        opt.value = o.value; opt.textContent = o.label; el.appendChild(opt);
      }
    } else {
      el = document.createElement("input");
      el.type = c.type === "number" ? "number" : "text";
      if (c.type === "number") { el.min = c.min; el.max = c.max; el.step = 1; }
    }
    el.value = c.value;
    el.dataset.control = c.name;
    el.id = `control-${c.name}`;
    label.htmlFor = el.id;
    state.controls[c.name] = c.value;
    let timer = null;
    el.addEventListener(c.type === "text" ? "input" : "change", () => {
      const value = c.type === "number" || c.type === "select" && typeof c.value === "number" ? +el.value : el.value;
      state.controls[c.name] = value;
      if (c.name === "example") { state.controls.upload = ""; $("example").src = `/api/example/${value}.png`; }
      clearTimeout(timer);
      timer = setTimeout(() => (c.encodes ? encodeExample() : schedule()), c.type === "text" ? 300 : 0);
    });
    row.append(label, el);
    box.appendChild(row);
  }
}

function buildSliders(spec) {
  const box = $("sliders");
  let group = null, fs = null;
  spec.sliders.forEach((s, i) => {
    if (!s.shown) return;
    if (s.group !== group) {
      group = s.group;
      fs = document.createElement("fieldset");
      const lg = document.createElement("legend");
      lg.textContent = group;
      fs.appendChild(lg);
      box.appendChild(fs);
    }
    const row = document.createElement("div");
    row.className = "row" + (s.activity !== null && s.activity < 0.01 ? " idle" : "");
    row.title = s.activity === null ? s.name
      : `${s.name}: variance of the posterior mean over test examples ${s.activity}`;
    const label = document.createElement("label");
    label.textContent = s.name;
    const input = document.createElement("input");
    Object.assign(input, {type: "range", min: s.lo, max: s.hi, step: 0.01, value: state.z[i]});
    input.dataset.index = i;
    input.setAttribute("aria-label", s.name);
    const v = document.createElement("span");
    v.className = "v"; v.textContent = (+state.z[i]).toFixed(2);
    input.addEventListener("input", () => {
      state.z[i] = +input.value; v.textContent = (+input.value).toFixed(2);
      schedule();
    });
    row.append(label, input, v);
    fs.appendChild(row);
  });
  const hidden = spec.sliders.filter((s) => !s.shown).length;
  if (hidden) $("note").textContent = `${hidden} of ${spec.sliders.length} latents are not shown (the least active); ` +
                                      "they keep their values.";
}

async function main() {
  const resp = await fetch("/api/spec");
  if (!resp.ok) { say(await failure(resp), true); return; }
  const spec = await resp.json();
  state.spec = spec;
  state.z = spec.start.slice();
  $("kind").textContent = `${spec.model} · ${spec.kind} · ${spec.sliders.length} latents`;
  if (spec.message) $("note").textContent = spec.message;
  if (spec.kind === "sequence") document.body.classList.add("wide");
  if (spec.kind === "speech") document.body.classList.add("speech");  // mels: time across, 80 bins up
  buildControls(spec);
  buildSliders(spec);
  const latent = spec.sliders.length > 0;
  $("encode-example").hidden = !latent;
  $("zero").hidden = $("random").hidden = !latent || spec.kind === "sequence";
  $("upload-row").hidden = !spec.upload;
  $("file").accept = spec.upload === "audio" ? "audio/wav,.wav" : "image/*";
  $("start").hidden = !latent && !spec.upload && !spec.examples;
  if ("example" in state.controls) $("example").src = `/api/example/${state.controls.example}.png`;
  $("audio-row").hidden = !spec.audio;
  $("encode-example").onclick = encodeExample;
  $("upload").onclick = encodeUpload;
  $("zero").onclick = () => { setZ(state.z.map(() => 0)); schedule(); };
  $("random").onclick = () => { setZ(state.z.map(() => Math.max(-3, Math.min(3, gaussian())))); schedule(); };
  $("play").onclick = async () => {
    try {
      const r = await post("/api/audio", {z: state.z, controls: state.controls});
      const player = $("player");
      player.src = URL.createObjectURL(await r.blob());
      player.play().catch(() => {});
    } catch (e) { say(e.message, true); }
  };
  window.vaekit.ready = true;
  schedule();
}
main();
</script>
</body></html>
"""


def explorer_page(title: str) -> str:
    """The page, its title escaped (everything else it shows arrives as JSON and is set as text, never as HTML)."""
    return PAGE.replace("__TITLE__", esc(title))
