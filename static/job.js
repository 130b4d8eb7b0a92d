// The job page follows its job: while it is queued or running, ask for the job's row as JSON
// every second (/jobs/ID/progress, not the page's results and log) and update the state, bar
// and counters in place; at the end, reload once so that the results and the log are complete.
// Without JavaScript the page offers a "Refresh" link.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box || box.getAttribute("data-active") !== "true") return;
  var url = "/jobs/" + encodeURIComponent(box.getAttribute("data-id")) + "/progress";
  var refresh = document.getElementById("job-refresh");
  if (refresh) refresh.parentNode.hidden = true;

  function set(id, text) {
    var el = document.getElementById(id);
    if (el && el.textContent !== String(text)) el.textContent = text;
  }

  function show(job) {
    var state = document.getElementById("job-state");
    state.textContent = job.state;
    state.className = "job-state job-" + job.state;
    set("job-phase", job.phase || "");
    var queue = "";
    if (job.state === "queued")
      queue = job.queue_ahead ? job.queue_ahead + " jobs ahead of it on this cluster" : "next to start on this cluster";
    set("job-queue", queue);
    var bar = document.getElementById("job-progress");
    bar.value = job.percent;
    bar.textContent = job.percent + "%";
    set("job-percent", job.percent + "%");
    set("job-items-done", job.items_done);
    set("job-items-total", job.items_total);
    set("job-items-failed", job.items_failed);
    set("job-bytes-done", job.bytes_done_text);
    set("job-bytes-total", job.bytes_total_text);
    set("job-started", job.started_at || "");
    set("job-finished", job.finished_at || "");
    set("job-duration", job.duration || "");
  }

  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (res) {
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.json();
      })
      .then(function (view) {
        show(view.job);
        if (view.job.active) setTimeout(poll, 1000);
        else window.location.reload();
      })
      .catch(function () {
        if (refresh) refresh.parentNode.hidden = false;
        setTimeout(poll, 5000);
      });
  }
  setTimeout(poll, 1000);
})();
