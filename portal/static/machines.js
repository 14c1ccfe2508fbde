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
  if (["stopping", "stopped"].includes(machine.state)) {
    td.textContent = machine.state === "stopped" ? "Stopped; disk kept" : "Stopping…";
    td.className = "muted";
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
      `Stop ${machine.environment.title}? Its programs end; its disk and your storage are kept.`));
  }
  if (machine.can_stop && machine.state === "stopped") {
    td.append(actionButton("Start", machine.links.start, machine, null));
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
    const title = cell(machine.environment.title);
    title.className = "name";
    title.title = machine.environment.title;
    row.append(title, state, progress(machine), actions(machine));
    const labels = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
    [...row.children].forEach((td, index) => { td.dataset.label = labels[index]; });
    return row;
  }));
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
