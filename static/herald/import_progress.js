// Live progress of a contact import: poll the job's progress URL, reload when its status changes.
(function () {
  const root = document.querySelector(".import-job");
  if (!root) return;
  const bar = document.getElementById("job-progress");
  const text = document.getElementById("job-progress-text");
  const startStatus = root.dataset.status;

  async function poll() {
    let job;
    try {
      const response = await fetch(root.dataset.progressUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.status);
      job = await response.json();
    } catch (error) {
      text.textContent = "Lost contact with the server; retrying…";
      return setTimeout(poll, 3000);
    }
    if (job.status !== startStatus) return window.location.reload();
    if (job.percent !== null) bar.value = job.percent;
    text.textContent = `${job.rows_done.toLocaleString()} rows · ${job.rows_per_second.toLocaleString()} rows/s · ` +
      `${job.invalid.toLocaleString()} rejected so far`;
    setTimeout(poll, 1000);
  }
  poll();
})();
