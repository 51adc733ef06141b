(function () {
  "use strict";
  function setAll(open) {
    document.querySelectorAll("details").forEach(function (d) { d.open = open; });
  }
  document.getElementById("expand").addEventListener("click", function () { setAll(true); });
  document.getElementById("collapse").addEventListener("click", function () { setAll(false); });
  var root = document.documentElement;
  var themes = ["auto", "light", "dark"];
  document.getElementById("theme").addEventListener("click", function (event) {
    var next = themes[(themes.indexOf(root.dataset.theme || "auto") + 1) % themes.length];
    if (next === "auto") { delete root.dataset.theme; } else { root.dataset.theme = next; }
    event.target.textContent = "Theme: " + next;
  });
})();
