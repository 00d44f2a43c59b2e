// The admin dashboard's charts (Chart.js), from the JSON the view embeds.
"use strict";
const data = JSON.parse(document.getElementById("dashboard-data").textContent);
const style = getComputedStyle(document.documentElement);
Chart.defaults.color = style.getPropertyValue("--body-fg").trim() || "#333";
Chart.defaults.borderColor = style.getPropertyValue("--hairline-color").trim() || "#ddd";
Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
const PALETTE = ["#1a5fb4", "#c64600", "#26a269", "#9141ac", "#e5a50a", "#d01b5b", "#2ec27e", "#613583"];
const labels = data.labels.map((iso) => {
  const d = new Date(iso);
  return data.bucket_minutes >= 120 ? d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })
    : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
});
const charts = {};

function draw(id, config) { charts[id] = new Chart(document.getElementById(id), config); }

function series(entries, type) {
  return entries.map(([label, values], i) => ({
    label, data: values, backgroundColor: PALETTE[i % PALETTE.length], borderColor: PALETTE[i % PALETTE.length],
    type, spanGaps: true, pointRadius: 2,
  }));
}

draw("chart-rpm", {
  type: "bar",
  data: { labels, datasets: series(Object.entries(data.requests_per_minute)) },
  options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, title: { display: true, text: "requests / min" } } } },
});
for (const [id, key, unit] of [["chart-ttft", "ttft_ms", "ms"], ["chart-tps", "decode_tps", "tok/s"]]) {
  const block = data[key];
  draw(id, {
    type: "bar",
    data: { labels: block.models.map((m, i) => `${m} (n=${block.samples[i]})`), datasets: series(Object.entries(block.series)) },
    options: { scales: { y: { beginAtZero: true, title: { display: true, text: unit } } } },
  });
}
draw("chart-cache", {
  type: "line",
  data: { labels, datasets: series([["hit rate", data.cache_hit_rate]], "line") },
  options: { scales: { y: { min: 0, max: 1, ticks: { callback: (v) => `${Math.round(v * 100)}%` } } } },
});
draw("chart-swaps", {
  type: "bar",
  data: { labels, datasets: series([["swaps", data.swaps]]) },
  options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
});
draw("chart-tools", {
  type: "bar",
  data: { labels, datasets: series([["parsed", data.tool_calls_parsed], ["parse failures", data.tool_call_failures]]) },
  options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
});
window.dashboardCharts = charts;
