// Launch forms on the Analysis page: a refused launch (the machine limit, an environment not
// available here, no GPU free) is shown next to the card's Launch button and the page stays;
// Launch buttons are disabled, with the reason, while the user is at the machine limit.
// Without JavaScript the forms still work: the server shows the page again with the reason.
const cardList = document.querySelector("ul.cards");
const limitNote = document.getElementById("limit-reason");
const NOT_COUNTED = ["error", "deleting", "deleted"];
let atLimit = Boolean(limitNote && !limitNote.hidden);

function note(form) {
  return form.querySelector(".launch-note");
}

function showError(form, message) {
  const target = note(form);
  target.textContent = message;
  target.classList.add("error");
  target.setAttribute("role", "alert");
  target.hidden = false;
}

for (const form of document.querySelectorAll("form.launch")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button.launch-button");
    button.disabled = true;
    try {
      const response = await fetch(form.action, {method: "POST", body: new FormData(form),
                                                 headers: {Accept: "application/json"}});
      if (response.ok) {
        // {id, page, desktop, instant}. A pool hit (instant) opens the desktop page at once:
        // it loads noVNC while the pooled machine is handed over and connects the moment the
        // push says ready. Otherwise the machine page shows the launch's steps and opens the
        // desktop once it is ready (pushed), because this tab launched it (machine-page.js).
        const machine = await response.json();
        if (machine.instant) {
          window.location.assign(machine.desktop);
          return;
        }
        window.sessionStorage.setItem("daaas-open-desktop", machine.id);
        window.location.assign(machine.page);
        return;
      }
      const body = await response.json().catch(() => null);
      showError(form, body?.error?.message || `The launch failed (HTTP ${response.status}).`);
    } catch (error) {
      showError(form, "The portal could not be reached; check your connection and try again.");
    }
    button.disabled = Boolean(button.dataset.blocked) || atLimit;
  });
}

// machines.js tells us what the user has after every refresh of My machines.
document.addEventListener("machines:refreshed", (event) => {
  const max = Number(cardList?.dataset.maxMachines || 0);
  const counted = event.detail.filter((machine) => !NOT_COUNTED.includes(machine.state)).length;
  atLimit = max > 0 && counted >= max;
  const reason = atLimit ? `You already have ${counted} machine${counted === 1 ? "" : "s"}, the most `
    + "this site allows. Delete one you no longer need, then launch again." : "";
  if (limitNote) {
    limitNote.textContent = reason;
    limitNote.hidden = !atLimit;
  }
  for (const button of document.querySelectorAll("button.launch-button")) {
    const blocked = button.dataset.blocked || "";
    button.disabled = Boolean(blocked) || atLimit;
    if (blocked || reason) button.title = blocked || reason;
    else button.removeAttribute("title");
  }
});
