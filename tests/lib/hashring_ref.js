// Placement of keys by npm's `hashring` (installed with statsd, whose
// proxy.js uses it), for tests that check switchyard's rings against an
// implementation written elsewhere.
//   stdin:  {"nodes": ["HOST:PORT", ...], "keys": [...], "mode": "default"|"statsd"}
//   stdout: ["HOST:PORT", ...], one per key
// "default" is hashring's own defaults (libketama's 160 points a node);
// "statsd" builds the ring exactly as statsd's proxy.js does.
'use strict';
const HashRing = require('hashring');

let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const req = JSON.parse(input);
  let ring;
  if (req.mode === 'statsd') {
    const weights = {};
    for (const n of req.nodes) weights[n] = 100;
    ring = new HashRing(weights, 'md5', { 'max cache size': 10000, 'replicas': 0 });
  } else {
    ring = new HashRing(req.nodes);
  }
  process.stdout.write(JSON.stringify(req.keys.map((k) => ring.get(k))));
});
