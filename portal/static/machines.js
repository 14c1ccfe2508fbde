// "My machines" on the Analysis page: one card per machine (its name, environment, experiment,
// size, start time and age), refreshed from the JSON API every two seconds, so the state and
// launch progress move without reloading the page. Its owner renames a machine in place; a
// card whose name is being edited is kept as it is until the edit ends. Each card counts down
// the machine's time left (lifetime.js) and offers Extend within its lifetime policy.
const table = document.getElementById("my-machines");
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const STEPS = ["requested", "provisioning", "contextualising", "ready"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MAX_NAME = 80;

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function startedText(iso) {
  const when = new Date(iso);
  const time = `${String(when.getUTCHours()).padStart(2, "0")}:${String(when.getUTCMinutes()).padStart(2, "0")}`;
  return `Started ${when.getUTCDate()} ${MONTHS[when.getUTCMonth()]}, ${time} UTC`;
}

function fact(name, text, title) {
  const item = document.createElement("li");
  item.dataset.fact = name;
  item.textContent = text;
  if (title) item.title = title;
  return item;
}

// The card's head: the machine's name (with Rename) and what tells it apart from the others.
function identity(machine) {
  const td = document.createElement("td");
  td.className = "name";
  const name = document.createElement("h3");
  name.className = "machine-name";
  name.textContent = machine.name;
  name.title = machine.name;
  const rename = document.createElement("button");
  rename.type = "button";
  rename.className = "link-button rename-button";
  rename.textContent = "Rename";
  rename.setAttribute("aria-label", `Rename ${machine.name}`);
  rename.addEventListener("click", () => startRename(td, machine));
  const head = document.createElement("div");
  head.className = "machine-name-row";
  head.append(name);
  if (!["deleting", "deleted"].includes(machine.state)) head.append(rename);
  const facts = document.createElement("ul");
  facts.className = "facts";
  facts.append(fact("environment", machine.environment.title));
  if (machine.experiment) facts.append(fact("experiment", `Experiment ${machine.experiment.visit_id}`));
  facts.append(fact("size", machine.size, `flavor ${machine.flavor}`));
  const started = fact("started", startedText(machine.created_at));
  const age = document.createElement("span");
  age.className = "age";
  age.textContent = ` (${window.daaasAge ? window.daaasAge(machine.created_at) : ""})`;
  started.append(age);
  facts.append(started);
  if (!["deleting", "deleted", "error", "requested"].includes(machine.state)) {
    const left = fact("time-left", "", `Deleted at ${machine.lifetime.expires_at} unless extended`);
    const count = document.createElement("span");
    count.className = "time-left";
    count.dataset.expiresAt = machine.lifetime.expires_at;
    count.dataset.warnHours = table.dataset.warnHours || "2";
    count.textContent = window.daaasTimeLeft ? window.daaasTimeLeft(machine.lifetime.expires_at) : "";
    if (window.daaasEndingSoon) {
      count.toggleAttribute("data-soon", window.daaasEndingSoon(machine.lifetime.expires_at, Number(count.dataset.warnHours)));
    }
    left.append(count);
    if (machine.lifetime.extension_pending) left.append(" · extension asked, waiting for an administrator");
    facts.append(left);
  }
  td.append(head, facts);
  return td;
}

function startRename(td, machine) {
  const row = td.closest("tr");
  row.dataset.editing = "1";
  const form = document.createElement("form");
  form.className = "rename-form inline-form";
  form.noValidate = true;
  const id = `rename-${machine.id}`;
  form.innerHTML = `<label class="sr-label" for="${id}">New name</label>`
    + `<input id="${id}" name="name" maxlength="${MAX_NAME}" required aria-describedby="${id}-note">`
    + '<button type="submit" class="button primary">Save</button>'
    + '<button type="button" class="button cancel">Cancel</button>'
    + `<p class="field-note" id="${id}-note">1 to ${MAX_NAME} characters.</p>`;
  const input = form.querySelector("input");
  input.value = machine.name;
  const note = form.querySelector(".field-note");
  const done = () => { delete row.dataset.editing; refresh(); };
  form.querySelector(".cancel").addEventListener("click", done);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch(machine.links.rename, {
      method: "PATCH", body: JSON.stringify({name: input.value}),
      headers: {"Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf}});
    if (response.ok) { done(); return; }
    const body = await response.json().catch(() => null);
    note.textContent = body?.error?.message || `The name was not saved (HTTP ${response.status}).`;
    note.classList.add("error");
    note.setAttribute("role", "alert");
    input.setAttribute("aria-invalid", "true");
    input.focus();
  });
  td.querySelector(".machine-name-row").replaceWith(form);
  input.focus();
  input.select();
}

function progress(machine) {
  const step = STEPS.indexOf(machine.state);
  const td = document.createElement("td");
  if (machine.state === "error") {
    td.textContent = machine.error_reason;
    td.className = "error-text";
    return td;
  }
  if (["stopping", "stopped"].includes(machine.state)) {
    td.textContent = machine.state === "stopped" ? "Stopped; disk kept" : "Stopping…";
    td.className = "muted";
    if (machine.admin_reason) {
      const note = document.createElement("p");
      note.className = "admin-reason";
      note.textContent = `Stopped by an administrator: ${machine.admin_reason}`;
      td.append(note);
    }
    return td;
  }
  const bar = document.createElement("progress");
  bar.max = STEPS.length - 1;
  bar.value = step < 0 ? 0 : step;
  bar.setAttribute("aria-label", `Launch progress: ${machine.state}`);
  td.append(bar);
  return td;
}

function actions(machine) {
  const td = document.createElement("td");
  td.className = "row-actions";
  if (machine.state === "ready") {
    const desktop = document.createElement("a");
    desktop.href = machine.links.desktop;
    desktop.className = "button primary";
    desktop.textContent = "Desktop";
    td.append(desktop);
  }
  const details = document.createElement("a");
  details.href = machine.links.page;
  details.className = "button";
  details.textContent = "Details";
  td.append(details);
  if (machine.can_stop && machine.state === "ready") {
    td.append(actionButton("Stop", machine.links.stop, machine,
      `Stop ${machine.name}? Its programs end; its disk and your storage are kept.`));
  }
  if (machine.can_stop && machine.state === "stopped") {
    td.append(actionButton("Start", machine.links.start, machine, null));
  }
  if (machine.lifetime.can_extend && !machine.lifetime.extension_pending) {
    const hours = machine.lifetime.extension_hours;
    const label = machine.lifetime.extension === "approval" ? "Ask to extend" : "Extend";
    const button = actionButton(label, machine.links.extend, machine, null);
    button.title = `${machine.lifetime.extension === "approval" ? "Ask an administrator for" : "Add"} ${hours} h`;
    td.append(button);
  }
  if (!["deleting", "deleted"].includes(machine.state)) {
    const remove = document.createElement("button");
    remove.className = "button danger";
    remove.textContent = "Delete";
    remove.addEventListener("click", () => deleteMachine(machine));
    td.append(remove);
  }
  return td;
}

function actionButton(label, url, machine, question) {
  const button = document.createElement("button");
  button.className = "button";
  button.textContent = label;
  button.dataset.action = label.toLowerCase();
  button.addEventListener("click", async () => {
    if (question && !window.confirm(question)) return;
    const response = await fetch(url, {method: "POST", headers: {"X-CSRF-Token": csrf, Accept: "application/json"}});
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      window.alert(body?.error?.message || `${label} failed (HTTP ${response.status}).`);
    }
    refresh();
  });
  return button;
}

async function deleteMachine(machine) {
  if (!window.confirm(`Delete ${machine.name}? Anything not saved in your storage is lost.`)) return;
  await fetch(`/api/v1/machines/${machine.id}`, {method: "DELETE", headers: {"X-CSRF-Token": csrf}});
  refresh();
}

// A banner above the cards while a machine is within the last warning before its end.
function banner(machines) {
  const warn = Number(table.dataset.warnHours || 2);
  const ending = machines.filter((m) => !["deleting", "deleted", "error"].includes(m.state)
    && window.daaasEndingSoon && window.daaasEndingSoon(m.lifetime.expires_at, warn));
  const note = document.getElementById("expiry-banner");
  const idleWarn = Number(table.dataset.idleWarnMinutes || 0) / 60;
  const idle = machines.filter((m) => m.lifetime.idle_stop_at && idleWarn > 0
    && window.daaasEndingSoon && window.daaasEndingSoon(m.lifetime.idle_stop_at, idleWarn));
  note.hidden = ending.length + idle.length === 0;
  note.textContent = [...ending.map((m) => `${m.name} will be deleted in `
    + `${window.daaasTimeLeft(m.lifetime.expires_at).replace(" left", "")}: save your work to ~/storage`
    + (m.lifetime.can_extend ? " or extend it." : ".")),
  ...idle.map((m) => `${m.name} has had no desktop open for a while and will be stopped in `
    + `${window.daaasTimeLeft(m.lifetime.idle_stop_at).replace(" left", "")} (disk and storage kept): `
    + "open its desktop to keep it running.")].join(" ");
}

function render(machines) {
  const body = table.querySelector("tbody");
  const editing = new Map([...body.querySelectorAll("tr[data-editing]")].map((row) => [row.dataset.machine, row]));
  body.replaceChildren(...machines.map((machine) => {
    if (editing.has(machine.id)) return editing.get(machine.id);
    const row = document.createElement("tr");
    row.dataset.machine = machine.id;
    row.dataset.state = machine.state;
    row.setAttribute("aria-label", machine.name);
    const state = cell(machine.state);
    state.className = `state state-${machine.state}`;
    row.append(identity(machine), state, progress(machine), actions(machine));
    const labels = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
    [...row.children].forEach((td, index) => { td.dataset.label = labels[index]; });
    return row;
  }));
  banner(machines);
  document.getElementById("no-machines").hidden = machines.length > 0;
  table.hidden = machines.length === 0;
}

async function refresh() {
  try {
    const response = await fetch("/api/v1/machines", {headers: {Accept: "application/json"}});
    if (response.ok) {
      const machines = (await response.json()).machines;
      render(machines);
      // launch.js disables Launch at the machine limit from the same list
      document.dispatchEvent(new CustomEvent("machines:refreshed", {detail: machines}));
    }
  } catch (error) {
    console.warn("machine list refresh failed", error);
  }
}

refresh();
setInterval(refresh, 2000);
