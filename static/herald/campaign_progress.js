// Live counts of a campaign's messages: poll its progress URL every few seconds and
// reload the page when the campaign's status changes (new buttons, final figures),
// unless someone is typing into the form, whose edits a reload would throw away.
(function () {
  const panel = document.getElementById("live-counts");
  if (!panel) return;
  const statusText = document.getElementById("live-status");
  const note = document.getElementById("live-note");
  const startStatus = panel.dataset.status;
  const every = 2000;
  let edited = false;
  const form = document.querySelector("#content-main form");
  if (form) form.addEventListener("input", () => { edited = true; });

  function show(progress) {
    for (const [status, count] of Object.entries(progress.counts)) {
      const cell = document.getElementById(`count-${status}`);
      if (cell) cell.textContent = count.toLocaleString();
    }
    document.getElementById("count-total").textContent = progress.total.toLocaleString();
    statusText.textContent = progress.status_label;
  }

  async function poll() {
    let progress;
    try {
      const response = await fetch(panel.dataset.progressUrl, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error(response.status);
      progress = await response.json();
    } catch (error) {
      note.textContent = "Lost contact with the server; retrying…";
      return setTimeout(poll, every * 2);
    }
    show(progress);
    if (progress.status !== startStatus) {
      if (!edited) return window.location.reload();
      note.textContent = `The campaign is now ${progress.status_label.toLowerCase()}: save or reload to see it.`;
      return;
    }
    note.textContent = "Updated every few seconds.";
    setTimeout(poll, every);
  }
  setTimeout(poll, every);
})();
