// The chat window. Every piece of text from the network goes in with textContent: message text is never parsed as
// HTML, whoever wrote it.

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

function icon(paths, size = 22) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", size);
  svg.setAttribute("height", size);
  svg.setAttribute("aria-hidden", "true");
  for (const d of paths) {
    const p = document.createElementNS(SVG, "path");
    p.setAttribute("d", d);
    svg.append(p);
  }
  return svg;
}

const ICONS = {
  chat: ["M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6c-.6.5-1.3.1-1.3-.6V16.9A2.5 2.5 0 0 1 4 14.5z"],
  close: ["M6.7 5.3 12 10.6l5.3-5.3 1.4 1.4-5.3 5.3 5.3 5.3-1.4 1.4-5.3-5.3-5.3 5.3-1.4-1.4 5.3-5.3-5.3-5.3z"],
  send: ["M3.4 20.4 21 12 3.4 3.6 3.4 10.2 15 12 3.4 13.8z"],
  attach: ["M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5H9v9a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v11.5a6 6 0 0 0 12 0v-10z"],
};

const AVAILABILITY_EVERY = 30000;

function minutes(seconds) {
  const m = Math.max(1, Math.round(seconds / 60));
  return m === 1 ? "about a minute" : m < 60 ? `about ${m} minutes` : "over an hour";
}

function opensAt(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const sameDay = d.toDateString() === new Date().toDateString();
  const time = d.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
  return sameDay ? `today at ${time}` : `${d.toLocaleDateString([], { weekday: "long" })} at ${time}`;
}

function size(bytes) {
  return bytes >= 1e6 ? `${Math.round(bytes / 1e6)} MB` : `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

function base64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function initials(name) {
  const parts = (name || "?").trim().split(/\s+/).slice(0, 2);
  return parts.map((p) => p[0] || "").join("").toUpperCase() || "?";
}

function clock(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
}

export class ChatWindow {
  constructor(root, client, config, { page = false } = {}) {
    this.client = client;
    this.config = config;
    this.page = page;
    this.byKey = new Map(); // message id or client_id -> bubble
    this.surveys = new Map(); // survey id -> its rating form (replaced by a thank-you once answered)
    this.agentName = null;
    this.typingTimer = null;
    this.sentTyping = false;
    this.build(root);
    this.wire();
  }

  build(root) {
    const c = this.config;
    this.frame = el("section", this.page ? "hc-panel hc-page" : "hc-panel");
    this.frame.setAttribute("role", "dialog");
    this.frame.setAttribute("aria-label", c.title);

    const header = el("header", "hc-header");
    this.avatar = el("div", "hc-avatar", initials(c.team_name));
    const who = el("div", "hc-who");
    this.titleEl = el("div", "hc-title", c.title);
    this.statusEl = el("div", "hc-status");
    this.statusDot = el("span", "hc-dot");
    this.statusText = el("span", null, "Connecting…");
    this.statusEl.append(this.statusDot, this.statusText);
    who.append(this.titleEl, this.statusEl);
    header.append(this.avatar, who);
    if (!this.page) {
      this.closeBtn = el("button", "hc-icon-btn");
      this.closeBtn.type = "button";
      this.closeBtn.setAttribute("aria-label", "Close chat");
      this.closeBtn.append(icon(ICONS.close, 20));
      header.append(this.closeBtn);
    }

    this.list = el("div", "hc-messages");
    this.list.setAttribute("role", "log");
    this.list.setAttribute("aria-live", "polite");
    const intro = el("div", "hc-intro");
    intro.append(el("div", "hc-intro-avatar", initials(c.team_name)), el("p", "hc-welcome", c.welcome));
    this.list.append(intro);

    this.typingEl = el("div", "hc-typing");
    this.typingEl.hidden = true;
    this.typingEl.append(el("span", "hc-dots"), el("span", "hc-typing-text"));
    this.typingEl.firstChild.append(el("i"), el("i"), el("i"));

    this.notice = el("div", "hc-notice");
    this.notice.hidden = true;

    this.form = el("form", "hc-composer");
    this.input = el("textarea", "hc-input");
    this.input.rows = 1;
    this.input.placeholder = "Write a message…";
    this.input.maxLength = c.max_message_chars;
    this.input.setAttribute("aria-label", "Message");
    this.sendBtn = el("button", "hc-send");
    this.sendBtn.type = "submit";
    this.sendBtn.setAttribute("aria-label", "Send");
    this.sendBtn.append(icon(ICONS.send, 20));
    this.fileIn = el("input");
    this.fileIn.type = "file";
    this.fileIn.multiple = true;
    this.fileIn.hidden = true;
    this.attachBtn = el("button", "hc-icon-btn hc-attach");
    this.attachBtn.type = "button";
    this.attachBtn.setAttribute("aria-label", "Attach a file");
    this.attachBtn.title = `Attach a file (up to ${size(c.max_file_bytes || 0)})`;
    this.attachBtn.append(icon(ICONS.attach, 20));
    this.attachBtn.hidden = !c.max_file_bytes;
    this.form.append(this.fileIn, this.attachBtn, this.input, this.sendBtn);

    // Nobody can answer now (no agent available, or outside business hours): a message is left instead.
    this.offline = el("form", "hc-offline");
    this.offline.hidden = true;
    this.offlineLead = el("p", "hc-prechat-lead");
    this.offline.append(this.offlineLead);
    this.offNameIn = this.field(this.offline, "Name", "text", "name");
    this.offEmailIn = this.field(this.offline, "Email (so we can reply)", "email", "email");
    const msgWrap = el("label", "hc-field");
    this.offTextIn = el("textarea");
    this.offTextIn.name = "message";
    this.offTextIn.rows = 3;
    this.offTextIn.required = true;
    this.offTextIn.maxLength = c.max_message_chars;
    msgWrap.append(el("span", null, "Message"), this.offTextIn);
    this.offline.append(msgWrap);
    const leave = el("button", "hc-primary", "Send message");
    leave.type = "submit";
    this.offline.append(leave);

    this.prechat = null;
    if (c.prechat_form && !this.client.profile && !this.client.identity) {
      this.prechat = el("form", "hc-prechat");
      this.prechat.append(el("p", "hc-prechat-lead", "Before we start, how can we reach you?"));
      this.nameIn = this.field(this.prechat, "Name", "text", "name");
      this.emailIn = this.field(this.prechat, "Email", "email", "email");
      const go = el("button", "hc-primary", "Start chat");
      go.type = "submit";
      this.prechat.append(go);
      this.form.hidden = true;
    }

    const footer = el("div", "hc-footer", "Powered by hub");
    this.frame.append(header, this.list, this.typingEl, this.notice);
    if (this.prechat) this.frame.append(this.prechat);
    this.frame.append(this.offline, this.form, footer);

    if (this.page) {
      root.append(this.frame);
      return;
    }
    this.launcher = el("button", "hc-launcher");
    this.launcher.type = "button";
    this.launcher.setAttribute("aria-label", "Open chat");
    this.launcher.append(icon(ICONS.chat, 26), el("span", "hc-badge"));
    this.badge = this.launcher.lastChild;
    this.badge.hidden = true;
    this.unread = 0;
    this.frame.hidden = true;
    root.append(this.frame, this.launcher);
  }

  field(form, label, type, name) {
    const wrap = el("label", "hc-field");
    const input = el("input");
    input.type = type;
    input.name = name;
    input.autocomplete = name;
    input.maxLength = 200;
    wrap.append(el("span", null, label), input);
    form.append(wrap);
    return input;
  }

  wire() {
    const cl = this.client;
    cl.addEventListener("state", (e) => this.showState(e.detail));
    cl.addEventListener("welcome", (e) => this.restore(e.detail));
    cl.addEventListener("ack", (e) => this.acked(e.detail));
    cl.addEventListener("message", (e) => this.incoming(e.detail));
    cl.addEventListener("typing", (e) => this.agentTyping(e.detail));
    cl.addEventListener("error", (e) => this.problem(e.detail));
    cl.addEventListener("resolved", (e) => this.resolved(e.detail));
    this.attachBtn.addEventListener("click", () => this.fileIn.click());
    this.fileIn.addEventListener("change", () => this.attach());
    this.offline.addEventListener("submit", (e) => {
      e.preventDefault();
      this.leaveMessage();
    });
    this.refreshAvailability();
    this.availabilityTimer = setInterval(() => this.refreshAvailability(), AVAILABILITY_EVERY);

    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => {
      this.grow();
      if (!this.sentTyping) {
        this.sentTyping = true;
        cl.typing(true);
      }
      clearTimeout(this.typingTimer);
      this.typingTimer = setTimeout(() => {
        this.sentTyping = false;
        cl.typing(false);
      }, 2500);
    });
    if (this.prechat) {
      this.prechat.addEventListener("submit", (e) => {
        e.preventDefault();
        cl.setProfile({ name: this.nameIn.value.trim(), email: this.emailIn.value.trim() });
        this.prechat.remove();
        this.prechat = null;
        this.form.hidden = false;
        this.input.focus();
      });
    }
    if (this.launcher) {
      this.launcher.addEventListener("click", () => this.toggle());
      this.closeBtn.addEventListener("click", () => this.toggle(false));
    }
    for (const m of cl.queue) this.render({ ...m, direction: "in", pending: true });
  }

  toggle(open = this.frame.hidden) {
    this.frame.hidden = !open;
    this.launcher.classList.toggle("hc-open", open);
    this.launcher.setAttribute("aria-label", open ? "Close chat" : "Open chat");
    if (open) {
      this.unread = 0;
      this.badge.hidden = true;
      this.scroll();
      (this.prechat ? this.nameIn : this.input).focus();
    }
  }

  grow() {
    this.input.style.height = "auto";
    this.input.style.height = Math.min(this.input.scrollHeight, 120) + "px";
  }

  showState(state) {
    this.frame.dataset.state = state;
    this.statusText.textContent =
      state === "online" ? this.availabilityText()
        : state === "offline" ? "Offline · we'll send your messages when you're back"
          : "Connecting…";
  }

  // What the header says once connected: who can answer now, from /webchat/availability, never a promise.
  availabilityText() {
    const a = this.availability;
    if (!a) return this.agentName ? `${this.config.team_name}` : "";
    const wait = a.expected_wait_seconds != null ? ` · typically replies in ${minutes(a.expected_wait_seconds)}` : "";
    if (a.state === "online") return `${this.agentName ? "Online" : "We're online"}${wait}`;
    if (a.state === "busy") return a.expected_wait_seconds != null
      ? `All agents are busy · expected wait ${minutes(a.expected_wait_seconds)}`
      : "All agents are busy · we'll answer as soon as we can";
    if (a.state === "closed") return a.opens_at ? `We're closed · back ${opensAt(a.opens_at)}` : "We're closed";
    return "No one is available right now · leave a message";
  }

  async refreshAvailability() {
    try {
      this.availability = await this.client.availability();
    } catch {
      return; // keep the last answer; the socket state still shows
    }
    this.frame.dataset.availability = this.availability.state;
    this.showState(this.client.state);
    this.showOfflineForm();
  }

  showOfflineForm() {
    const a = this.availability;
    const nobody = a && (a.state === "away" || a.state === "closed");
    // A visitor already talking with us keeps the conversation; the form is for someone starting one.
    const show = Boolean(nobody && !this.started);
    this.offline.hidden = !show;
    if (this.prechat) this.prechat.hidden = show;
    this.form.hidden = show || Boolean(this.prechat);
    if (show) {
      this.offlineLead.textContent = a.state === "closed"
        ? `We're closed right now${a.opens_at ? ` and back ${opensAt(a.opens_at)}` : ""}. Leave a message and we'll get back to you.`
        : "No one is available right now. Leave a message and we'll get back to you.";
      const known = this.client.profile || {};
      if (known.name && !this.offNameIn.value) this.offNameIn.value = known.name;
      if (known.email && !this.offEmailIn.value) this.offEmailIn.value = known.email;
      const signed = Boolean(this.client.identity);
      this.offNameIn.parentNode.hidden = signed;
      this.offEmailIn.parentNode.hidden = signed;
    }
  }

  leaveMessage() {
    const text = this.offTextIn.value.trim();
    if (!text) return;
    const email = this.offEmailIn.value.trim();
    const name = this.offNameIn.value.trim();
    if ((name || email) && !this.client.identity) this.client.setProfile({ name, email });
    const m = this.client.send(text, { offline: true });
    this.started = true;
    this.offTextIn.value = "";
    this.render({ ...m, direction: "in", pending: true });
    this.list.append(el("div", "hc-system", email
      ? `Thanks! We got your message and will reply here or at ${email}.`
      : "Thanks! We got your message and will reply here; come back to this page to read it."));
    this.showOfflineForm();
    this.scroll();
  }

  async attach() {
    const chosen = Array.from(this.fileIn.files || []);
    this.fileIn.value = "";
    if (!chosen.length) return;
    const most = this.config.max_files || 5;
    const limit = this.config.max_file_bytes || 0;
    if (chosen.length > most) return this.problem({ reason: `You can send up to ${most} files at once.` });
    const big = chosen.find((f) => f.size > limit);
    if (big) return this.problem({ reason: `${big.name} is too large: files can be up to ${size(limit)}.` });
    let files;
    try {
      files = await Promise.all(chosen.map(async (f) => ({
        name: f.name, type: f.type || "application/octet-stream", data: await base64(f) })));
    } catch {
      return this.problem({ reason: "That file could not be read." });
    }
    const text = this.input.value.trim();
    const m = this.client.send(text, { files });
    this.started = true;
    this.render({ ...m, direction: "in", pending: true,
      attachments: chosen.map((f) => ({ filename: f.name, size: f.size })) });
    this.input.value = "";
    this.grow();
    this.scroll();
  }

  async download(a, link) {
    link.setAttribute("aria-busy", "true");
    try {
      const file = await this.client.fetchFile(a.id);
      const url = URL.createObjectURL(file);
      const save = el("a");
      save.href = url;
      save.download = file.name;
      save.rel = "noopener";
      this.frame.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (e) {
      this.problem({ reason: `Could not download ${a.filename}: ${e.message}` });
    } finally {
      link.removeAttribute("aria-busy");
    }
  }

  resolved(frame) {
    this.hideTyping();
    const id = String(frame.conversation_id);
    if (Array.from(this.list.querySelectorAll(".hc-resolved")).some((n) => n.dataset.conversation === id)) return;
    const who = this.agentName || this.config.team_name;
    const line = el("div", "hc-system hc-resolved", `${who} marked this conversation as resolved. ` +
      "Need anything else? Just write here.");
    line.dataset.conversation = id;
    this.list.append(line);
    this.scroll();
  }

  restore(welcome) {
    for (const m of welcome.history) this.render(m);
    if (welcome.history.length) this.started = true;
    if (welcome.resolved) this.resolved({ conversation_id: welcome.resolved });
    this.showOfflineForm();
    if (welcome.identity_error) console.warn("hub chat:", welcome.identity_error);
    this.scroll();
  }

  acked(frame) {
    const bubble = this.byKey.get(frame.client_id);
    if (!bubble) return;
    bubble.classList.remove("hc-pending");
    if (frame.message) this.byKey.set(frame.message.id, bubble);
  }

  incoming(m) {
    this.render(m);
    if (m.direction === "out") {
      this.hideTyping();
      if (this.launcher && this.frame.hidden) {
        this.unread += 1;
        this.badge.textContent = String(this.unread);
        this.badge.hidden = false;
      }
    }
    this.scroll();
  }

  render(m) {
    const known = this.byKey.get(m.id) || (m.client_id && this.byKey.get(m.client_id));
    if (known) {
      if (!m.pending) known.classList.remove("hc-pending");
      if (m.id) this.byKey.set(m.id, known);
      return;
    }
    const mine = m.direction === "in";
    const row = el("div", mine ? "hc-row hc-mine" : "hc-row hc-theirs");
    if (m.pending) row.classList.add("hc-pending");
    const prev = this.list.lastElementChild;
    const sameAuthor = prev && prev.dataset.author === (mine ? "me" : m.agent_name || "team");
    row.dataset.author = mine ? "me" : m.agent_name || "team";
    if (!mine) {
      if (m.agent_name) this.setAgent(m.agent_name);
      const face = el("div", "hc-face", sameAuthor ? "" : initials(m.agent_name || this.config.team_name));
      if (sameAuthor) face.classList.add("hc-face-empty");
      row.append(face);
    }
    const col = el("div", "hc-col");
    if (!mine && !sameAuthor) col.append(el("div", "hc-name", m.agent_name || this.config.team_name));
    const bubble = el("div", "hc-bubble", m.text);
    if (!m.text) bubble.hidden = true; // a file alone
    const meta = el("div", "hc-meta", clock(m.created_at));
    if (mine) meta.append(el("span", "hc-tick"));
    for (const a of m.attachments || []) {
      if (a.id) {
        const link = el("button", "hc-file");
        link.append(icon(ICONS.attach, 14), a.filename);
        link.type = "button";
        link.title = `Download ${a.filename}`;
        link.addEventListener("click", () => this.download(a, link));
        col.append(link);
      } else {
        const item = el("div", "hc-file");
        item.append(icon(ICONS.attach, 14), a.filename);
        col.append(item);
      }
    }
    col.append(bubble, meta);
    if (!mine && m.survey) col.append(this.ratingForm(m.survey));
    if (mine && m.rated) this.rated(m.rated);
    row.append(col);
    this.list.append(row);
    if (m.id) this.byKey.set(m.id, row);
    if (m.client_id) this.byKey.set(m.client_id, row);
  }

  // A satisfaction survey's answer: a score from 1 to 5 and an optional comment, sent like a message (queued and
  // retried until the hub acknowledges it), so it lands on the conversation like any reply.
  ratingForm(survey) {
    const form = el("form", "hc-rating");
    form.setAttribute("aria-label", "Rate your conversation");
    const scores = el("div", "hc-scores");
    scores.setAttribute("role", "group");
    scores.setAttribute("aria-label", "Score from 1 (very unhappy) to 5 (very happy)");
    let chosen = 0;
    const comment = el("input", "hc-rating-comment");
    comment.type = "text";
    comment.placeholder = "Anything to add? (optional)";
    comment.setAttribute("aria-label", "Comment (optional)");
    comment.maxLength = Math.min(2000, this.config.max_message_chars - 5);
    const send = el("button", "hc-primary hc-rating-send", "Send rating");
    send.type = "submit";
    send.disabled = true;
    for (let n = 1; n <= 5; n++) {
      const b = el("button", "hc-score", String(n));
      b.type = "button";
      b.setAttribute("aria-label", `${n} of 5`);
      b.setAttribute("aria-pressed", "false");
      b.addEventListener("click", () => {
        chosen = n;
        for (const other of scores.children) other.setAttribute("aria-pressed", String(other === b));
        send.disabled = false;
      });
      scores.append(b);
    }
    form.append(scores, comment, send);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!chosen) return;
      const note = comment.value.trim();
      const m = this.client.send(`${chosen}/5${note ? ` ${note}` : ""}`,
        { rating: { survey, score: chosen, comment: note } });
      this.render({ ...m, direction: "in", pending: true });
      this.rated(survey);
      this.scroll();
    });
    this.surveys.set(survey, form);
    return form;
  }

  rated(survey) {
    const form = this.surveys.get(survey);
    if (!form || !form.isConnected) return;
    form.replaceWith(el("div", "hc-rating-thanks", "Thanks for your feedback!"));
  }

  setAgent(name) {
    if (this.agentName === name) return;
    this.agentName = name;
    this.avatar.textContent = initials(name);
    this.titleEl.textContent = name;
    this.showState(this.client.state);
  }

  agentTyping(frame) {
    clearTimeout(this.hideTimer);
    if (!frame.typing) return this.hideTyping();
    this.typingEl.lastChild.textContent = `${frame.agent_name || this.config.team_name} is typing…`;
    this.typingEl.hidden = false;
    this.scroll();
    // a lost "stopped typing" must not leave the dots up forever
    this.hideTimer = setTimeout(() => this.hideTyping(), 8000);
  }

  hideTyping() {
    this.typingEl.hidden = true;
  }

  problem(frame) {
    const text = frame.code === "rate_limited" ? "You're sending messages quickly; we'll send the rest in a moment."
      : frame.reason || "Something went wrong.";
    this.notice.textContent = text;
    this.notice.hidden = false;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => { this.notice.hidden = true; }, 5000);
    if (frame.client_id && frame.code !== "rate_limited" && frame.code !== "unavailable") {
      const row = this.byKey.get(frame.client_id);
      if (row) row.classList.add("hc-failed");
    }
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    this.started = true;
    const m = this.client.send(text);
    this.render({ ...m, direction: "in", pending: true });
    this.input.value = "";
    this.grow();
    clearTimeout(this.typingTimer);
    if (this.sentTyping) {
      this.sentTyping = false;
      this.client.typing(false);
    }
    this.scroll();
  }

  scroll() {
    this.list.scrollTop = this.list.scrollHeight;
  }
}
