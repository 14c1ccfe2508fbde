// The browser desktop: noVNC's RFB client connected through the portal's websockify proxy.
//
// Every connection spends a fresh one-time token, so "reconnect" means: ask the portal for a
// NEW token (POST .../access with the page's CSRF token), then connect again, waiting longer
// after each failure. This page never has a VNC password: the portal's desktop proxy signs in
// to the desktop itself and offers this viewer only RFB security type "None".

const screen = document.getElementById("screen");
const statusLine = document.getElementById("status");
const clipboard = document.getElementById("clipboard");
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

const MAX_DELAY_SECONDS = 30;
const MAX_ATTEMPTS = 40;              // about 20 minutes of retrying, then the user decides
const GIVE_UP_STATUSES = new Set([401, 403, 404]);  // signed out, not allowed, machine gone

let RFB = null;
let rfb = null;
let attempts = 0;
let retryTimer = null;
let leaving = false;
let reconnectAtOnce = false;
let gaveUp = false;         // set when retrying cannot help; Reconnect clears it
let failure = "";           // why the desktop refused this connection, shown on disconnect

function say(text, kind = "") {
    statusLine.textContent = text;
    statusLine.className = `desktop-status ${kind}`.trim();
}

async function requestAccess() {
    const response = await fetch(screen.dataset.accessUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrfToken, "Accept": "application/json" },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
        const error = new Error(body.error?.message || `The portal answered ${response.status}.`);
        error.status = response.status;
        throw error;
    }
    return body;  // {token, websocket_url, expires_at}
}

async function connect() {
    clearTimeout(retryTimer);
    if (rfb) {
        return;
    }
    say("Connecting to the desktop…");
    let access;
    try {
        access = await requestAccess();
    } catch (error) {
        if (GIVE_UP_STATUSES.has(error.status)) {
            say(error.message, "bad");
        } else {
            retryLater(error.message);
        }
        return;
    }
    open(access);
}

function open(access) {
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
            retryLater(reason);
        }
    });
    rfb.addEventListener("credentialsrequired", () => {
        // The proxy offers only "None"; a password request means something else answered.
        say("The desktop asked for a password, which this page never has. Ask the "
            + "administrator to check the desktop proxy.", "bad");
        gaveUp = true;
        rfb.disconnect();
    });
    rfb.addEventListener("securityfailure", (event) => {
        failure = event.detail.reason || "The desktop refused the connection.";
        say(failure, "bad");
    });
    rfb.addEventListener("clipboard", (event) => { clipboard.value = event.detail.text; });
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

function toggleClipboard(event) {
    const panel = document.getElementById("clipboard-panel");
    panel.hidden = !panel.hidden;
    event.currentTarget.setAttribute("aria-expanded", String(!panel.hidden));
}

function sendClipboard() {
    if (rfb) {
        rfb.clipboardPasteFrom(clipboard.value);
        say("Clipboard sent to the desktop; paste it there.", "ok");
    } else {
        say("Not connected: the clipboard cannot be sent yet.", "bad");
    }
}

document.getElementById("reconnect").addEventListener("click", reconnectNow);
document.getElementById("clipboard-toggle").addEventListener("click", toggleClipboard);
document.getElementById("clipboard-send").addEventListener("click", sendClipboard);
window.addEventListener("pagehide", () => {
    leaving = true;
    if (rfb) {
        rfb.disconnect();
    }
});

try {
    RFB = (await import(screen.dataset.rfbModule)).default;
    connect();
} catch (error) {
    say("The desktop viewer (noVNC) could not be loaded. Ask the administrator to install the "
        + "Debian package novnc.", "bad");
}
