// Sends a fixed set of DogStatsD messages with npm's hot-shots (a real
// client, in its DogStatsD mode) to 127.0.0.1:PORT over UDP, N times each,
// then closes the client.  Used by tests/integration/test_cli.py.
//   node hotshots_send.js PORT N
'use strict';
const StatsD = require('hot-shots');

const port = Number(process.argv[2]);
const n = Number(process.argv[3] || 1);
let failed = 0;
const client = new StatsD({
  host: '127.0.0.1', port, protocol: 'udp', mock: false, telegraf: false,
  errorHandler: (e) => { failed++; console.error('hot-shots error: ' + e); },
});
for (let i = 0; i < n; i++) {
  client.increment('hs.count', 1, ['env:prod', 'route:/api/v1']);
  client.timing('hs.timer', i % 10);
  client.histogram('hs.hist', 7);
  client.distribution('hs.dist', 9, ['env:prod']);
  client.gauge('hs.gauge', 42);
  client.set('hs.set', 'member' + (i % 5));
  client.event('deploy', 'version ' + i + ' rolled out', { alert_type: 'info' }, ['env:prod']);
  client.check('db.up', client.CHECKS.OK, { message: 'fine' }, ['env:prod']);
}
client.close((err) => {
  if (err) { console.error('close: ' + err); process.exit(1); }
  process.exit(failed ? 1 : 0);
});
