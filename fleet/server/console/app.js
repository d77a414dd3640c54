// edgefleet console: the router, sign-in and refresh. Pages live in
// fleet.js, devices.js, rollouts.js, artifacts.js, events.js and live.js (the live feed:
// an EventSource on a ticket). Each file is embedded and served under /console/.
"use strict";

let timer = null;

function login(msg) {
  clearInterval(timer);
  closeFeed();
  document.getElementById("signout").hidden = true;
  app.replaceChildren(document.getElementById("login").content.cloneNode(true));
  const err = document.getElementById("login-error");
  err.textContent = msg || "";
  document.getElementById("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const t = document.getElementById("token").value.trim();
    err.textContent = "";
    // Check the token before keeping it.
    const r = await fetch("/api/v1/fleet", { headers: { Authorization: "Bearer " + t } }).catch((x) => ({ ok: false, status: 0, statusText: x.message }));
    if (!r.ok) {
      err.textContent = r.status === 401 ? "This token was refused." : "fleetd answered: " + (r.status || "") + " " + r.statusText;
      return;
    }
    setToken(t);
    route();
  });
}

// busy: the page holds something the operator is working on (a form, a
// confirmation, typed text), so the periodic refresh leaves it alone.
function busy() {
  if (app.querySelector("[data-keep], .confirm")) return true;
  const a = document.activeElement;
  if (a && app.contains(a) && (a.tagName === "INPUT" || a.tagName === "SELECT")) return true;
  return [...app.querySelectorAll("input#abort-reason")].some((i) => i.value);
}

async function render(fn, refresh) {
  if (refresh && busy()) return;
  try {
    const nodes = await fn();
    if (refresh && busy()) return;
    app.replaceChildren(...[nodes].flat(4).filter(Boolean));
    const flash = sessionStorage.getItem("edgefleet_flash");
    if (flash) { sessionStorage.removeItem("edgefleet_flash"); app.prepend(el("p", { id: "flash", class: "ok" }, flash)); }
    statusEl.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e instanceof AuthError) { setToken(""); login("The token was refused."); return; }
    statusEl.textContent = "error: " + e.message;
    if (!refresh) app.replaceChildren(errorBox("Error: " + e.message)); // never "Loading…" for ever
  }
}

function route() {
  clearInterval(timer);
  closeFeed();
  if (!token()) { login(); return; }
  document.getElementById("signout").hidden = false;
  const h = location.hash || "#/";
  const [path, qs] = h.split("?");
  const params = new URLSearchParams(qs || "");
  let fn, every = 3000;
  if (path.startsWith("#/device/")) { const id = decodeURIComponent(path.slice(9)); fn = () => Pages.device(id); every = 5000; }
  else if (path.startsWith("#/rollout/")) { const id = decodeURIComponent(path.slice(10)); fn = () => Pages.rollout(id); }
  else if (path === "#/devices") { fn = () => Pages.devices(params); every = 10000; }
  else if (path === "#/rollouts") fn = () => Pages.rollouts(params);
  else if (path === "#/events") { fn = () => Pages.events(params); every = 15000; }
  else if (path === "#/models") { fn = Pages.models; every = 0; }
  else if (path === "#/firmware") { fn = Pages.firmware; every = 0; }
  else if (path === "#/live") { app.replaceChildren(...Pages.live().flat()); return; }
  else fn = Pages.overview;
  render(fn, false);
  if (every) timer = setInterval(() => render(fn, true), every);
}

document.getElementById("signout").addEventListener("click", (e) => { e.preventDefault(); setToken(""); route(); });
window.addEventListener("hashchange", route);
route();
