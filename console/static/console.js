// firegrid console: live regions over Server-Sent Events, ages, and the critical-event alarm.
// No build step, no dependencies. Every fragment fetched is server-rendered and escaped.
(() => {
  "use strict";
  const body = document.body;
  const announcer = document.querySelector(".announcer");
  const STORE = "firegrid.announced";

  // -- ages and local times ---------------------------------------------------------------------
  function age(ms) {
    const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }
  function renderTimes(root) {
    root.querySelectorAll("time[data-ms]").forEach((el) => {
      const ms = Number(el.dataset.ms);
      if (!Number.isFinite(ms) || ms <= 0) return;
      el.textContent = el.classList.contains("age") ? age(ms) : new Date(ms).toLocaleString();
    });
  }
  renderTimes(document);
  setInterval(() => renderTimes(document), 15000);

  // -- the alarm: once per critical event (a beep, and a notification where allowed) -------------
  let audio = null;
  function announced() {
    try { return new Set(JSON.parse(localStorage.getItem(STORE) || "[]")); } catch (e) { return new Set(); }
  }
  function remember(ids) {
    try { localStorage.setItem(STORE, JSON.stringify(Array.from(ids).slice(-500))); } catch (e) { /* private mode */ }
  }
  function beep() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.2;
      osc.connect(gain).connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.25);
    } catch (e) { /* no audio here */ }
  }
  function announce(events) {
    const seen = announced();
    const fresh = events.filter((e) => e.severity === "critical" && e.state === "open" && !seen.has(e.event_id));
    if (!fresh.length) return;
    fresh.forEach((e) => seen.add(e.event_id));
    remember(seen);
    beep();
    const text = fresh.map((e) => "Critical: " + e.type + " in " + e.grid_id + " (" + e.site_id + ")").join("; ");
    if (announcer) announcer.textContent = text;
    if (window.Notification && Notification.permission === "granted") {
      fresh.slice(0, 3).forEach((e) => {
        try {
          const n = new Notification("firegrid: " + e.type, { body: e.grid_id + " · " + e.message, tag: e.event_id });
          n.onclick = () => { window.focus(); location.assign("/events/" + encodeURIComponent(e.event_id)); };
        } catch (err) { /* notifications only from a service worker on this platform */ }
      });
    }
  }
  const enable = document.querySelector(".enable-alerts");
  if (enable && (("Notification" in window && Notification.permission === "default") || window.AudioContext)) {
    enable.hidden = false;
    enable.addEventListener("click", () => {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      audio.resume();
      if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
      enable.hidden = true;
    });
  }
  function criticalRows(root) {
    return Array.from(root.querySelectorAll("li.event[data-severity='critical'][data-state='open']")).map((li) => ({
      event_id: li.dataset.eventId, severity: "critical", state: "open", type: li.dataset.type,
      grid_id: li.dataset.grid, site_id: "", message: li.querySelector(".message")?.textContent || "",
    }));
  }

  // -- live regions ------------------------------------------------------------------------------
  const regions = Array.from(document.querySelectorAll("[data-live]")).map((el) => ({ el, busy: false, again: false }));
  async function refresh(region) {
    if (region.busy) { region.again = true; return; }
    region.busy = true;
    try {
      do {
        region.again = false;
        const response = await fetch(region.el.dataset.live, { headers: { "X-Firegrid-Live": "1" }, credentials: "same-origin" });
        if (response.redirected || response.status === 401) { location.assign("/login"); return; }
        if (!response.ok) break;
        region.el.innerHTML = await response.text();
        renderTimes(region.el);
        body.dataset.updated = String(Date.now());
      } while (region.again);
    } catch (e) { /* offline for a moment: the next change or resync tries again */ }
    finally { region.busy = false; }
  }
  if (body.dataset.signedIn) announce(criticalRows(document));
  if (body.dataset.signedIn && window.EventSource && regions.length) {
    const source = new EventSource("/live");
    source.addEventListener("change", (message) => {
      let change;
      try { change = JSON.parse(message.data); } catch (e) { return; }
      announce([change]);
      regions.forEach((region) => {
        const only = region.el.dataset.event;
        if (!only || only === change.event_id) refresh(region);
      });
    });
    source.addEventListener("resync", () => regions.forEach(refresh));
    let reconnected = false;
    source.addEventListener("hello", () => {
      if (reconnected) regions.forEach(refresh);  // whatever changed while the stream was down
      reconnected = true;
      body.dataset.live = "connected";
    });
    source.addEventListener("expired", () => { source.close(); location.assign("/login"); });
    source.onerror = () => {
      body.dataset.live = "reconnecting";
      if (source.readyState === EventSource.CLOSED) setTimeout(() => location.reload(), 5000);
    };
  }
})();
