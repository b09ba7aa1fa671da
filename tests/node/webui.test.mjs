// The web page at `snug serve`'s root, in a real browser: Debian's chromium driven by
// playwright-core, against real servers on loopback. Screenshots go to <build>/webui-screenshots
// (the folder of SNUG_BINARY) for a reviewer to look at.
// Run: SNUG_BINARY=build/snug node --test webui.test.mjs   (scripts/test.sh runs every file).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, stopServer } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const snug = process.env.SNUG_BINARY ?? path.resolve(here, '../../build/snug');
const shots = process.env.SNUG_SCREENSHOT_DIR ?? path.join(path.dirname(snug), 'webui-screenshots');
const apiKey = 'webui-test-key';

function findChromium() {
  if (process.env.SNUG_CHROMIUM) return process.env.SNUG_CHROMIUM;
  for (const name of ['chromium', 'chromium-browser']) {
    const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  }
  return null;
}

const chromiumPath = findChromium();
let playwright = null;
try {
  playwright = await import('playwright-core');
} catch (_) { /* reported below */ }
const skip = !chromiumPath ? 'chromium is not installed (scripts/deps.sh installs it with apt-get)'
  : !playwright ? 'playwright-core is not installed (npm ci in tests/node)' : false;
if (skip) console.log(`# webui tests skipped: ${skip}`);

let dir;
let open;    // tiny model, no key
let keyed;   // tiny model, --api-key, a 1 GiB memory limit
let browser;
let bigModel;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(path.join(tmpdir(), 'snug-webui-'));
  mkdirSync(shots, { recursive: true });
  const tiny = path.join(dir, 'tiny.gguf');
  let made = spawnSync(snug, ['mkmodel', 'tiny', tiny, '--weights', 'random']);
  assert.equal(made.status, 0, String(made.stderr));
  // A 3B model's real shape as a sparse file of zero weights: planned, never loaded here.
  bigModel = path.join(dir, 'big.gguf');
  made = spawnSync(snug, ['mkmodel', 'llama-3.2-3b-q4_k_m', bigModel]);
  assert.equal(made.status, 0, String(made.stderr));
  [open, keyed, browser] = await Promise.all([
    startServer(snug, [tiny, '--port', '0', '--ctx', '1024', '--parallel', '2']),
    startServer(snug, [tiny, '--port', '0', '--ctx', '512', '--parallel', '2',
      '--api-key', apiKey, '--memory-limit', '1GiB']),
    playwright.chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] }),
  ]);
});

after(async () => {
  if (browser) await browser.close();
  await Promise.all([stopServer(open), stopServer(keyed)]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const base = (server) => `http://127.0.0.1:${server.port}`;

async function json(server, route, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  if (server === keyed) headers.Authorization = `Bearer ${apiKey}`;
  const res = await fetch(base(server) + route, { ...init, headers });
  assert.equal(res.status, 200, `${route}: ${res.status}`);
  return res.json();
}

// A fresh page (its own localStorage) that records console errors.
async function openPage(server, { width = 1100, height = 800 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(base(server) + '/');
  return { page, context, errors };
}

async function answerText(page) {
  return page.locator('.msg.assistant .content').last().innerText();
}

test('the page loads with no console errors; Ollama clients still get their answer', { skip }, async () => {
  const { page, context, errors } = await openPage(open);
  assert.equal(await page.title(), 'snug');
  await page.locator('[data-model="tiny"]').waitFor();
  await page.locator('#model option[value="tiny"]').waitFor({ state: 'attached' });
  await page.locator('#devices dl').waitFor();
  await page.waitForTimeout(500);  // a second poll
  assert.deepEqual(errors, []);

  // Model output is text: markup in it is escaped, links go only to http(s).
  const rendered = await page.evaluate(() => window.SnugMarkdown.render([
    '<img src=x onerror=alert(1)> **b** *i* `<c>` [l](javascript:alert(1)) [ok](https://x.y/?a=1&b=2)',
    '```js', 'let a = "<b>";', '```', '- one', '- two', '', '1. first', '2. second']
    .join('\n')));
  assert.ok(!/<img|<script|href="javascript/i.test(rendered), rendered);
  assert.ok(rendered.includes('&lt;img src=x onerror=alert(1)&gt;'), rendered);
  assert.ok(rendered.includes('<strong>b</strong> <em>i</em> <code>&lt;c&gt;</code>'), rendered);
  assert.ok(rendered.includes('<a href="https://x.y/?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">ok</a>'), rendered);
  assert.ok(rendered.includes('<code class="language-js">let a = &quot;&lt;b&gt;&quot;;</code>'), rendered);
  assert.ok(rendered.includes('<ul><li>one</li><li>two</li></ul><ol><li>first</li><li>second</li></ol>'), rendered);
  await page.screenshot({ path: path.join(shots, 'load.png'), fullPage: true });
  await context.close();

  const plain = await fetch(base(open) + '/');
  assert.equal(await plain.text(), 'Ollama is running');
  const html = await fetch(base(open) + '/', { headers: { Accept: 'text/html' } });
  assert.match(html.headers.get('content-security-policy'), /script-src 'self'/);
  assert.match(await html.text(), /<title>snug<\/title>/);
});

test('a chat message streams an answer; the memory view shows /v1/ps', { skip }, async () => {
  const { page, context, errors } = await openPage(open);
  await page.locator('#model option[value="tiny"]').waitFor({ state: 'attached' });
  await page.locator('#settings summary').click();
  await page.fill('#max-tokens', '12');
  await page.fill('#temperature', '0');
  const sent = page.waitForRequest((r) => r.url().endsWith('/v1/chat/completions'));
  const answered = page.waitForResponse((r) => r.url().endsWith('/v1/chat/completions'));
  await page.fill('#prompt', 'Say hello in **bold**');
  await page.press('#prompt', 'Enter');
  const request = await sent;
  const body = JSON.parse(request.postData());
  assert.equal(body.stream, true);
  assert.equal(body.model, 'tiny');
  assert.equal(body.max_tokens, 12);
  assert.match((await answered).headers()['content-type'], /text\/event-stream/);
  await page.locator('.msg.assistant .meta', { hasText: 'finish: length' }).waitFor({ timeout: 30000 });
  assert.ok((await answerText(page)).length > 0);
  assert.match(await page.locator('.msg.assistant .meta').innerText(), /12 answer tokens/);
  assert.match(await page.locator('.msg.user').textContent(), /Say hello in \*\*bold\*\*$/);

  // The conversation survives a reload (localStorage).
  await page.reload();
  await page.locator('.msg.assistant .meta', { hasText: 'finish: length' }).waitFor();

  // The memory view shows the numbers of /v1/ps once a poll has caught up with them.
  const ps = await json(open, '/v1/ps');
  const m = ps.models.find((x) => x.name === 'tiny');
  const card = page.locator('[data-model="tiny"]');
  await page.waitForFunction(([used]) => {
    const el = document.querySelector('[data-model="tiny"] [data-field="kv_cells"]');
    return el && Number(el.dataset.used) === used;
  }, [m.kv_cells_used], { timeout: 5000 });
  const field = (name, attr) => card.locator(`[data-field="${name}"]`).getAttribute(attr);
  assert.equal(Number(await field('planned', 'data-bytes')), m.plan.peak_host_bytes);
  assert.equal(Number(await field('allocated', 'data-bytes')), m.allocated_bytes);
  assert.equal(Number(await field('kv_cells', 'data-total')), m.kv_cells_total);
  const budget = await page.locator('#memory [data-field="budget_bytes"]').getAttribute('data-bytes');
  assert.equal(Number(budget), ps.budget_bytes);
  assert.equal(Number(await page.locator('#memory [data-field="planned_bytes"]').getAttribute('data-bytes')),
    ps.planned_bytes);
  assert.match(await page.locator('#memory [data-field="budget_source"]').innerText(), /meminfo|cgroup|override/);
  assert.match(await page.locator('#events').innerText(), /load .*tiny/);
  assert.deepEqual(errors, []);
  await page.screenshot({ path: path.join(shots, 'chat.png') });
  await context.close();
});

test('stop ends the answer and frees the slot', { skip }, async () => {
  const { page, context } = await openPage(open);
  await page.locator('#model option[value="tiny"]').waitFor({ state: 'attached' });
  await page.locator('#settings summary').click();
  await page.fill('#max-tokens', '900');
  await page.fill('#prompt', 'Tell me a long story');
  await page.click('#send');
  await page.waitForFunction(() => {
    const el = [...document.querySelectorAll('.msg.assistant .content')].pop();
    return el && el.innerText.length > 10;
  }, null, { timeout: 60000 });
  const early = (await answerText(page)).length;
  await page.waitForFunction((n) => {
    const el = [...document.querySelectorAll('.msg.assistant .content')].pop();
    return el.innerText.length > n;
  }, early, { timeout: 30000 });
  assert.equal(await page.locator('#stop').isEnabled(), true);
  await page.click('#stop');
  await page.locator('.msg.assistant .meta', { hasText: 'stopped' }).waitFor({ timeout: 10000 });
  const stopped = (await answerText(page)).length;
  await page.waitForTimeout(1000);
  assert.equal((await answerText(page)).length, stopped, 'the answer grew after Stop');
  assert.equal(await page.locator('#send').isEnabled(), true);
  // The server noticed the closed stream and freed the slot.
  const deadline = Date.now() + 10000;
  let active = -1;
  while (Date.now() < deadline) {
    const ps = await json(open, '/v1/ps');
    active = ps.models.find((x) => x.name === 'tiny').active;
    if (active === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(active, 0);
  await page.screenshot({ path: path.join(shots, 'stopped.png') });
  await context.close();
});

test('with --api-key the page shows no data without the key, and works with it', { skip }, async () => {
  // The page itself holds no data and is served without the key; the data routes are not.
  const page401 = await fetch(base(keyed) + '/v1/ps');
  assert.equal(page401.status, 401);
  const html = await fetch(base(keyed) + '/', { headers: { Accept: 'text/html' } });
  assert.equal(html.status, 200);
  assert.equal((await fetch(base(keyed) + '/')).status, 401, 'Ollama\'s root answer keeps needing the key');

  const { page, context } = await openPage(keyed, { width: 390, height: 844 });
  await page.locator('#auth').waitFor();
  assert.match(await page.locator('#auth').innerText(), /401/);
  await page.locator('#memory [data-state="locked"]').waitFor();
  assert.match(await page.locator('#memory').innerText(), /401/);
  assert.equal(await page.locator('[data-model]').count(), 0);
  assert.equal(await page.locator('#model option').count(), 0);
  await page.screenshot({ path: path.join(shots, 'locked-phone.png'), fullPage: true });

  // Keyboard only: focus the key field, type, Enter.
  await page.focus('#auth-key');
  await page.keyboard.type(apiKey);
  await page.keyboard.press('Enter');
  await page.locator('#auth').waitFor({ state: 'hidden' });
  await page.locator('[data-model="tiny"]').waitFor();
  await page.locator('#model option[value="tiny"]').waitFor({ state: 'attached' });
  assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('snug.apiKey'))), apiKey);

  // A model that does not fit: the 3B file against the 1 GiB limit, with the planner's numbers.
  await page.fill('#fit-model', bigModel);
  await page.press('#fit-model', 'Enter');
  await page.locator('#fit-result .verdict').waitFor({ timeout: 15000 });
  assert.equal(await page.locator('#fit-result .verdict').getAttribute('data-fits'), 'false');
  const reason = await page.locator('#fit-result .reason').innerText();
  const plan = await json(keyed, '/v1/fit', { method: 'POST', body: JSON.stringify({ model: bigModel }) });
  assert.equal(plan.fit.ok, false);
  assert.equal(reason, plan.fit.reason);
  assert.match(reason, /\d+(\.\d+)? [GM]iB/);
  // The same answer as `snug plan` with the server's settings and budget.
  const cli = spawnSync(snug, ['plan', bigModel, '--json', '--parallel', '2', '--ctx', '512',
    '--memory-limit', '1GiB'], { encoding: 'utf8' });
  assert.equal(cli.status, 3, cli.stderr);
  const cliPlan = JSON.parse(cli.stdout);
  assert.deepEqual(cliPlan.fit, plan.fit);
  assert.deepEqual(cliPlan.memory, plan.memory);
  assert.deepEqual(cliPlan.max_ctx, plan.max_ctx);

  // A model the server holds fits, and the page says it is loaded.
  await page.fill('#fit-model', 'tiny');
  await page.press('#fit-model', 'Enter');
  await page.locator('#fit-result .verdict[data-fits="true"]').waitFor({ timeout: 15000 });
  assert.match(await page.locator('#fit-result .server-now').innerText(), /loaded on this server/);

  // Chat works with the key, at a phone's width.
  await page.locator('#settings summary').click();
  await page.fill('#max-tokens', '4');
  await page.fill('#prompt', 'Hi');
  await page.press('#prompt', 'Enter');
  await page.locator('.msg.assistant .meta', { hasText: 'finish:' }).waitFor({ timeout: 30000 });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the page scrolls sideways at a phone's width (${width}px)`);
  await page.screenshot({ path: path.join(shots, 'keyed-phone.png'), fullPage: true });
  if (process.env.SNUG_WEBUI_DOC_SCREENSHOT) {
    // README's picture (docs/webui.png): a short chat beside the memory view, 1 GiB budget.
    await page.setViewportSize({ width: 1100, height: 700 });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(1600);  // a poll after the answer
    await page.screenshot({ path: process.env.SNUG_WEBUI_DOC_SCREENSHOT });
  }
  await context.close();
});

test('a prompt past the context shows the server\'s error with its numbers', { skip }, async () => {
  const { page, context } = await openPage(keyed);
  await page.focus('#auth-key');
  await page.keyboard.type(apiKey);
  await page.keyboard.press('Enter');
  await page.locator('#model option[value="tiny"]').waitFor({ state: 'attached' });
  await page.locator('#settings summary').click();
  await page.fill('#max-tokens', '4');
  await page.fill('#prompt', 'word '.repeat(1200));
  await page.click('#send');
  const error = page.locator('.msg.assistant .error');
  await error.waitFor({ timeout: 30000 });
  const text = await error.innerText();
  assert.match(text, /HTTP 400 context_length_exceeded/);
  assert.match(text, /\d{3,}/);
  await page.screenshot({ path: path.join(shots, 'refusal.png') });

  // The event log shows an unload as it happens.
  await json(keyed, '/v1/models/unload', { method: 'POST', body: JSON.stringify({ model: 'tiny' }) });
  await page.locator('#events li[data-kind="unload"]', { hasText: 'tiny' }).waitFor({ timeout: 5000 });
  await page.locator('[data-model="tiny"]').waitFor({ state: 'detached', timeout: 5000 });
  await context.close();
});
