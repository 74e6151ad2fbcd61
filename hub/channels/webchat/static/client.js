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
    this.queue = load("queue", []); // [{client_id, text, created_at}], oldest first
    this.ws = null;
    this.ready = false;
    this.attempt = 0;
    this.timer = null;
    this.inflight = new Set();
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
        save("queue", this.queue);
        this.emit("ack", frame);
        break;
      case "message":
        this.emit("message", frame.message);
        break;
      case "typing":
        this.emit("typing", frame);
        break;
      case "error":
        this.onError(frame);
        break;
    }
  }

  onError(frame) {
    if (frame.client_id) this.inflight.delete(frame.client_id);
    if (frame.code === "rate_limited" || frame.code === "unavailable") {
      setTimeout(() => this.flush(), Math.max(1, frame.retry_after || 3) * 1000);
    } else if (frame.client_id) {
      // refused for good (too long, empty): drop it from the queue and say why
      this.queue = this.queue.filter((m) => m.client_id !== frame.client_id);
      save("queue", this.queue);
    }
    this.emit("error", frame);
  }

  flush() {
    if (!this.ready || this.ws.readyState !== WebSocket.OPEN) return;
    for (const m of this.queue) {
      if (this.inflight.has(m.client_id)) continue;
      this.inflight.add(m.client_id);
      this.ws.send(JSON.stringify({ type: "message", client_id: m.client_id, text: m.text }));
    }
  }

  send(text) {
    const m = { client_id: newId(), text, created_at: new Date().toISOString() };
    this.queue.push(m);
    save("queue", this.queue);
    this.flush();
    return m;
  }

  typing(on) {
    if (this.ready && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: "typing", typing: on }));
    }
  }

  setProfile(profile) {
    this.profile = profile;
    save("profile", profile);
    if (this.ready) this.ws.send(JSON.stringify({ type: "profile", ...profile }));
  }
}
