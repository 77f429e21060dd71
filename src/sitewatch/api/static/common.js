// Shared helpers of the sitewatch dashboard: the token (from the page address), JSON fetches, escaping.
"use strict";
const SW = (() => {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token") || sessionStorage.getItem("sitewatch-token") || "";
  if (params.get("token")) sessionStorage.setItem("sitewatch-token", token);
  function withToken(url) {
    if (!token) return url;
    return url + (url.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(token);
  }
  async function api(url) {
    const r = await fetch(url, { headers: token ? { Authorization: "Bearer " + token } : {} });
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) throw new Error((body && body.detail) || r.status + " " + r.statusText);
    return body;
  }
  function esc(v) {
    return String(v == null ? "" : v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function fmt(v, digits) { return v == null ? "?" : Number(v).toFixed(digits); }
  return { api, esc, fmt, withToken, token };
})();
