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
