// Tables, their CSV export, an item's content and chart helpers of the salesfusion dashboard
// (loaded before dashboard.js). Cells are written with textContent: table values are shop data.
"use strict";

const byId = (id) => document.getElementById(id);

function csvCell(value) {
  if (value === null || value === undefined) return "";
  const text = String(value);
  return /[",\n\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}

function tableCsv(table) {
  const lines = [table.columns.map(csvCell).join(",")];
  for (const row of table.rows) lines.push(row.map(csvCell).join(","));
  return lines.join("\n") + "\n";
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function shown(value) {
  if (typeof value === "number" && !Number.isInteger(value)) {
    return value.toLocaleString("en", { maximumFractionDigits: 3 });
  }
  return value === null || value === undefined ? "" : String(value);
}

// Render `table` ({columns, rows}) in `container` with an Export CSV button that downloads
// those same rows (numbers at full precision; cells show them rounded).
function renderTable(container, table, fileName) {
  container.replaceChildren();
  const tools = document.createElement("div");
  tools.className = "table-tools";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "export-csv";
  button.textContent = "Export CSV";
  button.dataset.file = fileName;
  button.addEventListener("click", () => download(fileName, tableCsv(table)));
  const count = document.createElement("span");
  count.className = "muted";
  count.textContent = ` ${table.rows.length} rows`;
  tools.append(button, count);
  const box = document.createElement("div");
  box.className = "table-box";
  const element = document.createElement("table");
  const head = element.createTHead().insertRow();
  const numeric = table.columns.map((_, i) => table.rows.every(
    (r) => r[i] === null || typeof r[i] === "number"));
  table.columns.forEach((name, i) => {
    const th = document.createElement("th");
    th.textContent = name;
    if (!numeric[i]) th.className = "text";
    head.appendChild(th);
  });
  const body = element.createTBody();
  for (const row of table.rows) {
    const tr = body.insertRow();
    row.forEach((value, i) => {
      const td = tr.insertCell();
      td.textContent = shown(value);
      if (!numeric[i]) td.className = "text";
    });
  }
  box.appendChild(element);
  container.append(tools, box);
}

// The item's content: one row per modality it has content for, in the order the server sends
// (every registered modality, a plug-in's included, so a new one needs nothing here); a part
// read from a file comes with its photo, shown beside the title (the first one as #photo).
function renderContent(view) {
  const photos = byId("photos");
  const list = byId("series-content");
  photos.replaceChildren();
  list.replaceChildren();
  for (const part of view.content) {
    const term = document.createElement("dt");
    term.textContent = part.modality;
    term.title = part.about;
    const value = document.createElement("dd");
    value.textContent = shown(part.value);
    list.append(term, value);
    if (!part.photo) continue;
    const figure = document.createElement("figure");
    const image = document.createElement("img");
    if (!photos.childElementCount) image.id = "photo";
    image.className = "photo";
    image.src = part.photo;
    image.alt = part.modality + " of " + (view.title || view.item_id);
    const caption = document.createElement("figcaption");
    caption.textContent = part.modality;
    figure.append(image, caption);
    photos.appendChild(figure);
  }
  photos.hidden = photos.childElementCount === 0;
}

function column(table, name) {
  const index = table.columns.indexOf(name);
  return table.rows.map((r) => r[index]);
}

// One trace per value of `by`: x and y columns of the rows having that value.
function tracesBy(table, by, x, y, type, extra) {
  const groups = [...new Set(column(table, by))];
  const xs = column(table, x), ys = column(table, y), keys = column(table, by);
  return groups.map((group) => {
    const pick = keys.map((k, i) => (k === group ? i : -1)).filter((i) => i >= 0);
    return Object.assign({ type: type, name: String(group), x: pick.map((i) => xs[i]),
                           y: pick.map((i) => ys[i]) }, extra || {});
  });
}

function plot(id, traces, layout) {
  Plotly.react(byId(id), traces, Object.assign({
    margin: { l: 55, r: 15, t: 35, b: 45 }, legend: { orientation: "h", y: -0.18 },
    hovermode: "closest" }, layout), { displaylogo: false, responsive: true });
}
