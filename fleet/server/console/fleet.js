// Fleet overview: counts, groups by site and line, detection rate.
"use strict";

Pages.overview = async function overview() {
  const [fleet, rate, never] = await Promise.all([
    get("/api/v1/fleet"),
    get("/api/v1/detections/count?from=-30m&bucket=1m"),
    get("/api/v1/devices?status=never&limit=1"),
  ]);
  const card = (id, n, label, href) => el("a", { class: "card", href }, el("b", { id }, n), label);
  const cards = el("div", { class: "cards" },
    card("n-devices", fleet.devices, "devices", "#/devices"),
    card("n-online", fleet.online, "online", "#/devices?status=online"),
    card("n-unhealthy", fleet.unhealthy, "with health flags", "#/devices?health=unhealthy"),
    card("n-never", never.total || 0, "provisioned, never connected", "#/devices?status=never"),
    el("div", { class: "card" }, el("b", { id: "rate" }, fmt.num(fleet.detections_per_min, 0)), "detections / min"));
  const groups = el("table", { id: "groups" },
    el("tr", {}, ["site", "line", "online", "offline", "flagged", "detections/min"].map((h) => el("th", {}, h))),
    fleet.groups.map((g) => el("tr", {},
      el("td", {}, g.site ? el("a", { href: "#/devices?site=" + encodeURIComponent(g.site) }, g.site) : "–"), el("td", {}, g.line || "–"),
      el("td", {}, g.online), el("td", {}, g.offline), el("td", {}, g.unhealthy), el("td", {}, fmt.num(g.detections_per_min, 0)))));
  const chart = svgChart("Detections per minute, last 30 min", rate.buckets.map((b) => ({ t: Date.parse(b.start), v: b.count })), { bars: true });
  return [el("h2", {}, "Fleet"), cards, el("div", { class: "charts" }, chart), el("h3", {}, "By site and line"), groups];
};
