// Wizards: the namespace filter narrows the list as you type (the server filters on "Filter"
// without JavaScript). Hidden rows keep their checkboxes, so a choice is never lost.
(function () {
  "use strict";
  var box = document.getElementById("ns-filter");
  var list = document.getElementById("ns-list");
  if (!box || !list) return;
  box.addEventListener("input", function () {
    var q = box.value.trim();
    var rows = list.querySelectorAll("li[data-name]");
    for (var i = 0; i < rows.length; i++)
      rows[i].hidden = q !== "" && rows[i].getAttribute("data-name").indexOf(q) < 0;
  });
  box.addEventListener("keydown", function (e) {
    if (e.key === "Enter") e.preventDefault();
  });
})();

// Step 1: the next runs of the chosen schedule, asked from the server as the user types.
(function () {
  "use strict";
  var out = document.getElementById("schedule-preview");
  if (!out || !window.fetch) return;
  var form = out.closest("form");
  var days = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
  var timer = null;

  function value(name) {
    var el = form.querySelector('[name="' + name + '"]:checked') || form.querySelector('select[name="' + name + '"], input[name="' + name + '"]:not([type="radio"])');
    return el ? el.value.trim() : "";
  }

  function preview() {
    var kind = value("schedule_kind");
    if (kind === "manual" || kind === "") { out.textContent = "Runs only when you press Backup."; return; }
    var q = new URLSearchParams({ kind: kind, cron: value("cron"), tz: value("time_zone") || "UTC",
                                  at: kind === "hourly" ? "0" : value("at_time"),
                                  weekday: String(Math.max(0, days.indexOf(value("weekday")))) });
    fetch("/schedule/preview?" + q, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (res) { return res.json(); })
      .then(function (view) {
        out.textContent = view.error ? view.error : "Next runs: " + (view.next_runs || []).join(" · ");
      })
      .catch(function () { out.textContent = ""; });
  }

  form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(preview, 300); });
  form.addEventListener("change", preview);
  preview();
})();
