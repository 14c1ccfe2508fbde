// How long ago something started, in words ("just now", "12 min ago", "3 h 5 min ago",
// "2 days ago"): every element with data-since="<ISO time>" shows it and is kept up to date.
// machines.js uses the same words for My machines (window.daaasAge).
function daaasAge(since, now = Date.now()) {
  const minutes = Math.max(0, Math.floor((now - Date.parse(since)) / 60000));
  if (Number.isNaN(minutes)) return "";
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h${minutes % 60 ? ` ${minutes % 60} min` : ""} ago`;
  return `${Math.floor(hours / 24)} days ago`;
}
window.daaasAge = daaasAge;

function showAges() {
  for (const element of document.querySelectorAll("[data-since]")) {
    element.textContent = `(${daaasAge(element.dataset.since)})`;
  }
}

showAges();
setInterval(showAges, 30000);
