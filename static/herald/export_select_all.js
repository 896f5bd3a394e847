// The admin export page's "Select all": ticks or clears every field of the export.
// django-import-export wires it with an inline onchange, which the CSP refuses.
(function () {
  "use strict";
  function bind() {
    document.querySelectorAll("input.select-toggle").forEach(function (toggle) {
      toggle.addEventListener("change", function () {
        document
          .querySelectorAll('.selectable-field-export-row input[type="checkbox"]')
          .forEach(function (box) { box.checked = toggle.checked; });
      });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", bind);
  else bind();
})();
