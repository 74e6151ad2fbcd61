// The one WebSocket: reconnects by itself with capped, jittered backoff; on every (re)connect and when the server
// says we lagged, the app re-syncs through REST, so nothing missed while away stays missed.

export class Live {
  constructor({ onEvent, onSync, onStatus, onSessionEnded }) {
    Object.assign(this, { onEvent, onSync, onStatus, onSessionEnded });
    this.attempt = 0;
    this.ws = null;
    this.stopped = false;
    this.timer = null;
    this.serverOffset = 0; // server clock minus ours, in ms (offer deadlines are server epoch seconds)
  }

  start() {
    this.stopped = false;
    this.connect();
    document.addEventListener("visibilitychange", this.onVisible = () => {
      if (!document.hidden && (!this.ws || this.ws.readyState > 1)) this.reconnectNow();
    });
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    document.removeEventListener("visibilitychange", this.onVisible);
    if (this.ws) this.ws.close(1000, "signed out");
  }

  now() {
    return Date.now() + this.serverOffset;
  }

  reconnectNow() {
    clearTimeout(this.timer);
    this.attempt = 0;
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/v1/events`);
    this.ws = ws;
    this.onStatus(this.attempt ? "reconnecting" : "connecting");
    ws.addEventListener("message", (msg) => {
      let event;
      try {
        event = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (event.type === "hello") {
        this.attempt = 0;
        this.serverOffset = event.data.server_time * 1000 - Date.now();
        this.onStatus("live");
        this.onSync("connected");
      } else if (event.type === "lagged") {
        this.onSync("lagged");
      } else {
        this.onEvent(event);
      }
    });
    ws.addEventListener("close", (ev) => {
      if (this.ws !== ws || this.stopped) return;
      if (ev.code === 4401) {
        this.onSessionEnded();
        return;
      }
      this.onStatus("reconnecting");
      const ceiling = Math.min(15000, 500 * 2 ** this.attempt);
      this.attempt += 1;
      this.timer = setTimeout(() => this.connect(), ceiling / 2 + Math.random() * ceiling / 2);
    });
  }
}
