// Time left before a machine is deleted by its lifetime policy, counted down live in the
// browser from its end (expires_at, an ISO time from the server): every element with
// data-expires-at="<ISO time>" shows "2 days 3 h left", "45 min left", "ending now" and is
// kept up to date, marked data-soon when less than data-warn-hours (default 2) is left.
// machines.js uses the same words on the Analysis page's cards (window.daaasTimeLeft).
function daaasTimeLeft(until, now = Date.now()) {
  const minutes = Math.floor((Date.parse(until) - now) / 60000);
  if (Number.isNaN(minutes)) return "";
  if (minutes < 1) return "ending now";
  if (minutes < 60) return `${minutes} min left`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h${minutes % 60 ? ` ${minutes % 60} min` : ""} left`;
  const days = Math.floor(hours / 24);
  return `${days} days${hours % 24 ? ` ${hours % 24} h` : ""} left`;
}
window.daaasTimeLeft = daaasTimeLeft;

function daaasEndingSoon(until, warnHours, now = Date.now()) {
  return Date.parse(until) - now < warnHours * 3600000;
}
window.daaasEndingSoon = daaasEndingSoon;

function showTimeLeft() {
  for (const element of document.querySelectorAll("[data-expires-at]")) {
    const warn = Number(element.dataset.warnHours || 2);
    element.textContent = daaasTimeLeft(element.dataset.expiresAt);
    element.toggleAttribute("data-soon", daaasEndingSoon(element.dataset.expiresAt, warn));
  }
  for (const banner of document.querySelectorAll("[data-expiry-banner]")) {
    const warn = Number(banner.dataset.warnHours || 2);
    banner.hidden = !daaasEndingSoon(banner.dataset.expiryBanner, warn);
  }
}

showTimeLeft();
setInterval(showTimeLeft, 15000);
