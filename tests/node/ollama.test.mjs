// `snug serve` driven by Ollama's official JavaScript client (ollama-js) with its defaults: what an
// app written for Ollama sees when pointed at snug. Pulls go to tests/hub/fake_hub (a stand-in for
// the Hugging Face hub), found beside SNUG_BINARY (build/tests/store/fake_hub) or at
// FAKE_HUB_BINARY; without it the pull tests are skipped.
// Run: SNUG_BINARY=build/snug SNUG_LLAMA_SRC=<llama.cpp source> node --test (scripts/test.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Ollama } from 'ollama';
import Ajv from 'ajv';
import { startServer, stopServer } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const snug = process.env.SNUG_BINARY ?? path.resolve(here, '../../build/snug');
const llamaSrc = process.env.SNUG_LLAMA_SRC;
const fakeHub = [
  process.env.FAKE_HUB_BINARY,
  path.join(path.dirname(snug), 'tests', 'store', 'fake_hub'),
  path.resolve(here, '../../build/tests/store/fake_hub'),
].find((candidate) => candidate && existsSync(candidate));
const apiKey = 'ollama-test-key';

let dir;
let home;      // SNUG_HOME of both servers: the store 'big' is imported into and pulls land in
let hub;       // the fake hub child process, when its binary was found
let server;    // tiny, functionary and qwen3 (loaded at start), the store's 'big'; a 1.5G limit
let locked;    // tiny behind --api-key
let ollama;

const toolModel = 'functionary';
const pulled = 'snug-test/tiny-gguf:q8_0';  // how the store names what 'snug-test/tiny-GGUF:Q8_0' pulls

function mkmodel(preset, file, ...extra) {
  const made = spawnSync(snug, ['mkmodel', preset, file, ...extra]);
  assert.equal(made.status, 0, String(made.stderr));
  return file;
}

async function startHub(root) {
  const portFile = path.join(dir, 'hub.port');
  const child = spawn(fakeHub, ['--root', root, '--port-file', portFile], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !existsSync(portFile); ++i) await sleep(50);
  await sleep(20);  // the port is written once listening; let the write finish
  const port = Number(readFileSync(portFile, 'utf8').trim());
  assert.ok(port > 0, 'fake_hub did not start');
  return { child, endpoint: `http://127.0.0.1:${port}` };
}

before(async () => {
  assert.ok(llamaSrc, 'SNUG_LLAMA_SRC must name llama.cpp\'s source tree (scripts/test.sh sets it)');
  dir = mkdtempSync(path.join(tmpdir(), 'snug-node-ollama-'));
  home = path.join(dir, 'home');
  // The servers inherit these (startServer spawns with this process's environment).
  process.env.SNUG_HOME = home;
  process.env.SNUG_HF_ENDPOINT = 'http://127.0.0.1:9';  // nothing: no test reaches the real hub
  delete process.env.SNUG_MEMORY_LIMIT;

  const tiny = mkmodel('tiny', path.join(dir, 'tiny.gguf'), '--weights', 'random');
  const functionary = mkmodel('tiny', path.join(dir, `${toolModel}.gguf`), '--weights', 'random',
    '--chat-template', path.join(llamaSrc, 'models', 'templates', 'meetkai-functionary-medium-v3.2.jinja'));
  const qwen3 = mkmodel('tiny', path.join(dir, 'qwen3.gguf'), '--weights', 'random',
    '--chat-template', path.join(llamaSrc, 'models', 'templates', 'Qwen-Qwen3-0.6B.jinja'));
  // A 1B synthetic model (zero weights, sparse: instant) in the store as 'big': at most a few
  // thousand tokens of context fit the main server's 1.5G limit.
  const big = mkmodel('llama-3.2-1b-q4_k_m', path.join(dir, 'big.gguf'));
  const imported = spawnSync(snug, ['import', big, '--name', 'big']);
  assert.equal(imported.status, 0, String(imported.stderr));
  rmSync(big);

  if (fakeHub) {
    const root = path.join(dir, 'hub');
    mkdirSync(path.join(root, 'snug-test', 'tiny-GGUF'), { recursive: true });
    linkSync(tiny, path.join(root, 'snug-test', 'tiny-GGUF', 'tiny-Q8_0.gguf'));
    // An 8B model (sparse) that cannot fit 1.5G; its .sha256 spares the hub hashing 4.6 GiB.
    const huge = path.join(root, 'snug-test', 'huge-GGUF', 'huge-Q4_K_M.gguf');
    mkdirSync(path.dirname(huge), { recursive: true });
    mkmodel('llama-3.1-8b-q4_k_m', huge);
    writeFileSync(`${huge}.sha256`, `${'0'.repeat(64)}\n`);
    hub = await startHub(root);
    process.env.SNUG_HF_ENDPOINT = hub.endpoint;
  }

  [server, locked] = await Promise.all([
    startServer(snug, [tiny, functionary, qwen3, '--port', '0', '--ctx', '1024', '--parallel', '2',
      '--memory-limit', '1.5G', '--threads', '1']),
    startServer(snug, [tiny, '--port', '0', '--ctx', '512', '--parallel', '1', '--threads', '1',
      '--api-key', apiKey]),
  ]);
  ollama = new Ollama({ host: `http://127.0.0.1:${server.port}` });
});

after(async () => {
  await Promise.all([stopServer(server), stopServer(locked), stopServer(hub)]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ollama-js throws a ResponseError (not exported by the package) for an HTTP error, its message
// the "error" string of the body.
function responseError(status, pattern) {
  return (e) => {
    assert.equal(e.name, 'ResponseError', String(e));
    assert.equal(e.status_code, status, `${e.status_code}: ${e.message}`);
    assert.equal(typeof e.error, 'string');
    assert.notEqual(e.message, '[object Object]');
    assert.ok(e.message.length > 0);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

async function running() {
  return (await ollama.ps()).models.map((m) => m.name);
}

// The greedy answer to a request, asked twice: the first evaluation of a prompt and later ones
// that reuse its cached prefix may differ in the last bits of the logits, which random weights
// amplify into another answer. The streamed answer is then compared with the settled one.
async function settled(call, request) {
  await call(request);
  return call(request);
}

async function collect(iterator) {
  const parts = [];
  for await (const part of iterator) parts.push(part);
  return parts;
}

const greedy = { temperature: 0, seed: 42, num_predict: 8 };
const chatRequest = { model: 'tiny', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }], options: greedy };

test('version, the root probe and list', async () => {
  const { version } = await ollama.version();
  assert.match(version, /^\d+\.\d+\.\d+$/);
  const root = await fetch(`http://127.0.0.1:${server.port}/`);
  assert.equal(await root.text(), 'Ollama is running');

  const { models } = await ollama.list();
  const byName = Object.fromEntries(models.map((m) => [m.name, m]));
  assert.deepEqual(Object.keys(byName).sort(), ['big', toolModel, 'qwen3', 'tiny']);
  for (const m of models) {
    assert.equal(m.model, m.name);
    assert.ok(m.size > 0, m.name);
    assert.ok(!Number.isNaN(Date.parse(m.modified_at)), m.modified_at);
    assert.equal(m.details.format, 'gguf');
    assert.equal(m.details.family, 'llama');
    assert.deepEqual(m.details.families, ['llama']);
  }
  assert.match(byName.big.digest, /^[0-9a-f]{64}$/);
  assert.equal(byName.big.details.quantization_level, 'Q4_K_M');
});

test('show: details, model_info and capabilities', async () => {
  const tiny = await ollama.show({ model: 'tiny' });
  assert.equal(tiny.details.family, 'llama');
  assert.equal(tiny.model_info['general.architecture'], 'llama');
  assert.equal(tiny.model_info['llama.context_length'], 4096);
  assert.equal(tiny.model_info['llama.embedding_length'], 128);
  assert.equal(tiny.model_info['llama.block_count'], 4);
  assert.ok(tiny.capabilities.includes('completion'));
  assert.ok(!tiny.capabilities.includes('tools'), tiny.capabilities.join());
  assert.ok(tiny.template.length > 0);  // loaded at start: its template is known

  // Ollama's names carry a tag; ":latest" is the untagged model.
  const latest = await ollama.show({ model: 'tiny:latest' });
  assert.deepEqual(latest.model_info, tiny.model_info);

  const tools = await ollama.show({ model: toolModel });
  assert.ok(tools.capabilities.includes('tools'), tools.capabilities.join());
  assert.match(tools.template, />>>/);
  assert.ok((await ollama.show({ model: 'qwen3' })).capabilities.includes('thinking'));

  // A stored model that does not fit at the server's context still has details to show.
  const big = await ollama.show({ model: 'big' });
  assert.equal(big.details.quantization_level, 'Q4_K_M');
  assert.equal(big.model_info['llama.context_length'], 131072);
  assert.equal(big.model_info['llama.embedding_length'], 2048);

  await assert.rejects(ollama.show({ model: 'nope' }), responseError(404, /nope/));
});

test('ps: the loaded models with their context, expiry and snug\'s planned and allocated bytes', async () => {
  const { models } = await ollama.ps();
  assert.deepEqual(models.map((m) => m.name).sort(), [toolModel, 'qwen3', 'tiny']);
  for (const m of models) {
    assert.equal(m.model, m.name);
    assert.equal(m.context_length, 1024);
    assert.ok(m.size > 0);
    assert.equal(m.size_vram, 0);
    const expires = Date.parse(m.expires_at);
    assert.ok(expires > Date.now() && expires <= Date.now() + 5 * 60 * 1000 + 5000, m.expires_at);
    assert.equal(m.details.family, 'llama');
    assert.ok(m.snug.planned_bytes > 0);
    assert.equal(m.snug.planned_bytes, m.size);
    assert.ok(m.snug.allocated_bytes > 0);
  }
});

test('chat: whole and streamed greedy answers are the same', async () => {
  const whole = await settled((r) => ollama.chat(r), chatRequest);
  assert.equal(whole.model, 'tiny');
  assert.equal(whole.done, true);
  assert.ok(['stop', 'length'].includes(whole.done_reason), whole.done_reason);
  assert.equal(whole.message.role, 'assistant');
  assert.ok(whole.message.content.length > 0);
  assert.ok(whole.eval_count >= 1 && whole.eval_count <= greedy.num_predict, `${whole.eval_count}`);
  assert.ok(whole.prompt_eval_count > 0);
  assert.ok(!Number.isNaN(Date.parse(whole.created_at)));
  for (const key of ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration']) {
    assert.ok(Number.isInteger(whole[key]) && whole[key] >= 0, `${key}: ${whole[key]}`);
  }

  const parts = await collect(await ollama.chat({ ...chatRequest, stream: true }));
  const last = parts.at(-1);
  assert.ok(parts.slice(0, -1).every((p) => p.done === false && p.model === 'tiny'));
  assert.equal(last.done, true);
  assert.equal(last.done_reason, whole.done_reason);
  assert.equal(last.eval_count, whole.eval_count);
  assert.equal(last.prompt_eval_count, whole.prompt_eval_count);
  assert.equal(parts.map((p) => p.message.content).join(''), whole.message.content);
  assert.ok(parts.every((p) => p.message.role === 'assistant'));
});

test('chat: a one-token num_predict ends with done_reason length', async () => {
  const r = await ollama.chat({ ...chatRequest, options: { ...greedy, num_predict: 1 } });
  assert.equal(r.done_reason, 'length');
  assert.equal(r.eval_count, 1);
});

test('generate: whole and streamed greedy answers are the same', async () => {
  const request = { model: 'tiny', prompt: 'Tell me a story', system: 'Be brief.', options: greedy };
  const whole = await settled((r) => ollama.generate(r), request);
  assert.equal(whole.model, 'tiny');
  assert.equal(whole.done, true);
  assert.ok(['stop', 'length'].includes(whole.done_reason));
  assert.ok(whole.response.length > 0);
  assert.ok(whole.eval_count >= 1 && whole.eval_count <= greedy.num_predict);

  const parts = await collect(await ollama.generate({ ...request, stream: true }));
  assert.equal(parts.at(-1).done, true);
  assert.equal(parts.at(-1).done_reason, whole.done_reason);
  assert.equal(parts.at(-1).eval_count, whole.eval_count);
  assert.equal(parts.map((p) => p.response).join(''), whole.response);

  // raw: the prompt as is, no template.
  const raw = await ollama.generate({ model: 'tiny', prompt: 'Once upon a time', raw: true, options: greedy });
  assert.ok(raw.response.length > 0);
  assert.ok(raw.prompt_eval_count < whole.prompt_eval_count);
});

test('format "json" constrains chat and generate to a JSON object', async () => {
  const options = { temperature: 0, seed: 42, num_predict: 64 };
  const chat = await ollama.chat({ ...chatRequest, format: 'json', options });
  const gen = await ollama.generate({ model: 'tiny', prompt: 'Hello', format: 'json', options });
  for (const [text, reason] of [[chat.message.content, chat.done_reason], [gen.response, gen.done_reason]]) {
    assert.match(text, /^\s*\{/, text);  // without the grammar, random weights write no JSON
    if (reason === 'stop') assert.equal(typeof JSON.parse(text), 'object', text);
  }
});

test('a JSON schema format gives JSON that matches it, streamed or not', async () => {
  // Bounded numbers: an unbounded integer lets the random model write digits for long.
  const schema = {
    type: 'object',
    properties: { ok: { type: 'boolean' }, n: { type: 'integer', minimum: 0, maximum: 9 } },
    required: ['ok', 'n'],
    additionalProperties: false,
  };
  const valid = new Ajv().compile(schema);
  const options = { temperature: 0, seed: 42, num_predict: 64 };
  const chat = await settled((r) => ollama.chat(r), { ...chatRequest, format: schema, options });
  assert.equal(chat.done_reason, 'stop', chat.message.content);
  const answer = JSON.parse(chat.message.content);
  assert.ok(valid(answer), JSON.stringify(valid.errors));

  const streamed = await collect(await ollama.chat({ ...chatRequest, format: schema, options, stream: true }));
  assert.equal(streamed.map((p) => p.message.content).join(''), chat.message.content);

  const gen = await ollama.generate({ model: 'tiny', prompt: 'Hello', format: schema, options });
  if (gen.done_reason === 'stop') assert.ok(valid(JSON.parse(gen.response)), gen.response);
  else assert.match(gen.response, /^\s*\{/);
});

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Forecast for a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', enum: ['Paris', 'Tokyo'] }, days: { type: 'integer', minimum: 1, maximum: 7 } },
      required: ['city', 'days'],
    },
  },
};

function checkToolCalls(message) {
  for (const call of message.tool_calls ?? []) {
    assert.equal(call.function.name, 'get_weather');
    assert.equal(typeof call.function.arguments, 'object', JSON.stringify(call));
    assert.ok(call.function.arguments !== null && !Array.isArray(call.function.arguments));
  }
}

test('chat with tools on a tool-capable template, and a tool answer in the history', async () => {
  const messages = [{ role: 'user', content: 'What is the weather in Paris this week?' }];
  const options = { temperature: 0, seed: 42, num_predict: 32 };
  const first = await settled((r) => ollama.chat(r), { model: toolModel, messages, tools: [weatherTool], options });
  assert.equal(first.done, true);
  assert.ok(['stop', 'length'].includes(first.done_reason));
  checkToolCalls(first.message);

  const parts = await collect(await ollama.chat({ model: toolModel, messages, tools: [weatherTool], options, stream: true }));
  assert.equal(parts.at(-1).done, true);
  for (const p of parts) checkToolCalls(p.message);
  assert.equal(parts.map((p) => p.message.content).join(''), first.message.content);

  // The call and its answer, as an Ollama app sends them back: arguments an object, no ids, the
  // tool's answer named by tool_name.
  const history = [
    ...messages,
    { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris', days: 3 } } }] },
    { role: 'tool', content: '{"forecast": "sunny"}', tool_name: 'get_weather' },
  ];
  const followUp = await ollama.chat({ model: toolModel, messages: history, tools: [weatherTool], options: { ...options, num_predict: 8 } });
  assert.equal(followUp.done, true);
  assert.ok(followUp.prompt_eval_count > first.prompt_eval_count);
  checkToolCalls(followUp.message);
});

test('think: accepted by a thinking template, refused by one without', async () => {
  const request = { model: 'qwen3', messages: [{ role: 'user', content: 'What is 2+2?' }], options: greedy };
  const on = await ollama.chat({ ...request, think: true });
  const off = await ollama.chat({ ...request, think: false });
  // Qwen3's template closes an empty thought in the prompt when thinking is off.
  assert.ok(off.prompt_eval_count > on.prompt_eval_count, `${off.prompt_eval_count} vs ${on.prompt_eval_count}`);
  for (const r of [on, off]) {
    assert.equal(r.done, true);
    assert.ok(r.message.content.length > 0 || (r.message.thinking ?? '').length > 0);
  }
  const generated = await ollama.generate({ model: 'qwen3', prompt: 'What is 2+2?', think: true, options: greedy });
  assert.equal(generated.done, true);
  await assert.rejects(ollama.chat({ ...chatRequest, think: true }), responseError(400, /thinking/));
  await assert.rejects(ollama.generate({ model: 'tiny', prompt: 'Hi', think: 'high', stream: true }), responseError(400, /thinking/));
  assert.equal((await ollama.chat({ ...chatRequest, think: false })).done, true);
});

test('an aborted stream frees its slot; concurrent requests beyond the slots queue', async () => {
  const stream = await ollama.chat({ ...chatRequest, options: { ...greedy, num_predict: 400 }, stream: true });
  let parts = 0;
  await assert.rejects(async () => {
    for await (const part of stream) {
      assert.equal(part.done, false);
      if (++parts === 2) stream.abort();
    }
  }, (e) => e.name === 'AbortError');
  const active = async () => (await ollama.ps()).models.find((m) => m.name === 'tiny').snug.active;
  for (let i = 0; i < 30 && (await active()) > 0; ++i) await sleep(100);
  assert.equal(await active(), 0);

  const answers = await Promise.all([0, 1, 2, 3].map(() => ollama.chat(chatRequest)));
  for (const r of answers) assert.ok(r.message.content.length > 0);
});

function norm(vector) {
  return Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));
}

test('embed and embeddings: L2-normalized vectors of the model\'s dimension', async () => {
  const dims = (await ollama.show({ model: 'tiny' })).model_info['llama.embedding_length'];
  const one = await ollama.embed({ model: 'tiny', input: 'The sky is blue' });
  assert.equal(one.model, 'tiny');
  assert.equal(one.embeddings.length, 1);
  assert.equal(one.embeddings[0].length, dims);
  assert.ok(Math.abs(norm(one.embeddings[0]) - 1) < 1e-3);
  assert.ok(one.prompt_eval_count > 0);

  const two = await ollama.embed({ model: 'tiny', input: ['The sky is blue', 'Grass is green'] });
  assert.equal(two.embeddings.length, 2);
  for (const v of two.embeddings) {
    assert.equal(v.length, dims);
    assert.ok(Math.abs(norm(v) - 1) < 1e-3);
  }
  assert.ok(two.embeddings[0].every((x, i) => Math.abs(x - one.embeddings[0][i]) < 1e-4));
  assert.ok(two.embeddings[1].some((x, i) => Math.abs(x - two.embeddings[0][i]) > 1e-3));
  assert.ok(two.prompt_eval_count > one.prompt_eval_count);

  const old = await ollama.embeddings({ model: 'tiny', prompt: 'The sky is blue' });
  assert.equal(old.embedding.length, dims);
  assert.ok(old.embedding.every((x, i) => Math.abs(x - one.embeddings[0][i]) < 1e-4));

  // Nothing to embed loads the model and answers with no vectors (how clients preload).
  const none = await ollama.embed({ model: 'tiny', input: [] });
  assert.deepEqual(none.embeddings, []);
  assert.equal(none.model, 'tiny');
  assert.deepEqual((await ollama.embeddings({ model: 'tiny', prompt: '' })).embedding, []);
});

test('keep_alive: 0 unloads, an empty prompt loads, a duration sets the expiry', async () => {
  const unloaded = await ollama.generate({ model: 'tiny', prompt: '', keep_alive: 0 });
  assert.equal(unloaded.done, true);
  assert.equal(unloaded.done_reason, 'unload');
  assert.equal(unloaded.response, '');
  assert.ok(!(await running()).includes('tiny'));

  const loaded = await ollama.generate({ model: 'tiny', prompt: '' });
  assert.equal(loaded.done_reason, 'load');
  assert.ok((await running()).includes('tiny'));

  // A chat with keep_alive 0 answers, then the model goes.
  const r = await ollama.chat({ ...chatRequest, keep_alive: 0 });
  assert.ok(r.message.content.length > 0);
  let names = await running();
  for (let i = 0; i < 30 && names.includes('tiny'); ++i) {
    await sleep(100);
    names = await running();
  }
  assert.ok(!names.includes('tiny'), names.join());

  // An empty chat loads too; a keep_alive duration (Go's syntax) sets expires_at.
  const chatLoad = await ollama.chat({ model: 'tiny', messages: [], keep_alive: '10m' });
  assert.equal(chatLoad.done_reason, 'load');
  assert.equal(chatLoad.message.content, '');
  const tiny = (await ollama.ps()).models.find((m) => m.name === 'tiny');
  const left = Date.parse(tiny.expires_at) - Date.now();
  assert.ok(left > 9 * 60 * 1000 && left <= 10 * 60 * 1000 + 2000, tiny.expires_at);
});

test('num_ctx above the loaded context reloads the model with it', async () => {
  const r = await ollama.chat({ ...chatRequest, options: { ...greedy, num_ctx: 2048 } });
  assert.ok(r.message.content.length > 0);
  const tiny = (await ollama.ps()).models.find((m) => m.name === 'tiny');
  assert.ok(tiny.context_length >= 2048, `${tiny.context_length}`);
});

test('num_ctx too big for the memory limit: 507 naming the largest context that fits', async () => {
  await assert.rejects(
    ollama.chat({ model: 'big', messages: [{ role: 'user', content: 'Hello' }], options: { num_ctx: 131072 } }),
    responseError(507, /largest context that fits is \d+/));
  await assert.rejects(
    ollama.generate({ model: 'big', prompt: 'Hello', options: { num_ctx: 131072 }, stream: true }),
    responseError(507, /largest context that fits is \d+/));
  // The server still answers.
  assert.ok((await ollama.list()).models.length >= 3);
  const r = await ollama.chat(chatRequest);
  assert.ok(r.message.content.length > 0);
});

test('the num_ctx refusal names the model as the request did', async () => {
  await assert.rejects(
    ollama.chat({ model: 'big', messages: [{ role: 'user', content: 'Hello' }], options: { num_ctx: 131072 } }),
    (e) => { assert.doesNotMatch(e.message, /sha256-/); assert.match(e.message, /\bbig\b/); return true; });
});

test('pull from the hub with progress, use, delete; a model that does not fit is refused', { skip: fakeHub ? false : 'fake_hub not found (build tests/store or set FAKE_HUB_BINARY)' }, async () => {
  const blobs = () => readdirSync(path.join(home, 'blobs')).filter((f) => f.startsWith('sha256-')).sort();
  const before = blobs();

  const events = await collect(await ollama.pull({ model: 'snug-test/tiny-GGUF:Q8_0', stream: true }));
  assert.ok(events.every((e) => typeof e.status === 'string' && e.status.length > 0));
  assert.equal(events.at(-1).status, 'success');
  const progress = events.filter((e) => e.total > 0);
  assert.ok(progress.length >= 1, JSON.stringify(events));
  for (const e of progress) {
    assert.ok(e.completed >= 0 && e.completed <= e.total, JSON.stringify(e));
    assert.match(e.digest, /^sha256:[0-9a-f]{64}$/);
  }
  assert.equal(progress.at(-1).completed, progress.at(-1).total);
  assert.ok((await ollama.list()).models.some((m) => m.name === pulled));
  assert.equal(blobs().length, before.length + 1);

  // The client's default (stream false): one answer; the model is already there.
  assert.deepEqual(await ollama.pull({ model: 'snug-test/tiny-GGUF:Q8_0' }), { status: 'success' });

  // The name as the app typed it reaches the stored model: one model, one pool entry.
  const r = await ollama.chat({ ...chatRequest, model: 'snug-test/tiny-GGUF:Q8_0' });
  assert.ok(r.message.content.length > 0);
  assert.equal((await ollama.show({ model: 'snug-test/tiny-GGUF:Q8_0' })).details.quantization_level, 'Q8_0');
  await ollama.embed({ model: pulled, input: 'x' });
  assert.equal((await running()).filter((n) => n.toLowerCase() === pulled).length, 1);

  // A model the server's memory limit cannot hold: refused with the numbers, nothing downloaded.
  for (const stream of [true, false]) {
    await assert.rejects(ollama.pull({ model: 'snug-test/huge-GGUF', stream }),
      responseError(507, /does not fit.*\d+(\.\d+)? GiB/));
  }
  assert.equal(blobs().length, before.length + 1);
  assert.deepEqual(readdirSync(path.join(home, 'blobs', 'partial')), []);
  assert.ok(!(await ollama.list()).models.some((m) => m.name.includes('huge')));

  // An unknown repository.
  await assert.rejects(ollama.pull({ model: 'snug-test/missing-GGUF' }), responseError(404, /missing/i));

  // delete unloads and removes it; a second delete is a 404.
  assert.deepEqual(await ollama.delete({ model: 'snug-test/tiny-GGUF:Q8_0' }), { status: 'success' });
  assert.ok(!(await ollama.list()).models.some((m) => m.name === pulled));
  assert.ok(!(await running()).some((n) => n.toLowerCase() === pulled));
  assert.deepEqual(blobs(), before);
  await assert.rejects(ollama.delete({ model: pulled }), responseError(404, /tiny-gguf/));
});

test('delete refuses a model given on the command line and leaves it loaded', async () => {
  await ollama.generate({ model: 'tiny', prompt: '' });
  await assert.rejects(ollama.delete({ model: 'tiny' }), responseError(404, /command line/));
  assert.ok((await running()).includes('tiny'));
  assert.ok((await ollama.list()).models.some((m) => m.name === 'tiny'));
  await assert.rejects(ollama.delete({ model: 'nope' }), responseError(404, /nope/));
});

test('malformed requests are ResponseErrors with a sentence; the server keeps answering', async () => {
  const hello = [{ role: 'user', content: 'Hello' }];
  const cases = [
    [() => ollama.chat({ model: 'tiny', messages: 'Hello' }), 400, /messages/],
    [() => ollama.chat({ model: 'tiny', messages: hello, options: { mirostat_eta: 0.1, foo: 1 } }), 400, /mirostat_eta/],
    [() => ollama.chat({ model: 'tiny', messages: hello, keep_alive: '5 minutes' }), 400, /keep_alive/],
    [() => ollama.chat({ model: 'tiny', messages: hello, keep_alive: true }), 400, /keep_alive/],
    [() => ollama.chat({ model: 'nope', messages: hello }), 404, /nope/],
    [() => ollama.chat({ model: 'nope', messages: hello, stream: true }), 404, /nope/],
    [() => ollama.generate({ model: 'nope', prompt: 'Hello' }), 404, /nope/],
    [() => ollama.embed({ model: 'nope', input: 'Hello' }), 404, /nope/],
    [() => ollama.chat({ model: 'tiny', messages: [{ role: 'user', content: 42 }] }), 400, /content/],
    [() => ollama.chat({ model: 'tiny', messages: [{ role: 'robot', content: 'hi' }] }), 400, /role/],
    [() => ollama.chat({ model: 'tiny', messages: hello, options: { temperature: 'hot' } }), 400, /temperature/],
    [() => ollama.chat({ model: 'tiny', messages: hello, options: { num_predict: 1.5e9 } }), 400, /num_predict/],
    [() => ollama.chat({ model: 'tiny', messages: hello, options: 'fast' }), 400, /options/],
    [() => ollama.chat({ model: 'tiny', messages: hello, format: 'yaml' }), 400, /format/],
    [() => ollama.chat({ model: 'tiny', messages: hello, tools: 'get_weather' }), 400, /tools/],
    [() => ollama.chat({ model: 42, messages: hello }), 400, /model/],
    [() => ollama.chat({ model: 'tiny', messages: hello, stream: 'yes' }), 400, /stream/],
    [() => ollama.generate({ model: 'tiny', prompt: 42 }), 400, /prompt/],
    [() => ollama.generate({ model: 'tiny', prompt: 'x', images: ['aGVsbG8='] }), 400, /images/],
    [() => ollama.embed({ model: 'tiny', input: 42 }), 400, /input/],
    [() => ollama.embeddings({ model: 'tiny' }), 400, /prompt/],
    [() => ollama.show({ model: 42 }), 400, /model/],
    // Ollama's routes snug does not have: a sentence on what to do instead.
    [() => ollama.copy({ source: 'tiny', destination: 'tiny2' }), 501, /snug import/],
    [() => ollama.create({ model: 'mine', from: 'tiny', system: 'Be brief.' }), 501, /snug import/],
    [() => ollama.push({ model: 'tiny' }), 501, /push/],
  ];
  for (const [call, status, pattern] of cases) await assert.rejects(call, responseError(status, pattern));
  const { version } = await ollama.version();
  assert.ok(version);
  assert.ok((await ollama.chat(chatRequest)).message.content.length > 0);
});

test('--api-key: the Authorization header opens the server, its absence is a 401', async () => {
  const host = `http://127.0.0.1:${locked.port}`;
  const allowed = new Ollama({ host, headers: { Authorization: `Bearer ${apiKey}` } });
  assert.ok((await allowed.list()).models.some((m) => m.name === 'tiny'));
  const r = await allowed.chat(chatRequest);
  assert.ok(r.message.content.length > 0);

  for (const client of [new Ollama({ host }), new Ollama({ host, headers: { Authorization: 'Bearer wrong' } })]) {
    await assert.rejects(client.list(), responseError(401, /key/i));
    await assert.rejects(client.chat(chatRequest), responseError(401, /key/i));
    await assert.rejects(client.chat({ ...chatRequest, stream: true }), responseError(401, /key/i));
  }
});
