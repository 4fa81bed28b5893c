// The lookalike page: send a query image to /api/search, show the matches, search again from a
// result ("more like this"), search a boxed region of the query (region.js), and show why a
// result matches (heatmaps from /api/explain, heatmap.js). No framework, no build step, no
// network beyond this server.
import { MIN_SIDE, RegionBox } from "./region.js";
import { agrees, clearHeatmap, drawHeatmap } from "./heatmap.js";
import { showDuplicates } from "./duplicates.js";

const $ = (id) => document.getElementById(id);
let lastQuery = null; // {kind: "upload", file} or {kind: "id", id}
let explainable = false; // /api/info says the index's embedder can explain
let searches = 0; // the latest search request; older answers are dropped
let explanations = 0; // the same for explanations
let explained = null; // {id, answer} of the result whose heatmaps are on
let pending = null; // the debounce timer of a region search

/** Pause after the user lets go of the box before searching, so a drag sends one request. */
const DEBOUNCE_MS = 250;

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function params() {
  const p = new URLSearchParams();
  p.set("k", $("k").value);
  if ($("label").value) p.append("label", $("label").value);
  if ($("folder").value.trim()) p.set("folder", $("folder").value.trim());
  const field = $("field").value;
  if (field && ($("min").value !== "" || $("max").value !== "")) {
    p.set("field", field);
    if ($("min").value !== "") p.set("min", $("min").value);
    if ($("max").value !== "") p.set("max", $("max").value);
  }
  if ($("sort").value) p.set("sort", $("sort").value);
  if ($("verify").checked) p.set("verify", "true");
  return p;
}

async function readError(response) {
  try {
    const body = await response.json();
    return body.detail || body.error || response.statusText;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

function uploadForm(query) {
  const form = new FormData();
  form.append("image", query.file, query.file.name || "pasted.png");
  return form;
}

/** The request for ``query`` at ``path`` (search or explain) with ``p`` as its parameters. */
function send(query, path, p) {
  if (query.kind === "upload") {
    return fetch(`${path}?${p}`, { method: "POST", body: uploadForm(query) });
  }
  return fetch(`${path}?${p}`);
}

async function run(query) {
  lastQuery = query;
  clearTimeout(pending);
  showError("");
  const p = params();
  const box = region.text();
  if (box) {
    if (region.tooSmall()) return; // the hint says why; nothing is sent
    p.set("box", box);
  }
  const ticket = ++searches;
  $("status").textContent = box ? "Searching the region…" : "Searching…";
  let response;
  try {
    const path = query.kind === "upload" ? "/api/search" : `/api/search/${query.id}`;
    response = await send(query, path, p);
  } catch (error) {
    if (ticket !== searches) return;
    showError(`The server did not answer: ${error.message}`);
    $("status").textContent = "";
    return;
  }
  if (ticket !== searches) return; // the user has moved on; a newer answer is coming
  if (!response.ok) {
    showError(await readError(response));
    $("status").textContent = "";
    return;
  }
  render(await response.json());
}

/** Search again shortly, once the user has let go of the box (pointer up, key up, clear). */
function searchSoon() {
  clearTimeout(pending);
  if (!lastQuery || region.tooSmall()) return;
  pending = setTimeout(() => run(lastQuery), DEBOUNCE_MS);
}

function render(result) {
  const list = $("results");
  list.replaceChildren();
  forgetExplanation();
  const where = result.box ? ` for the region ${result.box.map(Math.round).join(",")}` : "";
  $("status").textContent = result.matches.length
    ? `${result.matches.length} results${where} in ${result.took_ms.toFixed(0)} ms`
    : `No image passes these filters${where}.`;
  $("query-why").hidden = !explainable || !result.matches.length;
  // Ranks that do not follow the scores (the stages reordered them; not a field sort): say why.
  const scores = result.matches.map((m) => m.score);
  const inOrder = scores.every((s, i) => i === 0 || scores[i - 1] >= s);
  $("order-note").hidden = inOrder || Boolean($("sort").value);
  for (const match of result.matches) {
    const item = document.createElement("li");
    item.dataset.id = match.id;
    item.title = `${match.path}\nclick: more like this`;
    const thumb = document.createElement("div");
    thumb.className = "thumb";
    const img = document.createElement("img");
    img.src = match.thumbnail_url;
    img.alt = match.name;
    img.loading = "lazy";
    const heat = document.createElement("canvas");
    heat.className = "heat";
    heat.hidden = true;
    heat.setAttribute("aria-hidden", "true");
    thumb.append(img, heat);
    const score = document.createElement("div");
    score.className = "score";
    score.textContent = `#${match.rank} · ${match.score.toFixed(3)}`;
    if (match.inliers !== null && match.inliers !== undefined) {
      score.textContent += ` · ${match.inliers} inliers`;
    }
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = match.name;
    const meta = document.createElement("ul");
    meta.className = "meta";
    const fields = Object.entries(match.metadata);
    if (match.label) fields.unshift(["label", match.label]);
    for (const [key, value] of fields) {
      const li = document.createElement("li");
      li.textContent = `${key}: ${value}`;
      meta.append(li);
    }
    item.append(thumb, score, name, meta);
    if (explainable) item.append(whyButton(match));
    item.addEventListener("click", () => {
      // The full image, not the thumbnail: a box is in pixels of the image itself.
      showQuery(match.image_url);
      run({ kind: "id", id: match.id });
    });
    list.append(item);
  }
  histogram(result.matches.map((m) => m.score));
}

function histogram(scores) {
  const svg = $("histogram");
  svg.replaceChildren();
  $("histogram-box").hidden = scores.length === 0;
  if (!scores.length) return;
  const bins = 10;
  const low = Math.min(...scores);
  const high = Math.max(...scores);
  const width = (high - low) / bins || 1;
  const counts = new Array(bins).fill(0);
  for (const s of scores) counts[Math.min(bins - 1, Math.floor((s - low) / width))] += 1;
  const top = Math.max(...counts);
  const ns = "http://www.w3.org/2000/svg";
  counts.forEach((count, i) => {
    const bar = document.createElementNS(ns, "rect");
    const h = (count / top) * 90;
    bar.setAttribute("x", String(10 + i * 24));
    bar.setAttribute("y", String(100 - h));
    bar.setAttribute("width", "20");
    bar.setAttribute("height", String(h));
    bar.setAttribute("fill", "#2563eb");
    svg.append(bar);
  });
  for (const [x, text] of [[10, low.toFixed(3)], [200, high.toFixed(3)]]) {
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", String(x));
    label.setAttribute("y", "116");
    label.setAttribute("font-size", "11");
    label.textContent = text;
    svg.append(label);
  }
}

function whyButton(match) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "why";
  button.textContent = "Why?";
  button.setAttribute("aria-pressed", "false");
  button.setAttribute("aria-label", `Why does ${match.name} match? Show heatmaps`);
  button.addEventListener("click", (event) => {
    event.stopPropagation(); // not "more like this"
    if (explained && explained.id === match.id) forgetExplanation();
    else explain(match.id);
  });
  return button;
}

function card(id) {
  return document.querySelector(`#results > li[data-id="${id}"]`);
}

/** Fetch why result ``id`` matches the query (with its box) and draw both heatmaps. */
async function explain(id) {
  if (!lastQuery) return;
  forgetExplanation();
  showError("");
  const ticket = ++explanations;
  const p = new URLSearchParams();
  if (lastQuery.kind === "id") p.set("query_id", String(lastQuery.id));
  p.set("id", String(id));
  if (region.text() && !region.tooSmall()) p.set("box", region.text());
  let response;
  try {
    response = await send(lastQuery, "/api/explain", p);
  } catch (error) {
    if (ticket === explanations) showError(`The server did not answer: ${error.message}`);
    return;
  }
  if (ticket !== explanations) return;
  if (!response.ok) {
    showError(await readError(response));
    return;
  }
  const answer = await response.json();
  const item = card(id);
  if (ticket !== explanations || !item) return;
  explained = { id, answer };
  // The overlay takes the thumbnail's shape: wait for it (a lazy image may never load).
  const thumbnail = item.querySelector(".thumb img");
  thumbnail.loading = "eager";
  await Promise.race([
    thumbnail.decode().catch(() => undefined),
    new Promise((resolve) => setTimeout(resolve, 3000)),
  ]);
  if (ticket !== explanations) return;
  item.querySelector(".why").setAttribute("aria-pressed", "true");
  $("query-why").setAttribute("aria-pressed", "true");
  drawExplanation();
  const name = item.querySelector(".name").textContent;
  $("status").textContent = agrees(answer.result_heatmap)
    ? `Heatmaps on: the parts of ${name} and of the query that match are warm.`
    : `Heatmaps on: no part of ${name} stands out.`;
}

/** (Re)draw the heatmaps of the explained result, at the images' current displayed sizes. */
function drawExplanation() {
  if (!explained) return;
  const item = card(explained.id);
  if (item) {
    const img = item.querySelector(".thumb img");
    drawHeatmap(item.querySelector(".thumb .heat"), img, explained.answer.result_heatmap);
  }
  drawQueryHeat();
}

function drawQueryHeat() {
  if (explained && $("query-why").getAttribute("aria-pressed") === "true") {
    drawHeatmap($("query-heat"), $("query-preview"), explained.answer.query_heatmap);
  } else {
    clearHeatmap($("query-heat"));
  }
}

/** Take every heatmap away (toggle off, a new search). */
function forgetExplanation() {
  explanations += 1;
  explained = null;
  for (const button of document.querySelectorAll("#results .why[aria-pressed='true']")) {
    button.setAttribute("aria-pressed", "false");
  }
  for (const canvas of document.querySelectorAll("#results .heat:not([hidden])")) {
    clearHeatmap(canvas);
  }
  $("query-why").setAttribute("aria-pressed", "false");
  clearHeatmap($("query-heat"));
}

/** Show ``src`` as the query image; a new image starts without a box or heatmaps. */
function showQuery(src) {
  region.clear({ commit: false });
  forgetExplanation();
  $("query-preview").src = src;
  $("stage").hidden = false;
  $("drop").classList.add("compact");
  $("region-tools").hidden = false;
}

function useFile(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    showError(`${file.name} is not an image (${file.type}).`);
    return;
  }
  showQuery(URL.createObjectURL(file));
  run({ kind: "upload", file });
}

/** Keep the clear button in step with the box. */
function regionChanged(box) {
  $("clear-region").disabled = box === null;
  if (box === null) $("region-hint").textContent = "";
}

/** The user let go of the box: say what it is (a live region) and search it soon. */
function regionCommitted(box) {
  if (region.tooSmall()) {
    const [w, h] = region.size();
    $("region-hint").textContent =
      `The region is ${w}×${h} pixels: make both sides at least ${MIN_SIDE} pixels to search it.`;
  } else {
    $("region-hint").textContent = box ? `Region ${region.text()} (pixels of the image).` : "";
  }
  searchSoon();
}

const region = new RegionBox($("query-preview"), $("region"), {
  change: regionChanged,
  commit: regionCommitted,
});

async function loadInfo() {
  const response = await fetch("/api/info");
  if (!response.ok) {
    showError(await readError(response));
    return;
  }
  const info = await response.json();
  explainable = info.explainable === true;
  $("index-info").textContent =
    `${info.count.toLocaleString()} images · ${info.embedder} · ${info.metric}`;
  for (const [label, count] of Object.entries(info.labels)) {
    const option = new Option(`${label} (${count})`, label);
    $("label").append(option);
  }
  if (info.numeric_fields.length) {
    $("numeric").hidden = false;
    for (const field of info.numeric_fields) {
      $("field").append(new Option(field, field));
      $("sort").append(new Option(`by ${field}`, field));
    }
  }
}

const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  useFile(event.dataTransfer.files[0]);
});
drop.addEventListener("click", (event) => { if (event.target === drop) $("file").click(); });
$("file").addEventListener("change", (event) => useFile(event.target.files[0]));
document.addEventListener("paste", (event) => {
  const item = [...event.clipboardData.items].find((i) => i.type.startsWith("image/"));
  if (item) useFile(item.getAsFile());
});
drop.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    $("file").click();
  }
});
$("select-region").addEventListener("click", () => region.selectCentred());
$("clear-region").addEventListener("click", () => region.clear());
$("query-why").addEventListener("click", () => {
  const button = $("query-why");
  if (button.getAttribute("aria-pressed") === "true") {
    button.setAttribute("aria-pressed", "false");
  } else if (explained) {
    button.setAttribute("aria-pressed", "true");
  } else {
    // Nothing explained yet: explain the best match.
    const first = document.querySelector("#results > li");
    if (first) explain(Number(first.dataset.id));
    return;
  }
  drawQueryHeat();
});
document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName);
  if (event.key === "Escape" && region.box && !typing) {
    region.clear();
    $("select-region").focus();
  }
});
new ResizeObserver(() => drawExplanation()).observe($("query-preview"));
window.addEventListener("resize", () => drawExplanation());
$("options").addEventListener("change", () => { if (lastQuery) run(lastQuery); });
$("options").addEventListener("submit", (event) => { event.preventDefault(); if (lastQuery) run(lastQuery); });
loadInfo();

/** Two views: search (the default) and duplicates (#duplicates, duplicates.js). */
function route() {
  const duplicates = location.hash === "#duplicates";
  $("search-view").hidden = duplicates;
  $("duplicates-view").hidden = !duplicates;
  for (const [id, on] of [["to-search", !duplicates], ["to-duplicates", duplicates]]) {
    if (on) $(id).setAttribute("aria-current", "page");
    else $(id).removeAttribute("aria-current");
  }
  if (duplicates) showDuplicates();
}
window.addEventListener("hashchange", route);
route();
