// The duplicates view (#duplicates): groups of duplicates from /api/duplicates side by side, the
// proposed keeper of each marked with its reason; the user picks another keeper (click or arrow
// keys: each group is a set of radio buttons), marks a member "not a duplicate" (remembered by
// the server, needs --allow-writes), changes the keep rules or includes similar shots, and
// downloads the plan (POST /api/duplicates/plan) for `lookalike duplicates apply`.

const $ = (id) => document.getElementById(id);

/** The keep rules the server knows, and the argument each one needs (null: none). */
const RULES = {
  "largest-resolution": null,
  "largest-file": null,
  "oldest-exif-date": null,
  newest: null,
  "prefer-path": { label: "pattern", example: "*/originals/*" },
  "prefer-format": { label: "formats", example: "raw,heic,jpeg" },
};

const TIER_NAMES = {
  identical: "identical file",
  "same-picture": "same picture",
  "edited-copy": "edited copy",
  "similar-shot": "similar shot",
};

let readOnly = true; // until /api/info says otherwise: never offer a write the server refuses
let infoLoaded = false;
let groups = []; // the groups of the latest answer
let ruleSet = null; // the rules as last sent (null: the server's default)
const chosen = new Set(); // keepers the user picked; they win over the rules
let loads = 0; // the latest request; older answers are dropped

function showError(message) {
  $("dup-error").textContent = message;
  $("dup-error").hidden = !message;
}

async function readError(response) {
  try {
    const body = await response.json();
    return body.detail || body.error || response.statusText;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

function bytes(n) {
  if (n === null || n === undefined) return "size unknown";
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function fileName(path) {
  return path.split(/[\\/]/).pop() || path;
}

/** The rules of the editor, as rule strings; a rule waiting for its argument is left out. */
function editorRules() {
  const rules = [];
  for (const row of $("dup-rules").children) {
    const name = row.querySelector("select").value;
    const arg = row.querySelector("input").value.trim();
    if (RULES[name] === null) rules.push(name);
    else if (arg) rules.push(`${name} ${arg}`);
  }
  return rules;
}

function ruleRow(rule) {
  const [name, ...rest] = rule.split(" ");
  const row = document.createElement("li");
  const select = document.createElement("select");
  for (const known of Object.keys(RULES)) select.append(new Option(known, known));
  select.value = name in RULES ? name : "largest-resolution";
  const nameLabel = document.createElement("label");
  nameLabel.append("Rule ", select);
  const input = document.createElement("input");
  input.type = "text";
  input.value = rest.join(" ");
  const argLabel = document.createElement("label");
  const argText = document.createElement("span");
  argLabel.append(argText, " ", input);
  const showArgument = () => {
    const arg = RULES[select.value];
    argLabel.hidden = arg === null;
    if (arg !== null) {
      argText.textContent = arg.label;
      input.placeholder = arg.example;
    }
  };
  select.addEventListener("change", () => {
    showArgument();
    if (RULES[select.value] !== null) input.focus();
  });
  showArgument();
  const up = document.createElement("button");
  up.type = "button";
  up.textContent = "Move up";
  up.addEventListener("click", () => {
    if (row.previousElementSibling) {
      row.parentElement.insertBefore(row, row.previousElementSibling);
      numberRules();
      up.focus();
      rulesChanged();
    }
  });
  const remove = document.createElement("button");
  remove.type = "button";
  remove.textContent = "Remove";
  remove.addEventListener("click", () => {
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    numberRules();
    (next ? next.querySelector("select") : $("dup-add-rule")).focus();
    rulesChanged();
  });
  row.append(nameLabel, argLabel, up, remove);
  return row;
}

/** Give each rule's buttons a name that says which rule they act on. */
function numberRules() {
  [...$("dup-rules").children].forEach((row, i) => {
    const [up, remove] = row.querySelectorAll("button");
    up.setAttribute("aria-label", `Move rule ${i + 1} up`);
    up.disabled = i === 0;
    remove.setAttribute("aria-label", `Remove rule ${i + 1}`);
  });
}

function showRules(rules) {
  $("dup-rules").replaceChildren(...rules.map(ruleRow));
  numberRules();
}

function rulesChanged() {
  const rules = editorRules();
  if (ruleSet && rules.join("\n") === ruleSet.join("\n")) return;
  ruleSet = rules;
  load();
}

function query() {
  const p = new URLSearchParams();
  p.set("include_similar", $("dup-similar").checked ? "true" : "false");
  for (const rule of ruleSet || []) p.append("keep", rule);
  return p;
}

/** Fetch the groups again (rules, similar shots or a dismissal changed them) and show them. */
async function load() {
  const ticket = ++loads;
  showError("");
  $("dup-status").textContent = "Looking for duplicates…";
  $("dup-download").disabled = true;
  let response;
  try {
    response = await fetch(`/api/duplicates?${query()}`);
  } catch (error) {
    if (ticket === loads) showError(`The server did not answer: ${error.message}`);
    return false;
  }
  if (ticket !== loads) return false;
  if (!response.ok) {
    showError(await readError(response));
    $("dup-status").textContent = "";
    return false;
  }
  const answer = await response.json();
  if (ticket !== loads) return false;
  if (ruleSet === null) {
    ruleSet = answer.rules;
    showRules(answer.rules);
  }
  groups = answer.groups;
  render(answer);
  return true;
}

function keeperOf(group) {
  const picked = group.members.find((m) => chosen.has(m.id) && !m.missing);
  return picked ? picked.id : group.keeper;
}

/** The pair linking ``a`` and ``b`` in ``group``, if the scan found one. */
function pairOf(group, a, b) {
  const [first, second] = a < b ? [a, b] : [b, a];
  return group.pairs.find((p) => p.first === first && p.second === second);
}

function groupKey(group) {
  return group.members.map((m) => m.id).sort((a, b) => a - b).join("-");
}

function render(answer) {
  const list = $("dup-groups");
  list.replaceChildren(...groups.map((group, i) => groupItem(group, i)));
  const files = groups.reduce((n, g) => n + g.members.length, 0);
  const images = answer.images.toLocaleString();
  const hidden = answer.dismissed_pairs
    ? ` ${answer.dismissed_pairs} pair${answer.dismissed_pairs === 1 ? "" : "s"} marked not ` +
      "duplicates left out."
    : "";
  $("dup-status").textContent = (groups.length
    ? `${groups.length} group${groups.length === 1 ? "" : "s"} of duplicates (${files} files) ` +
      `among ${images} images.`
    : `No duplicates among ${images} images.`) + hidden;
  $("dup-notes").replaceChildren(...(answer.notes || []).map((note) => {
    const item = document.createElement("li");
    item.textContent = note;
    return item;
  }));
  $("dup-download").disabled = groups.length === 0;
}

function groupItem(group, index) {
  const key = groupKey(group);
  const item = document.createElement("li");
  item.className = "dup-group";
  item.dataset.key = key;
  const heading = document.createElement("h3");
  heading.id = `dup-group-${key}`;
  heading.tabIndex = -1;
  heading.textContent =
    `Group ${index + 1}: ${TIER_NAMES[group.tier] || group.tier} · ` +
    `${group.members.length} files · lowest score ${group.min_score.toFixed(3)}`;
  const choices = document.createElement("fieldset");
  choices.className = "dup-members";
  const legend = document.createElement("legend");
  legend.className = "visually-hidden";
  legend.textContent = `Which file of group ${index + 1} to keep`;
  choices.append(legend);
  for (const member of group.members) choices.append(memberCard(group, member, key));
  item.append(heading, choices);
  markKeeper(item, group);
  return item;
}

function memberCard(group, member, key) {
  const card = document.createElement("article");
  card.className = "dup-member";
  card.dataset.id = member.id;
  const name = fileName(member.path);
  const img = document.createElement("img");
  img.src = member.thumbnail;
  img.alt = name;
  img.loading = "lazy";
  const choice = document.createElement("label");
  choice.className = "dup-choice";
  const radio = document.createElement("input");
  radio.type = "radio";
  radio.name = `keep-${key}`;
  radio.value = String(member.id);
  radio.disabled = member.missing === true; // a file gone since indexing is never kept
  radio.addEventListener("change", () => pickKeeper(group, member.id));
  const which = document.createElement("span");
  which.className = "visually-hidden";
  which.textContent = ` ${member.path}`; // two copies often share a file name
  choice.append(radio, " Keep", which);
  const badge = document.createElement("p");
  badge.className = "dup-keeper";
  const facts = document.createElement("ul");
  facts.className = "meta";
  const taken = member.taken ? `taken ${member.taken.replace("T", " ")}` : "no date taken";
  const size = member.width && member.height ? `${member.width}×${member.height}` : "size unknown";
  const lines = member.missing
    ? ["the file is gone since it was indexed"]
    : [`${size} · ${(member.format || "?").toUpperCase()}`, bytes(member.size), taken];
  for (const text of lines) {
    const li = document.createElement("li");
    li.textContent = text;
    facts.append(li);
  }
  const relation = document.createElement("p");
  relation.className = "dup-tier";
  const path = document.createElement("p");
  path.className = "name";
  path.textContent = member.path;
  card.append(img, choice, badge, relation, facts, path);
  // Files with the same bytes are duplicates by definition: the server refuses to separate them.
  const identical = group.pairs.some(
    (p) => (p.first === member.id || p.second === member.id) && p.tier === "identical",
  );
  if (!readOnly && !identical) {
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "dup-dismiss";
    dismiss.textContent = "Not a duplicate";
    dismiss.addEventListener("click", () => dismissMember(group, member));
    card.append(dismiss);
  }
  // A click anywhere on the card (but its buttons) picks it, like its radio button.
  card.addEventListener("click", (event) => {
    if (event.target.closest("button, label, input")) return;
    if (!radio.checked && !radio.disabled) {
      radio.checked = true;
      pickKeeper(group, member.id);
    }
  });
  return card;
}

/** Show which member of ``group`` is kept, why, and how each other member relates to it. */
function markKeeper(item, group) {
  const keeper = keeperOf(group);
  const keeperName = fileName(group.members.find((m) => m.id === keeper).path);
  for (const card of item.querySelectorAll(".dup-member")) {
    const id = Number(card.dataset.id);
    const member = group.members.find((m) => m.id === id);
    const kept = id === keeper;
    card.classList.toggle("kept", kept);
    card.querySelector("input[type=radio]").checked = kept;
    const badge = card.querySelector(".dup-keeper");
    badge.hidden = !kept;
    badge.textContent = kept
      ? `Keeper: ${chosen.has(id) ? "chosen by you" : group.reason}`
      : "";
    const relation = card.querySelector(".dup-tier");
    if (kept) {
      relation.textContent = "";
    } else {
      const pair = pairOf(group, id, keeper);
      const tier = pair ? pair.tier : group.tier; // linked to the keeper only through others
      const score = pair ? ` · score ${pair.score.toFixed(3)}` : "";
      relation.textContent = `${TIER_NAMES[tier] || tier} of the keeper${score}`;
    }
    relation.hidden = kept;
    const dismiss = card.querySelector(".dup-dismiss");
    if (dismiss) {
      dismiss.hidden = kept;
      dismiss.setAttribute(
        "aria-label",
        `Not a duplicate: ${fileName(member.path)} is not the same picture as ${keeperName}`,
      );
    }
  }
}

function pickKeeper(group, id) {
  for (const m of group.members) chosen.delete(m.id);
  chosen.add(id);
  const item = document.querySelector(`#dup-groups > li[data-key="${groupKey(group)}"]`);
  if (item) markKeeper(item, group);
  const name = fileName(group.members.find((m) => m.id === id).path);
  $("dup-status").textContent = `Keeping ${name}; the plan lists the other files of its group.`;
}

/** Tell the server ``member`` is no duplicate of the rest of its group (every pair that links
 * it there), then show the groups again: the member leaves, or the group goes. */
async function dismissMember(group, member) {
  showError("");
  const position = groups.indexOf(group);
  // A group is made of its pairs: every member is in at least one.
  const pairs = group.pairs.filter((p) => p.first === member.id || p.second === member.id);
  for (const button of document.querySelectorAll(".dup-dismiss")) button.disabled = true;
  $("dup-status").textContent = `Marking ${fileName(member.path)} as not a duplicate…`;
  let refused = "";
  for (const pair of pairs) {
    try {
      const response = await fetch("/api/duplicates/not-duplicates", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ first: pair.first, second: pair.second }),
      });
      if (!response.ok) refused = await readError(response);
    } catch (error) {
      refused = `The server did not answer: ${error.message}`;
    }
    if (refused) break;
  }
  // Shown again even after a refusal: what the server holds now, its buttons enabled again.
  const shown = await load();
  if (refused) showError(refused);
  if (!shown || refused) return;
  const name = fileName(member.path);
  const still = groups.some((g) => g.members.some((m) => m.id === member.id));
  $("dup-status").textContent = still
    ? `${name} is marked as not a duplicate; it is still linked to other files.`
    : `${name} is marked as not a duplicate and will not be shown with them again.`;
  // Focus the group now at the same place (or the last one), else the status.
  const items = $("dup-groups").children;
  const next = items[Math.min(position, items.length - 1)];
  (next ? next.querySelector("h3") : $("dup-status")).focus();
}

/** Ask the server for the plan with the user's keepers and save it as a file. */
async function downloadPlan() {
  showError("");
  const body = {
    keep: ruleSet || [],
    // One per group at most: the user's pick where there is one, else the rules decide.
    keepers: groups.map(keeperOf).filter((id) => chosen.has(id)),
    include_similar: $("dup-similar").checked,
  };
  let response;
  try {
    response = await fetch("/api/duplicates/plan", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (error) {
    showError(`The server did not answer: ${error.message}`);
    return;
  }
  if (!response.ok) {
    showError(await readError(response));
    return;
  }
  const disposition = response.headers.get("content-disposition") || "";
  const named = /filename="?([^";]+)"?/.exec(disposition);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = named ? named[1] : "duplicates-plan.json";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  $("dup-status").textContent =
    `Plan saved as ${link.download}: run lookalike duplicates apply ${link.download} to act on it.`;
}

async function loadInfo() {
  const response = await fetch("/api/info");
  if (!response.ok) return;
  const info = await response.json();
  readOnly = info.read_only !== false;
  infoLoaded = true;
}

/** Show the view: the groups as they are now (a dismissal elsewhere is taken into account). */
export async function showDuplicates() {
  if (!infoLoaded) await loadInfo();
  await load();
}

$("dup-add-rule").addEventListener("click", () => {
  const used = new Set(editorRules().map((r) => r.split(" ")[0]));
  const free = Object.keys(RULES).find((name) => !used.has(name)) || "largest-file";
  const row = ruleRow(free);
  $("dup-rules").append(row);
  numberRules();
  row.querySelector("select").focus();
  rulesChanged();
});
$("dup-rules").addEventListener("change", () => rulesChanged());
$("dup-similar").addEventListener("change", () => load());
$("dup-options").addEventListener("submit", (event) => event.preventDefault());
$("dup-download").addEventListener("click", () => downloadPlan());
