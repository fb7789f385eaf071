// The page: pick a model, a seed and (conditional models) a class → the generated grid (PNG from
// :generate); two seeds → all frames of :interpolate as a strip, one enlarged by the slider or the
// play button; models with :reconstruct (VAE/AE) → draw or upload a digit and see it decoded;
// style-based models → a truncation slider on the grid and the style-mixing grid (:mix);
// models with an encoder (the VAE family) → one slider per latent dimension, the decoded image
// following each move (:codes for a seed's code, :encode for the drawing, :generate with `z`);
// image-to-image models (:translate) → the same drawing area, its image sent as a PNG at the
// model's input size, and the translation shown (a direction to pick for CycleGAN models).
//
// An error is shown under the control that caused it (a server message is placed by the field it
// names), the last good result stays in view marked "stale", and the status line says "ready"
// only when nothing is pending and no error is shown.
"use strict";

const $ = (id) => document.getElementById(id);
const STEPS = 16;
const PLAY_MS = 140;
const MAX_SEED = Number.MAX_SAFE_INTEGER;  // larger seeds cannot be written exactly from JavaScript
let models = {};

// -- errors and status ------------------------------------------------------------------------------
const errors = new Map();  // element-id prefix ("seed", "grid", ...) → {owner, message}
let pending = 0;

function setError(key, owner, message) {
  const box = $(`${key}-error`);
  box.textContent = message || "";
  const control = box.closest(".field");
  if (control) control.classList.toggle("invalid", Boolean(message));
  const input = control && control.querySelector("input, select");
  if (input) input.setAttribute("aria-invalid", message ? "true" : "false");
  if (message) errors.set(key, {owner, message}); else errors.delete(key);
  updateStatus();
}

function clearErrors(owner) {
  for (const [key, e] of [...errors]) if (e.owner === owner) setError(key, owner, "");
}

function updateStatus() {
  const status = $("status");
  const last = [...errors.values()].pop();
  const [state, text] = last ? ["error", `error: ${last.message}`]
    : pending ? ["busy", "working…"] : ["ready", "ready"];
  status.dataset.state = state;
  status.textContent = text;
}

function setStale(figure, stale) { $(figure).classList.toggle("stale", stale); }

// Where a server message belongs: it starts with the field it names ("seed=-1 is too small ...").
function fieldOf(message, places, fallback) {
  for (const [pattern, key] of places) if (pattern.test(message)) return key;
  return fallback;
}

// A JSON body, or a PNG Blob uploaded as the body (its options then go in `query`).
async function post(model, operation, body, accept, query) {
  const png = body instanceof Blob;
  const qs = query ? `?${new URLSearchParams(query)}` : "";
  const response = await fetch(`/v1/models/${encodeURIComponent(model)}:${operation}${qs}`, {
    method: "POST",
    headers: {"Content-Type": png ? "image/png" : "application/json", "Accept": accept},
    body: png ? await body.arrayBuffer() : JSON.stringify(body),  // bytes, not the Blob: DevTools then sees them
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

// Numbers the requests of one kind, so that answers to older ones (or cancelled ones) are dropped.
function latest() {
  let newest = 0;
  return {
    next() { return ++newest; },
    isCurrent(id) { return id === newest; },
    cancel() { newest++; },
  };
}

async function tracked(promise) {
  pending++; updateStatus();
  try { return await promise; } finally { pending--; updateStatus(); }
}

// -- inputs ------------------------------------------------------------------------------------------
function current() { return models[$("model").value]; }

// A seed field → {seed} or {error}: never a silent 0 for an empty field.
function readSeed(input, name) {
  const raw = input.value.trim();
  if (input.validity.badInput) return {error: `${name} is not a number; give a whole number ≥ 0`};
  if (raw === "") return {error: `${name} is empty; give a whole number ≥ 0`};
  const value = Number(raw);
  if (value < 0) return {error: `${name} must be ≥ 0, not ${raw}`};
  if (!Number.isInteger(value)) return {error: `${name} must be a whole number, not ${raw}`};
  if (value > MAX_SEED) return {error: `${name} must be at most ${MAX_SEED} on this page`};
  return {seed: value};
}

// What the export declares (GET /v1/models/{name}): each operation's task and each input's role, and
// the model's facts (a style-based model's layout). Nothing here knows a model kind or a tensor name.
function inputsWithRole(model, task, role) {
  return Object.values(model.endpoints || {}).filter((ep) => ep.task === task)
    .flatMap((ep) => ep.inputs.filter((i) => i.role === role));
}
function truncationInput(model) { return inputsWithRole(model, "generate", "truncation")[0] || null; }
function isStyle(model) { return Boolean(truncationInput(model)); }
function isTranslator(model) { return model.operations.includes("translate"); }

// What the drawing area feeds: the translation picked (input shape and range), or the model's images.
function padTarget(model) {
  if (!isTranslator(model)) return {shape: model.image_shape, range: model.value_range, op: "reconstruct"};
  const t = model.translations.find((x) => x.direction === ($("direction").value || null)) || model.translations[0];
  return {shape: t.input.shape.slice(1), range: t.input.value_range || model.value_range, op: "translate",
          direction: t.direction, output: t.output};
}

function classOf(model) {
  if (!model.conditional || $("label").value === "all") return null;
  return Number($("label").value);
}

// Shows a PNG answer in an <img>, freeing the previous one's object URL once the new one is in.
function showBlob(img, blob) {
  const old = img.src;
  img.onload = () => { if (old.startsWith("blob:")) URL.revokeObjectURL(old); };
  img.src = URL.createObjectURL(blob);
  return img;
}

function saveBlob(blob, filename) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

// Paints one image ([h][w][c] values in value_range) onto a canvas of its size.
function paint(canvas, image, value_range) {
  const h = image.length, w = image[0].length, c = image[0][0].length;
  const [lo, hi] = value_range;
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const px = image[y][x], k = 4 * (y * w + x);
      for (let ch = 0; ch < 3; ch++) {
        const value = px[c === 1 ? 0 : ch];
        data.data[k + ch] = Math.round(255 * Math.min(1, Math.max(0, (value - lo) / (hi - lo))));
      }
      data.data[k + 3] = 255;
    }
  }
  ctx.putImageData(data, 0, 0);
}

// -- generate ----------------------------------------------------------------------------------------
const gridRequests = latest();
let lastGrid = null;  // {blob, filename} of the grid on screen

async function generate() {
  const model = current();
  if (!model || !model.operations.includes("generate")) return;
  clearErrors("generate");
  const {seed, error} = readSeed($("seed"), "the seed");
  if (error) {
    gridRequests.cancel();
    setError("seed", "generate", error);
    setStale("grid-figure", Boolean(lastGrid));
    return;
  }
  const id = gridRequests.next();
  const label = classOf(model);
  const body = {n: Number($("n").value), seed, ...(label === null ? {} : {label})};
  if (isStyle(model)) body.truncation = Number($("truncation").value);
  try {
    const blob = await tracked(post(model.name, "generate", body, "image/png").then((r) => r.blob()));
    if (!gridRequests.isCurrent(id)) return;
    const img = showBlob($("grid"), blob);
    img.dataset.seed = String(seed);
    img.dataset.truncation = body.truncation === undefined ? "" : String(body.truncation);
    img.hidden = false;
    lastGrid = {blob, filename: `${model.name}-seed${seed}-n${body.n}` +
      (label === null ? "" : `-class${label}`) + ".png"};
    $("grid-caption").textContent = `${model.name} · seed ${seed} · ${body.n} image(s)` +
      (label === null ? "" : ` · class ${label}`) +
      (body.truncation === undefined || body.truncation === 1 ? "" : ` · ψ ${body.truncation.toFixed(2)}`);
    $("download-grid").disabled = false;
    setStale("grid-figure", false);
  } catch (err) {
    if (!gridRequests.isCurrent(id)) return;
    const key = fieldOf(err.message, [[/^seed\b/, "seed"], [/^n\b/, "n"], [/^labels?\b|class label/, "label"],
                                      [/^truncation\b/, "truncation"], [/\bmodel\b/, "model"]], "grid");
    setError(key, "generate", err.message);
    setStale("grid-figure", Boolean(lastGrid));
  }
}

// -- interpolate -------------------------------------------------------------------------------------
const interpRequests = latest();
let frames = null;        // the last :interpolate answer on screen
let lastStrip = null;     // {model, body} that produced it, for the PNG download
let playing = null;       // the play timer

async function interpolate() {
  const model = current();
  if (!model || !model.operations.includes("interpolate")) return;
  clearErrors("interpolate");
  const a = readSeed($("seed-a"), "the first seed"), b = readSeed($("seed-b"), "the second seed");
  if (a.error || b.error) {
    interpRequests.cancel();
    if (a.error) setError("seed-a", "interpolate", a.error);
    if (b.error) setError("seed-b", "interpolate", b.error);
    setStale("frames-figure", Boolean(frames));
    return;
  }
  const id = interpRequests.next();
  const body = {seeds: [a.seed, b.seed], steps: STEPS, method: $("method").value};
  if (model.conditional) body.label = classOf(model) ?? 0;
  try {
    const answer = await tracked(post(model.name, "interpolate", {...body, format: "json"}, "application/json")
      .then((r) => r.json()));
    if (!interpRequests.isCurrent(id)) return;
    frames = answer;
    lastStrip = {model: model.name, body};
    showStrip();
    setStale("frames-figure", false);
    $("play").disabled = $("download-strip").disabled = false;
  } catch (err) {
    if (!interpRequests.isCurrent(id)) return;
    const key = fieldOf(err.message, [[/^seeds\[0\]/, "seed-a"], [/^seeds\[1\]/, "seed-b"], [/^method\b/, "method"],
                                      [/^label\b|class label/, "label"], [/\bmodel\b/, "model"]], "frames");
    setError(key, "interpolate", err.message);
    setStale("frames-figure", Boolean(frames));
  }
}

function showStrip() {
  const strip = $("strip");
  strip.replaceChildren(...frames.images.map((image, i) => {
    const canvas = document.createElement("canvas");
    canvas.className = "strip-frame";
    canvas.dataset.index = String(i);
    canvas.setAttribute("role", "option");
    canvas.setAttribute("aria-label", `frame ${i + 1}`);
    paint(canvas, image, frames.value_range);
    return canvas;
  }));
  $("slider").max = String(frames.images.length - 1);
  if (Number($("slider").value) > frames.images.length - 1) $("slider").value = "0";
  drawFrame();
}

function drawFrame() {
  if (!frames) return;
  const i = Number($("slider").value);
  const canvas = $("frame");
  paint(canvas, frames.images[i], frames.value_range);
  canvas.dataset.frame = String(i);
  for (const f of $("strip").children) {
    const on = Number(f.dataset.index) === i;
    f.classList.toggle("current", on);
    f.setAttribute("aria-selected", String(on));
  }
  $("frame-caption").textContent = `frame ${i + 1} of ${frames.images.length} ` +
    `(${frames.method}, seeds ${frames.seeds.join(" → ")})`;
}

function togglePlay() {
  const button = $("play");
  if (playing) {
    clearInterval(playing);
    playing = null;
  } else {
    playing = setInterval(() => {
      if (!frames) return;
      $("slider").value = String((Number($("slider").value) + 1) % frames.images.length);
      drawFrame();
    }, PLAY_MS);
  }
  button.textContent = playing ? "❚❚ Pause" : "▶ Play";
  button.setAttribute("aria-pressed", String(Boolean(playing)));
}

async function downloadStrip() {
  if (!lastStrip) return;
  const {model, body} = lastStrip;
  try {
    const blob = await tracked(post(model, "interpolate", {...body, format: "png"}, "image/png").then((r) => r.blob()));
    saveBlob(blob, `${model}-seeds${body.seeds.join("-")}-${body.method}` +
      (body.label !== undefined ? `-class${body.label}` : "") + ".png");
    clearErrors("download-strip");
  } catch (err) {
    setError("frames", "download-strip", `download failed: ${err.message}`);
  }
}

// -- style mixing (style-based models) -----------------------------------------------------------------
const mixRequests = latest();
let mixShown = false;

function readSeeds(text) {
  const parts = text.split(/[\s,]+/).filter((s) => s !== "");
  if (parts.length < 2 || parts.length > 8) return {error: `give 2 to 8 seeds separated by commas (got ${parts.length})`};
  const seeds = [];
  for (const p of parts) {
    if (!/^\d+$/.test(p) || Number(p) > MAX_SEED) return {error: `'${p}' is not a seed: give whole numbers ≥ 0`};
    seeds.push(Number(p));
  }
  return {seeds};
}

async function mix() {
  const model = current();
  if (!model || !model.operations.includes("mix")) return;
  clearErrors("mix");
  const {seeds, error} = readSeeds($("mix-seeds").value);
  if (error) {
    mixRequests.cancel();
    setError("mix-seeds", "mix", error);
    setStale("mix-figure", mixShown);
    return;
  }
  const layer = Number($("mix-layer").value);
  const id = mixRequests.next();
  try {
    const blob = await tracked(post(model.name, "mix", {seeds, layer}, "image/png").then((r) => r.blob()));
    if (!mixRequests.isCurrent(id)) return;
    const img = showBlob($("mix-grid"), blob);
    img.dataset.seeds = seeds.join(",");
    img.dataset.layer = String(layer);
    img.hidden = false;
    labelMixGrid(seeds);
    mixShown = true;
    $("mix-caption").textContent = `${model.name} · seeds ${seeds.join(", ")} · fine styles from layer ${layer}`;
    setStale("mix-figure", false);
  } catch (err) {
    if (!mixRequests.isCurrent(id)) return;
    setError(fieldOf(err.message, [[/^seeds\b/, "mix-seeds"], [/^layer\b/, "mix-layer"]], "mix"), "mix", err.message);
    setStale("mix-figure", mixShown);
  }
}

// Seed labels beside the grid: a row's coarse styles and a column's fine styles.
function labelMixGrid(seeds) {
  const label = (text, title) => Object.assign(document.createElement("span"), {textContent: text, title});
  $("mix-cols").replaceChildren(...seeds.map((s) => label(String(s), `fine styles of seed ${s}`)));
  $("mix-rows").replaceChildren(...seeds.map((s) => label(String(s), `coarse styles of seed ${s}`)));
  $("mix-wrap").style.setProperty("--k", String(seeds.length));
  $("mix-wrap").hidden = false;
}

// -- reconstruct (models with :reconstruct) ------------------------------------------------------------
const reconRequests = latest();
let drawn = false;        // anything on the drawing canvas?
let centre = true;        // centre the digit like MNIST (fresh drawings); not when drawing over an upload
let uploaded = null;      // {bitmap, invert}: an upload not drawn over, sent from its own pixels
let reconShown = false;

function clearDrawing() {
  const ctx = $("draw").getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, $("draw").width, $("draw").height);
  drawn = false;
  centre = true;
  uploaded = null;
  $("draw-caption").textContent = "your drawing";
}

function setupDrawing() {
  const canvas = $("draw");
  const ctx = canvas.getContext("2d");
  let last = null;
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  };
  const width = canvas.width / 12;  // ~2.3 px at 28 × 28, like an MNIST pen stroke
  const stroke = (from, to) => {
    ctx.fillStyle = ctx.strokeStyle = "#fff";
    ctx.beginPath();
    if (from[0] === to[0] && from[1] === to[1]) {  // a dot (a zero-length line draws nothing)
      ctx.arc(...from, width / 2, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    ctx.lineWidth = width;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.moveTo(...from);
    ctx.lineTo(...to);
    ctx.stroke();
  };
  // Pointer events cover mouse, pen and touch alike.
  canvas.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    last = at(e);
    stroke(last, last);
    drawn = true;
    uploaded = null;
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!last) return;
    const p = at(e);
    stroke(last, p);
    last = p;
  });
  const end = () => { if (last) { last = null; reconstructSoon(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
}

// The drawing (or upload) → one image of `shape` [h, w, c] in `range`: the canvas of that size
// (grey when c = 1) and its values as nested lists [h][w][c].
function padImage(shape, range) {
  const [h, w, c] = shape;
  const [lo, hi] = range;
  const src = $("draw");
  const out = document.createElement("canvas");
  out.width = w; out.height = h;
  const ctx = out.getContext("2d", {willReadFrequently: true});
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, w, h);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  if (uploaded) {
    fit(ctx, uploaded.bitmap, w, h, uploaded.invert);
  } else if (centre) {
    // MNIST: the digit scaled into a 20 × 20 box, then moved so its centre of mass is the centre.
    const box = inkBox(src);
    const scale = (20 / 28) * Math.min(w / box.w, h / box.h);
    const dw = box.w * scale, dh = box.h * scale;
    ctx.drawImage(src, box.x, box.y, box.w, box.h, (w - dw) / 2, (h - dh) / 2, dw, dh);
    const [cx, cy] = massCentre(ctx.getImageData(0, 0, w, h).data, w, h);
    const dx = Math.round(w / 2 - cx), dy = Math.round(h / 2 - cy);
    if (dx || dy) {
      ctx.fillRect(0, 0, w, h);
      ctx.drawImage(src, box.x, box.y, box.w, box.h, (w - dw) / 2 + dx, (h - dh) / 2 + dy, dw, dh);
    }
  } else {
    ctx.drawImage(src, 0, 0, w, h);
  }
  const pixels = ctx.getImageData(0, 0, w, h);
  const px = pixels.data;
  if (c === 1) {  // grey, so that a PNG of this canvas is what a grey model takes
    for (let k = 0; k < px.length; k += 4) px[k] = px[k + 1] = px[k + 2] = Math.round(0.299 * px[k] + 0.587 * px[k + 1] + 0.114 * px[k + 2]);
    ctx.putImageData(pixels, 0, 0);
  }
  const value = (v) => Math.round((lo + (hi - lo) * v / 255) * 1e4) / 1e4;
  const image = [];
  for (let y = 0; y < h; y++) {
    const row = [];
    for (let x = 0; x < w; x++) {
      const k = 4 * (y * w + x);
      row.push(c === 1 ? [value(0.299 * px[k] + 0.587 * px[k + 1] + 0.114 * px[k + 2])]
        : [value(px[k]), value(px[k + 1]), value(px[k + 2])]);
    }
    image.push(row);
  }
  return {canvas: out, image};
}

function inkBox(canvas) {
  const {width, height} = canvas;
  const d = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (d[4 * (y * width + x)] > 20) {
        x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
    }
  }
  if (x1 < 0) return {x: 0, y: 0, w: width, h: height};
  const size = Math.max(x1 - x0, y1 - y0) + 1;  // a square box keeps a "1" thin
  return {x: (x0 + x1 + 1 - size) / 2, y: (y0 + y1 + 1 - size) / 2, w: size, h: size};
}

function massCentre(d, w, h) {
  let m = 0, sx = 0, sy = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = d[4 * (y * w + x)];
      m += v; sx += v * (x + 0.5); sy += v * (y + 0.5);
    }
  }
  return m ? [sx / m, sy / m] : [w / 2, h / 2];
}

const reconstructSoon = debounce(reconstruct, 120);

// The drawing area's request: :reconstruct (VAE/AE) or :translate (image-to-image models).
async function reconstruct() {
  const model = current();
  if (!model || !drawn) return;
  if (isTranslator(model)) return translate(model);
  if (!model.operations.includes("reconstruct")) return;
  clearErrors("reconstruct");
  const {image} = padImage(model.image_shape, model.value_range);
  paint($("recon-input"), image, model.value_range);
  const [h, w, c] = model.image_shape;
  $("recon-input-caption").textContent = `as sent (${h}×${w}×${c})`;
  const body = {images: [image], format: "png"};
  if (model.conditional) body.label = classOf(model) ?? 0;
  const id = reconRequests.next();
  try {
    const blob = await tracked(post(model.name, "reconstruct", body, "image/png").then((r) => r.blob()));
    if (!reconRequests.isCurrent(id)) return;
    const img = showBlob($("recon"), blob);
    img.dataset.request = String(id);
    img.hidden = false;
    reconShown = true;
    $("recon-caption").textContent = `${model.name} · decoded from the posterior mean` +
      (body.label !== undefined ? ` · class ${body.label}` : "");
    setStale("recon-figure", false);
  } catch (err) {
    if (!reconRequests.isCurrent(id)) return;
    setError(fieldOf(err.message, [[/^label\b|class label/, "label"]], "recon"), "reconstruct", err.message);
    setStale("recon-figure", reconShown);
  }
}

async function translate(model) {
  clearErrors("reconstruct");
  const target = padTarget(model);
  const {canvas} = padImage(target.shape, target.range);
  const sent = $("recon-input");
  sent.width = canvas.width; sent.height = canvas.height;
  sent.getContext("2d").drawImage(canvas, 0, 0);
  $("recon-input-caption").textContent = `as sent (${target.shape.join("×")}, PNG)`;
  const query = {format: "png", ...(target.direction ? {direction: target.direction} : {})};
  const id = reconRequests.next();
  try {
    const png = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    const blob = await tracked(post(model.name, "translate", png, "image/png", query).then((r) => r.blob()));
    if (!reconRequests.isCurrent(id)) return;
    const img = showBlob($("recon"), blob);
    img.dataset.request = String(id);
    img.dataset.direction = target.direction || "";
    img.hidden = false;
    reconShown = true;
    $("recon-caption").textContent = `${model.name} · ${target.shape.join("×")} → ` +
      `${target.output.shape.slice(1).join("×")}` + (target.direction ? ` · ${target.direction}` : "");
    setStale("recon-figure", false);
  } catch (err) {
    if (!reconRequests.isCurrent(id)) return;
    setError(fieldOf(err.message, [[/^direction\b/, "direction"]], "recon"), "reconstruct", err.message);
    setStale("recon-figure", reconShown);
  }
}

// An uploaded image: shown on the drawing area and sent resized to the model's shape (an image of
// that shape goes as it is). A light background is inverted: the models saw light digits on black.
async function upload(file) {
  setError("upload", "upload", "");
  if (!file) return;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (err) {
    setError("upload", "upload", `${file.name} is not an image this browser can read`);
    return;
  }
  clearDrawing();
  const model = current();
  // A light background is inverted for grey inputs only (digits are light on black).
  const invert = (!model || padTarget(model).shape[2] === 1) && lightBorder(bitmap);
  const canvas = $("draw");
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;  // big pixels, as the model will see them
  fit(ctx, bitmap, canvas.width, canvas.height, invert);
  ctx.imageSmoothingEnabled = true;
  drawn = true;
  centre = false;
  uploaded = {bitmap, invert};
  $("draw-caption").textContent = `your upload (${file.name})`;
  reconstruct();
}

// Draws `bitmap` into a w × h context (already black), scaled to fit and centred; inverted if asked.
function fit(ctx, bitmap, w, h, invert) {
  const scale = Math.min(w / bitmap.width, h / bitmap.height);
  const dw = bitmap.width * scale, dh = bitmap.height * scale, x = (w - dw) / 2, y = (h - dh) / 2;
  ctx.drawImage(bitmap, x, y, dw, dh);
  if (invert) {
    ctx.globalCompositeOperation = "difference";
    ctx.fillStyle = "#fff";
    ctx.fillRect(x, y, dw, dh);
    ctx.globalCompositeOperation = "source-over";
  }
}

function lightBorder(bitmap) {
  const {width: w, height: h} = bitmap;
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  const ctx = c.getContext("2d", {willReadFrequently: true});
  ctx.drawImage(bitmap, 0, 0);
  const d = ctx.getImageData(0, 0, w, h).data;
  let sum = 0, count = 0;
  const add = (x, y) => { const k = 4 * (y * w + x); sum += (d[k] + d[k + 1] + d[k + 2]) / 3; count++; };
  for (let x = 0; x < w; x++) { add(x, 0); add(x, h - 1); }
  for (let y = 0; y < h; y++) { add(0, y); add(w - 1, y); }
  return sum / count > 127;
}

// -- latent perturbation (models with :encode and :codes: the VAE family) ------------------------------
const latentRequests = latest();
const LATENT_SPAN = 3;     // sliders run over [-3, 3]: the prior's N(0, 1) almost entirely
const MAX_SLIDERS = 64;
let latentStart = null;    // {code, what}: where the sliders started
let latentCode = null;     // the code the sliders show now
let latentShown = false;

function hasLatentPanel(model) {
  return model.operations.includes("encode") && model.operations.includes("codes") &&
    model.latent_dim <= MAX_SLIDERS;
}

// Per dimension, the factor it carries most, where the export knows its training data's factors.
function dimensionNames(model) {
  const dims = (model.facts && model.facts.factors && model.facts.factors.dimensions) || [];
  return Array.from({length: model.latent_dim}, (_, i) => (dims[i] && dims[i].factor) || null);
}

function buildSliders(model) {
  const names = dimensionNames(model);
  $("latent-sliders").replaceChildren(...names.map((name, i) => {
    const row = document.createElement("div");
    row.className = "latent-dim";
    const label = document.createElement("label");
    label.htmlFor = `latent-${i}`;
    label.textContent = name ? `z${i} · ${name}` : `z${i}`;
    label.title = name ? `dimension ${i}: carries ${name} most (mutual information)` : `dimension ${i}`;
    const input = document.createElement("input");
    Object.assign(input, {type: "range", id: `latent-${i}`, min: String(-LATENT_SPAN), max: String(LATENT_SPAN),
                          step: "0.05", value: "0"});
    input.dataset.dim = String(i);
    const out = document.createElement("output");
    out.id = `latent-${i}-value`;
    out.htmlFor = input.id;
    input.addEventListener("input", () => {
      latentCode[i] = Number(input.value);
      out.textContent = latentCode[i].toFixed(2);
      row.classList.toggle("moved", latentCode[i] !== latentStart.code[i]);
      decodeLatentSoon();
    });
    row.append(label, input, out);
    return row;
  }));
}

function setLatent(code, what) {
  latentStart = {code: code.slice(), what};
  latentCode = code.slice();
  code.forEach((v, i) => {
    $(`latent-${i}`).value = String(v);  // the slider clamps; the code keeps its value
    $(`latent-${i}-value`).textContent = v.toFixed(2);
    $(`latent-${i}`).closest(".latent-dim").classList.remove("moved");
  });
  decodeLatent();
}

async function latentFromSeed() {
  const model = current();
  if (!model || !hasLatentPanel(model)) return;
  clearErrors("latent");
  const {seed, error} = readSeed($("latent-seed"), "the seed");
  if (error) { setError("latent-seed", "latent", error); return; }
  try {
    const answer = await tracked(post(model.name, "codes", {seeds: [seed]}, "application/json").then((r) => r.json()));
    if (current() !== model) return;
    setLatent(answer.z[0], `seed ${seed}`);
  } catch (err) {
    setError(fieldOf(err.message, [[/^seeds?\b/, "latent-seed"]], "latent"), "latent", err.message);
  }
}

async function latentFromDrawing() {
  const model = current();
  if (!model || !hasLatentPanel(model)) return;
  clearErrors("latent");
  if (!drawn) { setError("latent-drawing", "latent", "draw a digit (or upload a PNG) in the panel above first"); return; }
  const {image} = padImage(model.image_shape, model.value_range);
  const body = {images: [image]};
  if (model.conditional) body.label = classOf(model) ?? 0;
  try {
    const answer = await tracked(post(model.name, "encode", body, "application/json").then((r) => r.json()));
    if (current() !== model) return;
    // The code is the encoder's output with role code_mean (the posterior mean) or code.
    const encoder = Object.values(model.endpoints).find((ep) => ep.task === "encode");
    const k = Math.max(encoder.output_roles.indexOf("code_mean"), encoder.output_roles.indexOf("code"));
    setLatent(answer[encoder.outputs[k]][0], uploaded ? "the upload, encoded" : "the drawing, encoded");
  } catch (err) {
    setError("latent-drawing", "latent", err.message);
  }
}

const decodeLatentSoon = debounce(() => decodeLatent(), 40);

async function decodeLatent() {
  const model = current();
  if (!model || !latentCode) return;
  const id = latentRequests.next();
  const code = latentCode.slice();
  const body = {z: [code], format: "png"};
  if (model.conditional) body.label = classOf(model) ?? 0;
  try {
    const blob = await tracked(post(model.name, "generate", body, "image/png").then((r) => r.blob()));
    if (!latentRequests.isCurrent(id)) return;
    const img = showBlob($("latent-image"), blob);
    img.dataset.code = JSON.stringify(code);
    img.hidden = false;
    latentShown = true;
    const moved = code.map((v, i) => [i, v]).filter(([i, v]) => v !== latentStart.code[i]);
    $("latent-caption").textContent = `${model.name} · from ${latentStart.what}` + (moved.length
      ? ` · moved ${moved.map(([i, v]) => `z${i} to ${v.toFixed(2)}`).join(", ")}` : "");
    clearErrors("latent-decode");
    setStale("latent-figure", false);
  } catch (err) {
    if (!latentRequests.isCurrent(id)) return;
    setError("latent", "latent-decode", err.message);
    setStale("latent-figure", latentShown);
  }
}

// -- the model ----------------------------------------------------------------------------------------
function onModelChange() {
  const model = current();
  if (!model) return;
  const translator = isTranslator(model);
  document.body.dataset.mode = translator ? "translate" : "generate";
  $("model-info").textContent = translator
    ? `${model.kind} · translates ` + model.translations.map((t) => `${t.input.shape.slice(1).join("×")} → ` +
        `${t.output.shape.slice(1).join("×")}` + (t.direction ? ` (${t.direction})` : "")).join(", ")
    : `${model.kind} · latent ${model.latent_dim} · images ` +
      `${model.image_shape.join("×")}` + (model.conditional ? ` · ${model.num_classes} classes` : "");
  const ways = translator ? model.translations.filter((t) => t.direction) : [];
  $("direction-field").hidden = !ways.length;
  const keepWay = $("direction").value;
  $("direction").replaceChildren(...ways.map((t) => new Option(t.direction === "a2b" ? "A → B" : t.direction === "b2a"
    ? "B → A" : t.direction, t.direction)));
  if (ways.some((t) => t.direction === keepWay)) $("direction").value = keepWay;
  const select = $("label");
  const keep = select.value;
  select.replaceChildren(...(model.conditional
    ? [new Option("all (cycle)", "all"),
       ...Array.from({length: model.num_classes}, (_, k) => new Option(String(k), String(k)))]
    : [new Option("— (unconditional)", "all")]));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  select.disabled = !model.conditional;
  $("recon-panel").hidden = !(translator || model.operations.includes("reconstruct"));
  $("truncation-field").hidden = !isStyle(model);  // only where the export has a truncation input
  $("truncation").disabled = !isStyle(model);
  if (isStyle(model)) {
    const t = truncationInput(model);
    [$("truncation").min, $("truncation").max] = (t.value_range || [0, 1]).map(String);
  }
  const mixing = model.operations.includes("mix");
  $("mix-panel").hidden = !mixing;
  if (mixing) {
    const crossover = inputsWithRole(model, "mix", "crossover")[0];
    const [first, last] = crossover.value_range;
    const layer = $("mix-layer");
    const keep = Number(layer.value) || crossover.default;
    layer.replaceChildren(...Array.from({length: last - first + 1}, (_, k) => new Option(String(first + k),
      String(first + k))));
    layer.value = String(Math.min(Math.max(keep, first), last));
  }
  const latent = !translator && hasLatentPanel(model);
  $("latent-panel").hidden = !latent;
  latentCode = latentStart = null;
  latentShown = false;
  if (latent) buildSliders(model);
  generate();
  interpolate();
  reconstruct();
  mix();
  if (latent) latentFromSeed();
}

function debounce(fn, ms) {
  let timer;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

async function start() {
  clearDrawing();
  setupDrawing();
  try {
    const answer = await tracked(fetch("/v1/models").then(async (response) => {
      const json = await response.json();
      if (!response.ok) throw new Error(json.error || response.statusText);
      return json;
    }));
    if (!answer.models.length) throw new Error("the server has no model to serve");
    models = Object.fromEntries(answer.models.map((m) => [m.name, m]));
    // Names only (a run name is long; the kind is in the line under the controls), full name on hover.
    $("model").replaceChildren(...answer.models.map((m) => Object.assign(new Option(m.name, m.name),
                                                                          {title: `${m.name} (${m.kind})`})));
    onModelChange();
  } catch (err) {
    setError("model", "start", `could not list the models: ${err.message}`);
  }
}

$("model").addEventListener("change", onModelChange);
const debouncedGenerate = debounce(generate, 150);
$("seed").addEventListener("input", debouncedGenerate);
$("n").addEventListener("change", generate);
$("label").addEventListener("change", () => { generate(); interpolate(); reconstruct(); });
$("random-seed").addEventListener("click", () => {
  $("seed").value = String(Math.floor(Math.random() * 1e6));
  generate();
});
$("truncation").addEventListener("input", () => {
  $("truncation-value").textContent = Number($("truncation").value).toFixed(2);
  debouncedGenerate();
});
$("mix-seeds").addEventListener("input", debounce(mix, 250));
$("mix-layer").addEventListener("change", mix);
$("download-grid").addEventListener("click", () => { if (lastGrid) saveBlob(lastGrid.blob, lastGrid.filename); });
for (const id of ["seed-a", "seed-b"]) $(id).addEventListener("input", debounce(interpolate, 150));
$("method").addEventListener("change", interpolate);
$("slider").addEventListener("input", drawFrame);
$("strip").addEventListener("click", (e) => {
  const i = e.target.dataset && e.target.dataset.index;
  if (i !== undefined) { $("slider").value = i; drawFrame(); }
});
$("play").addEventListener("click", togglePlay);
$("download-strip").addEventListener("click", downloadStrip);
$("clear-drawing").addEventListener("click", () => {
  clearDrawing();
  reconRequests.cancel();
  clearErrors("reconstruct");
  $("recon").hidden = true;
  reconShown = false;
  setStale("recon-figure", false);
  const input = $("recon-input");
  input.getContext("2d").clearRect(0, 0, input.width, input.height);
  $("recon-caption").textContent = isTranslator(current()) ? "draw or upload an image to see its translation"
    : "draw a digit to see its reconstruction";
});
$("direction").addEventListener("change", reconstruct);
$("latent-from-seed").addEventListener("click", latentFromSeed);
$("latent-seed").addEventListener("keydown", (e) => { if (e.key === "Enter") latentFromSeed(); });
$("latent-from-drawing").addEventListener("click", latentFromDrawing);
$("latent-reset").addEventListener("click", () => { if (latentStart) setLatent(latentStart.code, latentStart.what); });
$("upload").addEventListener("change", (e) => { upload(e.target.files[0]); e.target.value = ""; });
start();
