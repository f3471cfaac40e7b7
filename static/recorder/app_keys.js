// API keys page: copy the key shown once; confirm before revoking.
(function () {
  "use strict";
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
