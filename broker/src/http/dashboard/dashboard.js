// The edgemq dashboard: reads the broker's overview from the event stream
// of /api/events (one server-sent event a second) and its sessions and
// clients from the admin API, polled every second while the page is seen.
// The token of the [http] table is sent as "Authorization: Bearer" with
// every request: typed into the form once (kept in sessionStorage, for this
// tab) or given in the URL's fragment, /#token=..., which the browser does
// not send to the server and this script removes from the address bar.
"use strict";

const PERIOD_MS = 1000;
const HISTORY = 120;
const $ = (sel) => document.querySelector(sel);

let token = sessionStorage.getItem("edgemq-token") || "";
const fromFragment = location.hash.match(/(?:^#|&)token=([^&]*)/);
if (fromFragment) {
  token = decodeURIComponent(fromFragment[1]);
  sessionStorage.setItem("edgemq-token", token);
  history.replaceState(null, "", location.pathname + location.search);
}

class Unauthorized extends Error {}

function headers() {
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path) {
  const r = await fetch(path, { headers: headers(), cache: "no-store" });
  if (r.status === 401) throw new Unauthorized("token refused");
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function setStatus(text, cls) {
  const s = $("#status");
  s.textContent = text;
  s.className = "status " + (cls || "");
}

function askToken() {
  setStatus("token needed", "error");
  $("#login").hidden = false;
  $("#token").focus();
}

$("#login").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("#token").value;
  sessionStorage.setItem("edgemq-token", token);
  $("#login").hidden = true;
  start();
});

// Formatting: integers with separators, bytes and seconds in units.
const int = (n) => (n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US"));
function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}
function secs(s) {
  if (s === null || s === undefined) return "-";
  if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 1) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  if (s < 7200) return (s / 60).toFixed(1) + " min";
  if (s < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}
const rate = (n) => (n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString("en-US"));
const at = (unix) => (unix ? new Date(unix * 1000).toLocaleString() : "-");

function dig(obj, path) {
  return path.split(".").reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj);
}

// --- overview, from the event stream ------------------------------------

let previous = null;
const rates = [];

function showOverview(o) {
  for (const el of document.querySelectorAll("[data-k]")) {
    const v = dig(o, el.dataset.k);
    el.dataset.v = v === undefined || v === null ? "" : String(v);
    const unit = el.dataset.unit;
    el.textContent = typeof v !== "number" ? (v === undefined || v === null ? "-" : String(v))
      : unit === "bytes" ? bytes(v) : unit === "secs" ? secs(v) : int(v);
  }
  $("#uptime").textContent = secs(o.uptime_secs);
  const st = o.store || {};
  const health = $("#store-health");
  health.textContent = !st.persistence ? "no persistence" : st.healthy ? "healthy" : "failing";
  health.className = "big " + (st.healthy ? "healthy" : "failing");
  $("#store-error").textContent = st.last_error ? at(st.last_error.at) + ": " + st.last_error.message : "none";
  if (previous && o.at_ms > previous.at_ms) {
    const dt = (o.at_ms - previous.at_ms) / 1000;
    const d = (k) => Math.max(0, dig(o, k) - dig(previous, k)) / dt;
    const r = { in: d("messages.received"), out: d("messages.sent") };
    $("#rate-in").textContent = rate(r.in);
    $("#rate-out").textContent = rate(r.out);
    $("#rate-in-bytes").textContent = bytes(Math.round(d("messages.received_bytes")));
    $("#rate-out-bytes").textContent = bytes(Math.round(d("messages.sent_bytes")));
    rates.push(r);
    if (rates.length > HISTORY) rates.shift();
    drawChart();
  }
  previous = o;
  document.body.dataset.events = String(Number(document.body.dataset.events) + 1);
}

function drawChart() {
  const c = $("#chart");
  const g = c.getContext("2d");
  const w = c.width, h = c.height;
  g.clearRect(0, 0, w, h);
  const top = Math.max(1, ...rates.map((r) => Math.max(r.in, r.out)));
  g.fillStyle = "#6a7380";
  g.font = "11px sans-serif";
  g.fillText(rate(top) + "/s", 4, 12);
  for (const [key, color] of [["in", "#1f77b4"], ["out", "#e07b00"]]) {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    rates.forEach((r, i) => {
      const x = w - (rates.length - 1 - i) * (w / (HISTORY - 1));
      const y = h - 4 - (r[key] / top) * (h - 20);
      i === 0 ? g.moveTo(x, y) : g.lineTo(x, y);
    });
    g.stroke();
  }
}

// Reads the text/event-stream with fetch (EventSource cannot send the
// token); reconnects after a period when the stream ends.
let streaming = false;

async function events() {
  if (streaming) return;
  streaming = true;
  for (;;) {
    try {
      const r = await fetch("/api/events", { headers: headers(), cache: "no-store" });
      if (r.status === 401) throw new Unauthorized("token refused");
      if (!r.ok || !r.body) throw new Error("events: HTTP " + r.status);
      setStatus("live", "live");
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const data = buf.slice(0, end).split("\n")
            .filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
          buf = buf.slice(end + 2);
          if (data) showOverview(JSON.parse(data));
        }
      }
      setStatus("reconnecting", "error");
    } catch (e) {
      if (e instanceof Unauthorized) { streaming = false; return askToken(); }
      setStatus("reconnecting: " + e.message, "error");
    }
    await new Promise((ok) => setTimeout(ok, PERIOD_MS));
  }
}

// --- sessions and clients, from the admin API ---------------------------

function cell(tr, text, numeric) {
  const td = tr.insertCell();
  td.textContent = text;
  if (numeric) td.className = "n";
}

function fill(table, rows, add) {
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const row of rows) {
    const tr = body.insertRow();
    tr.dataset.id = row.client_id;
    add(tr, row);
  }
}

async function tables() {
  const q = $("#search").value;
  const prefix = q ? "&prefix=" + encodeURIComponent(q) : "";
  const [sessions, clients] = await Promise.all([
    api("/api/sessions?limit=100" + prefix),
    api("/api/clients?limit=100" + prefix),
  ]);
  if ($("#search").value !== q) return; // typed meanwhile: the next round shows it
  const backlogOnly = $("#backlog-only").checked;
  const shown = sessions.items.filter((s) => !backlogOnly || s.queued_messages > 0);
  fill($("#sessions"), shown, (tr, s) => {
    tr.className = s.online ? "online" : "offline";
    cell(tr, s.client_id);
    cell(tr, s.online ? "online" : "offline");
    cell(tr, int(s.queued_messages), true);
    cell(tr, bytes(s.queued_bytes), true);
    cell(tr, secs(s.oldest_queued_age_secs), true);
    cell(tr, int(s.inflight), true);
    cell(tr, int(s.subscriptions), true);
    cell(tr, s.expires_at ? at(s.expires_at) : s.expiry_secs === null ? "never" : "-");
  });
  fill($("#clients"), clients.items, (tr, c) => {
    cell(tr, c.client_id);
    cell(tr, c.user || "-");
    cell(tr, c.address || "-");
    cell(tr, c.listener || "-");
    cell(tr, c.protocol || "-");
    cell(tr, c.keep_alive === null ? "-" : c.keep_alive + " s", true);
    cell(tr, at(c.connected_since));
    cell(tr, int(c.inflight), true);
    cell(tr, int(c.queue_depth), true);
  });
  $("#sessions-more").textContent = sessions.next ? "first page; search to narrow" : "";
  $("#clients-more").textContent = clients.next ? "first page; search to narrow" : "";
  document.body.dataset.tables = String(Number(document.body.dataset.tables) + 1);
  document.body.dataset.search = q;
}

let polling = false;

async function poll() {
  if (polling) return;
  polling = true;
  for (;;) {
    if (document.visibilityState === "visible") {
      try {
        await tables();
      } catch (e) {
        if (e instanceof Unauthorized) { polling = false; return askToken(); }
        setStatus(e.message, "error");
      }
    }
    await new Promise((ok) => setTimeout(ok, PERIOD_MS));
  }
}

function start() {
  events();
  poll();
}

$("#search").addEventListener("input", () => tables().catch(() => {}));
$("#backlog-only").addEventListener("change", () => tables().catch(() => {}));
start();
