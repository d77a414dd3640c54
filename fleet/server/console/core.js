// edgefleet console, shared parts: the token (sessionStorage, never a URL),
// requests to fleetd's REST API, DOM helpers and charts. Plain JS, no
// dependencies; every page file adds to the global Pages.
"use strict";

const app = document.getElementById("app");
const statusEl = document.getElementById("status");
const Pages = {};
const TOKEN_KEY = "edgefleet_token";

// An old /?token= link: read it once, keep it for the tab, drop it from the URL.
(function takeToken() {
  const u = new URL(location.href);
  const t = u.searchParams.get("token");
  if (t) {
    sessionStorage.setItem(TOKEN_KEY, t);
    u.searchParams.delete("token");
    history.replaceState(null, "", u.pathname + u.search + u.hash);
  }
  localStorage.removeItem(TOKEN_KEY); // older consoles kept it there
})();

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
function setToken(t) { if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY); }

class AuthError extends Error {}
class HTTPError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

function authHeaders(extra) { return Object.assign({ Authorization: "Bearer " + token() }, extra || {}); }

// errorOf turns a non-2xx answer into an error; 403 says the role cannot do it.
async function errorOf(r) {
  if (r.status === 401) return new AuthError("token refused");
  let msg = r.statusText;
  try { const b = await r.json(); msg = b.error || msg; } catch (_) { /* not JSON */ }
  if (r.status === 403) msg = "your role cannot do this (" + msg + ")";
  return new HTTPError(r.status, msg);
}

async function api(method, path, body) {
  const opt = { method, headers: authHeaders() };
  if (body !== undefined) { opt.headers["Content-Type"] = "application/json"; opt.body = JSON.stringify(body); }
  const r = await fetch(path, opt);
  if (!r.ok) throw await errorOf(r);
  return r.status === 204 ? null : r.json();
}
const get = (path) => api("GET", path);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("data-") || k === "for" || k === "style") e.setAttribute(k, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e[k] = v;
  }
  for (const k of kids.flat(3)) {
    if (k == null || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

const fmt = {
  num: (n, d = 1) => (n == null ? "–" : Number(n).toFixed(d).replace(/\.0+$/, "")),
  time: (t) => (t && !String(t).startsWith("0001") ? new Date(t).toLocaleTimeString() : "–"),
  date: (t) => (t && !String(t).startsWith("0001") ? new Date(t).toLocaleString() : "–"),
  us: (us) => new Date(us / 1000).toLocaleTimeString(),
  bytes: (n) => {
    if (n == null) return "–";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return fmt.num(n, 1) + " " + u[i];
  },
  dur: (s) => {
    if (s == null) return "–";
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m";
  },
};

function flags(list) { return (list || []).map((f) => el("span", { class: "flag" }, f.replace(/_/g, " "))); }
function healthCell(list) { return list && list.length ? flags(list) : el("span", { class: "ok" }, "ok"); }

function statusOf(d) { return d.status || (d.online ? "online" : "offline"); }
function statusDot(st) {
  const text = st === "never" ? "never connected" : st;
  return el("span", { class: "st-" + st }, el("span", { class: "dot " + st }), text);
}

function errorBox(msg) { return el("p", { class: "error", id: "page-error" }, msg); }

// confirmBox shows an inline confirmation (no browser dialog): ok runs on "Yes".
function confirmBox(id, question, yesLabel, ok, extra) {
  const msg = el("span", { class: "error" });
  const box = el("div", { class: "confirm", id },
    el("p", {}, question), extra || null,
    el("button", { id: id + "-yes", class: "danger", onclick: async () => {
      msg.textContent = "";
      try { await ok(); } catch (e) { msg.textContent = e.message; }
    } }, yesLabel),
    " ", el("button", { id: id + "-no", onclick: () => box.remove() }, "Cancel"), " ", msg);
  return box;
}

// svgChart draws series [{t: ms, v: number}] as an inline SVG line or bar
// chart; opts: bars, color, and tfmt (how the axis writes a time).
function svgChart(title, points, opts = {}) {
  const W = 320, H = 120, P = 24;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("data-chart", title);
  const vals = points.map((p) => p.v);
  const max = Math.max(1e-9, ...vals, 0);
  const t0 = points.length ? points[0].t : 0, t1 = points.length ? points[points.length - 1].t : 1;
  const x = (t) => P + ((t - t0) / Math.max(1, t1 - t0)) * (W - P - 4);
  const y = (v) => H - P + 4 - (v / max) * (H - P - 4);
  const add = (tag, attrs) => { const e = document.createElementNS(ns, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); svg.append(e); return e; };
  add("line", { x1: P, y1: H - P + 4, x2: W - 4, y2: H - P + 4, stroke: "#ccc" });
  add("text", { x: 2, y: 12, "font-size": 10, fill: "#6b7385" }).textContent = fmt.num(max, 2);
  add("text", { x: 2, y: H - P + 4, "font-size": 10, fill: "#6b7385" }).textContent = "0";
  if (points.length) {
    const tf = opts.tfmt || fmt.time;
    add("text", { x: P, y: H - 4, "font-size": 10, fill: "#6b7385" }).textContent = tf(t0);
    add("text", { x: W - 4, y: H - 4, "font-size": 10, fill: "#6b7385", "text-anchor": "end" }).textContent = tf(t1);
  }
  if (opts.bars) {
    const bw = Math.max(1, (W - P - 4) / Math.max(1, points.length) - 1);
    points.forEach((p, i) => add("rect", { x: P + i * (bw + 1), y: y(p.v), width: bw, height: H - P + 4 - y(p.v), fill: "#2f6feb", "data-t": p.t, "data-v": p.v }));
  } else if (points.length) {
    add("polyline", { points: points.map((p) => `${x(p.t)},${y(p.v)}`).join(" "), fill: "none", stroke: opts.color || "#2f6feb", "stroke-width": 1.5 });
  }
  return el("div", { class: "chart" }, el("h3", {}, title), svg);
}

function detRow(r) {
  return el("tr", { "data-label": r.label, "data-device": r.device_id },
    el("td", {}, fmt.us(r.time_us)), el("td", {}, el("a", { href: "#/device/" + encodeURIComponent(r.device_id) }, r.device_id)),
    el("td", {}, r.camera_id), el("td", {}, r.label), el("td", {}, fmt.num(r.score, 2)), el("td", {}, r.seq));
}

function detTable(records, id) {
  return el("table", { id },
    el("tr", {}, ["time", "device", "camera", "label", "score", "seq"].map((h) => el("th", {}, h))),
    (records || []).map(detRow));
}
