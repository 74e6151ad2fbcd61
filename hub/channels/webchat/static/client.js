// The visitor's connection to the hub: one WebSocket, reconnected with capped exponential backoff and jitter.
// Messages typed while offline wait in a queue kept in localStorage and go out when the socket is back; each
// carries a client_id, so a message re-sent after a drop is stored once.

const KEY = "hubchat:";
const MAX_DELAY = 30000;

function load(name, fallback) {
  try {
    const raw = localStorage.getItem(KEY + name);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback; // storage blocked (private mode, sandboxed iframe): work in memory
  }
}

function save(name, value) {
  try {
    localStorage.setItem(KEY + name, JSON.stringify(value));
  } catch {
    /* storage blocked: the queue still lives in memory for this page */
  }
}

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class ChatClient extends EventTarget {
  constructor({ base, identity = null }) {
    super();
    this.base = base;
    this.identity = identity;
    this.visitorId = load("visitor", null);
    this.profile = load("profile", null);
    this.queue = load("queue", []).map((m) => ({ files: [], ...m })); // [{client_id, text, created_at, files}]
    this.ws = null;
    this.ready = false;
    this.attempt = 0;
    this.timer = null;
    this.inflight = new Set();
    this.fileWaits = new Map(); // attachment id -> {resolve, reject}
    this.state = "connecting";
    addEventListener("online", () => this.connectSoon(0));
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setState(state) {
    if (this.state !== state) {
      this.state = state;
      this.emit("state", state);
    }
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    this.setState("connecting");
    const url = new URL("/webchat/ws", this.base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      ws.send(JSON.stringify({
        type: "hello",
        visitor_id: this.visitorId,
        identity: this.identity,
        profile: this.profile,
        page: location.href,
      }));
    });
    ws.addEventListener("message", (e) => this.onFrame(e.data));
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ready = false;
      this.inflight.clear();
      for (const wait of this.fileWaits.values()) wait.reject(new Error("the chat went offline"));
      this.fileWaits.clear();
      this.setState("offline");
      this.connectSoon();
    });
  }

  connectSoon(delay) {
    if (this.timer) return;
    if (delay === undefined) {
      // full jitter: many visitors reconnecting after a hub restart do not arrive all at once
      const ceiling = Math.min(MAX_DELAY, 500 * 2 ** this.attempt);
      delay = ceiling / 2 + Math.random() * (ceiling / 2);
      this.attempt += 1;
    }
    this.timer = setTimeout(() => this.connect(), delay);
  }

  onFrame(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    switch (frame.type) {
      case "welcome":
        this.attempt = 0;
        this.ready = true;
        this.visitorId = frame.visitor_id;
        save("visitor", this.visitorId);
        this.setState("online");
        this.emit("welcome", frame);
        this.flush();
        break;
      case "ack":
        this.inflight.delete(frame.client_id);
        this.queue = this.queue.filter((m) => m.client_id !== frame.client_id);
        this.persist();
        this.emit("ack", frame);
        break;
      case "message":
        this.emit("message", frame.message);
        break;
      case "typing":
        this.emit("typing", frame);
        break;
      case "resolved":
        this.emit("resolved", frame);
        break;
      case "file":
        this.onFile(frame);
        break;
      case "error":
        this.onError(frame);
        break;
    }
  }

  onFile(frame) {
    const wait = this.fileWaits.get(frame.id);
    if (!wait) return;
    this.fileWaits.delete(frame.id);
    const bytes = Uint8Array.from(atob(frame.data), (c) => c.charCodeAt(0));
    wait.resolve(new File([bytes], frame.filename, { type: frame.content_type }));
  }

  // A file of this chat (sent or received), fetched over the socket: the visitor's only credential.
  fetchFile(id) {
    if (!this.ready || this.ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error("offline"));
    return new Promise((resolve, reject) => {
      this.fileWaits.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ type: "file", id }));
    });
  }

  onError(frame) {
    if (frame.code === "no_file" && this.fileWaits.has(frame.id)) {
      this.fileWaits.get(frame.id).reject(new Error(frame.reason));
      this.fileWaits.delete(frame.id);
      return;
    }
    if (frame.client_id) this.inflight.delete(frame.client_id);
    if (frame.code === "rate_limited" || frame.code === "unavailable") {
      setTimeout(() => this.flush(), Math.max(1, frame.retry_after || 3) * 1000);
    } else if (frame.client_id) {
      // refused for good (too long, empty): drop it from the queue and say why
      this.queue = this.queue.filter((m) => m.client_id !== frame.client_id);
      this.persist();
    }
    this.emit("error", frame);
  }

  flush() {
    if (!this.ready || this.ws.readyState !== WebSocket.OPEN) return;
    for (const m of this.queue) {
      if (this.inflight.has(m.client_id)) continue;
      this.inflight.add(m.client_id);
      const frame = { type: "message", client_id: m.client_id, text: m.text };
      if (m.files && m.files.length) frame.files = m.files;
      if (m.offline) frame.offline = true;
      if (m.rating) frame.rating = m.rating;
      this.ws.send(JSON.stringify(frame));
    }
  }

  // files: [{name, type, data (base64)}]; offline: left in the offline form; rating: a survey's answer
  send(text, { files = [], offline = false, rating = null } = {}) {
    const m = { client_id: newId(), text, created_at: new Date().toISOString(), files, offline };
    if (rating) m.rating = rating;
    this.queue.push(m);
    this.persist();
    this.flush();
    return m;
  }

  persist() {
    // Files' bytes stay in memory: storage is small, and a reload drops a file not yet sent (the text stays).
    save("queue", this.queue.filter((m) => m.text || !m.files.length)
      .map(({ files, ...m }) => ({ ...m, files: [] })));
  }

  typing(on) {
    if (this.ready && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: "typing", typing: on }));
    }
  }

  async availability() {
    const resp = await fetch(new URL("/webchat/availability", this.base), { credentials: "omit" });
    if (!resp.ok) throw new Error(`availability: ${resp.status}`);
    return resp.json();
  }

  setProfile(profile) {
    this.profile = profile;
    save("profile", profile);
    if (this.ready) this.ws.send(JSON.stringify({ type: "profile", ...profile }));
  }
}
