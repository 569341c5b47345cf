// The call graph arrives after the page (hx-trigger="load") and pushes the
// rules down: a link to #rule-N or #chain-… would land above its target.
// Once the graph is in, bring the target back into view.
document.addEventListener("htmx:afterSettle", (event) => {
  const target = event.detail && event.detail.target;
  if (!target || target.id !== "callgraph" || !location.hash) return;
  const anchor = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (anchor) anchor.scrollIntoView({ block: "center" });
});
