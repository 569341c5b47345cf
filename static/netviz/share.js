// "Copy" beside a read-only link: the input stays selectable by keyboard
// when the clipboard is not available (plain http, old browsers).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const input = document.querySelector(button.dataset.copy);
  if (!input) return;
  input.select();
  const done = () => { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(input.value).then(done, () => input.focus());
  } else {
    input.focus();
  }
});
