// The page: pick a model, a seed and (conditional models) a class → the generated grid (PNG from
// :generate); two seeds → a strip of frames from :interpolate, shown one at a time by a slider.
"use strict";

const $ = (id) => document.getElementById(id);
const STEPS = 16;
let models = {};
let frames = null;        // {images, value_range, shape} from the last :interpolate
let gridRequest = 0;      // answers to older requests are dropped
let interpRequest = 0;

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function post(model, operation, body, accept) {
  const response = await fetch(`/v1/models/${encodeURIComponent(model)}:${operation}`, {
    method: "POST",
    headers: {"Content-Type": "application/json", "Accept": accept},
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function current() { return models[$("model").value]; }

function seedOf(input) {
  const value = Number(input.value);
  return Number.isInteger(value) && value >= 0 ? value : null;
}

function labelFields(model) {
  if (!model.conditional || $("label").value === "all") return {};
  return {label: Number($("label").value)};
}

async function generate() {
  const model = current();
  const seed = seedOf($("seed"));
  if (!model) return;
  if (seed === null) { showError("the seed must be a whole number ≥ 0"); return; }
  const id = ++gridRequest;
  const body = {n: Number($("n").value), seed, ...labelFields(model)};
  $("status").textContent = "generating…";
  try {
    const response = await post(model.name, "generate", body, "image/png");
    const blob = await response.blob();
    if (id !== gridRequest) return;
    const img = $("grid");
    const old = img.src;
    img.onload = () => { if (old.startsWith("blob:")) URL.revokeObjectURL(old); };
    img.src = URL.createObjectURL(blob);
    img.dataset.seed = String(seed);
    img.hidden = false;
    $("grid-caption").textContent = `${model.name} · seed ${seed} · ${body.n} image(s)` +
      (body.label !== undefined ? ` · class ${body.label}` : "");
    $("status").textContent = "ready";
    showError("");
  } catch (err) {
    if (id === gridRequest) { showError(err.message); $("status").textContent = "error"; }
  }
}

async function interpolate() {
  const model = current();
  const a = seedOf($("seed-a")), b = seedOf($("seed-b"));
  if (!model) return;
  if (a === null || b === null) { showError("seeds must be whole numbers ≥ 0"); return; }
  const id = ++interpRequest;
  const body = {seeds: [a, b], steps: STEPS, method: $("method").value, format: "json"};
  if (model.conditional) body.label = $("label").value === "all" ? 0 : Number($("label").value);
  try {
    const answer = await (await post(model.name, "interpolate", body, "application/json")).json();
    if (id !== interpRequest) return;
    frames = answer;
    $("slider").max = String(answer.images.length - 1);
    drawFrame();
    showError("");
  } catch (err) {
    if (id === interpRequest) showError(err.message);
  }
}

function drawFrame() {
  if (!frames) return;
  const i = Number($("slider").value);
  const [, h, w, c] = frames.shape;
  const [lo, hi] = frames.value_range;
  const canvas = $("frame");
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(w, h);
  const image = frames.images[i];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const px = image[y][x];
      const k = 4 * (y * w + x);
      for (let ch = 0; ch < 3; ch++) {
        const value = px[c === 1 ? 0 : ch];
        data.data[k + ch] = Math.round(255 * Math.min(1, Math.max(0, (value - lo) / (hi - lo))));
      }
      data.data[k + 3] = 255;
    }
  }
  ctx.putImageData(data, 0, 0);
  canvas.dataset.frame = String(i);
  $("frame-caption").textContent = `frame ${i + 1} of ${frames.images.length} ` +
    `(${frames.method}, seeds ${frames.seeds.join(" → ")})`;
}

function onModelChange() {
  const model = current();
  if (!model) return;
  $("model-info").textContent = `${model.kind} · latent ${model.latent_dim} · images ` +
    `${model.image_shape.join("×")}` + (model.conditional ? ` · ${model.num_classes} classes` : "");
  $("class-field").hidden = !model.conditional;
  const select = $("label");
  select.replaceChildren(new Option("all (cycle)", "all"),
    ...Array.from({length: model.num_classes}, (_, k) => new Option(String(k), String(k))));
  generate();
  interpolate();
}

function debounce(fn, ms) {
  let timer;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

async function start() {
  try {
    const response = await fetch("/v1/models");
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    models = Object.fromEntries(answer.models.map((m) => [m.name, m]));
    if (!answer.models.length) throw new Error("the server has no model to serve");
    $("model").replaceChildren(...answer.models.map((m) => new Option(`${m.name} (${m.kind})`, m.name)));
    $("status").textContent = "ready";
    onModelChange();
  } catch (err) {
    $("status").textContent = "error";
    showError(`could not list the models: ${err.message}`);
  }
}

$("model").addEventListener("change", onModelChange);
$("seed").addEventListener("input", debounce(generate, 150));
$("n").addEventListener("change", generate);
$("label").addEventListener("change", () => { generate(); interpolate(); });
$("random-seed").addEventListener("click", () => {
  $("seed").value = String(Math.floor(Math.random() * 1e6));
  generate();
});
for (const id of ["seed-a", "seed-b"]) $(id).addEventListener("input", debounce(interpolate, 150));
$("method").addEventListener("change", interpolate);
$("slider").addEventListener("input", drawFrame);
start();
