// A "Copy" button (data-copy="<id of a text input>") puts that input's text on the clipboard.
// Hidden until this script runs, so a page without it never shows a button that does
// nothing; the text stays selectable either way. A script file: the CSP refuses inline ones.
(function () {
  "use strict";
  function say(text) {
    const status = document.getElementById("copy-status");
    if (status) status.textContent = text;
  }
  function copy(input) {
    input.focus();
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(input.value);
    }
    // Plain http (other than localhost) has no Clipboard API: the older command still works.
    return document.execCommand("copy") ? Promise.resolve() : Promise.reject(new Error("refused"));
  }
  function bind() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      const input = document.getElementById(button.dataset.copy);
      if (!input) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        copy(input).then(
          function () { say("Copied. Paste it where your program keeps its secrets."); },
          function () { say("Could not copy: select the text and copy it yourself."); }
        );
      });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", bind);
  else bind();
})();
