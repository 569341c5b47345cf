// After htmx swaps the step list (move up/down, save, delete), put the
// keyboard focus back on the control that was used, so a trainer can press
// Enter repeatedly to move a step several places.
document.addEventListener("htmx:afterSwap", (event) => {
  const list = document.getElementById("steps");
  if (!list || !list.dataset.focus) return;
  let target = document.getElementById(list.dataset.focus);
  if (target && target.disabled) {
    // Moved to the top/bottom: the pressed button is now disabled.
    const other = list.dataset.focus.replace(/^move-(up|down)-/, (m, d) => `move-${d === "up" ? "down" : "up"}-`);
    target = document.getElementById(other);
  }
  if (target) target.focus();
});
