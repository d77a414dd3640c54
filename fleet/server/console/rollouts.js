// Rollouts: the list, the "New rollout" form, and one rollout's page with
// its actions (pause, resume, abort with a reason, roll back), transitions
// and, for a rollout with a shadow phase, each device's shadow metrics,
// confusions and disagreement samples, with Accept on failed devices.
"use strict";

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

async function artifactOptions(kind) {
  try {
    const l = await get(kind === "firmware" ? "/api/v1/firmware" : "/api/v1/models");
    return (kind === "firmware" ? l.firmware : l.models) || [];
  } catch (e) {
    if (e instanceof AuthError) throw e;
    return [];
  }
}

// rolloutForm is the "New rollout" form; it posts CreateRollout.
function rolloutForm(models, firmware) {
  const field = (id, label, input, hint) => el("label", { for: id }, el("span", {}, label), input, hint ? el("small", {}, hint) : null);
  const kind = el("select", { id: "ro-kind" }, el("option", { value: "model" }, "model"), el("option", { value: "firmware" }, "agent firmware"));
  const artifact = el("select", { id: "ro-artifact" });
  const fill = () => {
    const list = kind.value === "firmware" ? firmware : models;
    artifact.replaceChildren(...list.map((m) => el("option", { value: `${m.name}@${m.version}` }, `${m.name}@${m.version}` + (m.os ? ` (${m.os}/${m.arch})` : ""))));
    if (!list.length) artifact.append(el("option", { value: "" }, "none uploaded"));
  };
  kind.addEventListener("change", fill);
  fill();
  const inp = (id, ph, type) => el("input", { id, placeholder: ph, type: type || "text" });
  const selector = inp("ro-selector", "site=plant-a,line=3 (empty: all devices)");
  const canary = inp("ro-canary", "1", "number");
  const waves = inp("ro-waves", "10%,50%,100%");
  const maxFail = inp("ro-max-failures", "5% or 3");
  const maxRate = inp("ro-max-failure-rate", "0.2 (0 off)", "number");
  maxRate.step = "0.01";
  const minExec = inp("ro-min-executions", "10", "number");
  const window = inp("ro-health-window", "2m");
  const timeout = inp("ro-job-timeout", "30m");
  const rollback = el("input", { id: "ro-rollback", type: "checkbox", checked: true });
  const msg = el("p", { id: "ro-error", class: "error" });
  const form = el("form", { id: "rollout-form", class: "form", "data-keep": "1", onsubmit: async (e) => {
    e.preventDefault();
    msg.textContent = "";
    const body = { selector: selector.value.trim(), canary: parseInt(canary.value || "0", 10) || 0, waves: waves.value.trim(),
      max_failures: maxFail.value.trim(), health_window: window.value.trim(), job_timeout: timeout.value.trim(),
      max_failure_rate: parseFloat(maxRate.value || "0") || 0, min_executions: parseInt(minExec.value || "0", 10) || 0,
      rollback_on_abort: rollback.checked };
    body[kind.value] = artifact.value;
    try {
      const r = await api("POST", "/api/v1/rollouts", body);
      location.hash = "#/rollout/" + encodeURIComponent(r.id);
    } catch (err) {
      if (err instanceof AuthError) throw err;
      msg.textContent = err.message;
    }
  } },
  el("h3", {}, "New rollout"),
  field("ro-kind", "kind", kind), field("ro-artifact", "artifact", artifact), field("ro-selector", "selector", selector),
  field("ro-canary", "canary devices", canary), field("ro-waves", "waves", waves), field("ro-max-failures", "max failures", maxFail),
  field("ro-max-failure-rate", "max failure rate", maxRate, "fraction of finished jobs"), field("ro-min-executions", "min executions", minExec, "before the rate counts"),
  field("ro-health-window", "health window", window), field("ro-job-timeout", "job timeout", timeout),
  field("ro-rollback", "roll back on abort", rollback),
  el("button", { id: "ro-create", type: "submit" }, "Create rollout"), msg);
  return form;
}

Pages.rollouts = async function rolloutsPage(params) {
  let l;
  try { l = await get("/api/v1/rollouts"); } catch (e) {
    if (e instanceof AuthError) throw e;
    return [el("h2", {}, "Rollouts"), errorBox("Rollouts are not available: " + e.message)];
  }
  const rs = (l.rollouts || []).slice().sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  const table = el("table", { id: "rollouts" },
    el("tr", {}, ["rollout", "artifact", "selector", "state", "progress", "succeeded", "failed / max", "rolled back", "targets", "created"].map((h) => el("th", {}, h))),
    rs.map((r) => el("tr", { "data-rollout": r.id, "data-state": r.state },
      el("td", {}, el("a", { href: "#/rollout/" + encodeURIComponent(r.id) }, r.id)),
      el("td", {}, `${r.kind === "firmware" ? "agent " : ""}${r.name}@${r.version}`), el("td", {}, r.selector || "all devices"),
      el("td", { class: "state-" + r.state }, rolloutState(r)), el("td", {}, bar(r.succeeded, r.failed, r.targets)),
      el("td", {}, r.succeeded), el("td", {}, `${r.failed} / ${r.max_failures}`), el("td", {}, r.rolled_back), el("td", {}, r.targets),
      el("td", {}, fmt.time(r.created_at)))));
  const slot = el("div", { id: "new-rollout" });
  const newBtn = el("button", { id: "new-rollout-button", onclick: async () => {
    const [m, f] = await Promise.all([artifactOptions("model"), artifactOptions("firmware")]);
    slot.replaceChildren(rolloutForm(m, f));
  } }, "New rollout…");
  if (params && params.get("new")) newBtn.click();
  return [el("h2", {}, "Rollouts"), newBtn, slot,
    rs.length ? table : el("p", {}, "No rollout yet.")];
};

const JOB_ORDER = ["pending", "dispatched", "queued", "downloading", "verifying", "shadow", "installing", "health_check", "succeeded", "skipped", "failed", "rolled_back", "timed_out", "cancelled"];

function stateCounts(id, counts) {
  const keys = Object.keys(counts || {}).sort((a, b) => JOB_ORDER.indexOf(a) - JOB_ORDER.indexOf(b));
  return el("table", { id, class: "narrow" }, el("tr", {}, el("th", {}, "state"), el("th", {}, "devices")),
    keys.map((k) => el("tr", { "data-state": k }, el("td", {}, k.replace(/_/g, " ")), el("td", { class: "count" }, counts[k]))));
}

// rolloutActions offers what the rollout's state allows; the engine has the last word.
function rolloutActions(v) {
  const msg = el("span", { id: "action-error", class: "error" });
  const act = async (action, body) => {
    msg.textContent = "";
    try {
      await api("POST", `/api/v1/rollouts/${encodeURIComponent(v.id)}/${action}`, body);
      route();
    } catch (e) {
      if (e instanceof AuthError) throw e;
      msg.textContent = e.message;
    }
  };
  const live = ["pending", "canary", "wave", "paused"].includes(v.state);
  const reason = el("input", { id: "abort-reason", placeholder: "reason for aborting" });
  return el("div", { class: "actions", id: "rollout-actions" },
    live && v.state !== "paused" ? el("button", { id: "act-pause", onclick: () => act("pause") }, "Pause") : null,
    v.state === "paused" ? el("button", { id: "act-resume", onclick: () => act("resume") }, "Resume") : null,
    live ? [reason, el("button", { id: "act-abort", class: "danger", onclick: () => act("abort", { reason: reason.value.trim() }) }, "Abort")] : null,
    v.state !== "rolled_back" && !live ? el("button", { id: "act-rollback", class: "danger", onclick: () => act("rollback") }, "Roll back") : null,
    msg);
}

Pages.rollout = async function rolloutPage(id) {
  let v;
  try { v = await get("/api/v1/rollouts/" + encodeURIComponent(id)); } catch (e) {
    if (e instanceof HTTPError && e.status === 404) return [el("h2", {}, "Rollout ", id), errorBox(`No rollout named ${id}.`)];
    throw e;
  }
  const info = el("table", { id: "rollout-info" },
    [["rollout", v.id], ["artifact", `${v.kind} ${v.name}@${v.version}`], ["sha256", v.sha256], ["selector", v.selector || "all devices"],
     ["state", el("span", { id: "rollout-state", class: "state-" + v.state }, rolloutState(v))], ["reason", v.reason || "–"],
     ["devices", `${v.targets}: ${v.succeeded} succeeded, ${v.failed} failed (max ${v.max_failures}), ${v.rolled_back} rolled back` +
       (v.cancelled ? `, ${v.cancelled} cancelled (never sent: the rollout stopped first)` : "")],
     ["progress", bar(v.succeeded, v.failed, v.targets)],
     ["failure rate", v.max_failure_rate ? `abort above ${fmt.num(100 * v.max_failure_rate, 1)}% after ${v.min_executions || 0} finished` : "–"],
     ["roll back on abort", v.rollback_on_abort === false ? "no" : "yes"],
     ["health window", `${v.health_window}, job timeout ${v.job_timeout}`],
     ["shadow", v.shadow ? shadowSpecText(v.shadow) : "–"], ["created", fmt.date(v.created_at)]]
      .map(([k, val]) => el("tr", {}, el("th", {}, k), el("td", {}, val))));
  const waves = el("table", { id: "waves" },
    el("tr", {}, ["wave", "devices", "pending", "in flight", "succeeded", "failed", v.cancelled ? "cancelled" : null, "progress", v.shadow ? "shadow" : null].filter(Boolean).map((h) => el("th", {}, h))),
    (v.progress || []).map((p) => el("tr", { "data-wave": p.wave, class: v.state === (p.wave ? "wave" : "canary") && v.wave === p.wave ? "current" : "" },
      el("td", {}, p.wave ? `${p.wave} (${fmt.num((v.wave_percents || [])[p.wave - 1], 1)}%)` : "canary"),
      el("td", {}, p.devices), el("td", {}, p.pending), el("td", {}, p.in_flight), el("td", {}, p.succeeded), el("td", {}, p.failed),
      v.cancelled ? el("td", { class: "cancelled" }, p.cancelled || 0) : null,
      el("td", {}, bar(p.succeeded, p.failed, p.devices)),
      v.shadow ? el("td", { class: "wave-shadow" }, (p.shadow_passed || 0) + (p.shadow_failed || 0) + (p.shadow_accepted || 0)
        ? `${p.shadow_passed || 0} passed, ${p.shadow_failed || 0} failed, ${p.shadow_accepted || 0} accepted; mean agreement ${fmt.num(p.shadow_agreement, 3)}` : "–") : null)));
  const MAX_ROWS = 200;
  const rank = (j) => (j.state === "cancelled" ? 3 : j.state === "succeeded" || j.state === "skipped" ? 2 : j.state === "pending" ? 1 : 0);
  const jobs = (v.jobs || []).slice().sort((a, b) => rank(a) - rank(b) || a.wave - b.wave || a.device_id.localeCompare(b.device_id));
  const jobTable = el("table", { id: "jobs" },
    el("tr", {}, ["device", "wave", "state", "previous", "rollback", "reason", "updated"].map((h) => el("th", {}, h))),
    jobs.slice(0, MAX_ROWS).map((j) => el("tr", { "data-device": j.device_id, "data-state": j.state },
      el("td", {}, el("a", { href: "#/device/" + encodeURIComponent(j.device_id) }, j.device_id)),
      el("td", {}, j.wave || "canary"),
      el("td", { class: "state-" + j.state }, j.state === "downloading" && j.progress ? `downloading ${fmt.num(100 * j.progress, 0)}%` : j.state.replace(/_/g, " ")),
      el("td", {}, j.previous || "–"), el("td", {}, j.rollback ? j.rollback.replace(/_/g, " ") : "–"),
      el("td", { class: "reason" }, [j.reason, j.rollback_reason && "rollback: " + j.rollback_reason].filter(Boolean).join("; ") || "–"),
      el("td", {}, fmt.time(j.updated_at)))));
  const more = jobs.length > MAX_ROWS ? el("p", {}, `Showing ${MAX_ROWS} of ${jobs.length} devices (unfinished and failed first); fleetctl rollouts show ${v.id} --all lists all.`) : null;
  const rb = Object.keys(v.rollback_states || {}).length ? [el("h3", {}, "Rollback jobs by state"), stateCounts("rollback-states", v.rollback_states)] : null;
  const transitions = el("table", { id: "transitions" },
    el("tr", {}, ["at", "from", "to", "by", "reason"].map((h) => el("th", {}, h))),
    (v.transitions || []).map((t) => el("tr", { "data-to": t.to },
      el("td", {}, fmt.date(t.at)), el("td", {}, t.from || "–"), el("td", {}, t.to), el("td", {}, t.by || "–"), el("td", { class: "reason" }, t.reason || "–"))));
  const shadow = v.shadow ? await shadowSection(v) : null;
  return [el("h2", {}, "Rollout ", v.id), rolloutActions(v), info, el("h3", {}, "Waves"), waves, shadow,
    el("div", { class: "counts" }, el("div", {}, el("h3", {}, "Devices by job state"), stateCounts("job-states", v.states)), rb && el("div", {}, rb)),
    el("h3", {}, "Transitions"), transitions,
    el("h3", {}, "Devices"), more, jobTable];
};

// Shadow phases.

function shadowSpecText(s) {
  return `${fmt.dur(s.duration_s)}${s.duration_s < 60 ? ` (${s.duration_s}s)` : ""}, min agreement ${s.min_agreement}` +
    (s.sample_every > 1 ? `, 1/${s.sample_every} of frames` : "") + `, ${s.cpu_percent || 25}% of a core`;
}

function shadowOutcome(sh) {
  if (!sh) return "running";
  if (sh.accepted_by) return "accepted";
  if (sh.final) return sh.passed ? "passed" : "failed";
  return "running";
}

// shadowImages keeps one blob URL per sample URL for the rollout shown:
// the page refreshes every few seconds, a sample never changes, and an
// <img src> cannot send the token.
let shadowImages = { id: "", urls: new Map() };

function shadowSample(id, url, caption) {
  if (shadowImages.id !== id) {
    for (const u of shadowImages.urls.values()) u.then((b) => b && URL.revokeObjectURL(b));
    shadowImages = { id, urls: new Map() };
  }
  if (!shadowImages.urls.has(url)) {
    shadowImages.urls.set(url, fetch(url, { headers: authHeaders() }).then(async (r) => {
      if (!r.ok) throw await errorOf(r);
      return URL.createObjectURL(await r.blob());
    }).catch((e) => { shadowImages.urls.delete(url); throw e; }));
  }
  const img = el("img", { class: "snap shadow-sample", alt: caption });
  const note = el("figcaption", {}, caption);
  shadowImages.urls.get(url).then((b) => { img.src = b; })
    .catch((e) => { img.remove(); note.replaceChildren(el("span", { class: "error" }, `${caption}: unavailable (${e.message})`)); });
  return el("figure", { "data-sample": url }, img, note);
}

function confusionText(cs) {
  return (cs || []).slice().sort((a, b) => b.count - a.count).slice(0, 3).map((c) => `${c.serving} → ${c.candidate} ×${c.count}`).join(", ") || "–";
}

// shadowSection lists each device's shadow phase: the final report, else
// the latest periodic one; failed devices first, with Accept while the
// rollout runs or is paused (for operators: a viewer's token cannot).
async function shadowSection(v) {
  let s;
  try { s = await get(`/api/v1/rollouts/${encodeURIComponent(v.id)}/shadow`); } catch (e) {
    if (e instanceof AuthError) throw e;
    return [el("h3", {}, "Shadow phase"), errorBox("Shadow reports are not available: " + e.message)];
  }
  // Accept needs an operator; a viewer sees no button.
  const me = await get("/api/v1/whoami").catch((e) => { if (e instanceof AuthError) throw e; return {}; });
  const canAccept = me.role !== "viewer" && ["pending", "canary", "wave", "paused"].includes(v.state);
  const msg = el("span", { id: "accept-error", class: "error" });
  const accept = async (device) => {
    msg.textContent = "";
    try {
      await api("POST", `/api/v1/rollouts/${encodeURIComponent(v.id)}/accept`, { device });
      route();
    } catch (e) {
      if (e instanceof AuthError) throw e;
      msg.textContent = e.message;
    }
  };
  const rank = { failed: 0, running: 1, accepted: 2, passed: 3 };
  const devs = (s.devices || []).slice().sort((a, b) => rank[shadowOutcome(a.shadow)] - rank[shadowOutcome(b.shadow)] || a.device_id.localeCompare(b.device_id));
  const num = (x, d) => (x == null ? "–" : fmt.num(x, d));
  const rows = devs.slice(0, 200).map((d) => {
    const r = d.final || d.latest || {};
    const out = shadowOutcome(d.shadow);
    return el("tr", { "data-device": d.device_id, "data-outcome": out },
      el("td", {}, el("a", { href: "#/device/" + encodeURIComponent(d.device_id) }, d.device_id)),
      el("td", { class: "shadow-" + out }, out === "accepted" ? `accepted by ${d.shadow.accepted_by}` : out),
      el("td", { class: "agreement" }, num(r.agreement, 3)), el("td", {}, num(r.precision, 3)), el("td", {}, num(r.recall, 3)), el("td", {}, num(r.f1, 3)),
      el("td", {}, num(r.count_ratio, 2)), el("td", {}, num(r.score_shift, 3)), el("td", {}, num(r.latency_ratio, 2)), el("td", {}, r.frames == null ? "–" : r.frames),
      el("td", { class: "reason" }, confusionText(r.confusion)),
      el("td", {}, canAccept && out === "failed" ? el("button", { class: "accept", "data-device": d.device_id, onclick: () => accept(d.device_id) }, "Accept") : "–"));
  });
  const table = el("table", { id: "shadow" },
    el("tr", {}, ["device", "outcome", "agreement", "precision", "recall", "F1", "count ratio", "score shift", "latency ratio", "frames", "top confusions", ""].map((h) => el("th", {}, h))),
    rows);
  const samples = [];
  for (const d of devs) {
    (d.sample_urls || []).forEach((u, i) => {
      if (samples.length >= 12) return;
      const smp = ((d.final || {}).samples || [])[i] || {};
      samples.push(shadowSample(v.id, u, `${d.device_id} ${smp.camera || ""}: disagreement ${num(smp.disagreement, 2)} (serving left, candidate right)`));
    });
  }
  return [el("h3", {}, "Shadow phase"), msg,
    devs.length ? table : el("p", { id: "shadow-none" }, "No shadow report yet."),
    samples.length ? [el("h3", {}, "Disagreement samples"), el("div", { id: "shadow-samples" }, samples)] : null];
}
