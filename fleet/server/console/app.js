// edgefleet console: plain JS, no dependencies, talks to fleetd's REST API.
"use strict";

const app = document.getElementById("app");
const statusEl = document.getElementById("status");
let timer = null;
let feed = null;

(function takeToken() {
  const u = new URL(location.href);
  const t = u.searchParams.get("token");
  if (t) {
    localStorage.setItem("edgefleet_token", t);
    u.searchParams.delete("token");
    history.replaceState(null, "", u.pathname + u.search + u.hash);
  }
})();

function token() { return localStorage.getItem("edgefleet_token") || ""; }

class AuthError extends Error {}

async function get(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
  if (r.status === 401) throw new AuthError("token refused");
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const k of kids.flat()) {
    if (k == null) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

const fmt = {
  num: (n, d = 1) => (n == null ? "–" : Number(n).toFixed(d).replace(/\.0+$/, "")),
  time: (t) => (t ? new Date(t).toLocaleTimeString() : "–"),
  us: (us) => new Date(us / 1000).toLocaleTimeString(),
};

function flags(list) {
  return (list || []).map((f) => el("span", { class: "flag" }, f.replace(/_/g, " ")));
}

function healthCell(list) {
  return list && list.length ? flags(list) : el("span", { class: "ok" }, "ok");
}

function onlineDot(on) {
  return el("span", {}, el("span", { class: "dot " + (on ? "on" : "off") }), on ? "online" : "offline");
}

// svgChart draws series [{t: ms, v: number}] as an inline SVG line or bar chart.
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
    add("text", { x: P, y: H - 4, "font-size": 10, fill: "#6b7385" }).textContent = fmt.time(t0);
    add("text", { x: W - 60, y: H - 4, "font-size": 10, fill: "#6b7385" }).textContent = fmt.time(t1);
  }
  if (opts.bars) {
    const bw = Math.max(1, (W - P - 4) / Math.max(1, points.length) - 1);
    points.forEach((p, i) => add("rect", { x: P + i * (bw + 1), y: y(p.v), width: bw, height: H - P + 4 - y(p.v), fill: "#2f6feb" }));
  } else if (points.length) {
    add("polyline", { points: points.map((p) => `${x(p.t)},${y(p.v)}`).join(" "), fill: "none", stroke: opts.color || "#2f6feb", "stroke-width": 1.5 });
  }
  return el("div", { class: "chart" }, el("h3", {}, title), svg);
}

async function overview() {
  const [fleet, devs, rate] = await Promise.all([
    get("/api/v1/fleet"),
    get("/api/v1/devices"),
    get("/api/v1/detections/count?from=-30m&bucket=1m"),
  ]);
  const cards = el("div", { class: "cards" },
    el("div", { class: "card" }, el("b", { id: "n-devices" }, fleet.devices), "devices"),
    el("div", { class: "card" }, el("b", { id: "n-online" }, fleet.online), "online"),
    el("div", { class: "card" }, el("b", {}, fleet.unhealthy), "with health flags"),
    el("div", { class: "card" }, el("b", { id: "rate" }, fmt.num(fleet.detections_per_min, 0)), "detections / min"));
  const groups = el("table", {},
    el("tr", {}, el("th", {}, "site"), el("th", {}, "line"), el("th", {}, "online"), el("th", {}, "offline"), el("th", {}, "flagged"), el("th", {}, "detections/min")),
    fleet.groups.map((g) => el("tr", {}, el("td", {}, g.site || "–"), el("td", {}, g.line || "–"), el("td", {}, g.online), el("td", {}, g.offline), el("td", {}, g.unhealthy), el("td", {}, fmt.num(g.detections_per_min, 0)))));
  // Devices with health flags first; a big fleet shows its first 300 here.
  const MAX_ROWS = 300;
  const sorted = devs.devices.slice().sort((a, b) => (b.health || []).length - (a.health || []).length || a.id.localeCompare(b.id));
  const rows = sorted.slice(0, MAX_ROWS).map((d) => el("tr", { "data-device": d.id },
    el("td", {}, el("a", { href: "#/device/" + encodeURIComponent(d.id) }, d.id)),
    el("td", {}, (d.labels || {}).site || "–"), el("td", {}, (d.labels || {}).line || "–"),
    el("td", {}, onlineDot(d.online)),
    el("td", {}, d.model ? `${d.model} ${d.model_version || ""}` : "–"),
    el("td", {}, [d.engine, d.delegate].filter(Boolean).join(" / ") || "–"),
    el("td", { class: "det" }, d.detections), el("td", {}, fmt.num(d.detections_per_min, 0)),
    el("td", {}, healthCell(d.health))));
  const devTable = el("table", { id: "devices" },
    el("tr", {}, ["device", "site", "line", "status", "model", "engine", "detections", "per min", "health"].map((h) => el("th", {}, h))), rows);
  const chart = svgChart("Detections per minute, last 30 min", rate.buckets.map((b) => ({ t: Date.parse(b.start), v: b.count })), { bars: true });
  const more = sorted.length > MAX_ROWS ? el("p", {}, `Showing ${MAX_ROWS} of ${sorted.length} devices (flagged first); fleetctl devices list shows all.`) : null;
  return [el("h2", {}, "Fleet"), cards, el("div", { class: "charts" }, chart), el("h3", {}, "By site and line"), groups, el("h3", {}, "Devices"), more, devTable];
}

async function devicePage(id) {
  const q = encodeURIComponent(id);
  const [d, tel, det] = await Promise.all([
    get("/api/v1/devices/" + q),
    get("/api/v1/devices/" + q + "/telemetry?since=-1h"),
    get("/api/v1/detections?limit=25&from=-24h&device=" + q),
  ]);
  const pts = tel.points || [];
  const series = (f) => pts.map((p) => ({ t: Date.parse(p.time), v: f(p) }));
  const t = d.telemetry || {};
  const info = el("table", { id: "device-info" },
    [["id", d.id], ["status", onlineDot(d.online)], ["labels", Object.entries(d.labels || {}).map(([k, v]) => `${k}=${v}`).join(" ") || "–"],
     ["agent", d.agent_version || "–"], ["model", d.model ? `${d.model} ${d.model_version || ""}` : "–"],
     ["engine", [d.engine, d.delegate, t.engine_version].filter(Boolean).join(" / ") || "–"],
     ["cameras", (t.cameras || []).map((c) => `${c.id} ${c.up ? "up" : "DOWN"} ${fmt.num(c.fps)} fps`).join(", ") || (d.cameras || []).join(", ") || "–"],
     ["last seen", fmt.time(d.last_seen)], ["health", healthCell(d.health)]]
      .map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
  const charts = el("div", { class: "charts" },
    svgChart("Frames per second", series((p) => p.fps)),
    svgChart("Inference p50 ms", series((p) => p.infer_p50_ms), { color: "#8250df" }),
    svgChart("Inference p99 ms", series((p) => p.infer_p99_ms), { color: "#bf3989" }),
    svgChart("Dropped frames", series((p) => p.dropped), { color: "#c62828" }),
    svgChart("Spool depth", series((p) => p.spool_depth), { color: "#b26a00" }));
  const snapBase = /^https?:\/\//.test(d.snapshot_url || "") ? d.snapshot_url : ""; // only http(s) from a device
  const snaps = snapBase ? (d.cameras || []).map((c) =>
    el("figure", {}, el("img", { class: "snap", src: `${snapBase.replace(/\/$/, "")}/snapshot/${encodeURIComponent(c)}.jpg?t=${Date.now()}`, alt: "snapshot " + c }), el("figcaption", {}, c))) : [];
  return [el("h2", {}, "Device ", d.id), info, charts,
    snaps.length ? [el("h3", {}, "Latest snapshot"), snaps] : null,
    el("h3", {}, "Recent detections"), detTable(det.records, "recent")];
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

function livePage() {
  const input = el("input", { id: "label-filter", placeholder: "label, e.g. person", value: sessionStorage.getItem("edgefleet_label") || "" });
  const table = detTable([], "feed");
  const state = el("span", { id: "feed-state" }, "connecting…");
  // EventSource sends no headers: the feed takes a single-use ticket,
  // fetched with the token in the header; a lost feed needs a new one.
  // Nothing reconnects once the page is left (input no longer shown).
  let mine = null, retry = null;
  const connect = async () => {
    clearTimeout(retry);
    if (mine) mine.close();
    state.textContent = "connecting…";
    sessionStorage.setItem("edgefleet_label", input.value.trim());
    let ticket;
    try {
      const r = await fetch("/api/v1/live/ticket", { method: "POST", headers: { Authorization: "Bearer " + token() } });
      if (!r.ok) throw new Error(r.statusText);
      ticket = (await r.json()).ticket;
    } catch (e) {
      state.textContent = "reconnecting…";
      if (input.isConnected) retry = setTimeout(connect, 3000);
      return;
    }
    if (!input.isConnected) return;
    const p = new URLSearchParams({ ticket });
    if (input.value.trim()) p.set("label", input.value.trim());
    const es = new EventSource("/api/v1/detections/stream?" + p);
    mine = feed = es;
    es.onopen = () => { state.textContent = "live"; };
    es.onerror = () => {
      state.textContent = "reconnecting…";
      es.close();
      if (mine === es && input.isConnected) retry = setTimeout(connect, 2000);
    };
    es.addEventListener("detection", (ev) => {
      const r = JSON.parse(ev.data);
      table.insertBefore(detRow(r), table.rows[1] || null);
      while (table.rows.length > 201) table.deleteRow(table.rows.length - 1);
    });
  };
  input.addEventListener("change", connect);
  connect();
  return [el("h2", {}, "Live detections"), el("p", {}, "Filter by label: ", input, " ", state), table];
}

// Rollouts (OTA): list and per-rollout progress. fleetd without OTA answers 404.
function rolloutState(r) {
  if (r.state === "canary") return "canary";
  if (r.state === "wave") return `wave ${r.wave}/${r.waves}`;
  return r.state.replace(/_/g, " ");
}

function bar(done, failed, total) {
  const pct = (n) => (total ? (100 * n) / total : 0);
  return el("span", { class: "bar", title: `${done} succeeded, ${failed} failed of ${total}` },
    el("span", { class: "bar-ok", style: `width:${pct(done)}%` }), el("span", { class: "bar-bad", style: `width:${pct(failed)}%` }));
}

async function rolloutsPage() {
  let l;
  try { l = await get("/api/v1/rollouts"); } catch (e) {
    if (e instanceof AuthError) throw e;
    return [el("h2", {}, "Rollouts"), el("p", {}, "Rollouts are not available: " + e.message)];
  }
  const rs = (l.rollouts || []).slice().sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  const table = el("table", { id: "rollouts" },
    el("tr", {}, ["rollout", "artifact", "selector", "state", "progress", "succeeded", "failed / max", "rolled back", "targets", "created"].map((h) => el("th", {}, h))),
    rs.map((r) => el("tr", { "data-rollout": r.id, "data-state": r.state },
      el("td", {}, el("a", { href: "#/rollout/" + encodeURIComponent(r.id) }, r.id)),
      el("td", {}, `${r.kind === "firmware" ? "agent " : ""}${r.name}@${r.version}`), el("td", {}, r.selector || "all devices"),
      el("td", { class: "state-" + r.state }, rolloutState(r)), el("td", {}, bar(r.succeeded, r.failed, r.targets)),
      el("td", {}, r.succeeded), el("td", {}, `${r.failed} / ${r.max_failures}`), el("td", {}, r.rolled_back), el("td", {}, r.targets),
      el("td", {}, fmt.time(Date.parse(r.created_at))))));
  return [el("h2", {}, "Rollouts"),
    rs.length ? table : el("p", {}, "No rollout yet: fleetctl rollouts create --model NAME@VERSION starts one.")];
}

const JOB_ORDER = ["pending", "dispatched", "queued", "downloading", "verifying", "installing", "health_check", "succeeded", "skipped", "failed", "rolled_back", "timed_out"];

function stateCounts(id, counts) {
  const keys = Object.keys(counts || {}).sort((a, b) => JOB_ORDER.indexOf(a) - JOB_ORDER.indexOf(b));
  return el("table", { id, class: "narrow" }, el("tr", {}, el("th", {}, "state"), el("th", {}, "devices")),
    keys.map((k) => el("tr", { "data-state": k }, el("td", {}, k.replace(/_/g, " ")), el("td", { class: "count" }, counts[k]))));
}

async function rolloutPage(id) {
  const v = await get("/api/v1/rollouts/" + encodeURIComponent(id));
  const info = el("table", { id: "rollout-info" },
    [["rollout", v.id], ["artifact", `${v.kind} ${v.name}@${v.version}`], ["sha256", v.sha256], ["selector", v.selector || "all devices"],
     ["state", el("span", { id: "rollout-state", class: "state-" + v.state }, rolloutState(v))], ["reason", v.reason || "–"],
     ["devices", `${v.targets}: ${v.succeeded} succeeded, ${v.failed} failed (max ${v.max_failures}), ${v.rolled_back} rolled back`],
     ["progress", bar(v.succeeded, v.failed, v.targets)],
     ["health window", `${v.health_window}, job timeout ${v.job_timeout}`], ["created", new Date(v.created_at).toLocaleString()]]
      .map(([k, val]) => el("tr", {}, el("th", {}, k), el("td", {}, val))));
  const waves = el("table", { id: "waves" },
    el("tr", {}, ["wave", "devices", "pending", "in flight", "succeeded", "failed", "progress"].map((h) => el("th", {}, h))),
    (v.progress || []).map((p) => el("tr", { "data-wave": p.wave, class: v.state === (p.wave ? "wave" : "canary") && v.wave === p.wave ? "current" : "" },
      el("td", {}, p.wave ? `${p.wave} (${fmt.num((v.wave_percents || [])[p.wave - 1], 1)}%)` : "canary"),
      el("td", {}, p.devices), el("td", {}, p.pending), el("td", {}, p.in_flight), el("td", {}, p.succeeded), el("td", {}, p.failed),
      el("td", {}, bar(p.succeeded, p.failed, p.devices)))));
  // Devices still moving or failed first; a big rollout shows its first 200 here.
  const MAX_ROWS = 200;
  const rank = (j) => (j.state === "succeeded" || j.state === "skipped" ? 2 : j.state === "pending" ? 1 : 0);
  const jobs = (v.jobs || []).slice().sort((a, b) => rank(a) - rank(b) || a.wave - b.wave || a.device_id.localeCompare(b.device_id));
  const jobTable = el("table", { id: "jobs" },
    el("tr", {}, ["device", "wave", "state", "previous", "rollback", "reason", "updated"].map((h) => el("th", {}, h))),
    jobs.slice(0, MAX_ROWS).map((j) => el("tr", { "data-device": j.device_id, "data-state": j.state },
      el("td", {}, el("a", { href: "#/device/" + encodeURIComponent(j.device_id) }, j.device_id)),
      el("td", {}, j.wave || "canary"),
      el("td", { class: "state-" + j.state }, j.state === "downloading" && j.progress ? `downloading ${fmt.num(100 * j.progress, 0)}%` : j.state.replace(/_/g, " ")),
      el("td", {}, j.previous || "–"), el("td", {}, j.rollback ? j.rollback.replace(/_/g, " ") : "–"),
      el("td", { class: "reason" }, [j.reason, j.rollback_reason && "rollback: " + j.rollback_reason].filter(Boolean).join("; ") || "–"),
      el("td", {}, fmt.time(Date.parse(j.updated_at))))));
  const more = jobs.length > MAX_ROWS ? el("p", {}, `Showing ${MAX_ROWS} of ${jobs.length} devices (unfinished and failed first); fleetctl rollouts show ${v.id} --all lists all.`) : null;
  const rb = Object.keys(v.rollback_states || {}).length ? [el("h3", {}, "Rollback jobs by state"), stateCounts("rollback-states", v.rollback_states)] : null;
  return [el("h2", {}, "Rollout ", v.id), info, el("h3", {}, "Waves"), waves,
    el("div", { class: "counts" }, el("div", {}, el("h3", {}, "Devices by job state"), stateCounts("job-states", v.states)), rb && el("div", {}, rb)),
    el("h3", {}, "Devices"), more, jobTable];
}

function login(msg) {
  app.replaceChildren(document.getElementById("login").content.cloneNode(true));
  document.getElementById("login-error").textContent = msg || "";
  document.getElementById("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    localStorage.setItem("edgefleet_token", document.getElementById("token").value.trim());
    route();
  });
}

async function render(fn) {
  try {
    const nodes = await fn();
    app.replaceChildren(...[nodes].flat(3).filter(Boolean));
    statusEl.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e instanceof AuthError) { clearInterval(timer); login("The token was refused."); return; }
    statusEl.textContent = "error: " + e.message;
  }
}

function route() {
  clearInterval(timer);
  if (feed) { feed.close(); feed = null; }
  if (!token()) { login(); return; }
  const h = location.hash || "#/";
  let fn;
  if (h.startsWith("#/device/")) { const id = decodeURIComponent(h.slice(9)); fn = () => devicePage(id); }
  else if (h.startsWith("#/rollout/")) { const id = decodeURIComponent(h.slice(10)); fn = () => rolloutPage(id); }
  else if (h === "#/rollouts") fn = rolloutsPage;
  else if (h === "#/live") { app.replaceChildren(...livePage().flat()); return; }
  else fn = overview;
  render(fn);
  timer = setInterval(() => render(fn), 3000);
}

window.addEventListener("hashchange", route);
route();
