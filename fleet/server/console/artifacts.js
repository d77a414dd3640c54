// Models and firmware: list, upload with a progress bar (XHR upload
// events), delete with a confirmation.
"use strict";

// upload posts the multipart form with the token header and reports progress (0..1).
function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("POST", path);
    x.setRequestHeader("Authorization", "Bearer " + token());
    x.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    x.onerror = () => reject(new Error("upload failed: network error"));
    x.onload = () => {
      let body = {};
      try { body = JSON.parse(x.responseText); } catch (_) { /* not JSON */ }
      if (x.status === 401) reject(new AuthError("token refused"));
      else if (x.status === 403) reject(new HTTPError(403, "your role cannot do this (" + (body.error || "forbidden") + ")"));
      else if (x.status < 200 || x.status > 299) reject(new HTTPError(x.status, body.error || x.statusText));
      else resolve(body);
    };
    x.send(form);
  });
}

function uploadForm(kind) {
  const fw = kind === "firmware";
  const name = el("input", { id: "up-name", placeholder: fw ? "edge-agent" : "yolov8n", required: true });
  const version = el("input", { id: "up-version", placeholder: "2", required: true });
  const os = fw ? el("input", { id: "up-os", value: "linux", required: true }) : null;
  const arch = fw ? el("input", { id: "up-arch", placeholder: "arm64", required: true }) : null;
  const labels = fw ? null : el("input", { id: "up-labels", type: "file" });
  const file = el("input", { id: "up-file", type: "file", required: true });
  const bar = el("progress", { id: "upload-progress", max: 1, value: 0, hidden: true });
  const pct = el("span", { id: "upload-pct" });
  const msg = el("p", { id: "upload-msg" });
  const form = el("form", { id: "upload-form", class: "form", "data-keep": "1", onsubmit: async (e) => {
    e.preventDefault();
    msg.className = "";
    msg.textContent = "";
    const fd = new FormData(); // the server reads the fields before the file
    fd.append("name", name.value.trim());
    fd.append("version", version.value.trim());
    if (labels && labels.files[0]) fd.append("labels", await labels.files[0].text());
    if (fw) { fd.append("os", os.value.trim()); fd.append("arch", arch.value.trim()); }
    fd.append("file", file.files[0]);
    bar.hidden = false;
    try {
      const m = await upload(fw ? "/api/v1/firmware" : "/api/v1/models", fd, (f) => { bar.value = f; pct.textContent = fmt.num(100 * f, 0) + "%"; });
      bar.value = 1;
      msg.className = "ok";
      msg.textContent = `Uploaded ${m.name}@${m.version} (${fmt.bytes(m.size)}, sha256 ${m.sha256.slice(0, 12)}…)`;
      form.removeAttribute("data-keep");
      setTimeout(route, 800);
    } catch (err) {
      if (err instanceof AuthError) { login("The token was refused."); return; }
      msg.className = "error";
      msg.textContent = err.message;
    }
  } },
  el("h3", {}, fw ? "Upload agent firmware" : "Upload a model"),
  el("label", {}, el("span", {}, "name"), name), el("label", {}, el("span", {}, "version"), version),
  fw ? [el("label", {}, el("span", {}, "os"), os), el("label", {}, el("span", {}, "arch"), arch)] : el("label", {}, el("span", {}, "labels file"), labels),
  el("label", {}, el("span", {}, fw ? "bundle" : ".tflite file"), file),
  el("button", { id: "up-submit", type: "submit" }, "Upload"), " ", bar, " ", pct, msg);
  return form;
}

async function artifactsPage(kind) {
  const fw = kind === "firmware";
  const title = fw ? "Firmware" : "Models";
  let list;
  try {
    const l = await get(fw ? "/api/v1/firmware" : "/api/v1/models");
    list = (fw ? l.firmware : l.models) || [];
  } catch (e) {
    if (e instanceof AuthError) throw e;
    return [el("h2", {}, title), errorBox(title + " are not available: " + e.message)];
  }
  const base = fw ? "/api/v1/firmware/" : "/api/v1/models/";
  const table = el("table", { id: "artifacts" },
    el("tr", {}, ["name", "version", fw ? "os / arch" : "labels", "size", "sha256", "key", "in use by", "uploaded", ""].map((h) => el("th", {}, h))),
    list.map((m) => {
      const id = `${m.name}@${m.version}`;
      const slot = el("div", {});
      return el("tr", { "data-artifact": id },
        el("td", {}, m.name), el("td", {}, m.version), el("td", {}, fw ? `${m.os}/${m.arch}` : m.labels),
        el("td", {}, fmt.bytes(m.size)), el("td", { title: m.sha256 }, m.sha256.slice(0, 12) + "…"), el("td", {}, m.key_id || "–"),
        el("td", {}, (m.in_use || []).map((r) => el("a", { href: "#/rollout/" + encodeURIComponent(r) }, r + " "))), el("td", {}, fmt.date(m.created_at)),
        el("td", {}, el("button", { class: "danger", "data-delete": id, onclick: () => {
          if (slot.firstChild) return;
          slot.append(confirmBox("delete-confirm", `Delete ${id}?`, "Delete " + id, async () => {
            await api("DELETE", base + encodeURIComponent(m.name) + "/" + encodeURIComponent(m.version));
            route();
          }));
        } }, "Delete…"), slot));
    }));
  return [el("h2", {}, title), uploadForm(kind), list.length ? table : el("p", {}, fw ? "No firmware uploaded." : "No model uploaded.")];
}

Pages.models = () => artifactsPage("model");
Pages.firmware = () => artifactsPage("firmware");
