// The web chat widget. Add it to any page with one tag:
//   <script type="module" src="https://hub.example.com/widget.js"></script>
// A site that knows who is logged in can set, before that tag (user_hash computed on its server):
//   window.HubChat = { user_id: "42", name: "Ann Lee", user_hash: "<hex HMAC-SHA256(identity_secret, '42')>" }
// The widget lives in a shadow root, so the host page's CSS and ours never meet.

import { ChatClient } from "./webchat/static/client.js";
import { ChatWindow } from "./webchat/static/ui.js";

const base = new URL(".", import.meta.url).href.replace(/\/$/, "");

async function start() {
  const page = document.documentElement.dataset.hubChat === "page";
  let config;
  try {
    const resp = await fetch(base + "/webchat/config", { credentials: "omit" });
    config = await resp.json();
  } catch {
    config = { title: "Chat with us", welcome: "", team_name: "Support", accent_color: "#4f46e5",
      prechat_form: false, max_message_chars: 4000 };
  }
  const opts = window.HubChat || {};
  const identity = opts.user_hash ? { user_id: opts.user_id, email: opts.email, name: opts.name,
    user_hash: opts.user_hash } : null;

  const host = document.createElement("div");
  host.id = "hub-chat";
  if (page) host.className = "hub-chat-page";
  const root = host.attachShadow({ mode: "open" });
  const css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = base + "/webchat/static/widget.css";
  root.append(css);
  const theme = document.createElement("div");
  theme.className = page ? "hc-root hc-root-page" : "hc-root";
  theme.style.setProperty("--hc-accent", config.accent_color);
  root.append(theme);
  document.body.append(host);

  const client = new ChatClient({ base, identity });
  const win = new ChatWindow(theme, client, config, { page });
  window.HubChat = Object.assign(opts, {
    open: () => win.launcher && win.toggle(true),
    close: () => win.launcher && win.toggle(false),
    client,
  });
  client.connect();
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start, { once: true });
} else {
  start();
}
