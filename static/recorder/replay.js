// Replay player for the timeline page: play / pause / step / seek a session, with the
// snapshot pane (state tree, latest per key, counts) following the current event.
//
// Timing: every event has a "virtual" time (seconds since the first event, idle gaps
// shortened when skipping). While playing, event k is due at
//   baseWall + (virtual[k] - baseVirtual) * 1000 / speed
// on performance.now(). Each timer is set from that absolute target, never from the
// previous timer, so lateness does not add up over a long replay.
// Seeking loads the server's snapshot at the target (keyframes make that cheap) instead
// of replaying from the start.
(function () {
  "use strict";
  const root = document.getElementById("timeline");
  const slot = document.getElementById("replay-bar");
  const pane = document.getElementById("snapshot");
  const template = document.getElementById("replay-template");
  if (!root || !slot || !template) return;

  const api = `/api/v1/sessions/${root.dataset.sessionId}`;
  const SPEEDS = ["0.25", "0.5", "1", "2", "4", "8", "16", "32", "64", "max"];
  const STORE = "flightrec.replay";
  const BUCKETS = 240;

  slot.append(template.content.cloneNode(true));
  const bar = slot.querySelector(".replay");
  const $ = (role) => bar.querySelector(`[data-role="${role}"]`);
  const playButton = bar.querySelector('[data-action="play"]');
  const speedSelect = $("speed"), skipBox = $("skip"), thresholdInput = $("threshold");
  const positionLabel = $("position"), shareLink = $("share");
  const scrubber = $("scrubber"), density = $("density"), head = $("head");

  // --- preferences ------------------------------------------------------------------
  const prefs = { speed: "1", skip: true, threshold: 5 };
  try {
    Object.assign(prefs, JSON.parse(localStorage.getItem(STORE) || "{}"));
  } catch (e) { /* a broken entry just means defaults */ }
  if (!SPEEDS.includes(String(prefs.speed))) prefs.speed = "1";
  const savePrefs = () => localStorage.setItem(STORE, JSON.stringify(prefs));
  speedSelect.value = String(prefs.speed);
  skipBox.checked = !!prefs.skip;
  thresholdInput.value = String(prefs.threshold);

  // --- model --------------------------------------------------------------------------
  let events = []; // [id, ts µs, seq, severity]
  let virtual = []; // seconds since the first event, idle gaps shortened
  let idx = -1; // current event index, -1 before the first
  let playing = false, timer = null, baseWall = 0, baseVirtual = 0;

  const speedValue = () => (prefs.speed === "max" ? Infinity : Number(prefs.speed));

  function computeVirtual() {
    const limit = prefs.skip ? Math.max(0.1, Number(prefs.threshold) || 5) : Infinity;
    virtual = new Array(events.length);
    let v = 0;
    for (let k = 0; k < events.length; k++) {
      if (k > 0) v += Math.min((events[k][1] - events[k - 1][1]) / 1e6, limit);
      virtual[k] = v;
    }
  }

  function indexOfId(id) {
    id = Number(id);
    for (let k = 0; k < events.length; k++) if (events[k][0] === id) return k;
    return -1;
  }

  function indexAtTime(tsUs) {
    // The last event at or before the time (binary search; events are in order).
    let lo = 0, hi = events.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (events[mid][1] <= tsUs) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return found;
  }

  // --- clock --------------------------------------------------------------------------
  function rebase() {
    baseWall = performance.now();
    baseVirtual = idx >= 0 ? virtual[idx] : 0;
  }

  function schedule() {
    clearTimeout(timer);
    if (!playing) return;
    const next = idx + 1;
    if (next >= events.length) { pause(); return; }
    const speed = speedValue();
    if (speed === Infinity) { timer = setTimeout(() => { show(next); schedule(); }, 0); return; }
    const due = baseWall + ((virtual[next] - baseVirtual) * 1000) / speed;
    timer = setTimeout(tick, Math.max(0, due - performance.now()));
  }

  function tick() {
    const speed = speedValue();
    const now = performance.now();
    let k = idx + 1;
    // If the tab was throttled, jump to the latest due event rather than crawl.
    while (k + 1 < events.length && baseWall + ((virtual[k + 1] - baseVirtual) * 1000) / speed <= now) k++;
    show(k);
    schedule();
  }

  function play() {
    if (!events.length) return;
    if (idx >= events.length - 1) idx = -1; // at the end: play again from the start
    playing = true;
    playButton.textContent = "❚❚";
    playButton.setAttribute("aria-label", "Pause");
    bar.classList.add("playing");
    if (idx < 0) { show(0); }
    rebase();
    schedule();
  }

  function pause() {
    playing = false;
    clearTimeout(timer);
    playButton.textContent = "▶";
    playButton.setAttribute("aria-label", "Play");
    bar.classList.remove("playing");
    remember();
  }

  function seek(k) {
    if (!events.length) return;
    k = Math.max(0, Math.min(events.length - 1, k));
    show(k);
    if (playing) { rebase(); schedule(); } else remember();
  }

  function step(delta) {
    pause();
    seek((idx < 0 ? (delta > 0 ? -1 : 0) : idx) + delta);
  }

  function setSpeed(value) {
    if (playing && idx >= 0) {
      // Keep the virtual position reached so far, then go on at the new rate.
      const old = speedValue(), now = performance.now();
      let reached = old === Infinity ? virtual[idx] : baseVirtual + ((now - baseWall) * old) / 1000;
      const next = idx + 1 < events.length ? virtual[idx + 1] : virtual[idx];
      reached = Math.min(Math.max(reached, virtual[idx]), next);
      baseVirtual = reached;
      baseWall = now;
    }
    prefs.speed = value;
    speedSelect.value = value;
    savePrefs();
    if (playing) schedule();
  }

  // --- view ---------------------------------------------------------------------------
  function show(k) {
    idx = k;
    const [id, ts, seq] = events[k];
    for (const tr of document.querySelectorAll("#events tr.replay-current")) tr.classList.remove("replay-current");
    const row = document.querySelector(`#events tr[data-event-id="${id}"]`);
    if (row) {
      row.classList.add("replay-current");
      row.scrollIntoView({ block: "nearest" });
    }
    const elapsed = (ts - events[0][1]) / 1e6;
    positionLabel.textContent = `#${seq} · ${k + 1}/${events.length} · +${clock(elapsed)}`;
    positionLabel.dataset.eventId = String(id);
    bar.dataset.eventId = String(id);
    const span = events[events.length - 1][1] - events[0][1] || 1;
    head.style.left = `${((ts - events[0][1]) / span) * 100}%`;
    shareLink.href = linkTo(id);
    requestSnapshot(id);
  }

  function clock(seconds) {
    const s = Math.floor(seconds), ms = Math.floor((seconds - s) * 1000);
    const pad = (n, w) => String(n).padStart(w || 2, "0");
    return `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}.${pad(ms, 3)}`;
  }

  function linkTo(id) {
    const params = new URLSearchParams(location.search);
    for (const name of ["after", "before", "last", "from"]) params.delete(name);
    params.set("at", String(id));
    return `${location.pathname}?${params}`;
  }

  function remember() {
    // The address bar always holds a link to the instant shown.
    if (idx >= 0) history.replaceState(null, "", linkTo(events[idx][0]));
  }

  function drawScrubber() {
    density.replaceChildren();
    if (!events.length) return;
    const NS = "http://www.w3.org/2000/svg";
    const first = events[0][1], span = events[events.length - 1][1] - first || 1;
    density.setAttribute("viewBox", `0 0 ${BUCKETS} 20`);
    const counts = new Array(BUCKETS).fill(0), bad = new Array(BUCKETS).fill(false);
    const threshold = (Number(prefs.threshold) || 5) * 1e6;
    for (let k = 0; k < events.length; k++) {
      const b = Math.min(BUCKETS - 1, Math.floor(((events[k][1] - first) / span) * BUCKETS));
      counts[b]++;
      if (events[k][3] === "error" || events[k][3] === "fatal") bad[b] = true;
      if (k > 0 && events[k][1] - events[k - 1][1] > threshold) {
        const x0 = ((events[k - 1][1] - first) / span) * BUCKETS;
        const x1 = ((events[k][1] - first) / span) * BUCKETS;
        const idle = document.createElementNS(NS, "rect");
        idle.setAttribute("class", "idle");
        idle.setAttribute("x", x0); idle.setAttribute("width", Math.max(0.2, x1 - x0));
        idle.setAttribute("y", 0); idle.setAttribute("height", 20);
        density.append(idle);
      }
    }
    const most = Math.max(...counts);
    counts.forEach((n, b) => {
      if (!n) return;
      const h = Math.max(2, Math.sqrt(n / most) * 20);
      const r = document.createElementNS(NS, "rect");
      r.setAttribute("class", bad[b] ? "bin bad" : "bin");
      r.setAttribute("x", b); r.setAttribute("width", 0.9);
      r.setAttribute("y", 20 - h); r.setAttribute("height", h);
      density.append(r);
    });
  }

  // --- snapshot pane ------------------------------------------------------------------
  let inFlight = false, wanted = null, shown = null;

  async function requestSnapshot(id) {
    wanted = id;
    if (inFlight) return; // the latest wanted one is fetched when this one is back
    inFlight = true;
    try {
      while (wanted !== shown) {
        const target = wanted;
        const r = await fetch(`${api}/snapshot?at=${target}`, { credentials: "same-origin" });
        if (!r.ok) throw new Error(`snapshot → ${r.status}`);
        const snap = await r.json();
        shown = target;
        if (wanted === target) renderSnapshot(snap);
      }
    } catch (e) {
      pane.replaceChildren(el("p", { class: "error", text: "Could not load the snapshot: " + e.message }));
      shown = null;
    } finally {
      inFlight = false;
    }
  }

  const el = window.flightrec.el;

  function tree(value, depth, budget) {
    if (budget.left-- <= 0) return el("span", { class: "muted", text: "…" });
    if (value === null || typeof value !== "object") {
      return el("span", { class: "tt-leaf tt-" + (value === null ? "null" : typeof value), text: JSON.stringify(value) });
    }
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    if (!entries.length) return el("span", { class: "tt-leaf", text: Array.isArray(value) ? "[]" : "{}" });
    const list = el("ul", { class: "tt" });
    for (const [k, v] of entries) {
      const leaf = v === null || typeof v !== "object";
      const item = el("li", { "data-path": String(k) });
      if (leaf) item.append(el("span", { class: "tt-key", text: k + ": " }), tree(v, depth + 1, budget));
      else {
        const box = el("details", depth < 2 ? { open: "" } : {});
        const size = Array.isArray(v) ? `[${v.length}]` : `{${Object.keys(v).length}}`;
        box.append(el("summary", {}, el("span", { class: "tt-key", text: String(k) }), " ", el("span", { class: "muted", text: size })),
                   tree(v, depth + 1, budget));
        item.append(box);
      }
      list.append(item);
    }
    return list;
  }

  function summary(ev) {
    if (ev.message) return ev.message;
    const v = ev.payload != null ? ev.payload : ev.state;
    const text = v == null ? "" : JSON.stringify(v);
    return text.length > 120 ? text.slice(0, 117) + "…" : text;
  }

  function renderSnapshot(snap) {
    const parts = [];
    const at = snap.event;
    parts.push(el("h2", { text: at ? `Snapshot at #${at.seq}` : "Snapshot before the first event" },
                  at ? el("small", { class: "muted", text: " " + at.ts }) : ""));
    parts.push(el("h3", { text: "State" }));
    const state = el("div", { class: "tt-root", "data-role": "state" });
    state.append(tree(snap.state, 0, { left: 3000 }));
    parts.push(state);

    const keys = Object.keys(snap.latest);
    parts.push(el("h3", { text: `Latest per key (${keys.length}${snap.latest_truncated ? "+" : ""})` }));
    if (keys.length) {
      const table = el("table", { class: "grid tt-latest", "data-role": "latest" });
      for (const key of keys) {
        const ev = snap.latest[key];
        table.append(el("tr", { "data-key": key },
          el("td", { class: "mono", text: key }),
          el("td", { class: "mono muted", text: ev.ts.slice(11, 23) }),
          el("td", { text: summary(ev) })));
      }
      parts.push(table);
    } else parts.push(el("p", { class: "muted", text: "No keyed events yet." }));

    parts.push(el("h3", { text: `Counts (${snap.counts.events} events)` }));
    const counts = el("p", { class: "chips", "data-role": "counts" });
    for (const [name, n] of Object.entries(snap.counts.severity)) {
      counts.append(el("span", { class: `chip sev-${name}`, "data-severity": name, text: `${name} ${n}` }), " ");
    }
    for (const [name, n] of Object.entries(snap.counts.type)) {
      counts.append(el("span", { class: "chip", "data-type": name, text: `${name} ${n}` }), " ");
    }
    parts.push(counts);

    if (snap.error_count) {
      parts.push(el("h3", { class: "error", text: `State op errors (${snap.error_count})` }));
      const list = el("ul", { class: "tt-errors", "data-role": "errors" });
      for (const err of snap.errors.slice(-10)) {
        list.append(el("li", {}, el("a", { href: linkTo(err.event), text: `event ${err.event}` }), ": " + err.error));
      }
      parts.push(list);
    }
    pane.replaceChildren(...parts);
    pane.dataset.eventId = at ? String(at.id) : "";
  }

  // --- input --------------------------------------------------------------------------
  playButton.addEventListener("click", () => (playing ? pause() : play()));
  bar.querySelector('[data-action="prev"]').addEventListener("click", () => step(-1));
  bar.querySelector('[data-action="next"]').addEventListener("click", () => step(1));
  speedSelect.addEventListener("change", () => setSpeed(speedSelect.value));
  function settingsChanged() {
    prefs.skip = skipBox.checked;
    prefs.threshold = Math.max(0.1, Number(thresholdInput.value) || 5);
    savePrefs();
    computeVirtual();
    drawScrubber();
    if (playing) { rebase(); schedule(); }
  }
  skipBox.addEventListener("change", settingsChanged);
  thresholdInput.addEventListener("change", settingsChanged);

  $("jump").addEventListener("submit", (e) => {
    e.preventDefault();
    const raw = $("jump-to").value.trim();
    let k = -1;
    if (/^\d+$/.test(raw)) k = indexOfId(raw);
    else if (raw) {
      const t = Date.parse(raw);
      if (!Number.isNaN(t)) k = indexAtTime(t * 1000 + 999);
    }
    if (k < 0) { positionLabel.textContent = `no event at ${raw}`; return; }
    seek(k);
  });

  function seekToPointer(e) {
    const box = scrubber.getBoundingClientRect();
    const frac = Math.max(0, Math.min(1, (e.clientX - box.left) / box.width));
    const first = events[0][1], span = events[events.length - 1][1] - first;
    seek(Math.max(0, indexAtTime(first + frac * span)));
  }
  scrubber.addEventListener("pointerdown", (e) => {
    if (!events.length) return;
    scrubber.setPointerCapture(e.pointerId);
    seekToPointer(e);
    const move = (m) => seekToPointer(m);
    scrubber.addEventListener("pointermove", move);
    scrubber.addEventListener("pointerup", () => scrubber.removeEventListener("pointermove", move), { once: true });
  });

  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t.closest && t.closest("input, textarea, select, [contenteditable]")) return;
    if (e.key === " " && t.closest && t.closest("button, a, summary")) return; // their own click
    const at = SPEEDS.indexOf(String(prefs.speed));
    if (e.key === " ") { playing ? pause() : play(); }
    else if (e.key === "ArrowLeft") step(-1);
    else if (e.key === "ArrowRight") step(1);
    else if (e.key === "+" || e.key === "=") setSpeed(SPEEDS[Math.min(SPEEDS.length - 1, at + 1)]);
    else if (e.key === "-" || e.key === "_") setSpeed(SPEEDS[Math.max(0, at - 1)]);
    else return;
    e.preventDefault();
  });

  // Selecting a row on the timeline moves the player there.
  document.addEventListener("timeline:select", (e) => {
    const k = indexOfId(e.detail.id);
    if (k >= 0 && k !== idx) { if (playing) pause(); seek(k); }
  });

  // --- start --------------------------------------------------------------------------
  (async function start() {
    try {
      const r = await fetch(`${api}/replay/index`, { credentials: "same-origin" });
      if (!r.ok) throw new Error(`index → ${r.status}`);
      const index = await r.json();
      events = index.events;
    } catch (e) {
      positionLabel.textContent = "replay unavailable: " + e.message;
      return;
    }
    computeVirtual();
    drawScrubber();
    const at = new URLSearchParams(location.search).get("at") || root.dataset.at;
    let k = -1;
    if (at && /^\d+$/.test(at)) k = indexOfId(at);
    else if (at) {
      const t = /^\d+\.\d*$/.test(at) ? Number(at) * 1000 : Date.parse(at);
      if (!Number.isNaN(t)) k = indexAtTime(t * 1000 + 999);
    }
    if (k >= 0) show(k);
    else positionLabel.textContent = `${events.length} events · press ▶ or space`;
    bar.dataset.ready = "1";
  })();
})();
