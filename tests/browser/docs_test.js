// End-to-end test of the /docs page: a real otpd on loopback with the
// console SMS sender, driven in Debian's headless Chromium. Sends a code for
// abc through the page's form, reads it from the SMS log, verifies it
// through the form, tries a wrong code, screenshots /docs and /redoc, and
// fails if any request leaves loopback.
//
//   node docs_test.js            (from tests/browser; `make test-browser`)
// Environment: OTPD_BIN (default ../../otpd), CHROMIUM (/usr/bin/chromium),
// BROWSER_OUT (screenshots; default ../../build/browser).
'use strict';

const { chromium } = require('playwright-core');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const otpdBin = process.env.OTPD_BIN || path.join(root, 'otpd');
const chromiumBin = process.env.CHROMIUM || '/usr/bin/chromium';
const outDir = process.env.BROWSER_OUT || path.join(root, 'build', 'browser');
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);
const STEP_MS = 15000;

let otpd = null;
let browser = null;
let tmp = null;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function check(ok, what) {
  if (!ok) throw new Error('FAILED: ' + what);
  console.log('ok - ' + what);
}

// Starts otpd on a free port; resolves with the port it logged.
async function startOtpd() {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'otpd-browser-'));
  const conf = path.join(tmp, 'otpd.conf');
  fs.writeFileSync(conf, [
    'listen = "127.0.0.1"',
    'port = 0',
    'database = "' + path.join(tmp, 'otpd.db') + '"',
    'sms_log_file = "' + path.join(tmp, 'sms.log') + '"',
    '',
    // The flow sends twice to abc within seconds: no resend cooldown here.
    'send_cooldown = 0',
    'channels = "sms,voice"',
    '[users]',
    'abc = "+12015551111"',
    '',
  ].join('\n'));
  const log = path.join(tmp, 'otpd.log');
  const fd = fs.openSync(log, 'w');
  otpd = spawn(otpdBin, ['serve', '--config', conf], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  for (let i = 0; i < 500; i++) {
    const text = fs.readFileSync(log, 'utf8');
    const m = /msg="otpd started".* port=(\d+)/.exec(text);
    if (m) return Number(m[1]);
    if (otpd.exitCode !== null) throw new Error('otpd exited at start:\n' + text);
    await sleep(20);
  }
  throw new Error('otpd did not start:\n' + fs.readFileSync(log, 'utf8'));
}

function lastCode() {
  const lines = fs.readFileSync(path.join(tmp, 'sms.log'), 'utf8').trim().split('\n');
  const m = /\b(\d{6})\b/.exec(lines[lines.length - 1]);
  if (!m) throw new Error('no code in the SMS log: ' + lines[lines.length - 1]);
  return m[1];
}

// Fills and submits one try-it form; resolves with what the page shows.
async function submit(page, formId, fields) {
  const form = page.locator('#' + formId);
  for (const [name, value] of Object.entries(fields)) {
    const select = form.locator('select[name="' + name + '"]');
    if (await select.count() > 0) {
      await select.selectOption(value);  // the channel picker
    } else {
      await form.locator('input[name="' + name + '"]').fill(value);
    }
  }
  await form.locator('button[type="submit"]').click();
  const result = form.locator('.result[data-status]');
  await result.waitFor({ timeout: STEP_MS });
  return {
    status: await result.getAttribute('data-status'),
    statusLine: await result.locator('.status').textContent(),
    headers: await result.locator('.headers').textContent(),
    body: await result.locator('.body').textContent(),
  };
}

async function run() {
  const port = await startOtpd();
  const base = 'http://127.0.0.1:' + port;
  console.log('otpd pid ' + otpd.pid + ' on ' + base);
  browser = await chromium.launch({
    executablePath: chromiumBin,
    headless: true,
    timeout: STEP_MS,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.setDefaultTimeout(STEP_MS);
  const offHost = [];
  const consoleErrors = [];
  page.on('request', (req) => {
    const url = new URL(req.url());
    if (url.protocol === 'data:' || url.protocol === 'about:') return;
    if (!LOOPBACK.has(url.hostname)) offHost.push(req.url());
  });
  // Error answers the forms asked for are logged too; anything else (a CSP
  // violation, a script error, a missing resource) fails the test.
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location().url || '';
    const asked = /\/(send|verify)-code$/.test(url);
    if (!(asked && msg.text().startsWith('Failed to load resource'))) {
      consoleErrors.push(msg.text() + ' ' + url);
    }
  });
  page.on('pageerror', (err) => consoleErrors.push(err.message));

  const resp = await page.goto(base + '/docs');
  check(resp.status() === 200, 'GET /docs answers 200');
  check(await page.locator('#try-sendCode').isVisible(), 'the send-code form is shown');

  const sent = await submit(page, 'try-sendCode', { user_id: 'abc' });
  check(sent.status === '200', 'send-code through the form shows 200 (' + sent.statusLine + ')');
  check(sent.body.includes('OTP sent successfully via SMS'), 'the send-code body is shown');
  check(/content-type: application\/json/i.test(sent.headers), 'the response headers are shown');

  const code = lastCode();
  const ok = await submit(page, 'try-verifyCode', { user_id: 'abc', passcode: code });
  check(ok.status === '200' && ok.statusLine.startsWith('HTTP 200'), 'the right code shows 200');
  check(ok.body.includes('"success": true') && ok.body.includes('OTP verified successfully'),
    'the verify body is shown');

  const again = await submit(page, 'try-sendCode', { user_id: 'abc' });
  check(again.status === '200', 'a second send-code shows 200 (' + again.statusLine + ')');
  const fresh = lastCode();
  const wrong = (fresh[0] === '9' ? '0' : String(Number(fresh[0]) + 1)) + fresh.slice(1);
  const bad = await submit(page, 'try-verifyCode', { user_id: 'abc', passcode: wrong });
  check(bad.status === '400' && bad.statusLine.startsWith('HTTP 400'), 'a wrong code shows 400');
  check(bad.body.includes('"error_type": "invalid_code"') &&
    bad.body.includes('Invalid OTP. 2 attempts remaining'), 'the 400 body is shown');

  // The channel picker: every channel, "(default)" first, which leaves the
  // field out (the SMS answer above). Voice is on in this config,
  // WhatsApp is not: 422.
  const options = await page.locator('#try-sendCode select[name="channel"] option')
    .evaluateAll((els) => els.map((e) => e.value));
  check(JSON.stringify(options) === JSON.stringify(['', 'sms', 'voice', 'whatsapp']),
    'the send-code form has a channel picker (' + options.join(',') + ')');
  const voice = await submit(page, 'try-sendCode', { user_id: 'abc', channel: 'voice' });
  check(voice.status === '200' && voice.body.includes('OTP sent successfully via voice call') &&
    voice.body.includes('"channel": "voice"'), 'a voice send shows 200 (' + voice.statusLine + ')');
  const whatsapp = await submit(page, 'try-sendCode', { user_id: 'abc', channel: 'whatsapp' });
  check(whatsapp.status === '422' && whatsapp.body.includes('"type": "type_error.enum"') &&
    whatsapp.body.includes("permitted: 'sms', 'voice'"),
    'a disabled channel shows 422 (' + whatsapp.statusLine + ')');
  await page.locator('#try-sendCode select[name="channel"]').selectOption('');

  fs.mkdirSync(outDir, { recursive: true });
  await page.locator('#try-verifyCode').screenshot({ path: path.join(outDir, 'docs-verify.png') });
  await page.screenshot({ path: path.join(outDir, 'docs.png'), fullPage: true });
  const redoc = await page.goto(base + '/redoc');
  check(redoc.status() === 200, 'GET /redoc answers 200');
  check(await page.locator('#op-verifyCode').isVisible(), '/redoc shows verify-code');
  await page.screenshot({ path: path.join(outDir, 'redoc.png'), fullPage: true });
  console.log('screenshots in ' + outDir);

  check(offHost.length === 0, 'no request left loopback ' + JSON.stringify(offHost));
  check(consoleErrors.length === 0, 'no console errors ' + JSON.stringify(consoleErrors));
}

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  if (otpd && otpd.exitCode === null) {
    otpd.kill('SIGTERM');
    for (let i = 0; i < 250 && otpd.exitCode === null && otpd.signalCode === null; i++) {
      await sleep(20);
    }
    if (otpd.exitCode === null && otpd.signalCode === null) otpd.kill('SIGKILL');
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}

const deadline = setTimeout(() => {
  console.error('FAILED: the browser test took over 120 s');
  if (otpd) otpd.kill('SIGKILL');
  process.exit(1);
}, 120000);

run().then(async () => {
  await cleanup();
  clearTimeout(deadline);
  console.log('browser test passed');
}, async (err) => {
  console.error(err && err.stack ? err.stack : String(err));
  await cleanup();
  clearTimeout(deadline);
  process.exit(1);
});
