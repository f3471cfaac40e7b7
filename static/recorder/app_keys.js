// API keys page: copy the key shown once; confirm before revoking.
(function () {
  "use strict";
  if (document.getElementById("new-key")) {
    // This page answers the POST that created the key: turn its history entry into a
    // plain GET so a reload or Back neither resubmits (a second key) nor shows it again.
    window.history.replaceState(null, "", window.location.href);
  }
  var copy = document.getElementById("copy-key");
  if (copy) {
    copy.addEventListener("click", function () {
      var text = document.getElementById("new-key-value").textContent;
      navigator.clipboard.writeText(text).then(function () {
        copy.textContent = "Copied";
      });
    });
  }
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
})();
