// What the capture scripts share: raw HTTP exchanges with a local socket.io server, and
// printing what came back. docs/socketio.md, "Reference bytes".
const net = require("net");

// Writes req to 127.0.0.1:port and collects the answer until the peer closes, `quiet` ms
// pass without data, or `wait` ms in all.
function raw(port, req, wait, quiet) {
  return new Promise((res) => {
    const c = net.connect(port, "127.0.0.1", () => c.write(req));
    let buf = Buffer.alloc(0), t;
    const done = () => { c.destroy(); res(buf); };
    c.on("data", (d) => { buf = Buffer.concat([buf, d]); clearTimeout(t); t = setTimeout(done, quiet || 100); });
    c.on("end", done); c.on("error", done);
    t = setTimeout(done, wait || 1500);
  });
}

// A capture's helpers bound to its quiet time and the encoding it reads bodies in.
function helpers({ quiet = 100, bodyEncoding = "utf8" } = {}) {
  const show = (label, b) => console.log("=== " + label + "\n" + JSON.stringify(b.toString("utf8")));
  const body = (b) => b.toString(bodyEncoding).split("\r\n\r\n").slice(1).join("\r\n\r\n");
  const get = (p, q, w) => raw(p, `GET /socket.io/?${q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, w, quiet);
  const post = (p, q, data, ct) => raw(p, `POST /socket.io/?${q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: ${ct || "text/plain;charset=UTF-8"}\r\nContent-Length: ${Buffer.byteLength(data)}\r\n\r\n${data}`, undefined, quiet);
  const sleep = (ms) => new Promise((z) => setTimeout(z, ms));
  return { raw: (p, req, w) => raw(p, req, w, quiet), show, body, get, post, sleep };
}

module.exports = { helpers };
