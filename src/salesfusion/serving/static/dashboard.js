// The salesfusion dashboard: plain JavaScript over the /v1/dashboard routes. Every string from
// the server is written with textContent (never innerHTML): titles are shop data.
"use strict";

const KEY_STORE = "salesfusion-api-key";
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
                 "#17becf"];
const state = { meta: null, current: null, searchTimer: null, searches: 0, views: 0 };
const $ = (id) => document.getElementById(id);

class ApiFailure extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function apiKey() { return sessionStorage.getItem(KEY_STORE) || ""; }

async function api(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (Array.isArray(value)) value.forEach((v) => query.append(name, v));
    else if (value !== null && value !== undefined && value !== "") query.append(name, value);
  }
  const url = "/v1/dashboard/" + path + (query.toString() ? "?" + query : "");
  const response = await fetch(url, { headers: { "X-API-Key": apiKey() } });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    throw new ApiFailure(response.status, message);
  }
  return body;
}

function showStatus(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

function failed(error) {
  if (error instanceof ApiFailure && error.status === 401) {
    $("app").hidden = true;
    showStatus("401 Unauthorized: " + error.message, true);
  } else {
    showStatus(error instanceof ApiFailure ? error.status + ": " + error.message : String(error),
               true);
  }
}

function colourOf(model) {
  const index = state.meta.models.findIndex((m) => m.name === model);
  return COLOURS[(index < 0 ? 0 : index) % COLOURS.length];
}

function translucent(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

// ---- controls ----

function chosenModels() {
  return [...document.querySelectorAll("#models input:checked")].map((box) => box.value);
}

function fillControls(meta) {
  const models = $("models");
  models.querySelectorAll("label").forEach((label) => label.remove());
  for (const model of meta.models) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = model.name;
    box.checked = true;
    box.addEventListener("change", () => { if (state.current) openSeries(state.current); });
    label.append(box, " " + model.name + " (" + model.model + ")");
    models.appendChild(label);
  }
  const market = $("market");
  market.querySelectorAll("option:not([value=''])").forEach((o) => o.remove());
  for (const name of meta.markets) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    market.appendChild(option);
  }
}

async function start() {
  try {
    state.meta = await api("meta");
  } catch (error) {
    failed(error);
    return;
  }
  showStatus(`${state.meta.models.length} model(s) served.`, false);
  fillControls(state.meta);
  $("app").hidden = false;
  await Promise.all([search(), loadMetrics(), loadExplanations()]);
}

// ---- search and the series view ----

async function search() {
  const asked = ++state.searches;  // a slower, older answer must not replace a newer one
  let found;
  try {
    found = await api("series", { q: $("search").value, market: $("market").value, limit: 100 });
  } catch (error) { failed(error); return; }
  if (asked !== state.searches) return;
  const list = $("results");
  list.replaceChildren();
  $("search-count").textContent = found.total > found.series.length
    ? `showing ${found.series.length} of ${found.total} series` : `${found.total} series`;
  for (const series of found.series) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "result";
    button.dataset.item = series.item_id;
    button.dataset.market = series.market;
    const name = document.createElement("strong");
    name.textContent = series.item_id;
    button.append(name, ` · ${series.market}`);
    if (series.cold_start) {
      const badge = document.createElement("span");
      badge.className = "badge cold";
      badge.textContent = "cold start";
      button.appendChild(badge);
    }
    for (const modality of series.content) {
      const badge = document.createElement("span");
      badge.className = "badge content";
      badge.textContent = modality;
      button.appendChild(badge);
    }
    const title = document.createElement("div");
    title.className = "muted";
    title.textContent = series.title || "";
    button.appendChild(title);
    button.addEventListener("click", () => openSeries(series));
    item.appendChild(button);
    list.appendChild(item);
  }
}

async function openSeries(series) {
  state.current = series;
  document.querySelectorAll("#results button.active").forEach((b) => b.classList.remove("active"));
  document.querySelectorAll("#results button").forEach((b) => {
    if (b.dataset.item === series.item_id && b.dataset.market === series.market) {
      b.classList.add("active");
    }
  });
  if (chosenModels().length === 0) {
    showStatus("Tick at least one model to see its forecast.", true);
    return;
  }
  const asked = ++state.views;
  let view;
  try {
    view = await api("view", { item_id: series.item_id, market: series.market,
                               models: chosenModels(), horizon: $("horizon").value });
  } catch (error) { failed(error); return; }
  if (asked !== state.views) return;
  showStatus(`${state.meta.models.length} model(s) served.`, false);
  renderSeries(view);
}

function renderSeries(view) {
  $("series-title").textContent = view.title || view.item_id;
  const metaLine = $("series-meta");
  metaLine.textContent = `${view.item_id} in ${view.market}`;
  if (view.cold_start) {
    const badge = document.createElement("span");
    badge.className = "badge cold";
    badge.id = "series-cold";
    badge.textContent = "cold start: no sales history";
    metaLine.appendChild(badge);
  }
  renderContent(view);
  const notes = $("series-notes");
  notes.replaceChildren();
  for (const note of view.notes) {
    const li = document.createElement("li");
    li.textContent = note;
    notes.appendChild(li);
  }
  const traces = [];
  if (view.history.timestamps.length) {
    traces.push({ type: "scatter", mode: "lines+markers", name: "history",
                  x: view.history.timestamps, y: view.history.y, marker: { size: 4 },
                  line: { color: "#333" }, meta: { kind: "history" } });
  }
  for (const forecast of view.forecasts) {
    const colour = colourOf(forecast.model);
    if (forecast.band) {
      const keep = forecast.timestamps.map((_, i) => i).filter(
        (i) => forecast.lower[i] !== null && forecast.upper[i] !== null);
      const x = keep.map((i) => forecast.timestamps[i]);
      traces.push({ type: "scatter", mode: "lines", name: `${forecast.model} ${forecast.band}`,
                    x: x.concat([...x].reverse()),
                    y: keep.map((i) => forecast.upper[i]).concat(
                      keep.map((i) => forecast.lower[i]).reverse()),
                    fill: "toself", fillcolor: translucent(colour, 0.18),
                    line: { width: 0 }, hoverinfo: "skip",
                    meta: { kind: "band", model: forecast.model } });
    }
    traces.push({ type: "scatter", mode: "lines+markers",
                  name: forecast.model + (forecast.cold_start ? " (cold start)" : ""),
                  x: forecast.timestamps, y: forecast.y_pred, line: { color: colour, width: 2.5 },
                  meta: { kind: "forecast", model: forecast.model } });
  }
  for (const overlay of view.backtest) {
    traces.push({ type: "scatter", mode: "lines", x: overlay.timestamps, y: overlay.y_pred,
                  name: `${overlay.model} backtest ${overlay.window}`,
                  line: { color: colourOf(overlay.model), dash: "dash", width: 1.5 },
                  meta: { kind: "backtest", model: overlay.model, window: overlay.window } });
  }
  plot("series-chart", traces, { title: { text: "Units per period" },
                                 yaxis: { rangemode: "tozero" } });
  renderTable($("series-table"), view.table, `${view.item_id}_${view.market}.csv`);
}

// ---- backtest errors ----

async function loadMetrics() {
  const section = $("metrics");
  const backtest = state.meta.backtest;
  section.hidden = !backtest || backtest.models.length === 0;
  if (section.hidden) return;
  const market = $("market").value;
  $("metrics-scope").textContent = market ? `(market ${market})` : "(all markets)";
  let byStep, byMarket;
  try {
    [byStep, byMarket] = await Promise.all([
      api("metrics", { by: "step", market: market }), api("metrics", { by: "market" })]);
  } catch (error) { failed(error); return; }
  plot("wape-step-chart", tracesBy(byStep, "model", "step", "wape", "scatter",
                                   { mode: "lines+markers" }),
       { title: { text: "WAPE (%) by horizon step" }, xaxis: { dtick: 1 } });
  plot("bias-step-chart", tracesBy(byStep, "model", "step", "bias", "scatter",
                                   { mode: "lines+markers" }),
       { title: { text: "Bias (%) by horizon step" }, xaxis: { dtick: 1 } });
  plot("market-chart", tracesBy(byMarket, "model", "market", "wape", "bar"),
       { title: { text: "WAPE (%) by market" }, barmode: "group" });
  renderTable($("metrics-step"), byStep, "metrics_by_step.csv");
  renderTable($("metrics-market"), byMarket, "metrics_by_market.csv");
}

// ---- explanations ----

const SHARE_AXES = { shares_by_step: "step", shares_by_segment: "segment", shares_by_age: "age" };

async function loadExplanations() {
  const tables = state.meta.explain;
  const section = $("explain");
  section.hidden = tables.length === 0;
  const holder = $("explain-tables");
  holder.replaceChildren();
  for (const { name, title } of tables) {
    let table;
    try { table = await api("explain/" + name); } catch (error) { failed(error); return; }
    const part = document.createElement("div");
    part.className = "explain-table";
    part.dataset.table = name;
    const heading = document.createElement("h3");
    heading.textContent = title;
    part.appendChild(heading);
    let traces = null, layout = {};
    if (SHARE_AXES[name] && table.columns.includes("share")) {
      traces = tracesBy(table, "group", SHARE_AXES[name], "share", "bar");
      layout = { barmode: "stack", yaxis: { title: { text: "share" } } };
    } else if (name === "importance" && table.columns.includes("increase")) {
      traces = [{ type: "bar", x: column(table, "group"), y: column(table, "increase"),
                  name: "WAPE increase" }];
    } else if (name === "errors_by_segment") {
      traces = tracesBy(table, "model", "segment", "wape", "bar");
      layout = { barmode: "group", yaxis: { title: { text: "WAPE (%)" } } };
    }
    if (traces) {
      const chart = document.createElement("div");
      chart.className = "chart small";
      chart.id = "explain-chart-" + name;
      part.appendChild(chart);
      holder.appendChild(part);
      plot(chart.id, traces, layout);
    } else {
      holder.appendChild(part);
    }
    const box = document.createElement("div");
    part.appendChild(box);
    renderTable(box, table, name + ".csv");
  }
}

// ---- wiring ----

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, $("api-key").value.trim());
    $("api-key").value = "";
    start();
  });
  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); search(); });
  $("search").addEventListener("input", () => {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(search, 250);
  });
  $("market").addEventListener("change", () => { search(); loadMetrics(); });
  $("horizon").addEventListener("change", () => { if (state.current) openSeries(state.current); });
  if (apiKey()) start();
});
