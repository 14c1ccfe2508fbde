// The machine page while its machine starts or stops: no timer. It asks the desktop status
// with ?state=<shown>&wait=25, which the portal answers the moment the machine leaves that
// state (the worker's commit pushes it) or after 25 s; then the page is shown again. Right
// after a Launch from a card in this tab (launch.js marks it in sessionStorage), the page
// fetches the desktop page's scripts (noVNC) while the machine is readied and opens the
// desktop as soon as it is ready, instead of showing the page again.
const section = document.querySelector("section.machine");
const machineId = section.dataset.machine;
let shown = section.dataset.state;
const STARTING = ["requested", "provisioning", "contextualising"];
const desktopUrl = section.dataset.desktopUrl || "";
const WAIT_SECONDS = 25;
const KEY = "daaas-open-desktop";
// the mark is spent by the page it was made for: shown again later, the page stays
const opening = Boolean(desktopUrl) && window.sessionStorage.getItem(KEY) === machineId;
if (window.sessionStorage.getItem(KEY) === machineId) window.sessionStorage.removeItem(KEY);
let leaving = false;

// A navigation the person (or a test) starts wins over this page's own.
window.addEventListener("beforeunload", () => { leaving = true; });
window.addEventListener("pagehide", () => { leaving = true; });

function preload() {
  for (const href of (section.dataset.preload || "").split(" ").filter(Boolean)) {
    const link = document.createElement("link");
    link.rel = "modulepreload";
    link.href = href;
    document.head.append(link);
  }
}

function sleep(seconds) {
  return new Promise((resolve) => { window.setTimeout(resolve, seconds * 1000); });
}

// What follows a change: the desktop (launched from this tab, now ready), the next wait
// (launched from this tab, a step on the way: the badge changes, the page stays), or the page
// shown again.
function moveOn(state) {
  if (leaving) return false;
  if (opening && state === "ready") {
    window.location.replace(desktopUrl);
  } else if (opening && STARTING.includes(state)) {
    shown = state;
    const badge = document.getElementById("machine-state");
    badge.textContent = state;
    badge.className = `state state-${state}`;
    return true;
  } else {
    window.location.reload();
  }
  return false;
}

async function follow() {
  while (!leaving) {
    const asked = performance.now();
    let status = null;
    try {
      const url = `${section.dataset.statusUrl}?state=${encodeURIComponent(shown)}&wait=${WAIT_SECONDS}`;
      const response = await fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"});
      if (response.status === 401 || response.status === 404) {
        moveOn("");  // signed out or gone: the page says so
        return;
      }
      if (response.ok) status = await response.json();
    } catch (error) {
      console.warn("machine status", error);
    }
    if (status && (status.state !== shown || status.ended)) {
      if (moveOn(status.state)) continue;
      return;
    }
    // the same state after the full wait: ask again at once; an early answer (the portal
    // holds only a few waits at once, or could not be reached) waits a second first
    if (performance.now() - asked < 1000) await sleep(1);
  }
}

if (opening) preload();
if (opening && shown === "ready") moveOn("ready");
else if (STARTING.includes(shown) || shown === "stopping") follow();
