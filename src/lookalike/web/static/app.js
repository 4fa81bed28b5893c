// The lookalike page: send a query image to /api/search, show the matches, search again from a
// result ("more like this"). No framework, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
let lastQuery = null; // {kind: "upload", file} or {kind: "id", id}

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

async function run(query) {
  lastQuery = query;
  showError("");
  $("status").textContent = "Searching…";
  let response;
  try {
    if (query.kind === "upload") {
      const form = new FormData();
      form.append("image", query.file, query.file.name || "pasted.png");
      response = await fetch(`/api/search?${params()}`, { method: "POST", body: form });
    } else {
      response = await fetch(`/api/search/${query.id}?${params()}`);
    }
  } catch (error) {
    showError(`The server did not answer: ${error.message}`);
    $("status").textContent = "";
    return;
  }
  if (!response.ok) {
    showError(await readError(response));
    $("status").textContent = "";
    return;
  }
  render(await response.json());
}

function render(result) {
  const list = $("results");
  list.replaceChildren();
  $("status").textContent = result.matches.length
    ? `${result.matches.length} results in ${result.took_ms.toFixed(0)} ms`
    : "No image passes these filters.";
  for (const match of result.matches) {
    const item = document.createElement("li");
    item.dataset.id = match.id;
    item.title = `${match.path}\nclick: more like this`;
    const img = document.createElement("img");
    img.src = match.thumbnail_url;
    img.alt = match.name;
    img.loading = "lazy";
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
    item.append(img, score, name, meta);
    item.addEventListener("click", () => {
      $("query-preview").src = match.thumbnail_url;
      $("query-preview").hidden = false;
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

function useFile(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    showError(`${file.name} is not an image (${file.type}).`);
    return;
  }
  $("query-preview").src = URL.createObjectURL(file);
  $("query-preview").hidden = false;
  run({ kind: "upload", file });
}

async function loadInfo() {
  const response = await fetch("/api/info");
  if (!response.ok) {
    showError(await readError(response));
    return;
  }
  const info = await response.json();
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
$("options").addEventListener("change", () => { if (lastQuery) run(lastQuery); });
$("options").addEventListener("submit", (event) => { event.preventDefault(); if (lastQuery) run(lastQuery); });
loadInfo();
