// The meter service's live dashboard: plain JavaScript against the public API, no library.
// The access token stays in this page's memory (never in storage): reloading logs out.
"use strict";

const API = new URL("../api/v1/", document.baseURI);
const POLL_MS = 2000;
const SUMMARY_MS = 10000;
const WINDOW_MS = 5 * 60 * 1000;
const SVG = "http://www.w3.org/2000/svg";

const state = { token: null, selected: null, timer: null, summaries: new Map(), summaryAt: 0, lastStored: null };
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.error_code || `HTTP_${status}`;
    this.body = body;
  }
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.body ? { "Content-Type": "application/json" } : {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(new URL(path, API), { ...options, headers });
  const body = await response.json().catch(() => null);
  if (response.status === 401 && state.token) logout("Your session ended; log in again.");
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// ------------------------------------------------------------------ log-in
async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const body = await api("auth/token", {
      method: "POST",
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    });
    state.token = body.data.access_token;
    $("password").value = "";
    $("login-panel").hidden = true;
    $("dashboard").hidden = false;
    $("logout").hidden = false;
    await refresh();
    state.timer = setInterval(refresh, POLL_MS);
  } catch (error) {
    $("login-error").textContent = error.message;
  }
}

function logout(message = "") {
  state.token = null;
  clearInterval(state.timer);
  state.lastStored = null;
  $("dashboard").hidden = true;
  $("logout").hidden = true;
  $("login-panel").hidden = false;
  $("login-error").textContent = message;
}

// ------------------------------------------------------------------ polling
async function refresh() {
  if (!state.token) return;
  try {
    await Promise.all([refreshMeters(), refreshIngestion(), refreshChart()]);
  } catch (error) {
    if (state.token) $("ingestion").textContent = `error: ${error.message}`;
  }
}

async function refreshIngestion() {
  const { data } = await api("ingestion");
  const now = performance.now();
  if (state.lastStored) {
    const rate = (data.stored - state.lastStored.stored) / ((now - state.lastStored.at) / 1000);
    $("ingestion").textContent = `ingestion: ${rate.toFixed(1)} readings/s · ${data.stored} stored`;
  } else {
    $("ingestion").textContent = `ingestion: measuring… · ${data.stored} stored`;
  }
  $("ingestion").dataset.stored = String(data.stored);
  state.lastStored = { stored: data.stored, at: now };
}

function today() {
  return new Date().toISOString().slice(0, 10); // the summary's days are UTC days
}

async function refreshSummaries(meters) {
  if (Date.now() - state.summaryAt < SUMMARY_MS) return;
  state.summaryAt = Date.now();
  const day = today();
  await Promise.all(
    meters.map(async (meter) => {
      const { data } = await api(`devices/${encodeURIComponent(meter.device_id)}/summary?start=${day}&end=${day}`);
      state.summaries.set(meter.device_id, data.length ? data[data.length - 1].kwh : 0);
    }),
  );
}

async function refreshMeters() {
  const { data: meters } = await api("devices?limit=1000");
  await refreshSummaries(meters);
  if (!state.selected && meters.length) select(meters[0].device_id);
  const rows = meters.map((meter) => {
    const row = document.createElement("tr");
    row.dataset.device = meter.device_id;
    row.classList.toggle("selected", meter.device_id === state.selected);
    const kwh = state.summaries.get(meter.device_id);
    const seen = meter.latest ? new Date(meter.latest.ts).toLocaleTimeString() : "–";
    const cells = [
      meter.device_id,
      null,
      meter.latest ? meter.latest.power_w.toFixed(1) : "–",
      kwh === undefined ? "–" : kwh.toFixed(4),
      seen,
    ];
    cells.forEach((text, index) => {
      const cell = document.createElement("td");
      if (index === 1) {
        const badge = document.createElement("span");
        badge.className = `state ${meter.status}`;
        badge.textContent = meter.status;
        cell.append(badge);
      } else {
        cell.textContent = text;
      }
      if (index === 2 || index === 3) cell.className = "num";
      row.append(cell);
    });
    row.addEventListener("click", () => select(meter.device_id));
    return row;
  });
  $("meters").tBodies[0].replaceChildren(...rows);
  const online = meters.filter((meter) => meter.status === "online").length;
  $("meter-count").textContent = `${online} of ${meters.length} online`;
}

function select(deviceId) {
  state.selected = deviceId;
  $("chart-meter").textContent = deviceId;
  $("command-meter").textContent = deviceId;
  for (const row of $("meters").tBodies[0].rows) row.classList.toggle("selected", row.dataset.device === deviceId);
  refreshChart().catch(() => {});
}

// ------------------------------------------------------------------ chart (SVG, drawn here)
async function refreshChart() {
  const deviceId = state.selected;
  if (!deviceId) return;
  const start = new Date(Date.now() - WINDOW_MS).toISOString();
  const { data } = await api(`devices/${encodeURIComponent(deviceId)}/readings?limit=1000&start=${encodeURIComponent(start)}`);
  if (deviceId === state.selected) draw(data.slice().reverse()); // the API sends the newest first
}

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function draw(readings) {
  const chart = $("chart");
  // Drawn in the element's own pixels (no scaling, so the labels keep their shape).
  const width = Math.max(320, chart.clientWidth || 640), height = 240, left = 48, right = 12, top = 10, bottom = 22;
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const now = Date.now();
  const from = now - WINDOW_MS;
  const peak = Math.max(1000, ...readings.map((r) => r.power_w));
  const yMax = Math.ceil(peak / 500) * 500;
  const x = (ts) => left + ((ts - from) / WINDOW_MS) * (width - left - right);
  const y = (watts) => top + (1 - watts / yMax) * (height - top - bottom);
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const watts = (yMax * i) / 4;
    parts.push(svg("line", { class: "grid", x1: left, x2: width - right, y1: y(watts), y2: y(watts) }));
    parts.push(svg("text", { x: left - 6, y: y(watts) + 4, "text-anchor": "end" }, `${Math.round(watts)}`));
  }
  for (let minutes = 5; minutes >= 0; minutes--) {
    const ts = now - minutes * 60000;
    const anchor = minutes === 5 ? "start" : minutes === 0 ? "end" : "middle";
    parts.push(svg("text", { x: x(ts), y: height - 6, "text-anchor": anchor }, minutes ? `-${minutes} min` : "now"));
  }
  const points = readings.filter((r) => r.ts >= from).map((r) => `${x(r.ts).toFixed(1)},${y(r.power_w).toFixed(1)}`);
  parts.push(svg("polyline", { class: "line", points: points.join(" ") }));
  chart.replaceChildren(...parts);
  const last = readings[readings.length - 1];
  chart.dataset.points = String(points.length);
  chart.dataset.lastTs = last ? String(last.ts) : "";
  $("chart-caption").textContent = last
    ? `${points.length} readings · latest ${last.power_w.toFixed(1)} W at ${new Date(last.ts).toLocaleTimeString()}`
    : "no readings in the last 5 minutes";
}

// ------------------------------------------------------------------ commands
async function sendCommand(event) {
  event.preventDefault();
  const deviceId = state.selected;
  const output = $("command-result");
  if (!deviceId) return;
  $("send-command").disabled = true;
  output.className = "";
  output.textContent = `sending ${$("command").value} to ${deviceId}…`;
  try {
    const body = await api(`devices/${encodeURIComponent(deviceId)}/commands`, {
      method: "POST",
      body: JSON.stringify({ command: $("command").value }),
    });
    output.dataset.outcome = "ok";
    output.textContent = JSON.stringify(body.data, null, 2);
  } catch (error) {
    output.dataset.outcome = "error";
    output.className = "failed";
    output.textContent = `${error.status} ${error.code}: ${error.message}`;
  } finally {
    $("send-command").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("command-form").addEventListener("submit", sendCommand);
  $("logout").addEventListener("click", () => logout());
});
