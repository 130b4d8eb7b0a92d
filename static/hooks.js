// Line numbers beside the hook editor's textarea (the page works without this script).
(function () {
  document.querySelectorAll("textarea[data-line-numbers]").forEach(function (ta) {
    var gutter = document.createElement("pre");
    gutter.className = "line-numbers";
    gutter.setAttribute("aria-hidden", "true");
    var wrap = document.createElement("div");
    wrap.className = "code-editor";
    ta.parentNode.insertBefore(wrap, ta);
    wrap.appendChild(gutter);
    wrap.appendChild(ta);
    function render() {
      var n = ta.value.split("\n").length, s = "";
      for (var i = 1; i <= n; i++) s += i + "\n";
      gutter.textContent = s;
      gutter.scrollTop = ta.scrollTop;
    }
    ta.addEventListener("input", render);
    ta.addEventListener("scroll", function () { gutter.scrollTop = ta.scrollTop; });
    render();
  });
})();
