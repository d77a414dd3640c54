// Live detections over server-sent events. The stream URL carries a
// short-lived ticket from POST /api/v1/live/ticket, never the token.
"use strict";

let feed = null;
let feedRetry = null;

function closeFeed() {
  clearTimeout(feedRetry);
  if (feed) { feed.close(); feed = null; }
}

Pages.live = function livePage() {
  const input = el("input", { id: "label-filter", placeholder: "label, e.g. person", value: sessionStorage.getItem("edgefleet_label") || "" });
  const table = detTable([], "feed");
  const state = el("span", { id: "feed-state" }, "connecting…");
  const connect = async () => {
    closeFeed();
    state.textContent = "connecting…";
    const label = input.value.trim();
    sessionStorage.setItem("edgefleet_label", label);
    let ticket;
    try {
      ticket = (await api("POST", "/api/v1/live/ticket")).ticket;
      if (!ticket) throw new Error("no ticket in the answer");
    } catch (e) {
      if (e instanceof AuthError) { login("The token was refused."); return; }
      state.textContent = "unavailable: " + e.message;
      state.className = "error";
      return;
    }
    const p = new URLSearchParams({ ticket });
    if (label) p.set("label", label);
    const es = new EventSource("/api/v1/detections/stream?" + p);
    feed = es;
    es.onopen = () => { state.textContent = "live"; state.className = "ok"; };
    es.onerror = () => { // a ticket is short-lived: reconnect with a new one
      if (feed !== es) return;
      state.textContent = "reconnecting…";
      state.className = "";
      es.close();
      feedRetry = setTimeout(connect, 2000);
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
};
