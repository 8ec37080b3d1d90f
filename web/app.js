// wsx chat page: talks docs/chat-protocol.md over one WebSocket at /ws (on the /sio/ page, over
// Socket.IO: web/sio/sio.js sets window.wsxChatTransport, which stands in for the WebSocket).
//
// Rules this file keeps:
// - Everything that comes from the network or from the user is put into the page with
//   textContent / createTextNode, never innerHTML (tests/e2e checks for innerHTML assignments).
// - The connection reconnects by itself: exponential backoff with full jitter (base 500 ms,
//   factor 2, cap 15 s), a visible countdown, and a "Retry now" button while waiting. After a
//   reconnect the page re-sends `join` for the same room and name.
// - Nothing the user typed is lost. Text still in the input stays there whatever the connection
//   does. A message the user submits while not connected (or before the server answered the
//   rejoin) is QUEUED: it is shown at once as "pending" and sent after the `joined` answer; it
//   stops being pending when the server echoes it back (the sender gets its own `message`).
//   A message that was sent but not yet echoed when the connection dropped is looked up in the
//   `history` of the rejoin: if it is there it was delivered, otherwise it is sent again. The
//   history comes as its own message right after `joined`; the queue is flushed after it.
// - A token (`wsx serve --token`) comes from ?token= once: it is kept in sessionStorage (this
//   tab only) and removed from the address bar at once, so a copied link does not leak it.
//   Before every connection attempt the page asks GET /api/auth: 401 means "needs a token"
//   (the token form is shown, no reconnect loop), a network error means "down" (backoff).
// - A reconnect is not an arrival: for RECONNECT_GRACE_MS after this page rejoined, a `join`
//   presence of someone who was online before the drop is not announced (the server
//   restarted and everyone came back); a `leave` is announced only if the person has not come
//   back within RECONNECT_GRACE_MS (a reload, a short network drop).
'use strict';

(() => {
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_FACTOR = 2;
  const BACKOFF_CAP_MS = 15000;
  const TYPING_SEND_EVERY_MS = 2000; // at most one typing:true per 2 s while typing
  const TYPING_SHOW_MS = 5000; // someone's "is typing" is cleared 5 s after their last one
  const TYPING_IDLE_MS = 4000; // we send typing:false after this long without a keystroke
  const TOAST_MS = 5000;
  const GROUP_MS = 5 * 60 * 1000; // consecutive messages of one sender within 5 min are grouped
  const NAME_KEY = 'wsx.chat.name';
  const PERSON_KEY = 'wsx.chat.key';
  const TOKEN_KEY = 'wsx.chat.token';
  const RECONNECT_GRACE_MS = 15000;
  const COUNTER_FROM = 0.9; // the character counter shows from 90% of the limit

  const $ = (id) => document.getElementById(id);
  const el = {
    joinForm: $('join-form'), name: $('name'), room: $('room'), join: $('join'),
    status: $('status'), statusText: $('status-text'), retry: $('retry'), toast: $('toast'),
    roomTitle: $('room-title'), roomHint: $('room-hint'), messages: $('messages'),
    typing: $('typing'), composer: $('composer'), input: $('input'), send: $('send'),
    online: $('online'), onlineCount: $('online-count'), leave: $('leave'),
    intro: $('intro'), introText: $('intro-text'), tokenBox: $('token-box'),
    tokenForm: $('token-form'), tokenInput: $('token'), tokenWhy: $('token-why'),
    newMarker: $('new-marker'), counter: $('counter'),
  };

  const pageParams = new URLSearchParams(location.search);

  // The token: read from ?token= once, kept for this tab, and taken out of the address bar.
  let token = '';
  try { token = sessionStorage.getItem(TOKEN_KEY) || ''; } catch { /* storage blocked */ }
  if (pageParams.has('token')) {
    token = pageParams.get('token') || '';
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch { /* this page load only */ }
    const u = new URL(location.href);
    u.searchParams.delete('token');
    try { history.replaceState(null, '', u); } catch { /* file: or sandboxed */ }
  }

  // ---- state ---------------------------------------------------------------------------------

  let limits = { name: 32, room: 32, text: 2000 };
  let ws = null;
  let attempt = 0; // failed connection attempts since the last good one
  let retryTimer = 0;
  let countdownTimer = 0;
  let retryAt = 0;
  let everConnected = false;

  let want = null; // {room, name} the user asked for; re-sent as `join` after every reconnect
  let joined = null; // {room, name} as confirmed by the server's `joined`, null while not joined
  let shownRoom = null; // the room whose messages are on screen
  const seen = new Set(); // "id:ts" of messages on screen (dedupes history after a rejoin)
  let lastItem = null; // last message <li> (for grouping)

  let dropped = false; // the connection dropped since the last `joined`
  let awaitingHistory = null; // {room, rejoin, stick} between `joined` and its `history`
  // Own messages not yet echoed by the server, oldest first: {room, text, li, sent}.
  // sent=false: queued, waiting for a joined connection; sent=true: sent, echo not seen yet.
  let pending = [];

  let unread = 0; // messages that arrived while scrolled up (the marker's count)
  let unseen = 0; // messages that arrived while the tab was hidden (the title's count)
  let lastOnline = []; // names of the last online list shown
  let beforeDrop = null; // names online when the connection dropped
  let graceUntil = 0; // until then, a `join` of a name in beforeDrop is a return, not news
  const leaving = new Map(); // name -> timer of a `left` notice held for RECONNECT_GRACE_MS
  let probing = 0; // a probe of GET /api/auth is on its way (its sequence number)
  let replaying = false; // onHistory is adding the history: not "new" messages

  function clearLeaving() {
    for (const t of leaving.values()) clearTimeout(t);
    leaving.clear();
  }

  let typingSentAt = 0;
  let typingActive = false;
  let typingIdleTimer = 0;
  const typers = new Map(); // name -> timeout id

  // ---- helpers -------------------------------------------------------------------------------

  // Who this person is, for the server: a random secret made once and shared by this browser's
  // tabs (localStorage), sent with every `join`. A name present in a room belongs to the key it
  // joined with: another person cannot take it, and this person's tabs count as one.
  function personKey() {
    let k = null;
    try { k = localStorage.getItem(PERSON_KEY); } catch { /* storage blocked */ }
    if (!k || !/^[0-9a-f]{32}$/.test(k)) {
      const b = new Uint8Array(16);
      crypto.getRandomValues(b);
      k = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
      try { localStorage.setItem(PERSON_KEY, k); } catch { /* this page only, then */ }
    }
    return k;
  }
  const key = personKey();

  function wsUrl() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let url = `${proto}//${location.host}/ws`;
    if (token) url += `?token=${encodeURIComponent(token)}`;
    return url;
  }

  // The connection: a WebSocket at /ws, or the /sio/ page's Socket.IO stand-in with the same
  // interface (web/sio/sio.js; docs/chat-protocol.md, "Socket.IO").
  function newSocket() {
    const t = window.wsxChatTransport;
    return t ? t.open(token) : new WebSocket(wsUrl());
  }

  function send(obj) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  function pad2(n) { return n < 10 ? `0${n}` : String(n); }
  function hhmm(date) { return `${pad2(date.getHours())}:${pad2(date.getMinutes())}`; }

  function node(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A stable hue per name, for the avatar.
  function hue(name) {
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return h % 360;
  }

  function initial(name) {
    const first = Array.from(name.trim())[0] || '?';
    return first.toUpperCase();
  }

  function cpLen(s) { return Array.from(s).length; }

  function validName(s) {
    const n = cpLen(s);
    // eslint-disable-next-line no-control-regex
    return n >= 1 && n <= limits.name && !/[\u0000-\u001f\u007f-\u009f]/.test(s);
  }

  function validRoom(s) {
    return s.length >= 1 && s.length <= limits.room && /^[A-Za-z0-9_.-]+$/.test(s);
  }

  let toastTimer = 0;
  function toast(text) {
    el.toast.textContent = text;
    el.toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.toast.hidden = true; }, TOAST_MS);
  }

  function nearBottom() {
    const m = el.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function scrollDown() {
    el.messages.scrollTop = el.messages.scrollHeight;
    setUnread(0);
  }

  // "N new messages ↓" while scrolled up.
  function setUnread(n) {
    unread = n;
    el.newMarker.hidden = n === 0;
    el.newMarker.textContent = n === 1 ? '1 new message ↓' : `${n} new messages ↓`;
  }

  function baseTitle() { return joined ? `#${joined.room} · wsx chat` : 'wsx chat'; }
  function updateTitle() { document.title = unseen > 0 ? `(${unseen}) ${baseTitle()}` : baseTitle(); }

  // ---- connection status ---------------------------------------------------------------------

  function setStatus(state, text) {
    el.status.dataset.state = state;
    el.statusText.textContent = text;
    el.retry.hidden = !(state === 'reconnecting' || state === 'offline');
    document.body.dataset.conn = state;
    updateComposer();
  }

  function updateCountdown() {
    const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    setStatus('reconnecting', `Reconnecting in ${s}s`);
  }

  function clearRetry() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = 0;
    countdownTimer = 0;
  }

  function scheduleReconnect() {
    clearRetry();
    if (navigator.onLine === false) {
      setStatus('offline', 'Offline');
      return; // the `online` event (or "Retry now") reconnects
    }
    // Full jitter: a uniformly random delay in [0, min(cap, base * factor^attempt)].
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * BACKOFF_FACTOR ** attempt);
    const delay = Math.random() * ceiling;
    attempt++;
    retryAt = Date.now() + delay;
    updateCountdown();
    countdownTimer = setInterval(updateCountdown, 250);
    retryTimer = setTimeout(connect, delay);
  }

  // Asks the server whether this page may connect (GET /api/auth, docs/chat-protocol.md):
  // 401 shows the token form; no answer at all is "down" (backoff); anything else connects.
  function connect() {
    clearRetry();
    if (ws) {
      ws.onopen = ws.onclose = ws.onerror = ws.onmessage = null;
      try { ws.close(); } catch { /* ignore */ }
      ws = null;
    }
    setStatus('connecting', everConnected ? 'Reconnecting…' : 'Connecting…');
    const seq = ++probing;
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    fetch('/api/auth', { headers, cache: 'no-store' }).then((res) => {
      if (seq !== probing) return;
      if (res.status === 401) needToken();
      else openSocket();
    }, () => {
      if (seq !== probing) return;
      scheduleReconnect();
    });
  }

  function needToken() {
    setStatus('locked', 'Needs an access token');
    el.retry.hidden = true;
    document.body.dataset.locked = '1';
    el.tokenBox.hidden = false;
    el.tokenWhy.textContent = token
      ? 'That token was not accepted. Check it and try again.'
      : 'Ask whoever runs it for the token (wsx serve --token).';
    el.tokenWhy.dataset.state = token ? 'wrong' : 'needed';
    el.tokenInput.value = '';
    el.tokenInput.focus();
  }

  function submitToken() {
    const t = el.tokenInput.value.trim();
    if (!t) { el.tokenInput.focus(); return; }
    token = t;
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch { /* this page load only */ }
    el.tokenBox.hidden = true;
    delete document.body.dataset.locked;
    connect();
  }

  function openSocket() {
    if (document.body.dataset.locked) {
      delete document.body.dataset.locked;
      el.tokenBox.hidden = true;
      (want ? el.input : el.name).focus();
    }
    let sock;
    try {
      sock = newSocket();
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.onopen = () => {
      if (ws !== sock) return;
      setStatus('connecting', 'Connected, waiting for server…');
    };
    sock.onmessage = (ev) => { if (ws === sock) onFrame(ev.data); };
    sock.onclose = () => {
      if (ws !== sock) return;
      ws = null;
      lostConnection();
      scheduleReconnect();
    };
    sock.onerror = () => { /* onclose follows */ };
  }

  function lostConnection() {
    const wasJoined = joined !== null;
    if (wasJoined) beforeDrop = new Set(lastOnline);
    joined = null;
    awaitingHistory = null;
    dropped = true;
    typingActive = false;
    clearTimeout(typingIdleTimer);
    for (const t of typers.values()) clearTimeout(t);
    typers.clear();
    renderTyping();
    if (wasJoined) notice('Connection lost');
  }

  function retryNow() {
    if (document.body.dataset.locked) return; // the token form is waiting
    attempt = Math.max(0, attempt - 1); // a manual retry does not grow the backoff
    connect();
  }

  // ---- incoming ------------------------------------------------------------------------------

  function onFrame(data) {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (!msg || typeof msg !== 'object') return;
    switch (msg.type) {
      case 'welcome': onWelcome(msg); break;
      case 'joined': onJoined(msg); break;
      case 'history': onHistory(msg); break;
      case 'message': onMessage(msg); break;
      case 'presence': onPresence(msg); break;
      case 'online': onOnline(msg); break; // tab count changes (not in the doc's table yet)
      case 'typing': onTyping(msg); break;
      case 'error': onError(msg); break;
      default: break;
    }
  }

  function onWelcome(msg) {
    attempt = 0;
    if (msg.limits && typeof msg.limits === 'object') {
      for (const k of ['name', 'room', 'text']) {
        if (Number.isInteger(msg.limits[k]) && msg.limits[k] > 0) limits[k] = msg.limits[k];
      }
      updateCounter();
    }
    const reconnect = everConnected;
    everConnected = true;
    if (want) {
      if (!joined && document.body.dataset.joined === '0') el.introText.textContent = `Joining #${want.room}…`;
      setStatus('connecting', reconnect ? 'Rejoining…' : 'Joining…');
      send({ type: 'join', room: want.room, name: want.name, key });
    } else {
      setStatus('connected', 'Connected');
    }
  }

  function onJoined(msg) {
    const room = String(msg.room);
    const name = String(msg.name);
    const rejoin = shownRoom === room;
    const oldName = joined ? joined.name : null;
    joined = { room, name };
    want = { room, name };
    if (!rejoin) {
      // A different room: start a fresh list. Messages queued for another room are dropped;
      // those queued for this one (submitted before the first `joined`) stay.
      pending = pending.filter((p) => p.room === room);
      el.messages.replaceChildren();
      seen.clear();
      lastItem = null;
      shownRoom = room;
      clearLeaving();
      setUnread(0);
    }
    el.roomTitle.textContent = room;
    el.roomHint.textContent = `You are ${name}`;
    updateTitle();
    document.body.dataset.joined = '1';
    el.leave.hidden = false;
    if (el.room.value !== room) el.room.value = room;
    syncUrl(room);

    const stick = nearBottom();
    if (!rejoin) notice(`You joined #${room}`);
    else if (dropped) notice('Reconnected');
    else if (oldName !== null && oldName !== name) notice(`You are now ${name}`);
    if (rejoin && dropped && beforeDrop) graceUntil = Date.now() + RECONNECT_GRACE_MS;
    // Typing goes to the message box once in a room (not to the join form's fields).
    if (!rejoin || (!dropped && oldName !== name)) el.input.focus();
    dropped = false;
    renderOnline(msg.online);
    setStatus('connected', 'Connected');
    // The room's `history` follows; pending messages wait for it.
    awaitingHistory = { room, rejoin, stick };
  }

  function onHistory(msg) {
    const a = awaitingHistory;
    if (!a || String(msg.room) !== a.room) return;
    awaitingHistory = null;
    // Add what is not on screen yet. A sent-but-unechoed message of ours that shows up in it
    // was delivered before the drop.
    if (Array.isArray(msg.messages)) {
      replaying = true;
      try { for (const m of msg.messages) onMessage(m); } finally { replaying = false; }
    }
    if (!a.rejoin) {
      for (const p of pending) appendMessage(p.li);
    }
    // Flush: everything still pending (queued, or sent on the old connection and not in the
    // history) is sent now, in order.
    for (const p of pending) {
      if (send({ type: 'message', text: p.text })) p.sent = true;
    }
    if (a.stick || !a.rejoin) scrollDown();
  }

  function onMessage(m) {
    if (!m || typeof m !== 'object') return;
    if (shownRoom !== null && m.room !== undefined && m.room !== shownRoom) return;
    const key = `${m.id}:${m.ts}`;
    if (seen.has(key)) return;
    seen.add(key);
    const name = String(m.name ?? '');
    const text = String(m.text ?? '');
    const ts = Number(m.ts) || Date.now();
    const mine = joined !== null && name === joined.name;
    const stick = nearBottom();

    // Our own echo: turn the oldest matching pending item into the real message.
    if (mine) {
      const i = pending.findIndex((p) => p.sent && p.text === text);
      if (i >= 0) {
        const p = pending[i];
        pending.splice(i, 1);
        confirmPending(p.li, m, ts);
        return;
      }
    }
    // Someone's message ends their typing.
    clearTyper(name);
    const li = messageItem(name, text, ts, mine, 'sent');
    li.dataset.id = String(m.id);
    appendMessage(li);
    if (stick || mine) scrollDown();
    else if (!replaying) setUnread(unread + 1);
    if (document.hidden && !mine && !replaying) {
      unseen++;
      updateTitle();
    }
  }

  function onPresence(msg) {
    if (msg.room !== undefined && msg.room !== shownRoom) return;
    const name = String(msg.name ?? '');
    // The joiner gets its own presence too: "You joined" already said it.
    const self = joined !== null && name === joined.name;
    if (msg.event === 'join' && !self) {
      const held = leaving.get(name);
      if (held !== undefined) {
        // Back within the grace period: neither a departure nor an arrival.
        clearTimeout(held);
        leaving.delete(name);
      } else if (!(beforeDrop && beforeDrop.has(name) && Date.now() < graceUntil)) {
        notice(`${name} joined`);
      }
    } else if (msg.event === 'leave') {
      if (!self && !leaving.has(name)) {
        const at = new Date();
        leaving.set(name, setTimeout(() => {
          leaving.delete(name);
          notice(`${name} left`, at);
        }, RECONNECT_GRACE_MS));
      }
      clearTyper(name);
    }
    if (Array.isArray(msg.online)) renderOnline(msg.online);
  }

  // {type:"online", room, online}: someone's number of tabs changed (no one arrived or left).
  function onOnline(msg) {
    if (msg.room !== undefined && msg.room !== shownRoom) return;
    renderOnline(msg.online);
  }

  function onTyping(msg) {
    if (msg.room !== undefined && msg.room !== shownRoom) return;
    const name = String(msg.name ?? '');
    if (!name || (joined && name === joined.name)) return;
    clearTyper(name);
    if (msg.typing) {
      typers.set(name, setTimeout(() => clearTyper(name), TYPING_SHOW_MS));
    }
    renderTyping();
  }

  const ERROR_TEXT = {
    bad_name: 'That name is not allowed.',
    bad_room: 'Room names use letters, digits, "_", "." and "-" only.',
    bad_text: 'That message is empty or too long.',
    not_joined: 'Join a room first.',
    slow_down: 'The server is waiting for this page to catch up.',
    name_taken: 'Someone else in this room goes by that name.',
    rate_limited: 'You are sending too fast; wait a moment.',
  };

  function onError(msg) {
    const code = String(msg.code ?? 'error');
    const text = msg.message ? String(msg.message) : (ERROR_TEXT[code] || code);
    // The server's message in brackets only where it says more than ours.
    const same = (x, y) => x.toLowerCase().replace(/[.\s]+$/, '') === y.toLowerCase().replace(/[.\s]+$/, '');
    const friendly = ERROR_TEXT[code];
    toast(friendly && msg.message && !same(friendly, text) ? `${friendly} (${text})` : friendly || text);
    if (code === 'bad_text' || code === 'rate_limited') {
      // The oldest sent message of ours was refused: keep it visible, marked as failed.
      const i = pending.findIndex((p) => p.sent);
      if (i >= 0) { markFailed(pending[i].li); pending.splice(i, 1); }
    } else if (code === 'name_taken') {
      // The join was refused: stay as we are (and rejoin as that after a reconnect).
      want = joined ? { room: joined.room, name: joined.name } : null;
      if (!joined) {
        setStatus('connected', 'Connected');
        el.introText.textContent = `"${el.name.value}" is taken in #${el.room.value}: pick another name.`;
      }
      el.name.focus();
    } else if ((code === 'bad_name' || code === 'bad_room') && !joined) {
      want = null;
      setStatus('connected', 'Connected');
      (code === 'bad_name' ? el.name : el.room).focus();
    } else if (code === 'slow_down' && want) {
      // The join was refused while too much was queued for us. The server answers that once;
      // joins it gets while the queue is still full go unanswered, so ask again every second
      // until one is answered (or the wish changed, or 30 tries).
      const w = want;
      let tries = 0;
      const retry = () => {
        if (want !== w || (joined && joined.room === w.room && joined.name === w.name)) return;
        if (++tries > 30) return;
        send({ type: 'join', room: w.room, name: w.name, key });
        setTimeout(retry, 1000);
      };
      setTimeout(retry, 1000);
    }
  }

  // ---- rendering -----------------------------------------------------------------------------

  function messageItem(name, text, ts, mine, state) {
    const li = node('li', 'msg');
    li.dataset.testid = 'message';
    li.dataset.state = state;
    li.dataset.name = name;
    li.dataset.ts = String(ts);
    if (mine) li.classList.add('mine');

    const avatar = node('span', 'avatar', initial(name));
    avatar.setAttribute('aria-hidden', 'true');
    avatar.style.setProperty('--h', String(hue(name)));

    const body = node('div', 'body');
    const meta = node('div', 'meta');
    const who = node('span', 'who', name);
    who.dataset.testid = 'message-name';
    const time = node('time', 'time');
    setTime(time, ts);
    const flag = node('span', 'flag');
    flag.dataset.testid = 'message-state';
    meta.append(who, time, flag);
    const txt = node('div', 'text');
    txt.append(...linkify(text));
    txt.dataset.testid = 'message-text';
    body.append(meta, txt);
    li.append(avatar, body);
    if (state === 'pending') flag.textContent = 'pending';
    return li;
  }

  // Text nodes and <a> for the http(s) links in text; never parsed as HTML. Punctuation that
  // ends a sentence is not part of the link.
  function linkify(text) {
    const out = [];
    const re = /\bhttps?:\/\/[^\s<>"']+/gi;
    let at = 0;
    for (const m of text.matchAll(re)) {
      let url = m[0];
      const trail = /[.,;:!?)\]}]+$/.exec(url);
      if (trail && !(trail[0].startsWith(')') && url.includes('('))) url = url.slice(0, -trail[0].length);
      if (m.index > at) out.push(document.createTextNode(text.slice(at, m.index)));
      const a = document.createElement('a');
      a.href = url;
      a.textContent = url;
      a.target = '_blank';
      a.rel = 'noopener noreferrer nofollow';
      out.push(a);
      at = m.index + url.length;
    }
    if (at < text.length) out.push(document.createTextNode(text.slice(at)));
    return out;
  }

  // HH:MM today; the date too for another day (and the year for another year).
  function stamp(d) {
    const now = new Date();
    if (d.toDateString() === now.toDateString()) return hhmm(d);
    const opts = { month: 'short', day: 'numeric' };
    if (d.getFullYear() !== now.getFullYear()) opts.year = 'numeric';
    return `${d.toLocaleDateString(undefined, opts)} ${hhmm(d)}`;
  }

  function setTime(time, ts) {
    const d = new Date(ts);
    time.dateTime = d.toISOString();
    time.title = d.toLocaleString();
    time.textContent = stamp(d);
  }

  // Groups consecutive messages of one sender (the name is still in the item, only hidden).
  function appendMessage(li) {
    const prev = lastItem;
    if (prev && prev.isConnected && prev.dataset.name === li.dataset.name
        && Math.abs(Number(li.dataset.ts) - Number(prev.dataset.ts)) < GROUP_MS) {
      li.classList.add('cont');
    }
    el.messages.append(li);
    lastItem = li;
  }

  function notice(text, at = new Date()) {
    const li = node('li', 'notice');
    li.dataset.testid = 'notice';
    li.append(node('span', 'notice-text', text), node('span', 'notice-time', stamp(at)));
    const stick = nearBottom();
    el.messages.append(li);
    lastItem = null;
    if (stick) scrollDown();
  }

  function confirmPending(li, m, ts) {
    li.dataset.state = 'sent';
    li.dataset.id = String(m.id);
    li.dataset.ts = String(ts);
    li.querySelector('.flag').textContent = '';
    setTime(li.querySelector('time'), ts);
  }

  function markFailed(li) {
    li.dataset.state = 'failed';
    li.querySelector('.flag').textContent = 'not sent';
  }

  function renderOnline(list) {
    if (!Array.isArray(list)) return;
    const items = [];
    for (const p of list) {
      const name = String(p && p.name !== undefined ? p.name : '');
      const tabs = Number(p && p.tabs) || 1;
      const li = node('li', 'person');
      li.dataset.testid = 'online-entry';
      li.dataset.name = name;
      const avatar = node('span', 'avatar small', initial(name));
      avatar.setAttribute('aria-hidden', 'true');
      avatar.style.setProperty('--h', String(hue(name)));
      const who = node('span', 'person-name', name);
      who.dataset.testid = 'online-name';
      li.append(avatar, who);
      if (joined && name === joined.name) li.append(node('span', 'you', '(you)'));
      if (tabs > 1) {
        const badge = node('span', 'badge', `×${tabs} tabs`);
        badge.dataset.testid = 'online-tabs';
        li.append(badge);
      }
      items.push(li);
    }
    el.online.replaceChildren(...items);
    el.onlineCount.textContent = String(items.length);
    lastOnline = items.map((li) => li.dataset.name);
  }

  function clearTyper(name) {
    const t = typers.get(name);
    if (t !== undefined) {
      clearTimeout(t);
      typers.delete(name);
      renderTyping();
    }
  }

  function renderTyping() {
    const names = [...typers.keys()];
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = `${names.length} people are typing…`;
    el.typing.textContent = text;
  }

  function updateComposer() {
    // Sending is never disabled by the connection (submits are queued); it only needs a name.
    el.send.disabled = false;
  }

  // The counter shows from COUNTER_FROM of the limit; past the limit it turns red and Send
  // refuses (the text is kept, never cut).
  function updateCounter() {
    const n = cpLen(el.input.value.trim());
    el.counter.hidden = n < Math.floor(limits.text * COUNTER_FROM);
    el.counter.textContent = `${n} / ${limits.text}`;
    el.counter.dataset.over = n > limits.text ? '1' : '0';
    el.counter.title = n > limits.text ? `${n - limits.text} characters too many` : '';
  }

  // The message box grows with its lines, up to the CSS max-height.
  function autosize() {
    el.input.style.height = 'auto';
    el.input.style.height = `${el.input.scrollHeight + 2}px`;
  }

  function syncUrl(room) {
    const u = new URL(location.href);
    if (u.searchParams.get('room') === room) return;
    u.searchParams.set('room', room);
    try { history.replaceState(null, '', u); } catch { /* file: or sandboxed */ }
  }

  // ---- outgoing ------------------------------------------------------------------------------

  function doJoin() {
    const name = el.name.value.trim();
    const room = el.room.value.trim() || 'lobby';
    if (!validName(name)) {
      toast(name ? `A name is 1 to ${limits.name} characters, no control characters.` : 'Enter a name first.');
      el.name.focus();
      return false;
    }
    if (!validRoom(room)) {
      toast(ERROR_TEXT.bad_room);
      el.room.focus();
      return false;
    }
    el.name.value = name;
    el.room.value = room;
    try { localStorage.setItem(NAME_KEY, name); } catch { /* storage disabled */ }
    if (joined && joined.room === room && joined.name === name) return true; // nothing to change
    want = { room, name };
    if (joined && room !== joined.room) stopTyping();
    if (send({ type: 'join', room, name, key })) {
      setStatus('connecting', 'Joining…');
    } else if (!ws) {
      retryNow();
    }
    return true;
  }

  function submitMessage() {
    const text = el.input.value.trim();
    if (!text) return;
    const n = cpLen(text);
    if (n > limits.text) {
      toast(`A message is at most ${limits.text} characters; this one has ${n}. Nothing was sent.`);
      return;
    }
    if (!want) {
      // Not joined yet: join with what the form has, then send.
      if (!doJoin()) return;
    }
    const li = messageItem(want.name, text, Date.now(), true, 'pending');
    appendMessage(li);
    scrollDown();
    const p = { room: want.room, text, li, sent: false };
    pending.push(p);
    if (joined && send({ type: 'message', text })) p.sent = true;
    el.input.value = '';
    updateCounter();
    autosize();
    stopTyping();
    el.input.focus();
  }

  // Leave: the room is left on the server and the page goes back to the join form.
  function doLeave() {
    if (joined) send({ type: 'leave' });
    stopTyping();
    want = null;
    joined = null;
    shownRoom = null;
    pending = [];
    el.messages.replaceChildren();
    seen.clear();
    lastItem = null;
    renderOnline([]);
    clearLeaving();
    setUnread(0);
    el.leave.hidden = true;
    document.body.dataset.joined = '0';
    el.introText.textContent = 'You left the room. Pick a name and a room above, then Join.';
    updateTitle();
    if (ws) setStatus('connected', 'Connected');
    el.name.focus();
  }

  function onInputTyping() {
    if (!joined) return;
    if (el.input.value.trim() === '') { stopTyping(); return; }
    const now = Date.now();
    if (now - typingSentAt >= TYPING_SEND_EVERY_MS) {
      if (send({ type: 'typing', typing: true })) {
        typingSentAt = now;
        typingActive = true;
      }
    }
    clearTimeout(typingIdleTimer);
    typingIdleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    clearTimeout(typingIdleTimer);
    if (typingActive) {
      typingActive = false;
      typingSentAt = 0;
      if (joined) send({ type: 'typing', typing: false });
    }
  }

  // ---- wiring --------------------------------------------------------------------------------

  el.joinForm.addEventListener('submit', (e) => { e.preventDefault(); doJoin(); });
  el.composer.addEventListener('submit', (e) => { e.preventDefault(); submitMessage(); });
  el.input.addEventListener('input', () => { onInputTyping(); updateCounter(); autosize(); });
  // Enter sends, Shift+Enter is a new line (not while an IME is composing).
  el.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submitMessage();
    }
  });
  el.leave.addEventListener('click', doLeave);
  el.tokenForm.addEventListener('submit', (e) => { e.preventDefault(); submitToken(); });
  el.newMarker.addEventListener('click', scrollDown);
  el.messages.addEventListener('scroll', () => { if (unread && nearBottom()) setUnread(0); });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && unseen) { unseen = 0; updateTitle(); }
  });
  el.input.addEventListener('blur', () => { if (el.input.value.trim() === '') stopTyping(); });
  el.retry.addEventListener('click', retryNow);
  window.addEventListener('online', () => { if (!ws) retryNow(); });
  window.addEventListener('offline', () => { if (!ws) scheduleReconnect(); });

  // Initial values: room from ?room= (else "lobby"), name from localStorage.
  const urlRoom = (pageParams.get('room') || '').trim();
  el.room.value = urlRoom || 'lobby';
  el.roomTitle.textContent = el.room.value;
  let storedName = '';
  try { storedName = localStorage.getItem(NAME_KEY) || ''; } catch { /* storage disabled */ }
  el.name.value = storedName;
  if (storedName && validName(storedName) && validRoom(el.room.value)) {
    want = { room: el.room.value, name: storedName };
    el.input.focus();
  } else {
    el.name.focus();
  }

  connect();
})();
