// Herald display player: pairs the browser as a display, then plays the
// display's manifest full screen, live over server-sent events, and keeps
// playing the last manifest while the server cannot be reached.
//
// The contract is docs/signage.md. State for tests and monitoring is on
// <body>: data-state (pairing | playing | emergency | empty) and
// data-connection (online | offline).
"use strict";

(() => {
  const API = "/display/v1";
  const STATUS_POLL_MS = 3000;
  const PLAYS_FLUSH_MS = 30000;
  const PLAYS_BATCH_AT = 50;
  const PLAYS_PER_REPORT = 500;
  // Offline for days must not fill localStorage: keep the newest plays.
  const PLAYS_KEPT = 20000;
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  // The server sends a keep-alive comment every 15 s; a stream silent for
  // longer than this is dead even if the socket has not noticed.
  const STREAM_SILENCE_MS = 45000;
  const LONGEST_TIMER_MS = 2147483647;

  const KEY = {
    credentials: "herald.display.credentials",
    manifest: "herald.display.manifest",
    plays: "herald.display.plays",
    report: "herald.display.report",
  };

  const $ = (id) => document.getElementById(id);
  const body = document.body;

  // ---- storage -----------------------------------------------------------

  function load(key) {
    try {
      const raw = localStorage.getItem(key);
      return raw === null ? null : JSON.parse(raw);
    } catch (_) {
      return null;
    }
  }

  function save(key, value) {
    try {
      if (value === null || value === undefined) localStorage.removeItem(key);
      else localStorage.setItem(key, JSON.stringify(value));
    } catch (error) {
      console.warn("herald: cannot store", key, error);
    }
  }

  // ---- state -------------------------------------------------------------

  let credentials = load(KEY.credentials); // {deviceId, deviceSecret}
  let manifest = null; // the last manifest received (or restored)
  let etag = null;
  // From the last push, until a manifest replaces it.
  let pushedEmergency;
  let phase = "pairing"; // pairing | paired
  let pairedSince = 0; // counts pairings, so a stale events loop can tell
  let online = false;

  const stored = load(KEY.manifest);
  if (credentials && stored && stored.deviceId === credentials.deviceId) {
    manifest = stored.manifest;
    etag = stored.etag;
  }

  function setState(state) {
    if (body.dataset.state !== state) body.dataset.state = state;
  }

  function setOnline(value) {
    online = value;
    body.dataset.connection = value ? "online" : "offline";
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function authorized(init) {
    const headers = new Headers((init && init.headers) || {});
    headers.set("Authorization", "Bearer " + credentials.deviceSecret);
    return Object.assign({}, init, { headers, cache: "no-store" });
  }

  // A v4 UUID; crypto.randomUUID exists only in secure contexts (https or
  // localhost), and displays on a LAN may use plain http.
  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // ---- pairing -----------------------------------------------------------

  function showCode(code, expiresAt) {
    setState("pairing");
    $("pairing-code").textContent = code || "";
    const expiry = expiresAt ? new Date(expiresAt) : null;
    $("pairing-expiry").textContent =
      expiry && !isNaN(expiry)
        ? "Valid until " + expiry.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
        : "";
  }

  async function register() {
    const response = await fetch(API + "/register", { method: "POST", cache: "no-store" });
    if (!response.ok) throw new Error("register answered " + response.status);
    const device = await response.json();
    credentials = { deviceId: device.deviceId, deviceSecret: device.deviceSecret };
    save(KEY.credentials, credentials);
    showCode(device.pairingCode, device.expiresAt);
  }

  // Forgets everything of the previous pairing (its manifest and its plays
  // belong to a tenant this display may no longer serve).
  function forget(keepCredentials) {
    if (!keepCredentials) {
      credentials = null;
      save(KEY.credentials, null);
    }
    manifest = null;
    etag = null;
    pushedEmergency = undefined;
    save(KEY.manifest, null);
    save(KEY.plays, null);
    save(KEY.report, null);
    stopRotation();
  }

  function unpaired(keepCredentials) {
    forget(keepCredentials);
    if (phase === "pairing") return;
    phase = "pairing";
    if (eventsAbort) eventsAbort.abort();
    pairing();
  }

  // Until paired: show the code and ask every 3 s whether someone entered it.
  async function pairing() {
    setState("pairing");
    while (phase === "pairing") {
      try {
        if (!credentials) await register();
        const response = await fetch(API + "/status", authorized());
        setOnline(true);
        if (response.status === 401) {
          // The code expired, or the display was unpaired: a new code.
          forget(false);
          continue;
        }
        if (response.ok) {
          const status = await response.json();
          if (status.paired) {
            play();
            return;
          }
          showCode(status.pairingCode, status.expiresAt);
        }
      } catch (error) {
        setOnline(false);
      }
      await sleep(STATUS_POLL_MS);
    }
  }

  // ---- manifest ----------------------------------------------------------

  let fetching = null;
  let fetchAgain = false;

  // Fetches the manifest; concurrent calls share one request, plus one more
  // after it when asked meanwhile (a change may have raced the first).
  function refresh() {
    if (fetching) {
      fetchAgain = true;
      return fetching;
    }
    fetching = (async () => {
      try {
        do {
          fetchAgain = false;
          await fetchManifest();
        } while (fetchAgain && phase === "paired");
      } finally {
        fetching = null;
      }
    })();
    return fetching;
  }

  async function fetchManifest() {
    if (!credentials) return;
    const headers = {};
    if (etag && manifest) headers["If-None-Match"] = etag;
    let response;
    try {
      response = await fetch(API + "/manifest", authorized({ headers }));
    } catch (error) {
      setOnline(false);
      render(); // offline: re-evaluate what we have
      return;
    }
    if (response.status === 401) return unpaired(false);
    if (response.status === 409) return unpaired(true);
    if (response.status === 304) {
      pushedEmergency = undefined; // the server's word over the push
      return render();
    }
    if (!response.ok) return render();
    const next = await response.json();
    manifest = next;
    etag = response.headers.get("ETag");
    pushedEmergency = undefined;
    save(KEY.manifest, { deviceId: credentials.deviceId, etag, manifest });
    render();
  }

  let changeTimer = null;
  let changedAt = NaN; // the boundary the timer last fired for

  // At `nextChange` the manifest may change by itself: fetch it then (or,
  // offline, show again what we have). Once per boundary: a manifest that
  // still names a past one (offline, or a server clock behind ours) waits
  // for the next push or reconnect instead of polling every second.
  function scheduleNextChange() {
    clearTimeout(changeTimer);
    const at = manifest && manifest.nextChange ? Date.parse(manifest.nextChange) : NaN;
    if (isNaN(at) || at === changedAt) return;
    const delay = Math.min(Math.max(at - Date.now() + 1000, 1000), LONGEST_TIMER_MS);
    changeTimer = setTimeout(() => {
      changedAt = at;
      if (phase === "paired") refresh();
      else render();
    }, delay);
  }

  // ---- rendering ---------------------------------------------------------

  const mediaUrls = new Map(); // mediaId -> blob URL

  async function mediaUrl(mediaId) {
    if (mediaUrls.has(mediaId)) return mediaUrls.get(mediaId);
    const response = await fetch(API + "/media/" + encodeURIComponent(mediaId), authorized());
    if (!response.ok) throw new Error("media answered " + response.status);
    const url = URL.createObjectURL(await response.blob());
    mediaUrls.set(mediaId, url);
    return url;
  }

  // Frees images the current manifest no longer shows.
  function pruneMedia() {
    const used = new Set();
    if (manifest) {
      (manifest.slides || []).forEach((s) => s.mediaId && used.add(s.mediaId));
      if (manifest.emergency && manifest.emergency.mediaId) used.add(manifest.emergency.mediaId);
    }
    if (pushedEmergency && pushedEmergency.mediaId) used.add(pushedEmergency.mediaId);
    for (const [id, url] of mediaUrls) {
      if (!used.has(id)) {
        URL.revokeObjectURL(url);
        mediaUrls.delete(id);
      }
    }
  }

  function showImage(img, mediaId, stillWanted) {
    if (!mediaId) {
      img.hidden = true;
      img.removeAttribute("src");
      return;
    }
    mediaUrl(mediaId).then(
      (url) => {
        if (!stillWanted()) return;
        img.src = url;
        img.hidden = false;
      },
      () => {
        if (stillWanted()) img.hidden = true;
      },
    );
  }

  function currentEmergency() {
    if (pushedEmergency !== undefined) return pushedEmergency;
    return manifest && manifest.emergency;
  }

  function render() {
    if (phase !== "paired" && !manifest) return;
    const emergency = currentEmergency();
    if (emergency) {
      stopRotation();
      showEmergency(emergency);
    } else {
      const slides = (manifest && manifest.slides) || [];
      if (slides.length === 0) {
        stopRotation();
        setState("empty");
      } else {
        rotate(slides);
      }
    }
    scheduleNextChange();
    pruneMedia();
  }

  function showEmergency(emergency) {
    const section = $("emergency");
    section.classList.toggle("severe", emergency.severity === "HIGH" || emergency.severity === "CRITICAL");
    $("emergency-message").textContent = emergency.message || "";
    const id = emergency.id;
    showImage($("emergency-image"), emergency.mediaId, () => {
      const current = currentEmergency();
      return body.dataset.state === "emergency" && current && current.id === id;
    });
    setState("emergency");
  }

  // ---- rotation and proof of play ----------------------------------------

  let rotation = null; // {slides, key, index, timer, shown: {slide, since}}

  function rotate(slides) {
    const key = JSON.stringify(slides);
    if (rotation && rotation.key === key) {
      setState("playing"); // same playlist: keep going where we are
      return;
    }
    stopRotation();
    rotation = { slides, key, index: -1, timer: null, shown: null };
    setState("playing");
    advance();
  }

  function advance() {
    if (!rotation) return;
    endShown();
    rotation.index = (rotation.index + 1) % rotation.slides.length;
    const slide = rotation.slides[rotation.index];
    const current = rotation;
    $("slide-category").textContent = slide.category || "";
    $("slide-title").textContent = slide.title || "";
    $("slide-body").textContent = slide.body || "";
    showImage($("slide-image"), slide.mediaId, () => rotation === current && current.shown && current.shown.slide === slide);
    rotation.shown = { slide, since: new Date() };
    const seconds = Math.max(Number(slide.durationSeconds) || 10, 1);
    rotation.timer = setTimeout(advance, seconds * 1000);
  }

  function stopRotation() {
    if (!rotation) return;
    clearTimeout(rotation.timer);
    endShown();
    rotation = null;
  }

  // A slide counts as played once it leaves the screen, for as long as it
  // was on it.
  function endShown() {
    const shown = rotation && rotation.shown;
    if (!shown) return;
    rotation.shown = null;
    const seconds = Math.round((Date.now() - shown.since.getTime()) / 1000);
    if (seconds < 1 || !shown.slide.noticeId) return;
    recordPlay({ noticeId: shown.slide.noticeId, playedAt: shown.since.toISOString(), durationSeconds: seconds });
  }

  function recordPlay(play) {
    let plays = load(KEY.plays) || [];
    plays.push(play);
    if (plays.length > PLAYS_KEPT) plays = plays.slice(plays.length - PLAYS_KEPT);
    save(KEY.plays, plays);
    if (plays.length >= PLAYS_BATCH_AT) reportPlays();
  }

  let reporting = false;

  // Sends the pending report, or makes one from the queue. A report keeps
  // its reportId until the server answers, so a resend is recognised as
  // the same report and counted once.
  async function reportPlays() {
    if (reporting || !credentials || phase !== "paired") return;
    reporting = true;
    try {
      for (;;) {
        let report = load(KEY.report);
        if (!report) {
          const plays = load(KEY.plays) || [];
          if (plays.length === 0) return;
          report = { reportId: uuid(), plays: plays.slice(0, PLAYS_PER_REPORT) };
          // Report first: a crash in between resends, never loses.
          save(KEY.report, report);
          save(KEY.plays, plays.slice(report.plays.length));
        }
        const response = await fetch(
          API + "/plays",
          authorized({
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify(report),
          }),
        );
        if (response.status === 401) return unpaired(false);
        if (response.ok) {
          save(KEY.report, null);
        } else if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) {
          // Refused as a whole (a notice of another tenant, a clock far
          // ahead): sending it again would be refused again forever.
          console.warn("herald: plays report refused", response.status);
          save(KEY.report, null);
        } else {
          return; // try again at the next tick, with the same reportId
        }
        if ((load(KEY.plays) || []).length < PLAYS_BATCH_AT) return;
      }
    } catch (error) {
      // Offline: the report stays and goes out later.
    } finally {
      reporting = false;
    }
  }

  // ---- live events -------------------------------------------------------

  let eventsAbort = null;

  function backoff(attempt) {
    const ceiling = Math.min(BACKOFF_FIRST_MS * 2 ** attempt, BACKOFF_MAX_MS);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  async function events() {
    const generation = pairedSince;
    const current = () => phase === "paired" && pairedSince === generation;
    let attempt = 0;
    while (current()) {
      const abort = new AbortController();
      eventsAbort = abort;
      let watchdog = null;
      const feed = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => abort.abort(), STREAM_SILENCE_MS);
      };
      try {
        const response = await fetch(
          API + "/events",
          authorized({ headers: { Accept: "text/event-stream" }, signal: abort.signal }),
        );
        if (response.status === 401) return unpaired(false);
        if (response.status === 409) return unpaired(true);
        if (!response.ok || !response.body) throw new Error("events answered " + response.status);
        attempt = 0;
        setOnline(true);
        feed();
        // Changes made while we were away are not replayed.
        refresh();
        reportPlays();
        await readEvents(response.body, onEvent, feed);
      } catch (error) {
        // fall through to reconnect
      } finally {
        clearTimeout(watchdog);
      }
      if (!current()) return;
      setOnline(false);
      render();
      await sleep(backoff(attempt));
      attempt += 1;
    }
  }

  // Parses a text/event-stream body, calling onEvent(type, data) per event.
  async function readEvents(stream, onEvent, onData) {
    const reader = stream.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let type = "";
    let data = [];
    const line = (text) => {
      if (text === "") {
        if (data.length) onEvent(type || "message", data.join("\n"));
        type = "";
        data = [];
        return;
      }
      if (text.startsWith(":")) return; // comment (keep-alive)
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onData();
      buffer += decoder.decode(value, { stream: true });
      // A lone \r at the very end may be the first half of \r\n.
      const end = /\r\n|\r(?!$)|\n/g;
      let start = 0;
      let match;
      while ((match = end.exec(buffer))) {
        line(buffer.slice(start, match.index));
        start = match.index + match[0].length;
      }
      buffer = buffer.slice(start);
    }
  }

  function onEvent(type, raw) {
    let data = null;
    try {
      data = JSON.parse(raw);
    } catch (_) {
      return;
    }
    if (type === "manifest-changed") {
      if (data && data.emergency) {
        // Shown at once; the manifest fetched next confirms it. A cleared
        // override stays until that fetch brings the slides back.
        pushedEmergency = data.emergency;
        render();
      }
      // Thousands of screens hear the same push: spread their fetches. One
      // that shows the pushed override already can wait longer.
      const spread = data && data.emergency ? 3000 : 500;
      setTimeout(refresh, Math.random() * spread);
    } else if (type === "command" && data && data.command === "reload") {
      reportPlays().finally(() => location.reload());
    }
  }

  // ---- start -------------------------------------------------------------

  function play() {
    phase = "paired";
    pairedSince += 1;
    render();
    refresh();
    events();
  }

  setInterval(reportPlays, PLAYS_FLUSH_MS);

  if (credentials && manifest) {
    // Restored after a reload: play what we had at once, online or not.
    play();
  } else {
    pairing();
  }
})();
