// Side by side, each flow diagram gets half the page and its labels shrink
// below reading size; this button stacks the two sides so each flow is drawn
// at full width (and back).  Delegated: the result is swapped in by htmx.
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest(".cmp-stack-toggle");
  if (!button) return;
  const sides = document.querySelector(".cmp-sides");
  if (!sides) return;
  const stacked = sides.classList.toggle("stacked");
  button.setAttribute("aria-pressed", stacked ? "true" : "false");
  button.textContent = stacked ? "Show the sides side by side" : "Enlarge the flow diagrams";
});
