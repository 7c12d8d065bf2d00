// The dashboard's behaviour: confirmations, theme, revealing config, the live log, charts.
// No inline script (the Content-Security-Policy forbids it): pages pass URLs in data-* attributes.
(function () {
  "use strict";
  const root = document.documentElement;
  const saved = localStorage.getItem("dockyard-theme");
  if (saved) root.dataset.theme = saved;

  document.addEventListener("DOMContentLoaded", function () {
    const toggle = document.getElementById("theme-toggle");
    if (toggle) toggle.addEventListener("click", function () {
      const dark = root.dataset.theme ? root.dataset.theme === "dark"
        : window.matchMedia("(prefers-color-scheme: dark)").matches;
      root.dataset.theme = dark ? "light" : "dark";
      localStorage.setItem("dockyard-theme", root.dataset.theme);
      drawCharts();
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (e) { if (!window.confirm(f.dataset.confirm)) e.preventDefault(); });
    });
    setupConfig();
    setupLogs();
    const since = document.getElementById("since");
    if (since) since.addEventListener("change", drawCharts);
    drawCharts();
    const anchor = document.body.querySelector("[data-anchor]");
    if (anchor) location.hash = anchor.dataset.anchor;
  });

  function setupConfig() {
    const section = document.getElementById("config");
    const button = document.getElementById("reveal");
    if (!section || !button) return;
    button.addEventListener("click", function () {
      fetch(section.dataset.configUrl, {credentials: "same-origin"}).then(r => r.json()).then(function (values) {
        section.querySelectorAll("tr[data-key]").forEach(function (tr) {
          tr.querySelector(".value").textContent = values[tr.dataset.key] ?? "";
        });
        button.disabled = true;
      });
    });
  }

  let source = null;
  function setupLogs() {
    const section = document.getElementById("logs");
    if (!section) return;
    const out = document.getElementById("log-lines");
    const ps = document.getElementById("log-ps");
    const follow = document.getElementById("log-follow");
    function open() {
      if (source) source.close();
      out.textContent = "";
      const url = section.dataset.streamUrl + (ps.value ? "?ps=" + encodeURIComponent(ps.value) : "");
      source = new EventSource(url);
      source.onmessage = function (e) {
        const l = JSON.parse(e.data);
        const line = document.createElement("div");
        line.className = "line " + l.source;
        line.textContent = l.at.slice(0, 19).replace("T", " ") + " " + l.source + "[" + l.process + "]: " + l.message;
        out.appendChild(line);
        while (out.childNodes.length > 2000) out.removeChild(out.firstChild);
        if (follow.checked) out.scrollTop = out.scrollHeight;
      };
    }
    ps.addEventListener("change", open);
    open();
  }

  const charts = [];
  function css(name) { return getComputedStyle(root).getPropertyValue(name).trim(); }
  const PALETTE = ["#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

  function releaseMarkers(releases) {
    // uPlot plugin: a dashed vertical line and label at each release's time
    return {hooks: {draw: function (u) {
      const ctx = u.ctx;
      ctx.save();
      ctx.strokeStyle = css("--muted"); ctx.fillStyle = css("--muted");
      ctx.setLineDash([4, 4]); ctx.lineWidth = 1;
      ctx.font = (10 * devicePixelRatio) + "px sans-serif";
      releases.forEach(function (r) {
        const x = u.valToPos(Date.parse(r.created_at) / 1000, "x", true);
        if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
        ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
        ctx.fillText("v" + r.version, x + 3, u.bbox.top + 10 * devicePixelRatio);
      });
      ctx.restore();
    }}};
  }

  function pivot(rows, key, value) {
    // rows -> [xs, series per key] with null where a key has no value at an x
    const xs = Array.from(new Set(rows.map(r => r.at))).sort((a, b) => a - b);
    const keys = Array.from(new Set(rows.map(r => r[key]))).sort();
    const index = new Map(xs.map((x, i) => [x, i]));
    const data = [xs].concat(keys.map(() => xs.map(() => null)));
    rows.forEach(function (r) { data[keys.indexOf(r[key]) + 1][index.get(r.at)] = value(r); });
    return {data: data, keys: keys};
  }

  function perMinute(reqs, fields) {
    const byMinute = new Map();
    reqs.forEach(function (r) {
      const m = byMinute.get(r.minute) || {};
      fields.forEach(function (f) {
        if (f.startsWith("p")) m[f] = Math.max(m[f] || 0, r[f + "_ms"] || 0);
        else m[f] = (m[f] || 0) + r[f];
      });
      byMinute.set(r.minute, m);
    });
    const xs = Array.from(byMinute.keys()).sort((a, b) => a - b);
    return [xs].concat(fields.map(f => xs.map(x => byMinute.get(x)[f])));
  }

  function plot(id, names, data, releases, window_) {
    const el = document.getElementById(id);
    if (!el || !window.uPlot) return;
    el.innerHTML = "";
    const points = data[0].length;
    el.dataset.points = String(points);
    if (!points) { el.innerHTML = '<p class="muted">No data yet.</p>'; return; }
    const width = Math.max(260, el.clientWidth || 340);
    const opts = {width: width, height: 180, legend: {show: true},
      scales: {x: {time: true, range: function () { return window_; }}},
      axes: [{stroke: css("--muted"), grid: {stroke: css("--line")}}, {stroke: css("--muted"), grid: {stroke: css("--line")}}],
      series: [{}].concat(names.map((n, i) => ({label: n, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: true}))),
      plugins: [releaseMarkers(releases)]};
    charts.push(new uPlot(opts, data, el));
  }

  function drawCharts() {
    const section = document.getElementById("metrics");
    if (!section) return;
    const since = (document.getElementById("since") || {}).value || "1h";
    section.dataset.loaded = "0";
    fetch(section.dataset.metricsUrl + "?since=" + since, {credentials: "same-origin"}).then(r => r.json()).then(function (m) {
      charts.splice(0).forEach(c => c.destroy());
      // every chart spans the same range: the window, or from the first data in it (a young
      // app's few minutes are spread over the width, not squeezed into its right edge)
      const now = Date.now() / 1000;
      const first = m.samples.reduce((a, r) => Math.min(a, r.at),
                                     m.requests.reduce((a, r) => Math.min(a, r.minute), now - 120));
      const w = [Math.max(now - m.since_s, first - 10), now];
      const cpu = pivot(m.samples, "instance", r => r.cpu);
      plot("chart-cpu", cpu.keys, cpu.data, m.releases, w);
      const mem = pivot(m.samples, "instance", r => Math.round(r.mem / 104857.6) / 10);
      plot("chart-mem", mem.keys, mem.data, m.releases, w);
      plot("chart-req", ["requests"], perMinute(m.requests, ["requests"]), m.releases, w);
      plot("chart-lat", ["p50", "p95", "p99"], perMinute(m.requests, ["p50", "p95", "p99"]), m.releases, w);
      plot("chart-status", ["2xx", "3xx", "4xx", "5xx"], perMinute(m.requests, ["s2xx", "s3xx", "s4xx", "s5xx"]), m.releases, w);
      section.dataset.loaded = "1";
    });
  }
  setInterval(function () { if (document.visibilityState === "visible") drawCharts(); }, 30000);
})();
