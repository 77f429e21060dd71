// The site page: pass imagery and detections on a Leaflet map, timeline, claims, key judgements, downloads.
"use strict";
const CATEGORY_COLOURS = { aircraft: "#ff8c1a", helicopter: "#19d3e6", ship: "#3d7dff", "large-vehicle": "#c15cff", "small-vehicle": "#ff5cc8" };
// the same colours as the report's chips (sitewatch.report.chips.STATUS_COLOURS)
const STATUS_COLOURS = { arrived: "#00dc3c", departed: "#ff1e1e", remained: "#ffc800", moved: "#0096ff", unobserved: "#9a9a9a", "not compared": "#ffffff" };
const siteName = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const st = { site: null, passes: [], pass: null, map: null, georef: null, imagery: null, dets: null, byId: {}, statuses: {}, evidence: {} };

function $(id) { return document.getElementById(id); }

function nativeZoom(p) {
  const lat = p.bounds_wgs84 ? (p.bounds_wgs84[1] + p.bounds_wgs84[3]) / 2 : 0;
  return Math.max(1, Math.min(22, Math.round(Math.log2(156543.03 * Math.cos(lat * Math.PI / 180) / (p.gsd_m || 1)))));
}

function ensureMap(georef) {
  if (st.map && st.georef === georef) return;
  if (st.map) st.map.remove();
  st.georef = georef;
  st.map = L.map("map", georef ? { maxZoom: 22, zoomSnap: 0.25 } : { crs: L.CRS.Simple, minZoom: -6, maxZoom: 4, zoomSnap: 0.25 });
  st.map.attributionControl.addAttribution(georef ? "imagery: pass scene (web mercator tiles)" : "imagery: pass scene (image pixels)");
}

function pixelLatLng(xy) { return [-xy[1], xy[0]]; }

function showImagery(p) {
  if (st.imagery) { st.map.removeLayer(st.imagery); st.imagery = null; }
  if (!$("imagery").checked) return;
  if (st.georef) {
    const b = p.bounds_wgs84;
    const z = nativeZoom(p);
    st.imagery = L.tileLayer(SW.withToken(`/api/passes/${p.id}/tiles/{z}/{x}/{y}.png`), {
      maxNativeZoom: z, maxZoom: z + 3, minZoom: 3, tileSize: 256, className: "sw-imagery",
      bounds: b ? L.latLngBounds([b[1], b[0]], [b[3], b[2]]) : undefined,
    });
  } else {
    const [w, h] = p.scene_size_px;
    st.imagery = L.imageOverlay(SW.withToken(`/api/passes/${p.id}/image.jpg?max_px=2048`), [[-h, 0], [0, w]], { className: "sw-imagery" });
  }
  st.imagery.addTo(st.map);
  st.imagery.bringToBack();
}

function fitPass(p) {
  if (st.georef && p.bounds_wgs84) {
    const b = p.bounds_wgs84;
    st.map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
  } else if (!st.georef) {
    const [w, h] = p.scene_size_px;
    st.map.fitBounds([[-h, 0], [0, w]]);
  }
}

async function allFeatures(url) {
  const feats = [];
  let next = url;
  while (next) {
    const page = await SW.api(next);
    feats.push(...page.features);
    next = page.next ? page.next.replace(/^https?:\/\/[^/]+/, "") : null;
  }
  return feats;
}

function colourOf(props) {
  if ($("colour").value === "change") return STATUS_COLOURS[st.statuses[props.detection_id] || "not compared"];
  return CATEGORY_COLOURS[props.category] || "#ffffff";
}

function popupHtml(props) {
  const m = props.measurement;
  const size = m ? `${SW.fmt(m.length_m, 1)} ± ${SW.fmt(m.length_sigma_m, 1)} m × ${SW.fmt(m.width_m, 1)} ± ${SW.fmt(m.width_sigma_m, 1)} m` : "not measured";
  const heading = m && m.heading_deg != null ? `${SW.fmt(m.heading_deg, 0)}° ± ${SW.fmt(m.heading_sigma_deg, 0)}° from north` : "unknown (not georeferenced)";
  const cands = (props.candidates || []).slice(0, 3).map((c) => `<tr><td>${SW.esc(c.name)}</td><td>${SW.esc(c.role)}</td><td>${SW.fmt(100 * c.probability, 0)}%</td></tr>`).join("")
    || `<tr><td colspan="3" class="muted">no type candidates</td></tr>`;
  const status = st.statuses[props.detection_id];
  return `<div class="popup" data-detection="${props.detection_id}">
    <img alt="chip of detection ${props.detection_id}" src="${SW.withToken(`/api/passes/${props.pass_id}/detections/${props.detection_id}/chip.png`)}">
    <b>${SW.esc(props.category)}</b> · detection ${props.detection_id} · pass ${props.pass_id}${status ? ` · <b>${SW.esc(status)}</b>` : ""}
    <table>
      <tr><th>score</th><td class="sw-score">${SW.fmt(props.score, 2)}</td></tr>
      <tr><th>size</th><td class="sw-size">${size}</td></tr>
      <tr><th>heading</th><td>${heading}</td></tr>
    </table>
    <table><thead><tr><th>candidate type</th><th>role</th><th>p</th></tr></thead><tbody class="sw-candidates">${cands}</tbody></table>
  </div>`;
}

function drawDetections(feats) {
  if (st.dets) st.map.removeLayer(st.dets);
  st.byId = {};
  st.dets = L.featureGroup();
  for (const f of feats) {
    const p = f.properties;
    const ring = st.georef && f.geometry ? f.geometry.coordinates[0].map((c) => [c[1], c[0]]) : p.pixel_polygon.map(pixelLatLng);
    const poly = L.polygon(ring, { color: colourOf(p), weight: 2, fillOpacity: 0.12, className: `sw-det sw-det-${p.detection_id}` });
    poly.feature = f;
    poly.bindPopup(() => popupHtml(p), { maxWidth: 320 });
    poly.addTo(st.dets);
    st.byId[p.detection_id] = poly;
  }
  st.dets.addTo(st.map);
  legend();
}

function recolour() {
  for (const poly of Object.values(st.byId)) poly.setStyle({ color: colourOf(poly.feature.properties) });
  legend();
}

function legend() {
  const entries = $("colour").value === "change" ? STATUS_COLOURS : CATEGORY_COLOURS;
  const counts = {};
  for (const poly of Object.values(st.byId)) {
    const p = poly.feature.properties;
    const k = $("colour").value === "change" ? (st.statuses[p.detection_id] || "not compared") : p.category;
    counts[k] = (counts[k] || 0) + 1;
  }
  $("legend").innerHTML = Object.entries(entries).filter(([k]) => counts[k]).map(([k, c]) => `<span style="--c:${c}">${SW.esc(k)} ${counts[k]}</span>`).join("");
}

async function loadStatuses() {
  st.statuses = {};
  const other = Number($("versus").value);
  if (!other) return;
  const ids = st.passes.map((p) => p.id);
  const [a, b] = ids.indexOf(other) < ids.indexOf(st.pass.id) ? [other, st.pass.id] : [st.pass.id, other];
  try {
    const c = await SW.api(`/api/sites/${encodeURIComponent(siteName)}/compare?a=${a}&b=${b}`);
    const side = st.pass.id === a ? "det_a" : "det_b";
    for (const o of c.objects.concat(c.unobserved || [])) if (o[side]) st.statuses[o[side].id] = o.status;
    $("map-note").textContent = `Compared pass ${a} → ${b}: ${c.sentence || ""}`;
  } catch (e) {
    $("map-note").textContent = `No comparison of passes ${a} and ${b}: ${e.message}`;
  }
}

function fillVersus() {
  const others = st.passes.filter((p) => p.id !== st.pass.id);
  const idx = st.passes.findIndex((p) => p.id === st.pass.id);
  const dflt = idx > 0 ? st.passes[idx - 1].id : (others[0] || {}).id;
  $("versus").innerHTML = `<option value="">none</option>` + others.map((p) => `<option value="${p.id}" ${p.id === dflt ? "selected" : ""}>pass ${p.id} (${(p.acquired || "date unknown").slice(0, 10)})</option>`).join("");
}

async function selectPass(id, keepView) {
  st.pass = st.passes.find((p) => p.id === Number(id));
  $("pass").value = String(st.pass.id);
  ensureMap(st.pass.georeferenced);
  fillVersus();
  showImagery(st.pass);
  if (!keepView) fitPass(st.pass);
  const [feats] = await Promise.all([allFeatures(`/api/passes/${st.pass.id}/detections?limit=1000`), loadStatuses()]);
  drawDetections(feats);
  document.getElementById("map").dataset.loadedPass = String(st.pass.id);
  if (!st.pass.georeferenced) $("map-note").textContent += " This pass is in image pixels (no ground position): the map shows pixel coordinates.";
}

function timelineChart(entries) {
  const cats = Object.keys(CATEGORY_COLOURS).filter((c) => entries.some((e) => e.counts[c]));
  const W = 560, H = 200, L0 = 40, R = 50, B = 30, T = 10;
  const max = Math.max(1, ...entries.flatMap((e) => cats.map((c) => e.counts[c] || 0)));
  const x = (i) => L0 + 20 + (entries.length === 1 ? (W - L0 - R - 20) / 2 : i * (W - L0 - R - 20) / (entries.length - 1));
  const y = (v) => H - B - (v / max) * (H - B - T);
  let svg = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="detections per pass">`;
  for (const v of [0, max]) svg += `<text x="${L0 - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${v}</text><line x1="${L0}" x2="${W - 10}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`;
  entries.forEach((e, i) => { svg += `<text x="${x(i)}" y="${H - 10}" text-anchor="middle" font-size="11">${SW.esc((e.acquired || "pass " + e.pass_id).slice(0, 10))}</text>`; });
  for (const c of cats) {
    const pts = entries.map((e, i) => `${x(i)},${y(e.counts[c] || 0)}`).join(" ");
    svg += `<polyline fill="none" stroke="${CATEGORY_COLOURS[c]}" stroke-width="2.5" points="${pts}"/>`;
    entries.forEach((e, i) => { svg += `<circle cx="${x(i)}" cy="${y(e.counts[c] || 0)}" r="4" fill="${CATEGORY_COLOURS[c]}"><title>${SW.esc(c)}: ${e.counts[c] || 0} (pass ${e.pass_id})</title></circle>`; });
  }
  $("timeline").innerHTML = svg + "</svg>";
  $("timeline-note").innerHTML = cats.map((c) => `<span style="color:${CATEGORY_COLOURS[c]}">■</span> ${SW.esc(c)}`).join(" &nbsp; ") + "<br>"
    + entries.filter((e) => e.sentence || e.not_compared).map((e) => `pass ${e.pass_id}: ${SW.esc(e.sentence || "not compared: " + e.not_compared)}`).join("<br>");
}

function claimRows(claims, verdicts) {
  $("claims").querySelector("tbody").innerHTML = claims.map((c) => {
    const v = verdicts[String(c.id)];
    const verdict = v ? `<span class="badge ${SW.esc(v.verdict)}">${SW.esc(v.verdict)}</span><br><span class="note">${SW.esc(v.note || "")}</span>` : `<span class="muted">…</span>`;
    return `<tr id="claim-${c.id}"><td>${SW.esc(c.text)}</td><td>${SW.esc(c.source)} (${SW.esc(c.reliability || "F")})</td><td>${verdict}</td></tr>`;
  }).join("") || `<tr><td colspan="3" class="muted">no claims stored about this site</td></tr>`;
}

async function focusEvidence(key) {
  const ev = st.evidence[key];
  if (key.startsWith("det-")) {
    const det = Number(key.slice(4));
    const passId = ev && ev.pass_ids && ev.pass_ids.length ? ev.pass_ids[0] : st.pass.id;
    if (passId !== st.pass.id) await selectPass(passId);
    const poly = st.byId[det];
    if (poly) { st.map.fitBounds(poly.getBounds(), { maxZoom: st.map.getZoom() + 2 }); poly.openPopup(); }
  } else if (key.startsWith("pass-")) {
    await selectPass(Number(key.slice(5)));
  } else if (key.startsWith("claim-")) {
    document.querySelectorAll("#claims tr.hl").forEach((r) => r.classList.remove("hl"));
    const row = document.getElementById(key);
    if (row) { row.classList.add("hl"); row.scrollIntoView({ block: "center" }); }
  } else if (key.startsWith("cmp-")) {
    const [, a, b] = key.split("-").map(Number);
    await selectPass(b);
    $("versus").value = String(a);
    $("colour").value = "change";
    await loadStatuses();
    recolour();
  }
}

function evidenceLinks(keys) {
  const shown = keys.slice(0, 12).map((k) => `<a href="#" data-evidence="${SW.esc(k)}" title="${SW.esc((st.evidence[k] || {}).text || k)}">${SW.esc(k)}</a>`).join("");
  return shown + (keys.length > 12 ? ` <span class="muted">+${keys.length - 12}</span>` : "");
}

async function loadAssessment(claims) {
  try {
    const r = await SW.api(`/api/sites/${encodeURIComponent(siteName)}/assessment`);
    for (const e of r.evidence || []) st.evidence[e.key] = e;
    const a = r.assessment || {};
    const js = (a.judgements || []).map((j) => `<div class="judgement">• ${SW.esc(j.text)}<div class="evidence">${evidenceLinks(j.evidence || [])}</div></div>`).join("");
    const hyps = (a.hypotheses || []).map((h) => `${SW.esc(h.name)} ${SW.fmt(100 * h.probability, 0)}% (${SW.esc(h.term)})`).join("; ");
    $("judgements").classList.remove("muted");
    $("judgements").innerHTML = (js || "<p class='muted'>no judgements</p>")
      + `<p class="note">Confidence: ${SW.esc(a.confidence || "?")}. Hypotheses: ${hyps || "–"}</p>`;
    const verdicts = {};
    for (const c of r.claims || []) verdicts[String(c.id)] = c;
    claimRows(claims, verdicts);
  } catch (e) {
    $("judgements").textContent = "no assessment: " + e.message;
  }
}

async function main() {
  const site = await SW.api(`/api/sites/${encodeURIComponent(siteName)}`);
  st.site = site;
  st.passes = site.pass_list;
  document.title = `sitewatch: ${site.title}`;
  $("site-title").innerHTML = SW.esc(site.title) + (st.passes.some((p) => p.simulated) ? ' <span class="badge sim">SIMULATED imagery</span>' : "");
  $("site-sub").textContent = [site.kind, site.country, `${st.passes.length} passes`].filter(Boolean).join(" · ");
  $("site-notes").textContent = site.notes || "";
  const enc = encodeURIComponent(siteName);
  $("downloads").innerHTML = [["report (HTML)", `/api/sites/${enc}/report.html`], ["report (PDF)", `/api/sites/${enc}/report.pdf`],
    ["assessment (JSON)", `/api/sites/${enc}/assessment`], ["GeoJSON", `/api/sites/${enc}/export/geojson`],
    ["GeoParquet", `/api/sites/${enc}/export/geoparquet`], ["KML", `/api/sites/${enc}/export/kml`], ["CSV", `/api/sites/${enc}/export/csv`]]
    .map(([t, u]) => `<a href="${SW.withToken(u)}">${t}</a>`).join("");
  const claims = await SW.api(`/api/sites/${enc}/claims`);
  claimRows(claims, {});
  document.addEventListener("click", (ev) => {
    const a = ev.target.closest("a[data-evidence]");
    if (a) { ev.preventDefault(); focusEvidence(a.dataset.evidence); }
  });
  if (!st.passes.length) { $("map-note").textContent = "No stored passes of this site."; return; }
  $("pass").innerHTML = st.passes.map((p) => `<option value="${p.id}">pass ${p.id} · ${(p.acquired || "date unknown").slice(0, 16).replace("T", " ")} · ${p.detections} det.${p.simulated ? " · SIMULATED" : ""}</option>`).join("");
  $("pass").addEventListener("change", (e) => selectPass(e.target.value, true));
  $("versus").addEventListener("change", async () => { await loadStatuses(); recolour(); });
  $("colour").addEventListener("change", recolour);
  $("imagery").addEventListener("change", () => showImagery(st.pass));
  if (st.passes.length > 1) $("colour").value = "change";
  await selectPass(st.passes[st.passes.length - 1].id);
  SW.api(`/api/sites/${enc}/timeline`).then(timelineChart).catch((e) => { $("timeline").textContent = e.message; });
  loadAssessment(claims);
}
main().catch((e) => { $("site-title").textContent = "error: " + e.message; });
