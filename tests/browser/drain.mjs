// One headless browser page (launch.mjs) with sipbridge.js holding many calls at once, for the drain test: one
// connection (ACCEPT_TOKEN's user) accepts the first ACCEPT incoming calls; connections for the
// PLACE_TOKENS place PLACE calls to TARGET, 4 per connection (the gateway's per-connection limit).
// Prints `READY` once logged in, `ESTABLISHED` once every call is answered, then
// `{ok, ended: [{direction, reason, cause}]}` once every call has ended (the gateway ends them when
// it shuts down), or after 60 s.
// Usage: node drain.mjs BASE_URL ACCEPT_TOKEN ACCEPT TARGET PLACE PLACE_TOKEN...
import { launch } from './launch.mjs';

const [baseUrl, token, accept, target, place, ...placeTokens] = process.argv.slice(2);
const browser = await launch({ media: true, toneHz: 440 });
let result;
try {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.text() === 'ESTABLISHED' || m.text() === 'READY') console.log(m.text()); });
  await page.goto(`${baseUrl}/phone.html`);
  result = await page.evaluate(async ({ token, target, place, accept, placeTokens }) => {
    const { SipBridge } = await import('/sipbridge.js');
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const url = location.origin.replace(/^http/, 'ws') + '/ws';
    const client = await SipBridge.connect(url, { token, reconnect: false });
    const callers = await Promise.all(placeTokens.map((t) => SipBridge.connect(url, { token: t, reconnect: false })));
    const ended = [];
    const answered = [];
    const track = (call, direction) => {
      answered.push(new Promise((resolve) => { call.on('answered', resolve); call.on('ended', resolve); }));
      return new Promise((resolve) => call.on('ended', (info) => { ended.push({ direction, ...info }); resolve(); }));
    };
    const ends = [];
    let incoming = 0;
    const allIncoming = new Promise((resolve) => {
      if (accept === 0) resolve();
      client.on('incoming', (call) => {
        if (++incoming > accept) { call.reject('busy'); return; }
        ends.push(track(call, 'from SIP'));
        call.accept({ stream }).then(() => call.emit('answered'), () => {});
        if (incoming === accept) resolve();
      });
    });
    console.log('READY');
    for (let i = 0; i < place; i++) ends.push(track(callers[Math.floor(i / 4)].call(target, { stream }), 'to SIP'));
    await allIncoming;
    await Promise.all(answered);
    console.log('ESTABLISHED');
    const timeout = new Promise((resolve) => setTimeout(resolve, 60000));
    await Promise.race([Promise.all(ends), timeout]);
    return { ok: ended.length === place + accept, ended };
  }, { token, target, place: Number(place), accept: Number(accept), placeTokens });
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
