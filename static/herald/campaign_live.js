// A campaign's open page, kept live: poll its progress JSON (with the page's parts) every
// few seconds; update the counts and bar in place, the delivery rate and cost as receipts
// arrive, and redraw the status, its actions and the history when the status changes, so
// the page never shows a status the campaign has left. Stops once the campaign is final.
(function () {
  "use strict";
  const status = document.getElementById("campaign-status");
  if (!status || !status.dataset.pageUrl) return;
  const every = 3000;
  const finalStatuses = ["completed", "cancelled"];
  const barParts = ["delivered", "sent", "failed", "skipped"];
  const news = document.getElementById("campaign-status-news");
  let shown = status.dataset.status;

  function setText(selector, text) {
    document.querySelectorAll(selector).forEach(function (cell) { cell.textContent = text; });
  }

  function showCounts(progress) {
    for (const [name, count] of Object.entries(progress.counts)) {
      setText(`[data-count="${name}"]`, String(count));
    }
    for (const name of ["status_label", "percent_done", "total"]) {
      setText(`[data-field="${name}"]`, String(progress[name]));
    }
    for (const name of barParts) {
      const share = progress.total ? (100 * (progress.counts[name] || 0)) / progress.total : 0;
      document.querySelectorAll(`[data-bar="${name}"]`).forEach(function (part) {
        part.style.width = `${share}%`;
      });
    }
    document.querySelectorAll(".live-progress .progress").forEach(function (bar) {
      bar.setAttribute("aria-label", `${progress.percent_done}% done`);
    });
  }

  // The parts are the server's own templates (every value escaped there); parsed into an
  // inert document, then moved in, so nothing in them runs (and the CSP allows no inline
  // script or handler anyway).
  function redraw(id, html) {
    const region = document.getElementById(id);
    if (!region || typeof html !== "string") return;
    const parsed = new DOMParser().parseFromString(html, "text/html");
    region.replaceChildren(...parsed.body.childNodes);
  }

  function show(progress) {
    showCounts(progress);
    redraw("campaign-outcome", progress.outcome_html);
    // The status, its actions and the history change only with the status: redrawn then,
    // so a reason being typed into an action's form is not wiped by every poll.
    if (progress.status === shown) return;
    redraw("campaign-status", progress.status_html);
    redraw("campaign-history", progress.history_html);
    redraw("campaign-chart", progress.chart_html);
    if (news) news.textContent = `The campaign is now ${progress.status_label.toLowerCase()}.`;
    shown = progress.status;
    status.dataset.status = shown;
  }

  async function poll() {
    try {
      const url = `${status.dataset.pageUrl}&shown=${encodeURIComponent(shown)}`;
      const response = await fetch(url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error(String(response.status));
      const progress = await response.json();
      show(progress);
      if (finalStatuses.includes(progress.status)) return;
      setTimeout(poll, every);
    } catch (error) {
      setTimeout(poll, every * 3);  // the server may be restarting: try again, less often
    }
  }
  if (!finalStatuses.includes(shown)) setTimeout(poll, every);
})();
