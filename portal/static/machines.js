// "My machines" on the Analysis page: refreshed from the JSON API every two seconds, so the
// state and launch progress move without reloading the page.
const table = document.getElementById("my-machines");
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const STEPS = ["requested", "provisioning", "contextualising", "ready"];

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function progress(machine) {
  const step = STEPS.indexOf(machine.state);
  const td = document.createElement("td");
  if (machine.state === "error") {
    td.textContent = machine.error_reason;
    td.className = "error-text";
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
  if (!["deleting", "deleted"].includes(machine.state)) {
    const remove = document.createElement("button");
    remove.className = "button danger";
    remove.textContent = "Delete";
    remove.addEventListener("click", () => deleteMachine(machine));
    td.append(remove);
  }
  return td;
}

async function deleteMachine(machine) {
  if (!window.confirm(`Delete ${machine.environment.title}? Anything not saved in your storage is lost.`)) return;
  await fetch(`/api/v1/machines/${machine.id}`, {method: "DELETE", headers: {"X-CSRF-Token": csrf}});
  refresh();
}

function render(machines) {
  const body = table.querySelector("tbody");
  body.replaceChildren(...machines.map((machine) => {
    const row = document.createElement("tr");
    row.dataset.machine = machine.id;
    row.dataset.state = machine.state;
    const state = cell(machine.state);
    state.className = `state state-${machine.state}`;
    row.append(cell(machine.environment.title), state, progress(machine), actions(machine));
    return row;
  }));
  document.getElementById("no-machines").hidden = machines.length > 0;
  table.hidden = machines.length === 0;
}

async function refresh() {
  try {
    const response = await fetch("/api/v1/machines", {headers: {Accept: "application/json"}});
    if (response.ok) render((await response.json()).machines);
  } catch (error) {
    console.warn("machine list refresh failed", error);
  }
}

refresh();
setInterval(refresh, 2000);
