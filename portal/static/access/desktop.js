// The browser desktop: noVNC's RFB client connected through the portal's websockify proxy.
//
// Every connection spends a fresh one-time token, so "reconnect" means: ask the portal for a
// NEW token (POST .../access with the page's CSRF token), then connect again, waiting longer
// after each failure. This page never has a VNC password: the portal's desktop proxy signs in
// to the desktop itself and offers this viewer only RFB security type "None".
//
// Between connections the page asks the machine's desktop status (GET .../desktop-status):
// a stopped machine gets a Start button, a failed or deleted one an end state (no retries),
// one still starting is waited for by a long poll (?state=…&wait=…) that the portal answers
// the moment the machine changes: no timer between "ready" and the connection. The same status, polled while the page is open, tells the
// owner when an administrator opened this desktop.

const frame = document.getElementById("desktop");
const screen = document.getElementById("screen");
const statusLine = document.getElementById("status");
const clipboard = document.getElementById("clipboard");
const endCard = document.getElementById("end-card");
const endStart = document.getElementById("end-start");
const fullscreenButton = document.getElementById("fullscreen");
const watchNotice = document.getElementById("watch-notice");
const sendPanel = document.getElementById("send-panel");
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

const MAX_DELAY_SECONDS = 30;
const MAX_ATTEMPTS = 40;              // about 20 minutes of retrying, then the user decides
const WAIT_SECONDS = 3;               // a view-only link's page while the machine starts
const WAIT_PUSH_SECONDS = 25;         // the bound of one long poll of the desktop status
const WATCH_SECONDS = 15;             // how often the status is asked while connected
const GIVE_UP_STATUSES = new Set([401, 403]);  // signed out, not allowed

let RFB = null;
let rfb = null;
let attempts = 0;
let retryTimer = null;
let leaving = false;
let reconnectAtOnce = false;
let gaveUp = false;         // set when retrying cannot help; Reconnect clears it
let failure = "";           // why the desktop refused this connection, shown on disconnect
let dismissedOpening = "";  // the administrator opening the owner has acknowledged

function say(text, kind = "") {
    statusLine.textContent = text;
    statusLine.title = text;
    statusLine.className = `desktop-status ${kind}`.trim();
}

async function call(url, method = "GET") {
    const headers = { "Accept": "application/json" };
    if (method !== "GET") {
        headers["X-CSRF-Token"] = csrfToken;
    }
    const response = await fetch(url, { method, credentials: "same-origin", headers });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
        const error = new Error(body.error?.message || `The portal answered ${response.status}.`);
        error.status = response.status;
        throw error;
    }
    return body;
}

// ---- connection ----------------------------------------------------------------------------

// ``early``: a token asked for already (while noVNC was loading), spent here.
async function connect(early = null) {
    clearTimeout(retryTimer);
    if (rfb || gaveUp) {
        return;
    }
    say("Connecting to the desktop…");
    let access;
    try {
        // {token, websocket_url, ...}
        access = await (early || call(screen.dataset.accessUrl, "POST"));
    } catch (error) {
        if (GIVE_UP_STATUSES.has(error.status)) {
            giveUp(error.message);
        } else if (error.status === 404) {
            end("This machine is gone", error.message, false);
        } else if (error.status === 409) {
            await followStatus(error.message);
        } else {
            retryLater(error.message);
        }
        return;
    }
    open(access);
}

function open(access) {
    hideEnd();
    rfb = new RFB(screen, access.websocket_url);
    rfb.resizeSession = true;   // resize=remote: the desktop follows the window's size
    rfb.scaleViewport = false;
    rfb.addEventListener("connect", () => {
        attempts = 0;
        say("Connected.", "ok");
        rfb.focus();
    });
    rfb.addEventListener("disconnect", (event) => {
        rfb = null;
        if (reconnectAtOnce) {
            reconnectAtOnce = false;
            connect();
        } else if (!leaving && !gaveUp) {
            const reason = failure || (event.detail.clean ? "The desktop connection closed."
                                                          : "The desktop connection was lost.");
            failure = "";
            followStatus(reason);
        }
    });
    rfb.addEventListener("credentialsrequired", () => {
        // The proxy offers only "None"; a password request means something else answered.
        giveUp("The desktop asked for a password, which this page never has. Ask the "
               + "administrator to check the desktop proxy.");
        rfb.disconnect();
    });
    rfb.addEventListener("securityfailure", (event) => {
        failure = event.detail.reason || "The desktop refused the connection.";
        say(failure, "bad");
    });
    rfb.addEventListener("clipboard", (event) => { clipboard.value = event.detail.text; });
}

// Decide, from the machine's state, what follows a refused or lost connection.
async function followStatus(reason) {
    let status;
    try {
        status = await call(screen.dataset.statusUrl);
    } catch (error) {
        statusFailed(error, reason);
        return;
    }
    decide(status, reason);
}

function statusFailed(error, reason) {
    if (error.status === 404) {
        end("This machine is gone", error.message, false);
    } else if (GIVE_UP_STATUSES.has(error.status)) {
        giveUp(error.message);
    } else {
        retryLater(reason);
    }
}

// Wait for the machine to leave ``state`` without a timer: the portal answers this long poll
// the moment the worker commits a change (or after WAIT_PUSH_SECONDS), then connect at once.
async function waitForChange(state) {
    if (!screen.dataset.statusWaits) {  // a view-only link's status: no long poll there
        retryTimer = setTimeout(connect, WAIT_SECONDS * 1000);
        return;
    }
    const asked = performance.now();
    let status;
    try {
        status = await call(`${screen.dataset.statusUrl}?state=${encodeURIComponent(state)}`
                            + `&wait=${WAIT_PUSH_SECONDS}`);
    } catch (error) {
        statusFailed(error, "The portal could not be reached.");
        return;
    }
    if (status.state === state && !status.ended) {
        showOpenings(status.openings);
        // an early answer (the portal holds only a few waits at once): a second first
        if (performance.now() - asked < 1000) {
            retryTimer = setTimeout(() => waitForChange(state), 1000);
        } else {
            waitForChange(state);
        }
    } else if (status.state === "ready") {
        showOpenings(status.openings);
        connect();
    } else {
        decide(status, "");
    }
}

function decide(status, reason) {
    showOpenings(status.openings);
    if (status.ended) {
        end(status.state === "error" ? "This machine failed" : "This machine has been deleted",
            status.message, false);
    } else if (status.can_start) {
        end("This machine is stopped", status.message, true);
    } else if (status.state === "ready") {
        retryLater(reason);
    } else {
        // starting, stopping or not yet ready: wait for it without counting failures
        say(status.message || `The machine is ${status.state}…`);
        waitForChange(status.state);
    }
}

function retryLater(reason) {
    attempts += 1;
    if (attempts > MAX_ATTEMPTS) {
        say(`${reason} Stopped trying; press Reconnect to try again.`, "bad");
        return;
    }
    const delay = Math.min(MAX_DELAY_SECONDS, 2 ** (attempts - 1));
    say(`${reason} Trying again in ${delay} s…`, "bad");
    retryTimer = setTimeout(connect, delay * 1000);
}

function giveUp(message) {
    gaveUp = true;
    clearTimeout(retryTimer);
    say(message, "bad");
}

// The desktop will not come back by itself: say so once, and offer what can be done.
function end(title, message, canStart) {
    gaveUp = true;
    clearTimeout(retryTimer);
    document.getElementById("end-title").textContent = title;
    document.getElementById("end-message").textContent = message || "";
    endStart.hidden = !canStart;
    endCard.hidden = false;
    document.getElementById("reconnect").hidden = true;  // Start, or nothing, is what helps
    say(canStart ? "Stopped." : "The desktop has ended.", "bad");
    frame.dataset.end = canStart ? "stopped" : "ended";
}

function hideEnd() {
    endCard.hidden = true;
    document.getElementById("reconnect").hidden = false;
    delete frame.dataset.end;
}

async function startMachine() {
    endStart.disabled = true;
    say("Starting the machine…");
    try {
        await call(screen.dataset.startUrl, "POST");
    } catch (error) {
        say(error.message, "bad");
        endStart.disabled = false;
        return;
    }
    hideEnd();
    endStart.disabled = false;
    gaveUp = false;
    attempts = 0;
    followStatus("");
}

function reconnectNow() {
    attempts = 0;
    gaveUp = false;
    if (rfb) {
        reconnectAtOnce = true;  // the disconnect handler fetches a new token and connects
        rfb.disconnect();
    } else {
        connect();
    }
}

// ---- administrator notice ------------------------------------------------------------------

function showOpenings(openings) {
    if (!openings || openings.length === 0) {
        watchNotice.hidden = true;
        return;
    }
    const latest = openings[0];
    const key = `${latest.who}@${latest.at}`;
    if (key === dismissedOpening) {
        return;
    }
    const when = new Date(latest.at);
    const time = when.toLocaleString([], { day: "numeric", month: "short", hour: "2-digit",
                                           minute: "2-digit", timeZoneName: "short" });
    const others = openings.length > 1 ? ` (and ${openings.length - 1} other administrator`
        + `${openings.length > 2 ? "s" : ""})` : "";
    watchNotice.textContent = `Administrator ${latest.who} opened this desktop at ${time}`
        + `${others}. The machine's events record it; ask your facility if you did not `
        + "expect it.";
    const ok = document.createElement("button");
    ok.type = "button";
    ok.className = "button";
    ok.textContent = "Dismiss";
    ok.addEventListener("click", () => {
        dismissedOpening = key;
        watchNotice.hidden = true;
    });
    watchNotice.append(ok);
    watchNotice.dataset.who = latest.who;
    watchNotice.hidden = false;
}

async function watch() {
    if (!document.hidden) {
        try {
            showOpenings((await call(screen.dataset.statusUrl)).openings);
        } catch {
            // the next connection attempt reports what is wrong
        }
    }
    setTimeout(watch, WATCH_SECONDS * 1000);
}

// ---- panels, full screen, keys -------------------------------------------------------------

function toggle(buttonId, panelId, show = undefined) {
    const panel = document.getElementById(panelId);
    const button = document.getElementById(buttonId);
    if (!panel || !button) {
        return null;
    }
    panel.hidden = show === undefined ? !panel.hidden : !show;
    button.setAttribute("aria-expanded", String(!panel.hidden));
    return panel;
}

function sendClipboard() {
    if (rfb) {
        rfb.clipboardPasteFrom(clipboard.value);
        say("Clipboard sent to the desktop; paste it there.", "ok");
    } else {
        say("Not connected: the clipboard cannot be sent yet.", "bad");
    }
}

async function toggleFullscreen() {
    try {
        if (document.fullscreenElement) {
            await document.exitFullscreen();
        } else {
            await frame.requestFullscreen({ navigationUI: "hide" });
        }
    } catch (error) {
        say(`Full screen is not available here: ${error.message}`, "bad");
    }
}

async function fullscreenChanged() {
    const on = document.fullscreenElement === frame;
    fullscreenButton.setAttribute("aria-pressed", String(on));
    fullscreenButton.textContent = on ? "Leave full screen" : "Full screen";
    // Chromium: in full screen the browser's own shortcuts (Ctrl+W …) go to the desktop;
    // holding Esc leaves full screen.
    if (on && navigator.keyboard?.lock) {
        await navigator.keyboard.lock().catch(() => {});
    } else if (!on && navigator.keyboard?.unlock) {
        navigator.keyboard.unlock();
    }
    if (rfb) {
        rfb.focus();
    }
}

const SHORTCUTS = {
    KeyF: toggleFullscreen,
    KeyC: () => toggle("clipboard-toggle", "clipboard-panel"),
    KeyK: () => toggle("keys-toggle", "keys-panel"),
    KeyU: () => {
        if (toggle("send-toggle", "send-panel", true)) {
            document.getElementById("send-input").click();
        }
    },
};

// Capture phase: seen before noVNC's keyboard handler, which would send it to the desktop.
function shortcut(event) {
    if (event.ctrlKey && event.altKey && event.shiftKey && SHORTCUTS[event.code]) {
        event.preventDefault();
        event.stopPropagation();
        SHORTCUTS[event.code]();
    }
}

// ---- send file -----------------------------------------------------------------------------

function sendResult(text, kind) {
    const line = document.createElement("p");
    line.className = kind;
    line.textContent = text;
    document.getElementById("send-results").prepend(line);
    return line;
}

async function sendFile(file) {
    const line = sendResult(`Sending ${file.name}…`, "");
    const url = `${sendPanel.dataset.uploadUrl}&name=${encodeURIComponent(file.name)}`;
    try {
        const response = await fetch(url, {
            method: "POST",
            credentials: "same-origin",
            headers: { "X-CSRF-Token": csrfToken, "Content-Type": "application/octet-stream",
                       "Accept": "application/json" },
            body: file,
        });
        const body = await response.json().catch(() => ({}));
        if (!response.ok) {
            throw new Error(body.error?.message || `The portal answered ${response.status}.`);
        }
        const folder = sendPanel.dataset.desktopFolder;
        line.textContent = folder
            ? `${body.name} is on the desktop: ${folder}/${body.name} (open the “My storage” icon).`
            : `${body.name} is saved in your storage (My Data).`;
        line.className = "done";
        line.dataset.path = folder ? `${folder}/${body.name}` : body.name;
    } catch (error) {
        line.textContent = `${file.name} was not sent: ${error.message}`;
        line.className = "failed";
    }
}

async function sendFiles(files) {
    for (const file of files) {
        await sendFile(file);
    }
}

function setUpSending() {
    if (!sendPanel) {
        return;
    }
    const zone = document.getElementById("drop-zone");
    const input = document.getElementById("send-input");
    document.getElementById("send-toggle").addEventListener(
        "click", () => toggle("send-toggle", "send-panel"));
    input.addEventListener("change", () => {
        sendFiles([...input.files]);
        input.value = "";
    });
    const carriesFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
    // A file dragged anywhere over the page opens the drop zone.
    window.addEventListener("dragenter", (event) => {
        if (carriesFiles(event)) {
            toggle("send-toggle", "send-panel", true);
        }
    });
    window.addEventListener("dragover", (event) => {
        if (carriesFiles(event)) {
            event.preventDefault();  // otherwise the browser opens a file dropped off the zone
        }
    });
    window.addEventListener("drop", (event) => {
        if (carriesFiles(event) && !zone.contains(event.target)) {
            event.preventDefault();
        }
    });
    zone.addEventListener("dragover", (event) => {
        event.preventDefault();
        zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
        event.preventDefault();
        zone.classList.remove("over");
        sendFiles([...(event.dataTransfer?.files || [])]);
    });
}

// ---- start ---------------------------------------------------------------------------------

document.getElementById("reconnect").addEventListener("click", reconnectNow);
endStart.addEventListener("click", startMachine);
document.getElementById("clipboard-toggle").addEventListener(
    "click", () => toggle("clipboard-toggle", "clipboard-panel"));
document.getElementById("keys-toggle").addEventListener(
    "click", () => toggle("keys-toggle", "keys-panel"));
document.getElementById("clipboard-send").addEventListener("click", sendClipboard);
fullscreenButton.addEventListener("click", toggleFullscreen);
document.addEventListener("fullscreenchange", fullscreenChanged);
window.addEventListener("keydown", shortcut, true);
setUpSending();
window.addEventListener("pagehide", () => {
    leaving = true;
    if (rfb) {
        rfb.disconnect();
    }
});

watch();
const initialState = screen.dataset.machineState;
const starting = ["requested", "provisioning", "contextualising"].includes(initialState);
// a ready machine's token is asked for while noVNC loads, not after
const early = starting ? null : call(screen.dataset.accessUrl, "POST");
early?.catch(() => {});  // handled by connect()
try {
    RFB = (await import(screen.dataset.rfbModule)).default;
    if (starting) {
        say("Starting the machine…");  // the push says when it is ready
        waitForChange(initialState);
    } else {
        connect(early);  // ready, or stopped / ended: the refusal says what can be done
    }
} catch (error) {
    say("The desktop viewer (noVNC) could not be loaded. Ask the administrator to install the "
        + "Debian package novnc.", "bad");
}
