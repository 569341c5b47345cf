// Progressive enhancement only: the page works without this file.
// - mark the selected rule row when its detail opens;
// - clicking a lit table in the flow diagram scrolls to its first chain;
// - presenter hook: window.netvizShowHop(n) outlines hop n in the diagram.
(function () {
  "use strict";

  function hookOf(id) {
    var m = /^flow-([A-Z]+)-([a-z]+)$/.exec(id || "");
    return m ? { hook: m[1], table: m[2] } : null;
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a.rule-link");
    if (link) {
      document.querySelectorAll("tr.step-row.selected").forEach(function (tr) { tr.classList.remove("selected"); });
      var row = link.closest("tr");
      if (row) { row.classList.add("selected"); }
      return;
    }
    var node = event.target.closest && event.target.closest(".flow svg g.flow-node.lit");
    if (!node) { return; }
    var where = hookOf(node.id);
    if (!where) { return; }
    var runs = document.querySelectorAll(".chain-run");
    for (var i = 0; i < runs.length; i++) {
      var head = runs[i].querySelector(".table-name");
      var heading = runs[i].previousElementSibling;
      while (heading && !heading.classList.contains("hook-heading")) { heading = heading.previousElementSibling; }
      if (head && head.textContent.trim() === where.table && heading && heading.textContent.trim() === where.hook) {
        runs[i].scrollIntoView({ behavior: "smooth", block: "start" });
        return;
      }
    }
  });

  window.netvizShowHop = function (n) {
    document.querySelectorAll(".flow svg g.flow-node.presented").forEach(function (g) { g.classList.remove("presented"); });
    var g = document.querySelector(".flow svg g.hop-" + Number(n));
    if (g) { g.classList.add("presented"); }
    return Boolean(g);
  };

  // After htmx puts a rule's detail in the panel, move focus there so
  // keyboard and screen-reader users land on it.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.target && event.target.id === "rule-detail") {
      var detail = event.target.querySelector(".rule-detail");
      if (detail) { detail.focus({ preventScroll: true }); }
    }
  });

  // On a phone the form fills the screen: after tracing (an example link,
  // a permalink or Enter), bring the verdict into view, or the result looks
  // like nothing happened.  Deferred past the focus of the form's autofocus
  // field, which scrolls the form back into view.
  function revealVerdict(root) {
    if (window.innerWidth >= 700 || location.hash) { return; }
    var banner = root.querySelector(".verdict-banner");
    if (!banner) { return; }
    window.setTimeout(function () {
      if (banner.getBoundingClientRect().top > window.innerHeight * 0.6) {
        banner.scrollIntoView({ block: "start" });
      }
    }, 120);
  }
  document.addEventListener("htmx:load", function (event) {
    if (event.target && event.target.id === "trace-workspace") { revealVerdict(event.target); }
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { revealVerdict(document); });
  } else {
    revealVerdict(document);
  }
})();
