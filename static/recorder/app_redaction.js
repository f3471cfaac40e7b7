// Redaction page: as the rules or the sample change, ask the server what the sample
// would be stored as, and show per-field errors next to their fields.
(function () {
  "use strict";
  var form = document.getElementById("redaction-form");
  var sample = document.getElementById("sample");
  var out = document.getElementById("preview-event");
  var list = document.getElementById("preview-scrubbed");
  var timer = null;
  var latest = 0;

  function formData() {
    // Built by hand: a viewer's fieldset is disabled, and FormData skips disabled fields.
    var data = new FormData();
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name) return;
      if (el.type === "checkbox") {
        if (el.checked) data.append(el.name, "on");
      } else {
        data.append(el.name, el.value);
      }
    });
    data.append("sample", sample.value);
    return data;
  }

  function showErrors(errors) {
    document.querySelectorAll("[data-error-for]").forEach(function (p) {
      var messages = errors[p.dataset.errorFor];
      p.textContent = messages ? messages.join(" ") : "";
    });
  }

  function render(result) {
    out.textContent = JSON.stringify(result.event, null, 2);
    list.replaceChildren();
    result.scrubbed.forEach(function (path) {
      var li = document.createElement("li");
      li.textContent = path;
      list.appendChild(li);
    });
    if (!result.scrubbed.length) {
      var li = document.createElement("li");
      li.textContent = "nothing";
      list.appendChild(li);
    }
  }

  function refresh() {
    var ticket = ++latest;
    fetch(form.dataset.previewUrl, {
      method: "POST",
      body: formData(),
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" },
    })
      .then(function (response) {
        return response.json().then(function (body) {
          return { ok: response.ok, body: body };
        });
      })
      .then(function (answer) {
        if (ticket !== latest) return; // an older answer arriving late
        showErrors(answer.ok ? {} : answer.body.errors || {});
        if (answer.ok) {
          render(answer.body);
          out.classList.remove("stale");
        } else {
          out.classList.add("stale");
        }
      });
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }

  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
  sample.addEventListener("input", soon);
  refresh();
})();
