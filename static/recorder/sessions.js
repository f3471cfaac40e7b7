// Sessions list: in the live view, re-fetch the rows fragment every few seconds.
(function () {
  "use strict";
  const table = document.getElementById("sessions");
  if (!table || table.dataset.live !== "1") return;
  const rows = document.getElementById("session-rows");
  async function refresh() {
    try {
      const q = table.dataset.query ? table.dataset.query + "&" : "";
      const r = await fetch("?" + q + "fragment=rows", { credentials: "same-origin" });
      if (r.ok) rows.innerHTML = await r.text(); // our own server-rendered, escaped HTML
    } catch (e) { /* try again next tick */ }
    setTimeout(refresh, document.hidden ? 15000 : 5000);
  }
  setTimeout(refresh, 5000);
})();
