// My Data uploads: each file is sent as the raw request body (streamed to disk by the portal),
// with a progress bar fed by the XHR upload progress events. Reloads the folder when done.
(() => {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = document.getElementById("upload-files");
  const status = document.getElementById("upload-status");
  const token = document.querySelector('meta[name="csrf-token"]').content;

  function row(file) {
    const line = document.createElement("div");
    line.className = "upload-row";
    const label = document.createElement("span");
    label.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = file.size || 1;
    bar.value = 0;
    const note = document.createElement("span");
    note.className = "muted";
    line.append(label, bar, note);
    status.append(line);
    return { bar, note };
  }

  function send(file) {
    const shown = row(file);
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${form.dataset.action}&name=${encodeURIComponent(file.name)}`);
      xhr.setRequestHeader("X-CSRF-Token", token);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) {
          shown.bar.value = event.loaded;
          shown.note.textContent = `${Math.round((100 * event.loaded) / event.total)} %`;
        }
      });
      xhr.addEventListener("load", () => {
        let message = "uploaded";
        if (xhr.status >= 400) {
          try { message = JSON.parse(xhr.responseText).error.message; } catch {
            // a front server's own 413 (its body limit) is not JSON: say it in the quota's words
            message = xhr.status === 413 ? `This file is larger than your whole storage quota (${form.dataset.quotaText}), the most one upload can be.` : `failed (${xhr.status})`;
          }
          shown.note.className = "error-text";
        } else {
          shown.bar.value = shown.bar.max;
        }
        shown.note.textContent = message;
        resolve(xhr.status < 400);
      });
      xhr.addEventListener("error", () => {
        shown.note.className = "error-text";
        shown.note.textContent = "the connection was lost; try again";
        resolve(false);
      });
      xhr.send(file);
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = Array.from(input.files);
    if (!chosen.length) return;
    const total = chosen.reduce((sum, file) => sum + file.size, 0);
    if (total > Number(form.dataset.room)) {
      status.textContent = `Not enough room in your storage: these files need more than the ${form.dataset.roomText} of your quota that is left.`;
      status.className = "upload-status error";
      return;
    }
    status.textContent = "";
    status.className = "upload-status";
    let allGood = true;
    for (const file of chosen) allGood = (await send(file)) && allGood;
    if (allGood) window.location.reload();
  });
})();
