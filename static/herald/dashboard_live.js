// Live counters on the dashboard: each [data-progress-url] block polls its campaign's
// progress JSON every few seconds and updates its numbers and bar in place. Polling
// stops once the campaign is final, since its counts can no longer change.
(function () {
  "use strict";
  const every = 4000;
  const finalStatuses = ["completed", "cancelled"];
  const barParts = ["delivered", "sent", "failed", "skipped"];

  function show(block, progress) {
    for (const [status, count] of Object.entries(progress.counts)) {
      const cell = block.querySelector(`[data-count="${status}"]`);
      if (cell) cell.textContent = String(count);
    }
    for (const name of ["status_label", "percent_done", "total"]) {
      const cell = block.querySelector(`[data-field="${name}"]`);
      if (cell) cell.textContent = String(progress[name]);
    }
    for (const status of barParts) {
      const part = block.querySelector(`[data-bar="${status}"]`);
      const share = progress.total ? (100 * (progress.counts[status] || 0)) / progress.total : 0;
      if (part) part.style.width = `${share}%`;
    }
    const bar = block.querySelector(".progress");
    if (bar) bar.setAttribute("aria-label", `${progress.percent_done}% done`);
  }

  function watch(block) {
    async function poll() {
      try {
        const response = await fetch(block.dataset.progressUrl, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
        if (!response.ok) throw new Error(String(response.status));
        const progress = await response.json();
        show(block, progress);
        if (finalStatuses.includes(progress.status)) return;
        setTimeout(poll, every);
      } catch (error) {
        setTimeout(poll, every * 3);  // the server may be restarting: try again, less often
      }
    }
    setTimeout(poll, every);
  }

  document.querySelectorAll("[data-progress-url]").forEach(watch);
})();
