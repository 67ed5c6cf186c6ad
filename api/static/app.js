// The dashboard: the latest runs; a run's report (#/runs/ID) with its charts, intervals and the
// trend of its repository; a drill-down to the suggestions of any cell
// (#/runs/ID/suggestions?language=..&kind=..&role=..&accepted=..), each as a diff; and two runs compared
// (#/compare?a=A&b=B). Plain DOM and SVG, no build step; every text goes in through textContent.
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
const signed = (value) => `${value > 0 ? "+" : value < 0 ? "−" : "±"}${Math.abs(value * 100).toFixed(1)}`;
// A 95% interval as the dashboard writes it: on the 0-100 scale, with its n.
const range = (interval) => (interval ? `${Math.round(interval.low * 100)}–${Math.round(interval.high * 100)} (n=${interval.n})` : "–");

const TOKEN_KEY = "aixaudit.token";

class Unauthorized extends Error {}

async function get(url) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
}

async function getJSON(url) {
  const response = await get(url);
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

// Downloads what the API answers at `url` (with the token, which a plain link cannot carry).
async function download(url, filename) {
  const response = await get(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const link = el("a", { href: URL.createObjectURL(await response.blob()), download: filename });
  document.body.append(link);
  link.click();
  link.remove();
}

// CSV and JSON buttons for the table(s) the API serves at `url` (a path with its query).
function exportButtons(url, name) {
  const join = url.includes("?") ? "&" : "?";
  const button = (format, target) => {
    const node = el("button", { type: "button", class: "export", "data-format": format }, format.toUpperCase());
    node.addEventListener("click", () => download(target, `${name}.${format}`));
    return node;
  };
  return el("span", { class: "exports" }, "export ", button("csv", `${url}${join}format=csv`), " ", button("json", url));
}

// The view the hash names: {view, runId, params}.
function route() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  let match = path.match(/^\/runs\/(\d+)\/suggestions$/);
  if (match) return { view: "suggestions", runId: Number(match[1]), params };
  match = path.match(/^\/runs\/(\d+)$/);
  if (match) return { view: "run", runId: Number(match[1]), params };
  if (path === "/compare") return { view: "compare", runId: null, params };
  return { view: "runs", runId: null, params };
}

let runsListed = [];

async function showRuns() {
  const message = document.getElementById("runs-message");
  const body = document.querySelector("#runs tbody");
  const runs = runsListed = await getJSON("/api/runs?limit=200");
  const selected = route().runId;
  message.replaceChildren(runs.length
    ? "Click a run for its report and its repository's trend, or "
    : "No runs yet: start one with `aixaudit audit PATH`.",
  runs.length ? el("a", { href: "#/compare", id: "compare-link" }, "compare two runs") : "", runs.length ? "." : "");
  body.replaceChildren(
    ...runs.slice(0, 50).map((run) => {
      const regression = { true: "yes", false: "no" }[run.regression] || "–";
      const row = el(
        "tr",
        { "data-run-id": run.id, class: run.id === selected ? "selected" : "" },
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

// The suggestions behind a table cell: the run's points filtered like the cell's row.
function drill(runId, filters, text) {
  const query = new URLSearchParams(filters).toString();
  return el("a", { href: `#/runs/${runId}/suggestions${query ? `?${query}` : ""}`, class: "drill" }, String(text));
}

function breakdownTable(runId, title, grouping, rows) {
  const head = ["", "points", "suggestions", "errors", "accepted", "rate", "rate 95%", ...Object.values(HEADLINE),
    "ES 95%", "lines acc/sug", "chars acc/sug"];
  return el(
    "table", { class: "breakdown", "data-breakdown": title },
    el("caption", {}, title),
    el("thead", {}, el("tr", {}, ...head.map((name, i) => el("th", { class: i ? "num" : "" }, name)))),
    el("tbody", {}, ...rows.map((row) => {
      const group = grouping ? { [grouping]: row.key } : {};
      return el(
        "tr", { "data-key": row.key },
        el("td", {}, drill(runId, group, row.key)),
        ...[row.points, drill(runId, group, row.suggestions), row.errors,
          drill(runId, { ...group, accepted: "true" }, row.accepted), percent(row.acceptance_rate),
          range(row.intervals.acceptance_rate),
          ...Object.keys(HEADLINE).map((name) => number(row.metrics[name])), range(row.intervals.es_rapidfuzz),
          `${row.lines_accepted}/${row.lines_suggested}`, `${row.chars_accepted}/${row.chars_suggested}`,
        ].map((value) => el("td", { class: "num" }, value instanceof Node ? value : String(value))),
      );
    })),
  );
}

// Horizontal bars of acceptance and ES per group, each with its 95% interval as a whisker.
function barChart(title, runId, grouping, rows) {
  const series = [
    ["acceptance", "acceptance", (row) => row.acceptance_rate, (row) => row.intervals.acceptance_rate],
    ["es", "ES", (row) => row.metrics.es_rapidfuzz, (row) => row.intervals.es_rapidfuzz],
  ];
  const left = 120, scale = 300, barHeight = 9, gap = 8, top = 22;
  const rowHeight = series.length * (barHeight + 2) + gap;
  const width = left + scale + 150, height = top + rows.length * rowHeight + 18;
  const x = (value) => left + value * scale;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, class: "bars", role: "img",
    "data-chart": title, "aria-label": `${title}: acceptance and ES with 95% intervals` });
  chart.append(svg("text", { x: 0, y: 12, class: "title" }, title));
  for (const tick of [0, 0.5, 1]) {
    chart.append(svg("line", { x1: x(tick), x2: x(tick), y1: top - 4, y2: height - 16, class: "grid" }),
      svg("text", { x: x(tick), y: height - 4, class: "axis", "text-anchor": "middle" }, percent(tick)));
  }
  series.forEach(([name, label], s) => chart.append(
    svg("rect", { x: left + 130 + s * 80, y: 4, width: 12, height: 8, class: `series-${name}` }),
    svg("text", { x: left + 146 + s * 80, y: 12, class: "legend" }, label)));
  rows.forEach((row, r) => {
    const y0 = top + r * rowHeight;
    const link = svg("a", { href: `#/runs/${runId}/suggestions?${grouping}=${encodeURIComponent(row.key)}` },
      svg("text", { x: left - 8, y: y0 + barHeight + 4, class: "label", "text-anchor": "end" }, row.key));
    chart.append(link);
    series.forEach(([name, label, value, interval], s) => {
      const v = value(row), ci = interval(row), y = y0 + s * (barHeight + 2);
      if (v === null || v === undefined) return;
      const bar = svg("rect", { x: left, y, width: Math.max(v * scale, 1), height: barHeight, class: `bar series-${name}` },
        svg("title", {}, `${row.key}: ${label} ${percent(v)}, 95% ${range(ci)}`));
      chart.append(bar);
      if (ci) {
        const mid = y + barHeight / 2;
        chart.append(svg("g", { class: "whisker" },
          svg("line", { x1: x(ci.low), x2: x(ci.high), y1: mid, y2: mid }),
          svg("line", { x1: x(ci.low), x2: x(ci.low), y1: y, y2: y + barHeight }),
          svg("line", { x1: x(ci.high), x2: x(ci.high), y1: y, y2: y + barHeight })));
      }
      chart.append(svg("text", { x: x(1) + 8, y: y + barHeight - 1, class: "value" },
        `${percent(v)}${ci ? ` [${Math.round(ci.low * 100)}–${Math.round(ci.high * 100)}] n=${ci.n}` : ""}`));
    });
  });
  return chart;
}

// Acceptance rate and ES of each finished run, on a 0-100% scale, each with its 95% interval;
// the selected run is marked, and so are the runs flagged as regressions.
function trendChart(points, runId) {
  const width = 640, height = 230, left = 44, right = 16, top = 24, bottom = 34;
  const x = (i) => left + (points.length === 1 ? (width - left - right) / 2
    : (i * (width - left - right)) / (points.length - 1));
  const y = (value) => top + (1 - value) * (height - top - bottom);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "trend", role: "img",
    "aria-label": "acceptance rate and ES per run, with 95% intervals" });
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
    if (point.regressed_run_ids.length) {
      chart.append(svg("path", { class: "regression-marker", d: `M${x(i) - 6},${top - 14} h12 l-6,10 z` },
        svg("title", {}, `regression: run #${point.regressed_run_ids.join(", #")} fell significantly`)));
    }
  });
  const series = [
    ["acceptance", "acceptance rate", (point) => point.acceptance_rate, "acceptance_rate"],
    ["es", "ES (es_rapidfuzz)", (point) => point.metrics.es_rapidfuzz, "es_rapidfuzz"],
  ];
  series.forEach(([name, label, value, key], s) => {
    const offset = (s - 0.5) * 6;  // the two series' whiskers side by side
    const shown = points.map((point, i) => [i, value(point)]).filter(([, v]) => v !== null && v !== undefined);
    chart.append(svg("polyline", { class: `series-${name}`, fill: "none",
      points: shown.map(([i, v]) => `${x(i) + offset},${y(v)}`).join(" ") }));
    for (const [i, v] of shown) {
      const ci = points[i].intervals[key];
      if (ci) {
        chart.append(svg("line", { class: `whisker series-${name}`, x1: x(i) + offset, x2: x(i) + offset,
          y1: y(ci.low), y2: y(ci.high) }));
      }
      chart.append(svg("circle", { class: `series-${name}`, cx: x(i) + offset, cy: y(v), r: 4 },
        svg("title", {}, `run #${points[i].run_ids.join("+")}: ${label} ${percent(v)}, 95% ${range(ci)}`)));
    }
    chart.append(svg("rect", { x: left + 10 + s * 150, y: 2, width: 12, height: 4, class: `series-${name}` }),
      svg("text", { x: left + 27 + s * 150, y: 8, class: "legend" }, label));
  });
  chart.append(svg("path", { class: "regression-marker", d: `M${left + 320},1 h10 l-5,8 z` }),
    svg("text", { x: left + 336, y: 8, class: "legend" }, "regression"));
  return chart;
}

async function showRun(section, runId) {
  const report = await getJSON(`/api/runs/${runId}`);
  const run = report.run;
  const trend = await getJSON(`/api/repositories/${run.repository_id}/trend?by=run`);
  const skipped = Object.entries(report.skipped).map(([reason, count]) => `${reason} ${count}`).join(", ");
  const against = report.baseline_run_id ? `a=${report.baseline_run_id}&b=${run.id}` : `b=${run.id}`;
  section.replaceChildren(
    el("h2", {}, `Run #${run.id}: ${run.name} `, el("span", { class: `badge ${run.status}` }, run.status)),
    el("p", { class: "facts" },
      `${run.origin} ${run.ref || ""} ${(run.commit || "").slice(0, 12)} · profile ${run.profile} · ` +
      `${report.files} files (skipped: ${skipped || "none"})` + (run.error ? ` · ${run.error}` : "") + " · ",
      el("a", { href: `#/compare?${against}`, id: "compare-run" },
        report.baseline_run_id ? `compare with its baseline #${report.baseline_run_id}` : "compare with another run"),
      " · ", drill(run.id, {}, "all suggestions")),
    el("p", { class: "headline" },
      `Acceptance ${percent(run.acceptance_rate)} (95% ${range(run.acceptance_interval)}), ` +
      `ES ${number(report.totals.metrics.es_rapidfuzz)} (95% ${range(report.totals.intervals.es_rapidfuzz)}).`),
    el("div", { class: "charts" },
      barChart("by language", run.id, "language", report.by_language),
      barChart("by span kind", run.id, "kind", report.by_kind),
      barChart("by file role", run.id, "role", report.by_role)),
    el("h3", {}, `Trend of ${trend.repository.name}`),
    trend.points.length ? trendChart(trend.points, run.id) : el("p", { class: "message" }, "No finished run yet."),
    el("p", { class: "message" }, "Whiskers: 95% intervals. ▼: a run flagged as a regression, a paired drop " +
      "against its baseline run whose whole interval lies beyond the threshold."),
    el("h3", {}, "Tables ", exportButtons(`/api/runs/${run.id}`, `run-${run.id}-report`)),
    el("p", { class: "message" }, "Click a group, a number of suggestions or of acceptances for those suggestions."),
    breakdownTable(run.id, "totals", null, [report.totals]),
    breakdownTable(run.id, "by language", "language", report.by_language),
    breakdownTable(run.id, "by span kind", "kind", report.by_kind),
    breakdownTable(run.id, "by file role", "role", report.by_role),
    el("h3", {}, "Definitions"),
    el("ul", { class: "definitions" },
      el("li", {}, `accepted when: ${JSON.stringify(report.acceptance_rule)}`),
      el("li", {}, "intervals: 95%, Wilson for rates, a seeded bootstrap over files for means; n beside each"),
      ...report.metrics.map((m) => el("li", {}, el("code", {}, `${m.name} v${m.version}`), ` ${m.definition}`))),
  );
}

// A line diff (longest common subsequence) of `before` and `after`: [sign, line] pairs, sign
// " " for a line in both, "-" for one only in before, "+" for one only in after.
function lineDiff(before, after) {
  const a = before.split("\n"), b = after.split("\n");
  const common = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      common[i][j] = a[i] === b[j] ? common[i + 1][j + 1] + 1 : Math.max(common[i + 1][j], common[i][j + 1]);
    }
  }
  const lines = [];
  let i = 0, j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) { lines.push([" ", a[i]]); i++; j++; }
    else if (j < b.length && (i === a.length || common[i][j + 1] >= common[i + 1][j])) lines.push(["+", b[j++]]);
    else lines.push(["-", a[i++]]);
  }
  return lines;
}

function diffView(before, after, caption) {
  const lines = after === null ? before.split("\n").map((line) => ["-", line]) : lineDiff(before, after);
  const kind = { " ": "same", "-": "del", "+": "add" };
  return el("figure", { class: "diff" },
    el("figcaption", {}, caption),
    el("pre", {}, ...lines.map(([sign, line]) => el("span", { class: kind[sign] }, `${sign} ${line}\n`))));
}

const SUGGESTION_FILTERS = ["language", "kind", "role", "accepted"];
const PAGE = 20;

async function showSuggestions(section, runId, params) {
  const filters = Object.fromEntries(SUGGESTION_FILTERS.filter((k) => params.get(k)).map((k) => [k, params.get(k)]));
  const offset = Number(params.get("offset") || 0);
  const query = new URLSearchParams({ ...filters, offset, limit: PAGE });
  const page = await getJSON(`/api/runs/${runId}/suggestions?${query}`);
  const described = Object.entries(filters).map(([k, v]) => `${k} ${v}`).join(", ") || "all points";
  const move = (to) => `#/runs/${runId}/suggestions?${new URLSearchParams({ ...filters, offset: to })}`;
  section.replaceChildren(
    el("h2", {}, el("a", { href: `#/runs/${runId}` }, `Run #${runId}`), `: suggestions (${described})`),
    el("p", { class: "facts", id: "suggestions-count" },
      `${page.total} points; ${page.items.length ? `${offset + 1}–${offset + page.items.length}` : "none"} shown · `,
      exportButtons(`/api/runs/${runId}/suggestions?${new URLSearchParams({ ...filters, limit: 500 })}`,
        `run-${runId}-suggestions`)),
    ...page.items.map((item) => el("article", { class: "suggestion", "data-point-id": item.point_id },
      el("h4", {}, `${item.path}:${item.start_line}-${item.end_line} `,
        el("span", { class: "tag" }, `${item.language || "unknown"} · ${item.kind} · ${item.role}`), " ",
        el("span", { class: `badge ${item.accepted ? "done" : item.error ? "failed" : "partial"}` },
          item.error ? "failed" : item.accepted ? "accepted" : item.accepted === null ? "waiting" : "rejected")),
      el("p", { class: "scores" }, item.error ? item.error
        : Object.entries(item.scores).map(([name, value]) => `${HEADLINE[name] || name} ${number(value)}`).join(" · ") || "not scored"),
      diffView(item.original, item.suggestion, "original (−) against the suggestion (+)"))),
    el("p", { class: "pager" },
      offset > 0 ? el("a", { href: move(Math.max(0, offset - PAGE)) }, "← previous") : "",
      offset + PAGE < page.total ? el("a", { href: move(offset + PAGE), id: "next-page" }, "next →") : ""),
  );
}

function runPicker(id, chosen) {
  return el("select", { id, name: id },
    el("option", { value: "" }, "choose a run"),
    ...runsListed.map((run) => {
      const option = el("option", { value: run.id },
        `#${run.id} ${run.name} ${run.ref || ""} ${(run.commit || "").slice(0, 8)} (${run.status})`);
      option.selected = String(run.id) === chosen;
      return option;
    }));
}

function comparisonTable(found) {
  const names = found.groups[0].metrics.map((m) => m.metric);
  const label = (name) => (name === "acceptance_rate" ? "acceptance" : HEADLINE[name] || name);
  const head = ["group", "pairs", ...names.flatMap((name) => [`${label(name)} A → B`, `B − A (95%)`]), "only A / only B", "McNemar p"];
  const cell = (metric) => {
    if (!metric) return [el("td", {}, "–"), el("td", {}, "–")];
    const ci = metric.interval;
    const verdict = !ci ? "" : ci.low > 0 ? "better" : ci.high < 0 ? "worse" : "";
    return [
      el("td", { class: "num" }, `${percent(metric.a)} → ${percent(metric.b)}`),
      el("td", { class: `num ${verdict}` }, `${signed(metric.difference)} ` +
        (ci ? `[${signed(ci.low)}, ${signed(ci.high)}]` : "[one file]")),
    ];
  };
  return el("table", { class: "comparison", id: "comparison" },
    el("thead", {}, el("tr", {}, ...head.map((name, i) => el("th", { class: i > 1 ? "num" : "" }, name)))),
    el("tbody", {}, ...found.groups.map((group) => el("tr", { "data-group": `${group.grouping}:${group.key}` },
      el("td", {}, group.grouping === "all" ? "all" : `${group.grouping} ${group.key}`),
      el("td", { class: "num" }, String(group.pairs)),
      ...names.flatMap((name) => cell(group.metrics.find((m) => m.metric === name))),
      el("td", { class: "num" }, `${group.accepted_a_only} / ${group.accepted_b_only}`),
      el("td", { class: "num" }, group.mcnemar_p < 0.001 ? "<0.001" : group.mcnemar_p.toFixed(3))))));
}

// B − A of acceptance and ES per group: a dot at the difference, a whisker for its 95% interval,
// the zero line between; green when the whole interval is above zero, red when below.
function forestPlot(found) {
  const columns = [["acceptance_rate", "acceptance B − A"], ["es_rapidfuzz", "ES B − A"]];
  const label = 150, plot = 260, gap = 60, rowHeight = 16, top = 30;
  const width = label + columns.length * (plot + gap), height = top + found.groups.length * rowHeight + 20;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, class: "forest", role: "img",
    "aria-label": "paired differences B − A with 95% intervals, by group" });
  found.groups.forEach((group, r) => chart.append(svg("text", { x: label - 8, y: top + r * rowHeight + 12,
    class: "label plain", "text-anchor": "end" }, group.grouping === "all" ? "all" : `${group.grouping} ${group.key}`)));
  columns.forEach(([name, title], c) => {
    const left = label + c * (plot + gap);
    const x = (value) => left + ((value + 1) / 2) * plot;  // -1 .. +1
    chart.append(svg("text", { x: left + plot / 2, y: 12, class: "title", "text-anchor": "middle" }, title));
    for (const tick of [-1, -0.5, 0, 0.5, 1]) {
      chart.append(svg("line", { x1: x(tick), x2: x(tick), y1: top - 6, y2: height - 16, class: tick ? "grid" : "zero" }),
        svg("text", { x: x(tick), y: height - 4, class: "axis", "text-anchor": "middle" }, tick ? signed(tick).replace(".0", "") : "0"));
    }
    found.groups.forEach((group, r) => {
      const metric = group.metrics.find((m) => m.metric === name);
      if (!metric) return;
      const y = top + r * rowHeight + 8, ci = metric.interval;
      const verdict = !ci ? "unsure" : ci.low > 0 ? "better" : ci.high < 0 ? "worse" : "unsure";
      const mark = svg("g", { class: `difference ${verdict}` });
      if (ci) mark.append(svg("line", { x1: x(ci.low), x2: x(ci.high), y1: y, y2: y }));
      mark.append(svg("circle", { cx: x(metric.difference), cy: y, r: 3.5 },
        svg("title", {}, `${group.key}: ${title} ${signed(metric.difference)} points, 95% ` +
          (ci ? `${signed(ci.low)} to ${signed(ci.high)}` : "none (one file)") + `, ${metric.n} pairs`)));
      chart.append(mark);
    });
  });
  return chart;
}

async function showCompare(section, params) {
  const [a, b] = [params.get("a") || "", params.get("b") || ""];
  const form = el("form", { id: "compare-form", class: "pickers" },
    el("label", {}, "A (before) ", runPicker("run-a", a)), " ",
    el("label", {}, "B (after) ", runPicker("run-b", b)), " ",
    el("button", { type: "submit" }, "Compare"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams({ a: form.elements["run-a"].value, b: form.elements["run-b"].value });
    location.hash = `#/compare?${chosen}`;
  });
  const parts = [el("h2", {}, "Compare two runs"), form];
  if (!a || !b) {
    section.replaceChildren(...parts, el("p", { class: "message" }, "Choose two runs of one commit: B is compared with A on the points both answered."));
    return;
  }
  const url = `/api/compare?${new URLSearchParams({ a, b })}`;
  let found;
  try {
    found = await getJSON(url);
  } catch (error) {
    if (error instanceof Unauthorized) throw error;
    section.replaceChildren(...parts, el("p", { class: "message refusal", id: "compare-refusal" }, error.message));
    return;
  }
  const overall = found.groups[0];
  section.replaceChildren(
    ...parts,
    el("p", { class: "facts", id: "compare-summary" },
      `Run #${found.b.id} against run #${found.a.id} (commit ${(found.a.commit || "").slice(0, 12)}): ` +
      `${found.pairs} points paired; A left out ${found.left_out_a}, B left out ${found.left_out_b}. ` +
      `Accepted by A only ${overall.accepted_a_only}, by B only ${overall.accepted_b_only} ` +
      `(McNemar exact p = ${overall.mcnemar_p.toPrecision(2)}).`),
    el("h3", {}, "Differences ", exportButtons(url, `compare-${a}-${b}`)),
    el("p", { class: "message" }, "B − A in points (of 100) with its 95% bootstrap interval over files; green: B better beyond doubt, red: worse."),
    forestPlot(found),
    comparisonTable(found),
    el("h3", {}, `Where they disagree most (${found.disagreement_metric})`),
    ...found.disagreements.map((d, i) => el("article", { class: "disagreement", "data-rank": i + 1 },
      el("h4", {}, `${d.path}:${d.start_line}-${d.end_line} `,
        el("span", { class: "scores" }, `A ${number(d.score_a)} · B ${number(d.score_b)}`)),
      el("div", { class: "side-by-side" },
        diffView(d.reference, d.text_a, `original (−) against A (+)`),
        diffView(d.reference, d.text_b, `original (−) against B (+)`)))),
  );
}

async function render() {
  const section = document.getElementById("view");
  try {
    await showRuns();
    const { view, runId, params } = route();
    if (view === "run") await showRun(section, runId);
    else if (view === "suggestions") await showSuggestions(section, runId, params);
    else if (view === "compare") await showCompare(section, params);
    section.hidden = view === "runs";
    document.getElementById("latest").hidden = view === "suggestions" || view === "compare";
    if (view === "runs") section.replaceChildren();
    document.body.dataset.view = view;
    document.body.dataset.rendered = location.hash;
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
