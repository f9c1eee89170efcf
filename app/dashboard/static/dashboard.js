// Progressive enhancement only: every page works without it.
// A project chosen in the selector is shown at once (the "Show" button does the same).
document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
  select.addEventListener("change", () => select.form.requestSubmit());
});
