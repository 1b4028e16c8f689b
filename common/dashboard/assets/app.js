// satstream dashboards: the only script. It ticks the countdowns every
// second, refreshes the live parts of the page when the daemon sends a
// change event, and copies offers to the clipboard. Everything else is
// rendered by the daemon.
"use strict";

function fmtLeft(ms) {
  const neg = ms < 0;
  let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const pad = (v) => String(v).padStart(2, "0");
  let out = (d ? d + "d " : "") + (d || h ? h + "h " : "") + pad(m) + "m " + pad(s) + "s";
  return neg ? "ended " + out + " ago" : out + " left";
}

function tick() {
  const now = Date.now();
  document.querySelectorAll("[data-until]").forEach((el) => {
    const t = Date.parse(el.dataset.until);
    if (isNaN(t)) return;
    el.textContent = fmtLeft(t - now);
    el.classList.toggle("over", t <= now);
    el.dataset.leftMs = String(t - now);
  });
}

let refreshing = false, again = false;
async function refresh() {
  if (refreshing) { again = true; return; }
  refreshing = true;
  try {
    const r = await fetch(location.href, { credentials: "same-origin" });
    if (r.ok && r.url === location.href) {
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      document.querySelectorAll("[data-live][id]").forEach((el) => {
        const fresh = doc.getElementById(el.id);
        if (fresh) el.replaceWith(fresh);
      });
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
      tick();
    }
  } catch (e) { /* the next event tries again */ }
  refreshing = false;
  if (again) { again = false; refresh(); }
}

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("[data-copy]");
  if (b) {
    const src = document.getElementById(b.dataset.copy);
    const text = src ? src.textContent.trim() : "";
    const done = () => { b.textContent = "Copied"; };
    if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, done);
    else done();
  }
});

document.addEventListener("DOMContentLoaded", () => {
  tick();
  setInterval(tick, 1000);
  const li = document.getElementById("loggedin");
  if (li) { location.replace(li.dataset.redirect || "/"); return; }
  const url = document.body.dataset.events;
  if (url && window.EventSource) {
    const es = new EventSource(url);
    es.addEventListener("change", refresh);
    es.addEventListener("open", () => { document.body.dataset.live = "on"; });
  }
});
