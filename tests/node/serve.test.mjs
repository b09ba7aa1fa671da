// `snug serve` driven by the official openai client: what an app developer sees.
// Run: SNUG_BINARY=build/snug node --test   (scripts/test.sh does this).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { startServer, stopServer } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const snug = process.env.SNUG_BINARY ?? path.resolve(here, '../../build/snug');
const apiKey = 'node-test-key';
let dir;
let server;
let client;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'snug-node-'));
  const model = path.join(dir, 'tiny.gguf');
  const made = spawnSync(snug, ['mkmodel', 'tiny', model, '--weights', 'random']);
  assert.equal(made.status, 0, String(made.stderr));
  server = await startServer(snug, [model, '--port', '0', '--ctx', '512', '--parallel', '4',
    '--api-key', apiKey]);
  client = new OpenAI({ baseURL: `http://127.0.0.1:${server.port}/v1`, apiKey, maxRetries: 0 });
});

after(async () => {
  await stopServer(server);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('lists models', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, ['tiny']);
  const one = await client.models.retrieve('tiny');
  assert.equal(one.id, 'tiny');
});

test('chat completion', async () => {
  const r = await client.chat.completions.create({
    model: 'tiny',
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }],
    max_tokens: 6,
    temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 6);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('streaming chat equals the non-streamed answer', async () => {
  const request = {
    model: 'tiny', messages: [{ role: 'user', content: 'Tell me' }],
    max_completion_tokens: 8, temperature: 0,
  };
  const whole = await client.chat.completions.create(request);
  const stream = await client.chat.completions.create({
    ...request, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
});

test('text completions, streamed and not', async () => {
  const r = await client.completions.create({
    model: 'tiny', prompt: 'Once upon a time', max_tokens: 5, temperature: 0,
  });
  assert.equal(r.object, 'text_completion');
  assert.equal(typeof r.choices[0].text, 'string');
  const stream = await client.completions.create({
    model: 'tiny', prompt: 'Once upon a time', max_tokens: 5, temperature: 0, stream: true,
  });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
});

test('chat logprobs', async () => {
  const r = await client.chat.completions.create({
    model: 'tiny', messages: [{ role: 'user', content: 'Hello' }],
    max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 2,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  for (const entry of content) {
    assert.ok(entry.logprob <= 0);
    assert.equal(entry.top_logprobs.length, 2);
    assert.deepEqual(entry.top_logprobs[0].bytes, entry.bytes);
  }
});

test('errors are OpenAI error objects', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && /no-such-model/.test(e.message),
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'tiny', messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.type === 'invalid_request_error',
  );
  await assert.rejects(
    client.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: 'x'.repeat(5000) }], max_tokens: 4,
    }),
    (e) => e instanceof OpenAI.BadRequestError && /context/.test(e.message),
  );
  await assert.rejects(
    client.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: 'x' }], max_tokens: -3,
    }),
    (e) => e instanceof OpenAI.BadRequestError,
  );
  const wrongKey = new OpenAI({ baseURL: client.baseURL, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(wrongKey.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
  // The server is still fine.
  const r = await client.chat.completions.create({
    model: 'tiny', messages: [{ role: 'user', content: 'still there?' }], max_tokens: 2,
  });
  assert.ok(r.choices.length === 1);
});

test('concurrent streams all complete', async () => {
  const runs = Array.from({ length: 8 }, (_, i) => (async () => {
    const stream = await client.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: `stream ${i}` }],
      max_tokens: 6, temperature: 0, stream: true,
    });
    let finish = null;
    for await (const chunk of stream) finish = chunk.choices[0]?.finish_reason ?? finish;
    return finish;
  })());
  for (const finish of await Promise.all(runs)) assert.ok(['stop', 'length'].includes(finish));
});

test('embeddings with the SDK defaults (base64 on the wire) equal the float form', async () => {
  // The SDK asks for encoding_format "base64" unless told otherwise and decodes it itself.
  const r = await client.embeddings.create({ model: 'tiny', input: ['hello there', 'bye'] });
  assert.equal(r.data.length, 2);
  const floats = await client.embeddings.create({
    model: 'tiny', input: ['hello there', 'bye'], encoding_format: 'float',
  });
  for (let i = 0; i < 2; i++) {
    const v = r.data[i].embedding;
    assert.equal(v.length, 128); // tiny's n_embd
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 1e-4, `norm ${norm}`);
    // float32 on the wire vs JSON numbers of the same float32 values
    v.forEach((x, k) => assert.ok(Math.abs(x - floats.data[i].embedding[k]) < 1e-6));
  }
  assert.ok(r.usage.prompt_tokens > 0);
});
