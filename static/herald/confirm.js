// Forms with data-confirm ask before they submit (an inline onsubmit would be refused by
// the Content-Security-Policy, which allows scripts from static files only).
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    const question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
