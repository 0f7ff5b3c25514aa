// facemath studio: plain JavaScript over the JSON API (facemath_core/studio/app.py); no framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { menus: null, selected: new Set(), uploads: [], library: [], curve: [], events: null };

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// Every API call: JSON in, JSON out; an error answer is {"error": "..."} and is shown, once, at the top.
async function api(path, body) {
  const options = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    showError(`the studio server cannot be reached (${err.message})`);
    throw err;
  }
  const data = await response.json().catch(() => ({ error: `${path}: answer ${response.status} is not JSON` }));
  if (!response.ok || data.error) {
    showError(data.error || `${path}: answer ${response.status}`);
    throw new Error(data.error);
  }
  showError("");
  return data;
}

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text ?? value;
  select.appendChild(o);
}

function figure(src, caption, onClick) {
  const f = document.createElement("figure");
  const img = document.createElement("img");
  img.src = src;
  img.alt = caption;
  f.appendChild(img);
  const c = document.createElement("figcaption");
  c.textContent = caption;
  f.appendChild(c);
  if (onClick) f.addEventListener("click", () => onClick(f));
  return f;
}

// --- component parameters: controls built from each component's declared schema ----------------------------------
// menus.components[kind][name].schema[key] = {type, default, choices?, ge?, gt?, le?, lt?, help?} (host/schema.py),
// the same description `facemath plugins --json` prints. Only values changed from the default are sent.

function paramControl(kind, name, key, p) {
  const label = document.createElement("label");
  label.title = p.help || "";
  let input;
  if (p.choices) {
    input = document.createElement("select");
    p.choices.forEach((c) => option(input, JSON.stringify(c), String(c)));
    input.value = JSON.stringify(p.default);
  } else if (p.type === "bool") {
    input = Object.assign(document.createElement("input"), { type: "checkbox", checked: Boolean(p.default) });
  } else if (p.type === "int" || p.type === "float") {
    input = Object.assign(document.createElement("input"), { type: "number", step: p.type === "int" ? 1 : "any" });
    if (p.ge !== undefined || p.gt !== undefined) input.min = p.ge ?? p.gt;
    if (p.le !== undefined || p.lt !== undefined) input.max = p.le ?? p.lt;
    input.value = p.default ?? "";
  } else {
    input = Object.assign(document.createElement("input"), { type: "text", value: p.default ?? "" });
  }
  Object.assign(input.dataset, { kind, component: name, key, type: p.choices ? "choice" : p.type, initial: JSON.stringify(p.default) });
  label.append(`${key} `, input);
  if (p.help) label.append(Object.assign(document.createElement("span"), { className: "help", textContent: p.help }));
  return label;
}

// One fieldset per component with parameters, in the panel where that kind is chosen; shown while it is chosen.
function buildParams() {
  const panels = { loss: "project-params", optimizer: "project-params", init: "project-params", constraint: "project-params", blender: "blender-params" };
  for (const [kind, byName] of Object.entries(state.menus.components)) {
    for (const [name, c] of Object.entries(byName)) {
      // A parameter whose default --param cannot type (a list, say) has no control here either.
      const keys = Object.keys(c.schema).filter((key) => c.schema[key].type !== "any");
      if (!keys.length) continue;
      const box = document.createElement("fieldset");
      Object.assign(box.dataset, { kind, component: name });
      box.append(Object.assign(document.createElement("legend"), { textContent: `${kind} ${name} (${c.provider})` }));
      keys.forEach((key) => box.appendChild(paramControl(kind, name, key, c.schema[key])));
      const panel = kind === "operator" ? (c.arity === 3 || c.arity === null ? ["interp-params", "operator-params"] : ["operator-params"]) : [panels[kind]];
      panel.forEach((id, i) => $(id).appendChild(i ? box.cloneNode(true) : box));
    }
  }
  showParams();
}

function chosen(kind) {
  const loss = [...document.querySelectorAll("#losses input[data-loss]")].filter((c) => c.checked).map((c) => c.dataset.loss);
  const preset = Boolean($("preset").value);
  return {
    loss: preset ? [] : loss,
    optimizer: [$("optimizer").value],
    init: [$("init").value],
    constraint: [$("constraint").value],
    blender: [$("blender").value],
  }[kind];
}

function showParams() {
  document.querySelectorAll("#project-params fieldset, #blender-params fieldset").forEach((box) => {
    box.hidden = !chosen(box.dataset.kind).includes(box.dataset.component);
  });
  document.querySelectorAll("#interp-params fieldset").forEach((box) => { box.hidden = box.dataset.component !== $("interp-method").value; });
}

function controlValue(input) {
  if (input.dataset.type === "choice") return JSON.parse(input.value);
  if (input.type === "checkbox") return input.checked;
  if (input.type === "number") return input.value === "" ? null : Number(input.value);
  return input.value;
}

// {component: {parameter: value}} of the shown controls of these kinds whose value differs from the default.
function paramValues(panel, kinds) {
  const out = {};
  panel.querySelectorAll("fieldset:not([hidden]) [data-key]").forEach((input) => {
    if (!kinds.includes(input.dataset.kind)) return;
    const value = controlValue(input);
    if (value === null || JSON.stringify(value) === input.dataset.initial) return;
    if (value === "" && input.dataset.initial === "null") return;  // an optional text left empty
    (out[input.dataset.component] ??= {})[input.dataset.key] = value;
  });
  return out;
}

function withOperatorParams(body) {
  const params = paramValues($("operator-params"), ["operator"]);
  return Object.keys(params).length ? { ...body, params } : body;
}

// --- faces, upload, projection ------------------------------------------------------------------------------

function toggle(face, f) {
  if (state.selected.has(face)) state.selected.delete(face); else state.selected.add(face);
  f.classList.toggle("selected", state.selected.has(face));
}

async function loadMenus() {
  const m = (state.menus = await api("/api/menus"));
  $("backend").textContent = m.backend;
  m.presets.forEach((p) => option($("preset"), p));
  m.inits.forEach((i) => option($("init"), i));
  $("init").value = m.init_default || "uniform";
  $("optimizer").options[0].textContent = `(default: ${m.optimizer_default})`;
  m.optimizers.forEach((o) => option($("optimizer"), o));
  $("constraint").options[0].textContent = `(default: ${m.constraint_default})`;
  m.constraints.forEach((c) => option($("constraint"), c));
  m.blenders.forEach((b) => option($("blender"), b));
  ["lerp", "slerp"].filter((o) => m.operators.includes(o)).concat(m.operators.filter((o) => o !== "lerp" && o !== "slerp" && o !== "project_out"))
    .forEach((o) => option($("interp-method"), o));
  $("interp-method").value = m.operators.includes("slerp") ? "slerp" : $("interp-method").value;
  for (const loss of m.losses) {
    const label = document.createElement("label");
    label.title = m.components.loss[loss].help;
    const tick = Object.assign(document.createElement("input"), { type: "checkbox", checked: loss === "contextual" });
    tick.dataset.loss = loss;
    const weight = Object.assign(document.createElement("input"), { type: "number", step: "any", min: 0 });
    Object.assign(weight, { value: m.components.loss[loss].default_weight ?? 1 });
    weight.dataset.weight = loss;
    weight.style.width = "4.5em";
    label.append(tick, ` ${loss} `, weight);
    $("losses").appendChild(label);
  }
  buildParams();
  m.faces.forEach((name) => $("faces").appendChild(figure(`/api/faces/${encodeURIComponent(name)}`, name, (f) => toggle(`example:${name}`, f))));
  $("download-vae").hidden = !m.vae;
  $("download-vaegan").hidden = !m.vaegan;
}

async function uploadFile(file) {
  const headers = { "Content-Type": "application/octet-stream" };  // the studio takes only image bodies here
  const response = await fetch(`/api/upload?name=${encodeURIComponent(file.name)}`, { method: "POST", headers, body: file });
  const data = await response.json().catch(() => ({ error: `upload: answer ${response.status}` }));
  if (!response.ok) return showError(data.error);
  showError("");
  const f = figure(data.image, file.name, (fig) => toggle(data.face, fig));
  $("faces").appendChild(f);
  toggle(data.face, f);
}

async function uploadPhoto(file) {
  // A photo: its faces are found and aligned to the model's template; each joins the faces, chosen for projection.
  const headers = { "Content-Type": "application/octet-stream" };
  const response = await fetch(`/api/photo?name=${encodeURIComponent(file.name)}`, { method: "POST", headers, body: file });
  const data = await response.json().catch(() => ({ error: `photo: answer ${response.status}` }));
  if (!response.ok) return showError(data.error);
  showError("");
  for (const face of data.faces) {
    const f = figure(face.image, face.name, (fig) => toggle(face.face, fig));
    $("faces").appendChild(f);
    toggle(face.face, f);
  }
  option($("photo-name"), data.photo, data.photo);
  $("photo-name").value = data.photo;
  $("photo-row").hidden = false;
}

async function editPhoto(amounts) {
  // The photo with its projected faces moved along the sliders (once they are in the library).
  const photo = $("photo-name").value;
  if (!photo) return;
  try {
    $("photo-image").src = (await api("/api/photo-edit", { photo, amounts })).image;
  } catch (err) { /* shown */ }
}

function lossTerms() {
  const chosen = [...document.querySelectorAll("#losses input[data-loss]")].filter((c) => c.checked).map((c) => c.dataset.loss);
  const all = [...document.querySelectorAll("#losses input[data-loss]")].map((c) => c.dataset.loss);
  // An unticked contextual term is dropped explicitly (contextual=0), as on the command line.
  const terms = chosen.map((name) => `${name}=${document.querySelector(`#losses input[data-weight="${name}"]`).value}`);
  if (all.includes("contextual") && !chosen.includes("contextual")) terms.push("contextual=0");
  return terms;
}

async function startProjection(body) {
  const started = await api("/api/project", body);
  state.curve = [];
  state.start = started.start || "";  // where the search starts, in words (the model's own encoder by default)
  $("cancel-btn").disabled = false;
  $("project-btn").disabled = true;
  $("complete-btn").disabled = true;
  $("status").textContent = state.start ? `starting at ${state.start}` : "starting";
  watch();
}

// What the projection panel chose, as the request's fields: init, optimizer, constraint, loss terms (unless a preset
// brings its own), and the parameters changed from their defaults, {component: {parameter: value}}.
function projectionOptions(extraKinds = []) {
  const body = { init: $("init").value, losses: lossTerms() };
  if ($("optimizer").value) body.optimizer = $("optimizer").value;
  if ($("constraint").value) body.constraint = $("constraint").value;
  if ($("preset").value) { body.preset = $("preset").value; body.losses = null; }
  const kinds = ["init", "optimizer", "constraint", ...extraKinds].concat(body.losses === null ? [] : ["loss"]);
  const params = paramValues($("project-params"), kinds);
  Object.assign(params, paramValues($("blender-params"), extraKinds));
  if (Object.keys(params).length) body.params = params;
  return body;
}

function project() {
  if (!state.selected.size) return showError("choose at least one face (click it) or upload one");
  const body = { faces: [...state.selected], steps: Number($("steps").value), ...projectionOptions() };
  return startProjection(body).catch(() => {});
}

function watch() {
  if (state.events) state.events.close();
  const events = (state.events = new EventSource("/api/project/events"));
  events.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    $("status").textContent = `step ${p.step} of ${p.steps}, loss ${p.loss === null ? "not finite" : p.loss.toPrecision(4)}`;
    if (p.loss !== null) state.curve.push(p.loss);
    if (p.image) $("preview").src = p.image;
    drawCurve();
  });
  const end = async (text) => {
    events.close();
    state.events = null;
    $("cancel-btn").disabled = true;
    $("project-btn").disabled = false;
    $("complete-btn").disabled = false;
    // The status says "done" only once the library shows the new faces (a slow machine lagged them behind).
    await refreshLibrary();
    $("status").textContent = text;
  };
  events.addEventListener("done", (e) => {
    const d = JSON.parse(e.data);
    const n = d.names.length;
    const start = state.start ? `; started at ${state.start}` : "";
    end(`${d.cancelled ? "stopped; kept" : "done:"} ${n} face${n === 1 ? "" : "s"} in the library${start}`);
    const first = d.names.length ? `/api/library/${encodeURIComponent(d.names[0])}` : null;
    if (first && state.completing) $("completion-image").src = `${first}?kind=completion&t=${Date.now()}`;
    else if (first) $("preview").src = `${first}?t=${Date.now()}`;
    state.completing = false;
  });
  events.addEventListener("failed", (e) => {
    showError(JSON.parse(e.data).message);
    state.completing = false;
    end("failed");
  });
  events.addEventListener("error", () => {
    if (events.readyState === EventSource.CLOSED) end("connection lost");
  });
}

function drawCurve() {
  const c = $("curve"), g = c.getContext("2d"), v = state.curve;
  g.clearRect(0, 0, c.width, c.height);
  if (v.length < 2) return;
  const lo = Math.min(...v), hi = Math.max(...v), span = hi - lo || 1;
  g.strokeStyle = "#2a7ae2";
  g.beginPath();
  v.forEach((y, i) => {
    const px = 30 + (i / (v.length - 1)) * (c.width - 40), py = 10 + (1 - (y - lo) / span) * (c.height - 30);
    i ? g.lineTo(px, py) : g.moveTo(px, py);
  });
  g.stroke();
  g.fillStyle = "#555";
  g.fillText(`loss ${hi.toPrecision(3)}`, 2, 10);
  g.fillText(`${lo.toPrecision(3)}`, 2, c.height - 18);
  g.fillText(`step ${v.length}`, c.width - 60, c.height - 4);
}

// --- library ------------------------------------------------------------------------------------------------

async function refreshLibrary() {
  state.library = (await api("/api/library")).faces;
  const lib = $("library");
  lib.innerHTML = "";
  for (const e of state.library) {
    const src = `/api/library/${encodeURIComponent(e.name)}?t=${Date.now()}`;
    const f = figure(src, `${e.name}${e.psnr === null ? "" : ` ${e.psnr.toFixed(1)} dB`}`);
    const a = document.createElement("a");
    a.href = `/api/library/${encodeURIComponent(e.name)}?download=1`;
    a.textContent = "PNG";
    a.setAttribute("download", "");
    f.appendChild(a);
    lib.appendChild(f);
  }
  for (const id of ["slider-base", "complete-base"]) {
    const select = $(id), keep = select.value;
    select.innerHTML = "";
    state.library.forEach((e) => option(select, e.name));
    if (state.library.some((e) => e.name === keep)) select.value = keep;
  }
  const stems = state.library.map((e) => e.name.replace(/\.[^.]*$/, ""));
  if (!$("interp-names").value && stems.length >= 2) $("interp-names").value = stems.slice(0, 3).join(", ");
  if (!$("expression").value && stems.length >= 3) $("expression").value = `${stems[0]} - ${stems[1]} + ${stems[2]}`;
  ["a", "b", "c"].forEach((k, i) => { if (!$(`analogy-${k}`).value && stems[i]) $(`analogy-${k}`).value = stems[i]; });
  updateScrubber();
  loadCanvas();
  loadSliders();
}

// --- sliders: one request in flight, the latest position wins ------------------------------------------------

let sliding = false, slideAgain = false;

async function loadSliders() {
  const box = $("sliders");
  const kept = {};  // a library refresh keeps where the sliders were
  box.querySelectorAll("input[data-attr]").forEach((i) => { kept[i.dataset.attr] = i.value; });
  box.innerHTML = "";
  if (state.library.length < 2) return;
  let data;
  try {
    const response = await fetch("/api/sliders");
    data = await response.json();
    if (!response.ok) { $("slider-hint").textContent = data.error; return; }
  } catch (err) { return; }
  $("slider-hint").textContent = "Move a slider: the face moves along that attribute's vector.";
  for (const name of data.attributes) {
    const label = document.createElement("span");
    label.textContent = name;
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min: -data.range, max: data.range, step: 0.1, value: kept[name] ?? 0 });
    input.dataset.attr = name;
    const shown = document.createElement("span");
    shown.textContent = input.value;
    input.addEventListener("input", () => { shown.textContent = input.value; slide(); });
    box.append(label, input, shown);
  }
  slide();
}

async function slide() {
  if (sliding) { slideAgain = true; return; }
  const base = $("slider-base").value;
  if (!base) return;
  sliding = true;
  const amounts = {};
  document.querySelectorAll("#sliders input[data-attr]").forEach((i) => { amounts[i.dataset.attr] = Number(i.value); });
  try {
    $("slider-image").src = (await api("/api/slide", { base, amounts })).image;
  } catch (err) { /* shown */ }
  await editPhoto(amounts);
  sliding = false;
  if (slideAgain) { slideAgain = false; slide(); }
}

// --- arithmetic ---------------------------------------------------------------------------------------------

async function evaluate() {
  const out = $("math-result");
  const data = await api("/api/math", withOperatorParams({ expression: $("expression").value })).catch(() => null);
  if (!data) return;
  out.innerHTML = "";
  data.terms.forEach((t, i) => {
    if (i || t.sign === "-") { const s = document.createElement("span"); s.className = "op"; s.textContent = t.sign; out.appendChild(s); }
    out.appendChild(figure(t.image, t.text + (t.faces.length > 1 ? ` (${t.faces.length} faces)` : "")));
  });
  const eq = document.createElement("span");
  eq.className = "op";
  eq.textContent = "=";
  out.append(eq, figure(data.result, "result"));
  const link = document.createElement("a");
  link.href = data.result;
  link.download = "result.png";
  link.textContent = "PNG";
  out.appendChild(link);
}

// --- interpolation and analogy ------------------------------------------------------------------------------

function interpNames() {
  const stems = Object.fromEntries(state.library.map((e) => [e.name.replace(/\.[^.]*$/, ""), e.name]));
  return $("interp-names").value.split(",").map((s) => s.trim()).filter(Boolean).map((s) => stems[s] || s);
}

function updateScrubber() {
  const n = interpNames().length;
  $("scrubber").max = Math.max(1, n - 1);
}

let scrubbing = false, scrubAgain = false;

async function scrub() {
  if (scrubbing) { scrubAgain = true; return; }
  scrubbing = true;
  const t = Number($("scrubber").value);
  $("scrub-t").textContent = `t = ${t.toFixed(2)}`;
  try {
    const body = { names: interpNames(), method: $("interp-method").value, t };
    const params = paramValues($("interp-params"), ["operator"]);
    if (Object.keys(params).length) body.params = params;
    $("interp-image").src = (await api("/api/interpolate", body)).image;
  } catch (err) { /* shown */ }
  scrubbing = false;
  if (scrubAgain) { scrubAgain = false; scrub(); }
}

async function analogy() {
  const body = { a: $("analogy-a").value, b: $("analogy-b").value, c: $("analogy-c").value, size: Number($("analogy-size").value) };
  const data = await api("/api/analogy", withOperatorParams(body)).catch(() => null);
  if (data) $("analogy-image").src = data.image;
}

// --- brush completion ---------------------------------------------------------------------------------------

const brush = { mask: null, image: new Image(), down: false };

function loadCanvas(force) {
  const base = $("complete-base").value;
  if (!base || (base === brush.base && force !== true)) return;  // a library refresh keeps the painting
  brush.base = base;
  brush.image.onload = () => { clearMask(); };
  brush.image.src = `/api/library/${encodeURIComponent(base)}?kind=target&t=${Date.now()}`;
}

function clearMask() {
  const c = $("brush-canvas");
  brush.mask = document.createElement("canvas");
  brush.mask.width = c.width;
  brush.mask.height = c.height;
  drawBrush();
}

function drawBrush() {
  const c = $("brush-canvas"), g = c.getContext("2d");
  g.imageSmoothingEnabled = false;
  g.clearRect(0, 0, c.width, c.height);
  if (brush.image.complete && brush.image.naturalWidth) g.drawImage(brush.image, 0, 0, c.width, c.height);
  if (brush.mask) { g.globalAlpha = 0.6; g.drawImage(brush.mask, 0, 0); g.globalAlpha = 1; }
}

function paint(e) {
  if (!brush.down || !brush.mask) return;
  const c = $("brush-canvas"), r = c.getBoundingClientRect();
  const g = brush.mask.getContext("2d");
  g.fillStyle = "#e2462a";
  g.beginPath();
  g.arc((e.clientX - r.left) * (c.width / r.width), (e.clientY - r.top) * (c.height / r.height), Number($("brush").value), 0, 2 * Math.PI);
  g.fill();
  drawBrush();
}

// The painted canvas, down to the model's size: 1 = a known pixel, 0 = painted (to complete).
function maskValues() {
  const size = state.menus.image_size, small = document.createElement("canvas");
  small.width = small.height = size;
  const g = small.getContext("2d");
  g.drawImage(brush.mask, 0, 0, size, size);
  const alpha = g.getImageData(0, 0, size, size).data;
  const values = [];
  for (let i = 3; i < alpha.length; i += 4) values.push(alpha[i] > 64 ? 0 : 1);
  return values;
}

function complete() {
  const base = $("complete-base").value;
  if (!base) return showError("project a face first: completion starts from a library face");
  state.completing = true;
  const body = { faces: [`library:${base}`], steps: Number($("complete-steps").value), blender: $("blender").value, mask: maskValues(), ...projectionOptions(["blender"]) };
  delete body.preset;  // a completion takes the chosen loss terms, never a preset's
  if (body.losses === null) body.losses = lossTerms();
  return startProjection(body).catch(() => { state.completing = false; });
}

// --- wiring -------------------------------------------------------------------------------------------------

window.addEventListener("DOMContentLoaded", async () => {
  $("project-btn").addEventListener("click", project);
  $("cancel-btn").addEventListener("click", () => api("/api/project/cancel", {}).catch(() => {}));
  $("upload").addEventListener("change", (e) => { if (e.target.files[0]) uploadFile(e.target.files[0]); e.target.value = ""; });
  $("upload-photo").addEventListener("change", (e) => { if (e.target.files[0]) uploadPhoto(e.target.files[0]); e.target.value = ""; });
  $("slider-base").addEventListener("change", slide);
  $("math-btn").addEventListener("click", evaluate);
  $("expression").addEventListener("keydown", (e) => { if (e.key === "Enter") evaluate(); });
  $("scrubber").addEventListener("input", scrub);
  $("interp-method").addEventListener("change", () => { showParams(); scrub(); });
  for (const id of ["init", "optimizer", "constraint", "blender", "preset"]) $(id).addEventListener("change", showParams);
  $("losses").addEventListener("change", showParams);
  $("interp-names").addEventListener("change", () => { updateScrubber(); scrub(); });
  $("analogy-btn").addEventListener("click", analogy);
  $("complete-base").addEventListener("change", () => loadCanvas(true));
  $("clear-btn").addEventListener("click", clearMask);
  $("complete-btn").addEventListener("click", complete);
  const c = $("brush-canvas");
  c.addEventListener("pointerdown", (e) => { brush.down = true; paint(e); });
  c.addEventListener("pointermove", paint);
  window.addEventListener("pointerup", () => { brush.down = false; });
  try {
    await loadMenus();
    await refreshLibrary();
  } catch (err) { /* shown */ }
});
