// The compressing reference for scripts/bench: Node's `ws` echo server with
// permessage-deflate on at ws's defaults (context takeover both ways, 15-bit
// windows, zlib level default, threshold 1024 bytes). One thread, as pawl.
//
//   NODE_PATH=target/bench-node/node_modules node bench/ref/ws_deflate.js --bind 127.0.0.1:9001
//
// scripts/bench installs `ws` from the npm registry into target/bench-node
// the first time it needs it; node_modules is never committed.
'use strict';

const { WebSocketServer } = require('ws');

const i = process.argv.indexOf('--bind');
const bind = i > 0 ? process.argv[i + 1] : '127.0.0.1:9001';
const at = bind.lastIndexOf(':');
const host = bind.slice(0, at);
const port = Number(bind.slice(at + 1));

const wss = new WebSocketServer({
  host,
  port,
  perMessageDeflate: true,
  maxPayload: 64 * 1024 * 1024,
  clientTracking: false,
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});
wss.on('listening', () => console.log(`ws_deflate listening on ${bind}`));
