// Presenter mode: step through the hops of the current trace with the
// keyboard; the flow diagram(s) and the chain view follow each hop.
//   → / Space / j     next hop          ← / Shift+Space / k   previous hop
//   Home / End        first / last hop  PageDown / n          next lesson step
//   PageUp / p        previous step     q                     reveal the answer
//   f                 full screen
(() => {
  "use strict";
  const body = document.body;
  const frames = Array.from(document.querySelectorAll(".pr-frames .frame"));
  const figures = Array.from(document.querySelectorAll(".pr-flow[data-flow]"));
  const pos = document.getElementById("pr-pos");
  let current = 0;

  function nodeIn(figure, id) {
    // Two diagrams share graphviz ids; look each one up inside its figure.
    return id ? figure.querySelector(`g[id="${CSS.escape(id)}"]`) : null;
  }

  function show(index) {
    if (!frames.length) return;
    current = Math.max(0, Math.min(frames.length - 1, index));
    frames.forEach((frame, i) => {
      const on = i === current;
      frame.hidden = !on;
      frame.classList.toggle("current", on);
    });
    const frame = frames[current];
    figures.forEach((figure) => {
      figure.querySelectorAll(".presenter-current").forEach((el) => el.classList.remove("presenter-current"));
      const id = frame.dataset["node" + figure.dataset.flow.charAt(0).toUpperCase() + figure.dataset.flow.slice(1)];
      const node = nodeIn(figure, id);
      figure.dataset.current = node ? id : "";
      if (node) node.classList.add("presenter-current");
    });
    if (pos) pos.textContent = String(current + 1);
    if (history.replaceState) history.replaceState(null, "", `#hop-${current + 1}`);
  }

  function reveal() {
    const button = document.getElementById("reveal");
    ["answer", "result"].forEach((id) => {
      const el = document.getElementById(id);
      if (el) el.hidden = false;
    });
    if (button) {
      button.setAttribute("aria-expanded", "true");
      button.hidden = true;
    }
  }

  function go(url) {
    if (url) window.location.assign(url);
  }

  function fullscreen() {
    if (document.fullscreenElement) {
      document.exitFullscreen().catch(() => {});
    } else if (document.documentElement.requestFullscreen) {
      document.documentElement.requestFullscreen().catch(() => {});
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const tag = (event.target && event.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    // Space on a focused button or link keeps its own meaning.
    if (event.key === " " && (tag === "BUTTON" || tag === "A" || tag === "SUMMARY")) return;
    let handled = true;
    switch (event.key) {
      case "ArrowRight": case "j": show(current + 1); break;
      case "ArrowLeft": case "k": show(current - 1); break;
      case " ": show(current + (event.shiftKey ? -1 : 1)); break;
      case "Home": show(0); break;
      case "End": show(frames.length - 1); break;
      case "PageDown": case "n": go(body.dataset.nextUrl); break;
      case "PageUp": case "p": go(body.dataset.prevUrl); break;
      case "q": reveal(); break;
      case "f": fullscreen(); break;
      default: handled = false;
    }
    if (handled) event.preventDefault();
  });

  const button = document.getElementById("reveal");
  if (button) button.addEventListener("click", reveal);

  const start = /^#hop-(\d+)$/.exec(window.location.hash);
  show(start ? Number(start[1]) - 1 : 0);
})();
