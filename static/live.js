// A page waiting for a runner's answer (a Test, a save, a dry run, a live read of a cluster):
// ask for the request's state as JSON every half second; once answered, show the answer: a
// page that came from a form sends that form again, any other reloads. Without JavaScript the
// page offers a "Refresh" link or button.
(function () {
  "use strict";
  var box = document.getElementById("live-pending");
  if (!box) return;
  var id = box.getAttribute("data-request");
  var resubmit = box.getAttribute("data-resubmit");
  var refresh = document.getElementById("live-refresh");

  function answered() {
    var form = refresh && refresh.form;
    if (resubmit && form) {
      form.action = resubmit;
      form.submit();
    } else {
      window.location.reload();
    }
  }

  function poll() {
    fetch("/requests/" + encodeURIComponent(id) + "/state",
          { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (res) {
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.json();
      })
      .then(function (view) {
        if (view.request && view.request.answered) answered();
        else setTimeout(poll, 500);
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 300);
})();
