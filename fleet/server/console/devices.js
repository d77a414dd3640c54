// Devices: the searchable, filtered, sorted and paged list (fleetd does the
// work, so it holds 10,000 devices), and one device's page.
"use strict";

const PAGE_SIZE = 50;
const FILTERS = ["q", "site", "line", "status", "health", "model", "version"];

function devicesHash(p) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) if (v !== "" && v != null && !(k === "offset" && !v)) q.set(k, v);
  const s = q.toString();
  return "#/devices" + (s ? "?" + s : "");
}

Pages.devices = async function devicesPage(params) {
  const p = {};
  for (const k of [...FILTERS, "sort"]) p[k] = params.get(k) || "";
  p.offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  const q = new URLSearchParams();
  for (const k of [...FILTERS, "sort"]) if (p[k]) q.set(k, p[k]);
  q.set("offset", p.offset);
  q.set("limit", PAGE_SIZE);
  const page = await get("/api/v1/devices?" + q);
  const go = (change) => { location.hash = devicesHash(Object.assign({}, p, { offset: 0 }, change)); };
  const input = (k, ph) => el("input", { id: "f-" + k, value: p[k], placeholder: ph, onchange: (e) => go({ [k]: e.target.value.trim() }) });
  const select = (k, opts) => el("select", { id: "f-" + k, onchange: (e) => go({ [k]: e.target.value }) },
    opts.map(([v, label]) => el("option", { value: v, selected: p[k] === v }, label)));
  const filters = el("div", { class: "filters" },
    input("q", "search id or label"), input("site", "site"), input("line", "line"),
    select("status", [["", "any status"], ["online", "online"], ["offline", "offline"], ["never", "never connected"]]),
    select("health", [["", "any health"], ["ok", "healthy"], ["unhealthy", "unhealthy"], ["offline", "offline"], ["stale_telemetry", "stale telemetry"],
      ["high_drop_rate", "high drop rate"], ["camera_down", "camera down"], ["spool_backlog", "spool backlog"]]),
    input("model", "model"), input("version", "version"),
    el("button", { id: "f-clear", onclick: () => { location.hash = "#/devices"; } }, "Clear"));
  const cols = [["device", "id"], ["site", "site"], ["line", "line"], ["status", "status"], ["model", "model"], ["version", "version"],
    ["engine", null], ["detections", "detections"], ["per min", "rate"], ["last seen", "last_seen"], ["health", "health"]];
  const head = el("tr", {}, cols.map(([label, key]) => {
    if (!key) return el("th", {}, label);
    const cur = p.sort.replace(/^-/, "") === key || (!p.sort && key === "id");
    const desc = cur && p.sort.startsWith("-");
    return el("th", { class: "sortable" + (cur ? " sorted" : ""), "data-sort": key, onclick: () => go({ sort: cur && !desc ? "-" + key : key }) },
      label, cur ? (desc ? " ▼" : " ▲") : "");
  }));
  const rows = page.devices.map((d) => el("tr", { "data-device": d.id, "data-status": statusOf(d) },
    el("td", {}, el("a", { href: "#/device/" + encodeURIComponent(d.id) }, d.id)),
    el("td", {}, (d.labels || {}).site || "–"), el("td", {}, (d.labels || {}).line || "–"),
    el("td", {}, statusDot(statusOf(d))), el("td", {}, d.model || "–"), el("td", {}, d.model_version || "–"),
    el("td", {}, [d.engine, d.delegate].filter(Boolean).join(" / ") || "–"),
    el("td", { class: "det" }, d.detections), el("td", {}, fmt.num(d.detections_per_min, 0)), el("td", {}, fmt.time(d.last_seen)),
    el("td", {}, statusOf(d) === "never" ? "–" : healthCell(d.health))));
  const last = p.offset + page.devices.length;
  const pager = el("div", { class: "pager" },
    el("span", { id: "devices-total" }, page.total ? `${p.offset + 1}–${last} of ${page.total} devices` : "No device matches."), " ",
    el("button", { id: "page-prev", disabled: p.offset === 0, onclick: () => { location.hash = devicesHash(Object.assign({}, p, { offset: Math.max(0, p.offset - PAGE_SIZE) })); } }, "‹ Previous"), " ",
    el("button", { id: "page-next", disabled: last >= page.total, onclick: () => { location.hash = devicesHash(Object.assign({}, p, { offset: p.offset + PAGE_SIZE })); } }, "Next ›"));
  return [el("h2", {}, "Devices"), filters, pager, el("table", { id: "devices" }, head, rows)];
};

// deviceGet returns the device, or null for 404.
async function deviceGet(id) {
  try { return await get("/api/v1/devices/" + encodeURIComponent(id)); } catch (e) {
    if (e instanceof HTTPError && e.status === 404) return null;
    throw e;
  }
}

function inventoryRows(inv) {
  if (!inv) return [["inventory", "not reported by this agent"]];
  return [["address", inv.address || "–"], ["OS / arch", [inv.os, inv.arch].filter(Boolean).join(" / ") || "–"],
    ["disk", inv.disk_total_bytes ? `${fmt.bytes(inv.disk_free_bytes)} free of ${fmt.bytes(inv.disk_total_bytes)}` : "–"],
    ["uptime", fmt.dur(inv.uptime_s)], ["agent version", inv.agent_version || "–"]];
}

function jobsTable(jobs) {
  return el("table", { id: "job-history" },
    el("tr", {}, ["job", "state", "progress", "reason", "reported"].map((h) => el("th", {}, h))),
    (jobs || []).map((j) => el("tr", { "data-job": j.job_id, "data-state": j.state },
      el("td", {}, j.job_id), el("td", { class: "state-" + j.state }, j.state.replace(/_/g, " ")),
      el("td", {}, j.progress ? fmt.num(100 * j.progress, 0) + "%" : "–"), el("td", { class: "reason" }, j.reason || "–"),
      el("td", {}, j.time_ms ? fmt.date(j.time_ms) : "–"))));
}

function trialTable(rollouts) {
  return el("table", { id: "device-rollouts" },
    el("tr", {}, ["rollout", "artifact", "rollout state", "wave", "job state", "previous", "rollback", "reason"].map((h) => el("th", {}, h))),
    (rollouts || []).map((r) => el("tr", { "data-rollout": r.id, "data-state": r.job.state },
      el("td", {}, el("a", { href: "#/rollout/" + encodeURIComponent(r.id) }, r.id)), el("td", {}, r.artifact),
      el("td", { class: "state-" + r.state }, r.state.replace(/_/g, " ")), el("td", {}, r.job.wave || "canary"),
      el("td", { class: "state-" + r.job.state }, r.job.state.replace(/_/g, " ")), el("td", {}, r.job.previous || "–"),
      el("td", {}, r.job.rollback ? r.job.rollback.replace(/_/g, " ") : "–"), el("td", { class: "reason" }, r.job.reason || "–"))));
}

// snapshots fetch each camera's snapshot through fleetd with the token
// header (an <img src> cannot send one) and show it as a blob URL. fleetd
// asks the agent over MQTT each time, so the page's refreshes reuse them
// for 30 s.
let snapCache = { id: "", at: 0, nodes: null };

function snapshots(d) {
  const now = Date.now();
  if (snapCache.id === d.id && now - snapCache.at < 30000 && snapCache.nodes) return snapCache.nodes;
  snapCache = { id: d.id, at: now, nodes: fetchSnapshots(d) };
  return snapCache.nodes;
}

function fetchSnapshots(d) {
  return (d.cameras || []).map((c) => {
    const img = el("img", { class: "snap", alt: "snapshot " + c });
    const note = el("figcaption", {}, c);
    fetch(`/api/v1/devices/${encodeURIComponent(d.id)}/cameras/${encodeURIComponent(c)}/snapshot`, { headers: authHeaders() })
      .then(async (r) => {
        if (!r.ok) throw await errorOf(r);
        img.onload = () => URL.revokeObjectURL(img.src); // the page refreshes: free each one once shown
        img.src = URL.createObjectURL(await r.blob());
      })
      .catch((e) => { img.remove(); note.replaceChildren(el("span", { class: "error snap-error" }, `${c}: snapshot unavailable (${e.message})`)); });
    return el("figure", { "data-camera": c }, img, note);
  });
}

function decommission(d) {
  const purge = el("input", { type: "checkbox", id: "purge" });
  const slot = el("div", {});
  const btn = el("button", { id: "decommission", class: "danger", onclick: () => {
    if (slot.firstChild) return;
    slot.append(confirmBox("decommission-confirm", `Decommission ${d.id}? The registry forgets it; it reappears if it connects again.`,
      "Decommission " + d.id, async () => {
        const res = await api("DELETE", "/api/v1/devices/" + encodeURIComponent(d.id) + (purge.checked ? "?purge=true" : ""));
        sessionStorage.setItem("edgefleet_flash", `${res.deleted} decommissioned` + (res.purge ? `, ${res.purged_detections} detections deleted` : ""));
        location.hash = "#/devices";
      }, el("label", { for: "purge" }, purge, " also delete its detections")));
  } }, "Decommission…");
  return [btn, slot];
}

Pages.device = async function devicePage(id) {
  const d = await deviceGet(id);
  if (!d) return [el("h2", {}, "Device ", id), errorBox(`No device named ${id}.`), el("p", {}, el("a", { href: "#/devices" }, "All devices"))];
  const st = statusOf(d);
  const t = d.telemetry || {};
  const info = el("table", { id: "device-info" },
    [["id", d.id], ["status", statusDot(st)], ["labels", Object.entries(d.labels || {}).map(([k, v]) => `${k}=${v}`).join(" ") || "–"],
     ["agent", d.agent_version || "–"], ["model", d.model ? `${d.model} ${d.model_version || ""}` : "–"],
     ["engine", [d.engine, d.delegate, t.engine_version].filter(Boolean).join(" / ") || "–"],
     ["cameras", (t.cameras || []).map((c) => `${c.id} ${c.up ? "up" : "DOWN"} ${fmt.num(c.fps)} fps`).join(", ") || (d.cameras || []).join(", ") || "–"],
     ["first seen", fmt.date(d.first_seen)], ["last seen", fmt.date(d.last_seen)], ["health", st === "never" ? "–" : healthCell(d.health)]]
      .map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
  const head = [el("h2", {}, "Device ", d.id), info];
  if (st === "never") {
    return [head, el("p", { id: "never-note" }, "Provisioned in fleetd's configuration (devices:); it has never connected. Remove it there to decommission it.")];
  }
  const q = encodeURIComponent(id);
  const [tel, det] = await Promise.all([
    get("/api/v1/devices/" + q + "/telemetry?since=-1h"),
    get("/api/v1/detections?limit=25&from=-24h&device=" + q),
  ]);
  const inv = el("table", { id: "inventory" }, inventoryRows(d.inventory).map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
  const pts = tel.points || [];
  const series = (f) => pts.map((p) => ({ t: Date.parse(p.time), v: f(p) }));
  const charts = el("div", { class: "charts" },
    svgChart("Frames per second", series((p) => p.fps)),
    svgChart("Inference p50 ms", series((p) => p.infer_p50_ms), { color: "#8250df" }),
    svgChart("Inference p99 ms", series((p) => p.infer_p99_ms), { color: "#bf3989" }),
    svgChart("Dropped frames", series((p) => p.dropped), { color: "#c62828" }),
    svgChart("Spool depth", series((p) => p.spool_depth), { color: "#b26a00" }));
  return [head, el("h3", {}, "Inventory"), inv, charts, cameraCounters(t),
    el("p", {}, el("a", { id: "device-events", href: "#/events?device=" + q }, "Events of this device")),
    el("h3", {}, "Rollouts (trial state)"), (d.rollouts || []).length ? trialTable(d.rollouts) : el("p", {}, "No rollout has targeted this device."),
    el("h3", {}, "Job history"), (d.jobs || []).length ? jobsTable(d.jobs) : el("p", {}, "No job reported."),
    (d.cameras || []).length ? [el("h3", {}, "Latest snapshot"), el("div", { id: "snapshots", "data-static": "1" }, snapshots(d))] : null,
    el("h3", {}, "Recent detections"), detTable(det.records, "recent"),
    el("h3", {}, "Decommission"), decommission(d)];
};
