// "Copy" beside a read-only link: the input stays selectable by keyboard
// when the clipboard is not available (plain http, old browsers).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const input = document.querySelector(button.dataset.copy);
  if (!input) return;
  // An <input> (links, tokens) or a <pre> (commands).
  const text = "value" in input ? input.value : input.textContent;
  if (input.select) {
    input.select();
  } else {
    window.getSelection().selectAllChildren(input);
  }
  const done = () => { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => input.focus());
  } else if (input.focus) {
    input.focus();
  }
});
