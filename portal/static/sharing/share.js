// The desktop page's share dialog: who is connected now (everyone sees it), and for the owner
// the members (invite by username, change a role, remove), share links (one-time invitation,
// view-only) and what happens to the others when the owner leaves. Refreshed from the JSON API
// every few seconds; the proxy enforces every role, this page only shows and asks.
const panel = document.getElementById("share-panel");
const toggleButton = document.getElementById("share-toggle");
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const REFRESH_SECONDS = 3;
const ROLE_TEXT = {owner: "owner", user: "user (full control)", viewer: "viewer (view only)"};

async function call(url, method = "GET", body = undefined) {
    const headers = {Accept: "application/json", "X-CSRF-Token": csrf};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, {method, headers, credentials: "same-origin",
                                       body: body === undefined ? undefined : JSON.stringify(body)});
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
        const error = new Error((data.error && data.error.message) || `Error ${response.status}`);
        error.status = response.status;
        throw error;
    }
    return data;
}

function say(text, kind = "") {
    const message = document.getElementById("share-message");
    message.textContent = text;
    message.dataset.kind = kind;
}

function item(text, ...controls) {
    const li = document.createElement("li");
    const span = document.createElement("span");
    span.textContent = text;
    li.append(span, ...controls);
    return li;
}

function button(text, title, action) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "bar-button";
    b.textContent = text;
    b.title = title;
    b.addEventListener("click", async () => {
        try {
            await action();
            await refresh();
        } catch (error) {
            say(error.message, "bad");
        }
    });
    return b;
}

// Rebuild a list only when what it shows changed, so a button is never replaced under the
// pointer by a refresh that brought nothing new.
function changed(list, data) {
    const key = JSON.stringify(data);
    if (list.dataset.shown === key) return false;
    list.dataset.shown = key;
    return true;
}

function fill(list, rows, empty) {
    list.replaceChildren(...(rows.length ? rows : [item(empty)]));
    if (!rows.length) list.firstChild.className = "muted";
}

const base = `/api/v1/machines/${panel.dataset.machineId}`;

function render(sharing) {
    const owner = sharing.role === "owner";
    document.getElementById("share-count").textContent = sharing.connected.length
        ? `(${sharing.connected.length})` : "";
    if (owner && sharing.support_requests.length) {
        document.getElementById("share-count").textContent +=
            ` · ${sharing.support_requests.length} asking`;
    }
    const connectedList = document.getElementById("share-connected");
    if (changed(connectedList, [owner, sharing.owner, sharing.connected])) {
        renderConnected(connectedList, sharing, owner);
    }
    if (!owner) return;
    const membersList = document.getElementById("share-members");
    if (changed(membersList, sharing.members)) renderMembers(membersList, sharing);
    const linksList = document.getElementById("share-links");
    if (changed(linksList, sharing.links)) renderLinks(linksList, sharing);
    const supportList = document.getElementById("share-support");
    if (changed(supportList, sharing.support_requests)) renderSupport(supportList, sharing);
    const away = document.getElementById("share-away");
    if (document.activeElement !== away) away.value = sharing.owner_away;
}

function renderConnected(list, sharing, owner) {
    const connected = sharing.connected.map((c) => {
        const who = `${c.display_name || c.username} (${c.username}) · ${ROLE_TEXT[c.role] || c.role}`
            + (c.via_link ? " · view-only link" : "");
        const row = owner && c.username !== sharing.owner
            ? item(who, button("Remove", `Disconnect ${c.username} now`,
                               () => call(`${base}/connections/${c.id}`, "DELETE")))
            : item(who);
        row.dataset.username = c.username;
        row.dataset.role = c.role;
        return row;
    });
    fill(list, connected, "Nobody is connected.");
}

function renderMembers(list, sharing) {
    const members = sharing.members.map((m) => {
        const other = m.role === "viewer" ? "user" : "viewer";
        const row = item(`${m.display_name || m.username} (${m.username}) · ${ROLE_TEXT[m.role]}`,
            button(`Make ${other}`, `Change ${m.username}'s role to ${other}`,
                   () => call(`${base}/members`, "POST", {username: m.username, role: other})),
            button("Remove", `Remove ${m.username}: their connection closes at once`,
                   () => call(`${base}/members/${encodeURIComponent(m.username)}`, "DELETE")));
        row.dataset.username = m.username;
        row.dataset.role = m.role;
        return row;
    });
    fill(list, members, "Not shared with anyone.");
}

function renderLinks(list, sharing) {
    const links = sharing.links.map((l) => item(
        l.kind === "invite"
            ? `Invitation #${l.id} (${l.role}), until ${new Date(l.expires_at).toLocaleString()}`
            : `View-only link #${l.id} (while you are connected)`,
        button("Revoke", "The link stops working; its connections close",
               () => call(`${base}/links/${l.id}`, "DELETE"))));
    fill(list, links, "No working links.");
}

function renderSupport(list, sharing) {
    const support = sharing.support_requests.map((r) => {
        const row = item(`Administrator ${r.display_name || r.username} (${r.username}) asks for access`,
            button("Accept", `Let ${r.username} in as a user (you can remove them later)`,
                   () => call(`${base}/support-requests/${r.id}/accept`, "POST")),
            button("Refuse", "Refuse the request",
                   () => call(`${base}/support-requests/${r.id}`, "DELETE")));
        row.dataset.username = r.username;
        return row;
    });
    list.replaceChildren(...support);
    document.getElementById("share-support-box").hidden = support.length === 0;
}

async function refresh() {
    try {
        render(await call(panel.dataset.sharingUrl));
    } catch (error) {
        if (error.status === 404) {
            say("You no longer have access to this desktop.", "bad");
            clearInterval(timer);
        }
    }
}

async function makeLink(kind, role) {
    try {
        const link = await call(`${base}/links`, "POST", {kind, role});
        const url = document.getElementById("share-link-url");
        url.value = link.url;
        document.getElementById("share-new-link").hidden = false;
        url.select();
        say(kind === "invite" ? "Send this link to one person: it works once."
                              : "Anyone signed in with this link can watch while you are connected.",
            "ok");
        await refresh();
    } catch (error) {
        say(error.message, "bad");
    }
}

// The other members of the machine's experiment, offered once when the dialog opens.
async function suggest() {
    let found;
    try {
        found = await call(`${base}/sharing/suggestions`);
    } catch {
        return;
    }
    const rows = found.users.map((u) => {
        const invite = (role) => button(`as ${role}`, `Share with ${u.username} as ${role}`, async () => {
            await call(`${base}/members`, "POST", {username: u.username, role});
            say(`Shared with ${u.username} as ${role}.`, "ok");
            await suggest();
        });
        const row = item(`${u.display_name || u.username} (${u.username})`, invite("viewer"), invite("user"));
        row.dataset.username = u.username;
        return row;
    });
    document.getElementById("share-experiment").textContent = found.experiment;
    document.getElementById("share-suggest").replaceChildren(...rows);
    document.getElementById("share-suggest-box").hidden = rows.length === 0;
}

toggleButton.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    toggleButton.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) {
        refresh();
        if (panel.dataset.role === "owner") suggest();
    }
});

if (panel.dataset.role === "owner") {
    document.getElementById("share-invite").addEventListener("submit", async (event) => {
        event.preventDefault();
        const form = event.target;
        const username = form.username.value.trim();
        try {
            await call(`${base}/members`, "POST", {username, role: form.role.value});
            say(`Shared with ${username} as ${form.role.value}; they are told by e-mail and `
                + "find it under \u201cShared with me\u201d.", "ok");
            form.username.value = "";
            await refresh();
        } catch (error) {
            say(error.message, "bad");
        }
    });
    document.getElementById("share-invite-link").addEventListener(
        "click", () => makeLink("invite", "viewer"));
    document.getElementById("share-invite-link-user").addEventListener(
        "click", () => makeLink("invite", "user"));
    document.getElementById("share-view-link").addEventListener(
        "click", () => makeLink("view", "viewer"));
    document.getElementById("share-copy").addEventListener("click", async () => {
        const url = document.getElementById("share-link-url");
        try {
            await navigator.clipboard.writeText(url.value);
            say("Link copied.", "ok");
        } catch {
            url.select();
            say("Select the link and copy it (Ctrl+C).");
        }
    });
    document.getElementById("share-away").addEventListener("change", async (event) => {
        try {
            await call(`${base}/sharing/policy`, "PUT", {owner_away: event.target.value});
            say("Saved.", "ok");
        } catch (error) {
            say(error.message, "bad");
        }
    });
}

// A member leaves the desktop (the same API as the owner's Remove): their connection closes
// and they go back to the Analysis page.
const leaveButton = document.getElementById("share-leave");
if (leaveButton) {
    leaveButton.addEventListener("click", async () => {
        if (!window.confirm("Leave this shared desktop? You need a new invitation to come back.")) return;
        try {
            await call(`${base}/members/${encodeURIComponent(leaveButton.dataset.username)}`, "DELETE");
            window.location.assign(leaveButton.dataset.afterUrl);
        } catch (error) {
            say(error.message, "bad");
            panel.hidden = false;
        }
    });
}

const timer = setInterval(refresh, REFRESH_SECONDS * 1000);
refresh();
