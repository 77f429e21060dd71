// The site list.
"use strict";
async function loadSites() {
  const only = document.getElementById("only-stored").checked;
  const tbody = document.querySelector("#sites tbody");
  try {
    const health = await SW.api("/api/health");
    document.getElementById("store").textContent = "store: " + health.store;
    const sites = await SW.api("/api/sites" + (only ? "?stored=true" : ""));
    tbody.innerHTML = sites.map((s) => `<tr>
      <td><a href="/sites/${encodeURIComponent(s.name)}${location.hash}">${SW.esc(s.title)}</a> <span class="muted">${SW.esc(s.name)}</span></td>
      <td>${SW.esc(s.kind)}</td><td>${SW.esc(s.country)}</td><td>${s.passes || 0}</td>
      <td>${s.aoi_km2 == null ? "–" : SW.fmt(s.aoi_km2, 2)}</td><td>${SW.esc(s.zones.join(", "))}</td></tr>`).join("")
      || `<tr><td colspan="6" class="muted">no sites with stored passes: run sitewatch scan or sitewatch demo</td></tr>`;
  } catch (e) {
    tbody.innerHTML = `<tr><td colspan="6">error: ${SW.esc(e.message)}</td></tr>`;
  }
}
document.getElementById("only-stored").addEventListener("change", loadSites);
loadSites();
