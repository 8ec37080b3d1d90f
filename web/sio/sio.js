// The /sio/ page: the chat of web/app.js over Socket.IO instead of the WebSocket at /ws, with
// the official socket.io-client (web/vendor/socket.io.min.js, 4.8.4, served from the binary).
// docs/chat-protocol.md, "Socket.IO": every chat object travels as the event named by its
// "type", with the object itself as the one argument.
//
// app.js drives a WebSocket; this file gives it the same small interface (readyState, send,
// close, onopen, onmessage, onclose) on one Socket.IO connection, so the page keeps its own
// reconnection (backoff, countdown, "Retry now", the /api/auth probe, the queue of unsent
// messages): socket.io-client's reconnection is off, and a connection that ends is reported as
// a close, after which app.js opens a new one.
//
// Transports: HTTP long-polling first, then the upgrade to WebSocket (socket.io-client's
// default), so the chat works where a proxy or firewall blocks WebSocket. ?transport=polling
// or ?transport=websocket in the page's address forces one (for trying both side by side).
'use strict';

(() => {
  const CONNECTING = 0;
  const OPEN = 1;
  const CLOSED = 3;
  const forced = new URLSearchParams(location.search).get('transport');
  const transports = forced === 'polling' || forced === 'websocket' ? [forced] : ['polling', 'websocket'];

  window.wsxChatTransport = {
    name: 'socket.io',
    open(token) {
      const t = {
        readyState: CONNECTING,
        onopen: null,
        onmessage: null,
        onclose: null,
        onerror: null,
        send(text) {
          if (t.readyState !== OPEN) return;
          const obj = JSON.parse(text);
          sock.emit(String(obj.type), obj);
        },
        close() {
          if (t.readyState === CLOSED) return;
          t.readyState = CLOSED;
          sock.disconnect();
        },
      };
      const auth = token ? { token } : {};
      const sock = window.io({
        path: '/socket.io/',
        transports,
        reconnection: false,
        forceNew: true,
        timeout: 10000,
        auth,
        query: token ? { token } : {},
      });
      const closed = (reason) => {
        if (t.readyState === CLOSED) return;
        t.readyState = CLOSED;
        sock.disconnect();
        if (t.onclose) t.onclose({ code: 1006, reason: String(reason || ''), wasClean: false });
      };
      sock.on('connect', () => {
        t.readyState = OPEN;
        document.body.dataset.transport = sock.io.engine.transport.name;
        sock.io.engine.on('upgrade', (tr) => { document.body.dataset.transport = tr.name; });
        if (t.onopen) t.onopen({});
      });
      // Every server event is a chat object: the event's name is its type. Arguments after the
      // first (a connection state recovery offset, if the server adds one) are not ours.
      sock.onAny((event, obj) => {
        if (t.readyState !== OPEN || !obj || typeof obj !== 'object' || Array.isArray(obj)) return;
        if (t.onmessage) t.onmessage({ data: JSON.stringify({ ...obj, type: String(event) }) });
      });
      sock.on('connect_error', (err) => closed(err && err.message));
      sock.on('disconnect', (reason) => closed(reason));
      return t;
    },
  };
})();
