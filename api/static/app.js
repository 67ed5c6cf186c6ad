// The dashboard: the latest runs, and for the selected run (#/runs/ID) its report and the trend
// of its repository. Plain DOM, no build step; every text goes in through textContent.
// The API token, when the API asks for one, is typed into a form and kept in this tab's
// sessionStorage; it travels in the Authorization header only, never in a URL.
"use strict";

const HEADLINE = { exact_match: "EM", es_rapidfuzz: "ES", identifier_f1: "id F1", parses_after_insert: "parses" };
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

const percent = (rate) => (rate === null || rate === undefined ? "–" : `${Math.round(rate * 100)}%`);
const number = (value) => (value === null || value === undefined ? "–" : value.toFixed(2));

const TOKEN_KEY = "aixaudit.token";

class Unauthorized extends Error {}

async function getJSON(url) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const response = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  const body = await response.json();
  if (response.status === 401) throw new Unauthorized(body.detail || "The API asks for a token.");
  if (!response.ok) throw new Error(body.detail || `${url}: HTTP ${response.status}`);
  return body;
}

function askForToken(message) {
  const form = document.getElementById("token-form");
  document.getElementById("token-message").textContent = message;
  form.hidden = false;
  document.getElementById("token").focus();
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token");
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  event.target.hidden = true;
  render();
});

function selectedRun() {
  const match = location.hash.match(/^#\/runs\/(\d+)$/);
  return match ? Number(match[1]) : null;
}

async function showRuns() {
  const message = document.getElementById("runs-message");
  const body = document.querySelector("#runs tbody");
  const runs = await getJSON("/api/runs?limit=50");
  message.textContent = runs.length
    ? "Click a run for its report and its repository's trend."
    : "No runs yet: start one with `aixaudit audit PATH`.";
  body.replaceChildren(
    ...runs.map((run) => {
      const regression = { true: "yes", false: "no" }[run.regression] || "–";
      const row = el(
        "tr",
        { "data-run-id": run.id, class: run.id === selectedRun() ? "selected" : "" },
        el("td", { class: "num" }, el("a", { href: `#/runs/${run.id}` }, `#${run.id}`)),
        el("td", { class: "status" }, el("span", { class: `badge ${run.status}` }, run.status)),
        el("td", { class: "repository", title: run.origin }, run.name),
        el("td", { class: "ref" }, run.ref || ""),
        el("td", { class: "num points" }, `${run.suggestions}/${run.points_total}`),
        el("td", { class: "num rate" }, percent(run.acceptance_rate)),
        el("td", { class: `regression ${regression}` }, regression),
        el("td", { class: "created" }, run.created_at.slice(0, 16).replace("T", " ")),
      );
      row.addEventListener("click", () => { location.hash = `#/runs/${run.id}`; });
      return row;
    }),
  );
}

function breakdownTable(title, rows) {
  const head = ["", "points", "suggestions", "errors", "accepted", "rate", ...Object.values(HEADLINE),
    "lines acc/sug", "chars acc/sug"];
  return el(
    "table", { class: "breakdown", "data-breakdown": title },
    el("caption", {}, title),
    el("thead", {}, el("tr", {}, ...head.map((name, i) => el("th", { class: i ? "num" : "" }, name)))),
    el("tbody", {}, ...rows.map((row) => el(
      "tr", { "data-key": row.key },
      el("td", {}, row.key),
      ...[row.points, row.suggestions, row.errors, row.accepted, percent(row.acceptance_rate),
        ...Object.keys(HEADLINE).map((name) => number(row.metrics[name])),
        `${row.lines_accepted}/${row.lines_suggested}`, `${row.chars_accepted}/${row.chars_suggested}`,
      ].map((value) => el("td", { class: "num" }, String(value))),
    ))),
  );
}

// Acceptance rate and ES of each finished run, on a 0-100% scale; the selected run is marked.
function trendChart(points, runId) {
  const width = 640, height = 220, left = 44, right = 16, top = 16, bottom = 34;
  const x = (i) => left + (points.length === 1 ? (width - left - right) / 2
    : (i * (width - left - right)) / (points.length - 1));
  const y = (value) => top + (1 - value) * (height - top - bottom);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "trend", role: "img",
    "aria-label": "acceptance rate and ES per run" });
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(svg("line", { x1: left, x2: width - right, y1: y(tick), y2: y(tick), class: "grid" }),
      svg("text", { x: left - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end" }, percent(tick)));
  }
  points.forEach((point, i) => {
    const current = point.run_ids.includes(runId);
    if (current) {
      chart.append(svg("line", { x1: x(i), x2: x(i), y1: top, y2: height - bottom, class: "current" }));
    }
    chart.append(svg("text", { x: x(i), y: height - bottom + 18, class: `axis${current ? " bold" : ""}`,
      "text-anchor": "middle" }, `#${point.run_ids.join("+")}`));
  });
  const series = [
    ["acceptance", "acceptance rate", (point) => point.acceptance_rate],
    ["es", "ES (es_rapidfuzz)", (point) => point.metrics.es_rapidfuzz],
  ];
  series.forEach(([name, label, value], s) => {
    const shown = points.map((point, i) => [i, value(point)]).filter(([, v]) => v !== null && v !== undefined);
    chart.append(svg("polyline", { class: `series-${name}`, fill: "none",
      points: shown.map(([i, v]) => `${x(i)},${y(v)}`).join(" ") }));
    for (const [i, v] of shown) {
      chart.append(svg("circle", { class: `series-${name}`, cx: x(i), cy: y(v), r: 4 },
        svg("title", {}, `run #${points[i].run_ids.join("+")}: ${label} ${percent(v)}`)));
    }
    chart.append(svg("rect", { x: left + 10 + s * 150, y: 2, width: 12, height: 4, class: `series-${name}` }),
      svg("text", { x: left + 27 + s * 150, y: 8, class: "legend" }, label));
  });
  return chart;
}

async function showRun(runId) {
  const section = document.getElementById("run");
  if (runId === null) {
    section.hidden = true;
    return;
  }
  const report = await getJSON(`/api/runs/${runId}`);
  const run = report.run;
  const trend = await getJSON(`/api/repositories/${run.repository_id}/trend?by=run`);
  const skipped = Object.entries(report.skipped).map(([reason, count]) => `${reason} ${count}`).join(", ");
  section.replaceChildren(
    el("h2", {}, `Run #${run.id}: ${run.name} `, el("span", { class: `badge ${run.status}` }, run.status)),
    el("p", { class: "facts" },
      `${run.origin} ${run.ref || ""} ${(run.commit || "").slice(0, 12)} · profile ${run.profile} · ` +
      `${report.files} files (skipped: ${skipped || "none"})` + (run.error ? ` · ${run.error}` : "")),
    el("h3", {}, `Trend of ${trend.repository.name}`),
    trend.points.length ? trendChart(trend.points, run.id) : el("p", { class: "message" }, "No finished run yet."),
    breakdownTable("totals", [report.totals]),
    breakdownTable("by language", report.by_language),
    breakdownTable("by span kind", report.by_kind),
    el("h3", {}, "Definitions"),
    el("ul", { class: "definitions" },
      el("li", {}, `accepted when: ${JSON.stringify(report.acceptance_rule)}`),
      ...report.metrics.map((m) => el("li", {}, el("code", {}, `${m.name} v${m.version}`), ` ${m.definition}`))),
  );
  section.hidden = false;
}

async function render() {
  try {
    await showRuns();
    await showRun(selectedRun());
  } catch (error) {
    if (error instanceof Unauthorized) {
      const refused = sessionStorage.getItem(TOKEN_KEY) !== null;
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken(refused ? `The token was refused: ${error.message}` : error.message);
      document.getElementById("runs-message").textContent = "The runs show once a token is given.";
      return;
    }
    document.getElementById("runs-message").textContent = `Cannot load the dashboard: ${error.message}`;
  }
}

window.addEventListener("hashchange", render);
render();
