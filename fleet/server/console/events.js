// Events: the analytics events (line crossings, zone entries and exits,
// ended tracks) with their thumbnails, filters, the full snapshot of one
// event, and each line's crossings over time as a chart.
"use strict";

const EVENT_TYPES = [["", "any type"], ["line_cross", "line crossing"], ["zone_enter", "zone enter"], ["zone_exit", "zone exit"], ["track_end", "track end"]];
const EVENT_RANGES = [["-1h", "last hour"], ["-6h", "last 6 hours"], ["-24h", "last 24 hours"], ["-168h", "last 7 days"]];
const EVENT_BUCKETS = [["5m", 300e3], ["15m", 900e3], ["1h", 3600e3], ["6h", 6 * 3600e3], ["24h", 24 * 3600e3]];
const EVENT_FILTERS = ["device", "camera", "type", "label"];

// Event pictures are fetched with the token header (an <img src> cannot
// send one) and kept as object URLs, so the page's refreshes reuse them.
const eventPics = new Map();

function eventPicture(e, part) {
  const key = `${e.device_id}/${e.seq}/${part}`;
  if (!eventPics.has(key)) {
    eventPics.set(key, fetch(`/api/v1/events/${encodeURIComponent(e.device_id)}/${e.seq}/snapshot?part=${part}`, { headers: authHeaders() })
      .then(async (r) => { if (!r.ok) throw await errorOf(r); return URL.createObjectURL(await r.blob()); })
      .catch((x) => { eventPics.delete(key); throw x; })); // a failure is tried again at the next refresh
    while (eventPics.size > 400) { // the oldest go
      const [k, p] = eventPics.entries().next().value;
      eventPics.delete(k);
      p.then((u) => URL.revokeObjectURL(u), () => {});
    }
  }
  return eventPics.get(key);
}

// eventImg is an <img> that shows an event's picture once fetched.
function eventImg(e, part, cls) {
  const img = el("img", { class: cls, alt: `${part} of ${e.device_id}/${e.seq}`, "data-part": part });
  eventPicture(e, part).then((u) => { img.src = u; })
    .catch((x) => { img.replaceWith(el("span", { class: "error snap-error" }, `${part} unavailable (${x.message})`)); });
  return img;
}

function eventDetail(e) {
  const parts = [];
  if (e.line) parts.push(`${e.line.line} ${e.line.direction}`);
  if (e.zone) parts.push(`${e.zone.zone} ${fmt.num((e.zone.dwell_ms || 0) / 1000)} s`);
  if (e.track) parts.push(`track ${e.track.id}` + (e.track.frames ? `, ${e.track.frames} frames` : ""));
  return parts.join("; ") || "–";
}

// eventView shows one event's crop and thumbnail at full size; the page's
// refreshes leave it (data-keep) until it is closed.
function eventView(e) {
  const old = document.getElementById("event-view");
  if (old) old.remove();
  const figs = [e.crop && "crop", e.thumb && "thumb"].filter(Boolean)
    .map((part) => el("figure", { "data-part": part }, eventImg(e, part, "snap"), el("figcaption", {}, part === "crop" ? "the object" : "the frame")));
  const box = el("div", { id: "event-view", class: "form", "data-keep": "1", "data-event": `${e.device_id}/${e.seq}` },
    el("h3", {}, `${e.type.replace(/_/g, " ")}: ${e.label} on ${e.device_id}/${e.camera_id}, ${fmt.us(e.time_us)}`),
    el("p", {}, eventDetail(e), e.score ? `, score ${fmt.num(e.score, 2)}` : ""),
    el("div", { class: "counts" }, figs.length ? figs : el("p", {}, "No picture with this event.")),
    el("button", { id: "event-view-close", onclick: () => box.remove() }, "Close"));
  app.prepend(box);
  box.scrollIntoView();
}

function eventRow(e) {
  const part = e.thumb ? "thumb" : e.crop ? "crop" : "";
  return el("tr", { "data-event": `${e.device_id}/${e.seq}`, "data-type": e.type, "data-label": e.label },
    el("td", {}, part ? el("a", { href: "#", class: "thumb", onclick: (ev) => { ev.preventDefault(); eventView(e); } }, eventImg(e, part, "thumb")) : "–"),
    el("td", {}, fmt.us(e.time_us)), el("td", {}, el("a", { href: "#/device/" + encodeURIComponent(e.device_id) }, e.device_id)),
    el("td", {}, e.camera_id), el("td", {}, e.type.replace(/_/g, " ")), el("td", {}, e.label), el("td", {}, eventDetail(e)), el("td", {}, e.seq));
}

// lineCharts draws, for each line, its crossings per bucket (every bucket
// of the range, empty ones too) and its counts by direction and label.
function lineCharts(counts, bucket, bucketMs) {
  const lines = [...new Set(counts.rows.map((r) => r.line))].sort();
  if (!lines.length) return el("p", { id: "no-counts" }, "No line crossing in this range.");
  const to = Date.parse(counts.to); // at most 2000 bars: the newest
  const from = Math.max(Math.floor(Date.parse(counts.from) / bucketMs), Math.floor(to / bucketMs) - 1999) * bucketMs;
  return el("div", { class: "charts", id: "line-counts" }, lines.map((line) => {
    const rows = counts.rows.filter((r) => r.line === line);
    const per = new Map();
    for (const r of rows) { const t = Date.parse(r.start); per.set(t, (per.get(t) || 0) + r.count); }
    const pts = [];
    for (let t = from; t < to; t += bucketMs) pts.push({ t, v: per.get(t) || 0 });
    const by = new Map();
    for (const r of rows) { const k = `${r.direction}\t${r.label}`; by.set(k, (by.get(k) || 0) + r.count); }
    const total = rows.reduce((n, r) => n + r.count, 0);
    const chart = svgChart(`Line ${line}: crossings per ${bucket}`, pts, { bars: true, tfmt: dayTime });
    chart.setAttribute("data-line", line);
    chart.setAttribute("data-total", total);
    chart.append(el("table", { class: "narrow line-table", "data-line": line },
      el("tr", {}, ["direction", "label", "count"].map((h) => el("th", {}, h))),
      [...by].sort().map(([k, n]) => { const [dir, label] = k.split("\t"); return el("tr", { "data-direction": dir, "data-label": label }, el("td", {}, dir), el("td", {}, label), el("td", { class: "n" }, n)); }),
      el("tr", {}, el("th", {}, "total"), el("td", {}), el("td", { class: "total" }, total))));
    return chart;
  }));
}

const dayTime = (t) => new Date(t).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

function eventsHash(p) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) if (v) q.set(k, v);
  const s = q.toString();
  return "#/events" + (s ? "?" + s : "");
}

Pages.events = async function eventsPage(params) {
  const p = {};
  for (const k of [...EVENT_FILTERS, "range", "bucket", "cursor"]) p[k] = params.get(k) || "";
  p.label = p.label.toLowerCase(); // labels are lower case (COCO names): "Bottle" must not match nothing
  p.range = p.range || "-24h";
  p.bucket = EVENT_BUCKETS.some(([b]) => b === p.bucket) ? p.bucket : "1h";
  const q = new URLSearchParams({ from: p.range, limit: 50 });
  for (const k of [...EVENT_FILTERS, "cursor"]) if (p[k]) q.set(k, p[k]);
  const cq = new URLSearchParams({ from: p.range, bucket: p.bucket });
  for (const k of ["device", "camera"]) if (p[k]) cq.set(k, p[k]);
  const [page, counts] = await Promise.all([get("/api/v1/events?" + q), get("/api/v1/counts?" + cq)]);
  const go = (change) => { location.hash = eventsHash(Object.assign({}, p, { cursor: "" }, change)); };
  const input = (k, ph) => el("input", { id: "ef-" + k, value: p[k], placeholder: ph, onchange: (e) => go({ [k]: e.target.value.trim() }) });
  const select = (k, opts) => el("select", { id: "ef-" + k, onchange: (e) => go({ [k]: e.target.value }) },
    opts.map(([v, label]) => el("option", { value: v, selected: p[k] === v }, label)));
  const filters = el("div", { class: "filters" },
    input("device", "device"), input("camera", "camera"), select("type", EVENT_TYPES), input("label", "label, e.g. bottle"),
    select("range", EVENT_RANGES), el("button", { id: "ef-clear", onclick: () => { location.hash = "#/events"; } }, "Clear"));
  const bucket = el("label", {}, "Bucket ", select("bucket", EVENT_BUCKETS.map(([b]) => [b, b])));
  const table = el("table", { id: "events" },
    el("tr", {}, ["snapshot", "time", "device", "camera", "type", "label", "detail", "seq"].map((h) => el("th", {}, h))),
    page.events.map(eventRow));
  const pager = el("div", { class: "pager" },
    el("span", { id: "events-shown" }, page.events.length ? `${page.events.length} events` : "No event matches."), " ",
    p.cursor ? el("button", { id: "events-newest", onclick: () => go({}) }, "« Newest") : null, " ",
    el("button", { id: "events-older", disabled: !page.next, onclick: () => { location.hash = eventsHash(Object.assign({}, p, { cursor: page.next })); } }, "Older ›"));
  const ms = EVENT_BUCKETS.find(([b]) => b === p.bucket)[1];
  return [el("h2", {}, "Events"), filters, el("h3", {}, "Line counts "), bucket, lineCharts(counts, p.bucket, ms), el("h3", {}, "Events"), pager, table];
};

// cameraCounters shows each camera's line and zone counters from the
// device's latest telemetry (since the agent started); null when none.
function cameraCounters(t) {
  const cams = (t.cameras || []).filter((c) => (c.lines || []).length || (c.zones || []).length);
  if (!cams.length) return null;
  const lines = cams.flatMap((c) => (c.lines || []).map((l) => el("tr", { "data-camera": c.id, "data-line": l.line, "data-direction": l.direction, "data-label": l.label },
    el("td", {}, c.id), el("td", {}, l.line), el("td", {}, l.direction), el("td", {}, l.label), el("td", { class: "n" }, l.count))));
  const zones = cams.flatMap((c) => (c.zones || []).map((z) => el("tr", { "data-camera": c.id, "data-zone": z.zone, "data-label": z.label },
    el("td", {}, c.id), el("td", {}, z.zone), el("td", {}, z.label), el("td", { class: "present" }, z.present), el("td", { class: "entered" }, z.entered))));
  return [el("h3", {}, "Counters (since the agent started)"),
    lines.length ? el("table", { id: "line-counters", class: "narrow" },
      el("tr", {}, ["camera", "line", "direction", "label", "count"].map((h) => el("th", {}, h))), lines) : null,
    zones.length ? el("table", { id: "zone-counters", class: "narrow" },
      el("tr", {}, ["camera", "zone", "label", "present", "entered"].map((h) => el("th", {}, h))), zones) : null];
}
