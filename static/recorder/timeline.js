// Timeline page: event detail pane, severity histogram, live tail. No framework, no build.
(function () {
  "use strict";
  const root = document.getElementById("timeline");
  if (!root) return;
  const ds = root.dataset;
  const tbody = document.getElementById("events");
  const detail = document.getElementById("detail");
  const SEVERITIES = ["debug", "info", "warn", "error", "fatal"];
  const COLORS = { debug: "#9aa3b5", info: "#2458d6", warn: "#d69e2e", error: "#c53030", fatal: "#7b1fa2" };

  const el = window.flightrec.el;

  function withQuery(url, extra) {
    const q = [ds.apiQuery, extra].filter(Boolean).join("&");
    return q ? url + (url.includes("?") ? "&" : "?") + q : url;
  }

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!r.ok) throw new Error(url + " → " + r.status);
    return r.json();
  }

  // --- rows -------------------------------------------------------------------------
  const pad = (n, w) => String(n).padStart(w || 2, "0");

  function relative(tsUs) {
    let us = tsUs - Number(ds.startedUs);
    const sign = us < 0 ? "-" : "+";
    us = Math.abs(us);
    const ms = Math.floor(us / 1000);
    const h = Math.floor(ms / 3600000), m = Math.floor(ms / 60000) % 60;
    const s = Math.floor(ms / 1000) % 60;
    return `${sign}${h}:${pad(m)}:${pad(s)}.${pad(ms % 1000, 3)}`;
  }

  function microsOf(iso) {
    // Date keeps milliseconds only; the sub-millisecond digits come from the string.
    const m = /\.(\d+)/.exec(iso);
    const frac = m ? (m[1] + "000000").slice(0, 6) : "000000";
    return Math.floor(Date.parse(iso) / 1000) * 1000000 + Number(frac);
  }

  function rowFor(ev) {
    const ts = microsOf(ev.ts);
    const d = new Date(ev.ts);
    const clock = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}`;
    let summary = ev.message;
    if (!summary) {
      const src = ev.payload != null ? ev.payload : ev.state;
      summary = src != null ? JSON.stringify(src) : "";
    }
    const tr = el("tr", { "data-event-id": ev.id, "data-ts": ts, "data-seq": ev.seq,
                          class: "sev-" + ev.severity + " fresh", tabindex: "0" },
      el("td", { class: "mono", title: ev.ts, text: clock }),
      el("td", { class: "mono muted", text: relative(ts) }),
      el("td", { text: ev.type }),
      el("td", {}, el("span", { class: "sev sev-" + ev.severity, text: ev.severity })),
      el("td", { text: ev.source || "" }),
      el("td", { class: "mono", text: ev.key || "" }),
      el("td", { class: "msg", text: summary.slice(0, 300) }));
    return tr;
  }

  // --- detail pane --------------------------------------------------------------------
  function copyButton(label, text) {
    const b = el("button", { type: "button", class: "copy", text: label });
    b.addEventListener("click", () => {
      navigator.clipboard && navigator.clipboard.writeText(text).then(
        () => { b.textContent = "Copied"; setTimeout(() => (b.textContent = label), 1200); },
        () => {});
    });
    return b;
  }

  function pageUrl(params) {
    const q = new URLSearchParams(params).toString();
    return ds.baseUrl + (q ? "?" + q : "");
  }

  async function showDetail(id) {
    for (const tr of tbody.querySelectorAll("tr.selected")) tr.classList.remove("selected");
    const row = tbody.querySelector(`tr[data-event-id="${id}"]`);
    if (row) row.classList.add("selected");
    detail.replaceChildren(el("p", { class: "empty", text: "Loading…" }));
    let ev;
    try {
      ev = await getJSON(ds.eventUrlTemplate.replace(/0$/, String(id)));
    } catch (e) {
      detail.replaceChildren(el("p", { class: "error", text: "Could not load the event: " + e.message }));
      return;
    }
    const fields = el("dl", { class: "fields" });
    for (const name of ["id", "uid", "seq", "ts", "received_at", "type", "severity", "source", "key", "correlation_id", "actor"]) {
      if (ev[name] === null || ev[name] === undefined || ev[name] === "") continue;
      fields.append(el("dt", { text: name }), el("dd", { class: "mono", text: String(ev[name]) }));
    }
    const links = el("p", { class: "links" });
    const here = location.origin + pageUrl({ at: ev.id });
    links.append(el("a", { href: pageUrl({ at: ev.id }), id: "detail-permalink", text: "Link to this event" }), " ",
                 copyButton("Copy link", here), " ", copyButton("Copy id", ev.uid));
    if (ev.correlation_id) {
      links.append(el("br"),
        el("a", { href: pageUrl({ filter: "correlation:" + ev.correlation_id }), id: "detail-correlation-session",
                  text: "Same correlation in this session" }), " · ",
        el("a", { href: ds.correlationUrlTemplate.replace("CID", encodeURIComponent(ev.correlation_id)),
                  id: "detail-correlation", text: "Correlation chain across sessions" }));
    }
    const parts = [el("h2", { text: `${ev.type} #${ev.seq}` }), links, fields];
    if (ev.message) parts.push(el("h3", { text: "Message" }), el("pre", { class: "message", text: ev.message }));
    for (const name of ["payload", "state"]) {
      if (ev[name] == null) continue;
      const text = JSON.stringify(ev[name], null, 2);
      parts.push(el("h3", { text: name + " " }, copyButton("Copy", text)),
                 el("pre", { class: "json", id: "detail-" + name, text }));
    }
    if (ev.redacted && ev.redacted.length) {
      parts.push(el("p", { class: "muted", text: "Redacted: " + ev.redacted.join(", ") }));
    }
    detail.replaceChildren(...parts);
    document.dispatchEvent(new CustomEvent("timeline:select", { detail: { id: ev.id, event: ev } }));
  }

  tbody.addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-event-id]");
    if (tr) showDetail(tr.dataset.eventId);
  });
  tbody.addEventListener("keydown", (e) => {
    const tr = e.target.closest("tr[data-event-id]");
    if (!tr) return;
    if (e.key === "Enter") showDetail(tr.dataset.eventId);
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      const next = e.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
      if (next && next.dataset.eventId) { next.focus(); e.preventDefault(); }
    }
  });

  if (ds.at) {
    const row = tbody.querySelector(`tr[data-event-id="${ds.at}"]`);
    if (row) row.scrollIntoView({ block: "center" });
    showDetail(ds.at);
  }

  // --- histogram ----------------------------------------------------------------------
  const SVGNS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  async function drawHistogram() {
    const box = document.getElementById("histogram");
    let data;
    try {
      data = await getJSON(withQuery(ds.histogramUrl, "buckets=80"));
    } catch (e) {
      box.textContent = "";
      return;
    }
    const buckets = data.buckets;
    const totals = buckets.map((b) => SEVERITIES.reduce((n, s) => n + (b.counts[s] || 0), 0));
    const max = Math.max(1, ...totals);
    const W = 800, H = 70, bw = W / buckets.length;
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H + 14}`, preserveAspectRatio: "none", role: "img" });
    buckets.forEach((b, i) => {
      let y = H;
      const g = svg("g", { class: "bar", "data-start": b.start, "data-end": buckets[i + 1] ? buckets[i + 1].start : data.end });
      const hit = svg("rect", { x: i * bw, y: 0, width: bw, height: H, fill: "transparent" });
      g.append(hit);
      for (const s of SEVERITIES) {
        const n = b.counts[s] || 0;
        if (!n) continue;
        const h = Math.max(1, (n / max) * H);
        y -= h;
        g.append(svg("rect", { x: i * bw + 0.5, y, width: Math.max(1, bw - 1), height: h, fill: COLORS[s] }));
      }
      const title = svg("title", {});
      title.textContent = `${b.start}: ${totals[i]} events` +
        SEVERITIES.filter((s) => b.counts[s]).map((s) => `, ${b.counts[s]} ${s}`).join("");
      g.append(title);
      g.addEventListener("click", () => narrowTo(g.dataset.start, g.dataset.end));
      chart.append(g);
    });
    const label = (x, text, anchor) => {
      const t = svg("text", { x, y: H + 12, "font-size": 10, "text-anchor": anchor, fill: "#6b7385" });
      t.textContent = text;
      chart.append(t);
    };
    label(0, data.start.replace("T", " ").slice(0, 19), "start");
    label(W, data.end.replace("T", " ").slice(0, 19), "end");
    box.replaceChildren(chart);
  }

  function narrowTo(start, end) {
    // Replace any time range in the bar with the bucket's, keep everything else.
    const input = document.getElementById("filter");
    const rest = input.value.split(/\s+/).filter((t) => t && !/^(since|until):/.test(t));
    rest.push("since:" + start, "until:" + end);
    location.href = pageUrl({ filter: rest.join(" ") });
  }

  drawHistogram();

  // --- live tail ----------------------------------------------------------------------
  // New events are appended below; rows above never move, so the view does not jump
  // while someone reads. If they are not at the bottom, a counter offers to scroll.
  let cursor = ds.lastCursor;
  let unseen = 0;
  const pill = document.getElementById("new-events");
  const atBottom = () => window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;

  pill.querySelector("button").addEventListener("click", () => {
    unseen = 0;
    pill.hidden = true;
    window.scrollTo({ top: document.body.scrollHeight });
  });
  window.addEventListener("scroll", () => {
    if (unseen && atBottom()) { unseen = 0; pill.hidden = true; }
  });

  async function poll() {
    try {
      const data = await getJSON(withQuery(ds.eventsUrl, "limit=200" + (cursor ? "&after=" + encodeURIComponent(cursor) : "")));
      if (data.items.length) {
        const follow = atBottom();
        const empty = tbody.querySelector("tr.empty-row");
        if (empty) empty.remove();
        for (const ev of data.items) {
          if (!tbody.querySelector(`tr[data-event-id="${ev.id}"]`)) tbody.append(rowFor(ev));
        }
        cursor = data.next_cursor || data.last_cursor || cursor;
        if (follow) {
          window.scrollTo({ top: document.body.scrollHeight });
        } else {
          unseen += data.items.length;
          pill.querySelector("button").textContent = `${unseen} new event${unseen === 1 ? "" : "s"} ↓`;
          pill.hidden = false;
        }
      }
      if (data.next_cursor) return setTimeout(poll, 50); // more waiting: catch up now
    } catch (e) {
      // Server restarting or network blip: keep trying at the normal pace.
    }
    setTimeout(poll, document.hidden ? 10000 : 2000);
  }

  if (ds.live === "1") {
    document.getElementById("live-state").hidden = false;
    setTimeout(poll, 2000);
  }
})();
