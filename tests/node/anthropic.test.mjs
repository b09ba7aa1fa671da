// `snug serve` driven by Anthropic's official SDK (@anthropic-ai/sdk) over /v1/messages: what an
// app written for Claude's Messages API sees when pointed at snug.
// Run: SNUG_BINARY=build/snug SNUG_LLAMA_SRC=<llama.cpp source> node --test (scripts/test.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import Ajv from 'ajv';
import { startServer, stopServer } from './server.mjs';
import { weatherSchema } from './fixtures.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const snug = process.env.SNUG_BINARY ?? path.resolve(here, '../../build/snug');
const llamaSrc = process.env.SNUG_LLAMA_SRC;
const apiKey = 'anthropic-test-key';
let dir;
let server;      // one model (tiny), --api-key: requests may leave 'model' out
let toolServer;  // the tiny model with functionary v3.2's and Qwen3's templates: tools, thinking
let client;
let tools;

// Functionary v3.2 writes a call as ">>>name\n{...}": with a call required, llama.cpp's grammar
// starts the answer with the name, so even random weights make a call (other formats let a model
// write text first, which random weights never stop doing).
const toolModel = 'functionary';
const weatherTool = { name: 'get_weather', description: 'Forecast for a city', input_schema: weatherSchema };
const validWeather = new Ajv().compile(weatherSchema);

function mkmodel(file, ...extra) {
  const made = spawnSync(snug, ['mkmodel', 'tiny', file, '--weights', 'random', ...extra]);
  assert.equal(made.status, 0, String(made.stderr));
  return file;
}

before(async () => {
  assert.ok(llamaSrc, 'SNUG_LLAMA_SRC must name llama.cpp\'s source tree (scripts/test.sh sets it)');
  dir = mkdtempSync(path.join(tmpdir(), 'snug-node-anthropic-'));
  const tiny = mkmodel(path.join(dir, 'tiny.gguf'));
  const template = (file) => ['--chat-template', path.join(llamaSrc, 'models', 'templates', file)];
  const functionary = mkmodel(path.join(dir, `${toolModel}.gguf`),
    ...template('meetkai-functionary-medium-v3.2.jinja'));
  const qwen3 = mkmodel(path.join(dir, 'qwen3.gguf'), ...template('Qwen-Qwen3-0.6B.jinja'));
  [server, toolServer] = await Promise.all([
    startServer(snug, [tiny, '--port', '0', '--ctx', '512', '--parallel', '4', '--api-key', apiKey]),
    startServer(snug, [functionary, qwen3, '--port', '0', '--ctx', '2048', '--parallel', '2']),
  ]);
  client = new Anthropic({ baseURL: `http://127.0.0.1:${server.port}`, apiKey, maxRetries: 0 });
  tools = new Anthropic({ baseURL: `http://127.0.0.1:${toolServer.port}`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  await Promise.all([stopServer(server), stopServer(toolServer)]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const hello = {
  model: 'tiny', max_tokens: 8, temperature: 0, system: 'Be brief.',
  messages: [{ role: 'user', content: 'Hello' }],
};

function assertUsage(usage) {
  for (const key of ['input_tokens', 'output_tokens', 'cache_read_input_tokens', 'cache_creation_input_tokens']) {
    assert.ok(Number.isInteger(usage[key]) && usage[key] >= 0, `${key}: ${usage[key]}`);
  }
}

test('messages.create returns a message with text, a stop reason and consistent usage', async () => {
  const m = await client.messages.create(hello);
  assert.match(m.id, /^msg_/);
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.equal(m.model, 'tiny');
  assert.equal(m.content.length, 1);
  assert.equal(m.content[0].type, 'text');
  assert.equal(typeof m.content[0].text, 'string');
  assert.ok(['end_turn', 'max_tokens'].includes(m.stop_reason), m.stop_reason);
  assert.equal(m.stop_sequence, null);
  assertUsage(m.usage);
  assert.ok(m.usage.output_tokens >= 1 && m.usage.output_tokens <= 8);
  // input_tokens counts what was not read from the cache, as Anthropic's does: with the cached
  // part it is the whole prompt, the number count_tokens gives.
  const { input_tokens: counted } = await client.messages.countTokens({
    model: 'tiny', system: hello.system, messages: hello.messages,
  });
  assert.equal(m.usage.input_tokens + m.usage.cache_read_input_tokens, counted);
});

test('a small max_tokens ends with stop_reason max_tokens', async () => {
  const m = await client.messages.create({ ...hello, max_tokens: 2, messages: [{ role: 'user', content: 'Tell me a story' }] });
  assert.equal(m.stop_reason, 'max_tokens');
  assert.equal(m.usage.output_tokens, 2);
});

test('model may be left out when the server has one model; the answer names it', async () => {
  const { model, ...rest } = hello;
  const m = await client.messages.create(rest);
  assert.equal(m.model, model);
  const counted = await client.messages.countTokens({ messages: hello.messages });
  assert.ok(counted.input_tokens > 0);
});

test('streamed answer: the full event sequence, and the same text as the greedy whole answer', async () => {
  const request = { ...hello, max_tokens: 10, messages: [{ role: 'user', content: 'Tell me' }] };
  const whole = await client.messages.create(request);

  // The raw events, as create({stream: true}) hands them over.
  const events = [];
  for await (const event of await client.messages.create({ ...request, stream: true })) events.push(event);
  const types = events.map((e) => e.type);
  assert.equal(types[0], 'message_start');
  assert.equal(types[1], 'content_block_start');
  assert.ok(types.slice(2, -3).every((t) => t === 'content_block_delta'), types.join(' '));
  assert.deepEqual(types.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
  const start = events[0].message;
  assert.match(start.id, /^msg_/);
  assert.equal(start.type, 'message');
  assert.equal(start.model, 'tiny');
  assert.deepEqual(start.content, []);
  assert.equal(start.stop_reason, null);
  assert.equal(start.usage.input_tokens + start.usage.cache_read_input_tokens,
    whole.usage.input_tokens + whole.usage.cache_read_input_tokens);
  assert.deepEqual(events[1], { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
  const text = events.filter((e) => e.type === 'content_block_delta')
    .map((e) => { assert.equal(e.delta.type, 'text_delta'); assert.equal(e.index, 0); return e.delta.text; })
    .join('');
  assert.equal(text, whole.content[0].text);
  assert.equal(events.at(-3).index, 0);
  const delta = events.at(-2);
  assert.equal(delta.delta.stop_reason, whole.stop_reason);
  assert.equal(delta.delta.stop_sequence, null);
  assert.equal(delta.usage.output_tokens, whole.usage.output_tokens);

  // The SDK's MessageStream assembles the same message.
  const final = await client.messages.stream(request).finalMessage();
  assert.equal(final.content.length, 1);
  assert.equal(final.content[0].text, whole.content[0].text);
  assert.equal(final.stop_reason, whole.stop_reason);
  assert.equal(final.usage.output_tokens, whole.usage.output_tokens);
  assert.equal(final.usage.input_tokens + final.usage.cache_read_input_tokens,
    whole.usage.input_tokens + whole.usage.cache_read_input_tokens);
});

test('stop_sequences: the answer ends before the sequence, which the message names', async () => {
  const request = { ...hello, max_tokens: 12, messages: [{ role: 'user', content: 'Go on' }] };
  const whole = await client.messages.create(request);
  const text = whole.content[0].text;
  // Three ASCII letters from the greedy answer (random weights write plenty of them).
  const found = /[A-Za-z]{3}/.exec(text.slice(1));
  assert.ok(found, `no ASCII letters in ${JSON.stringify(text)}`);
  const stop = found[0];
  for (const stream of [false, true]) {
    const m = stream
      ? await client.messages.stream({ ...request, stop_sequences: ['zzqqzz', stop] }).finalMessage()
      : await client.messages.create({ ...request, stop_sequences: ['zzqqzz', stop] });
    assert.equal(m.stop_reason, 'stop_sequence');
    assert.equal(m.stop_sequence, stop);
    assert.equal(m.content[0].text, text.slice(0, text.indexOf(stop)));
  }
  const none = await client.messages.create({ ...request, stop_sequences: ['zzqqzz'] });
  assert.equal(none.stop_sequence, null);
  assert.equal(none.content[0].text, text);
});

test('count_tokens counts the system prompt and the tools through the template', async () => {
  const messages = [{ role: 'user', content: 'What is the weather?' }];
  const bare = await client.messages.countTokens({ model: 'tiny', messages });
  const withSystem = await client.messages.countTokens({
    model: 'tiny', messages, system: [{ type: 'text', text: 'You are a meteorologist who answers in one line.' }],
  });
  assert.ok(withSystem.input_tokens > bare.input_tokens + 5, `${withSystem.input_tokens} vs ${bare.input_tokens}`);
  const withTools = await tools.messages.countTokens({ model: toolModel, messages, tools: [weatherTool] });
  const noTools = await tools.messages.countTokens({ model: toolModel, messages });
  assert.ok(withTools.input_tokens > noTools.input_tokens + 10);
  // The system prompt reaches generation too: the prompt grows by the same count.
  const answered = await client.messages.create({
    ...hello, system: 'You are a meteorologist who answers in one line.', messages,
  });
  assert.equal(answered.usage.input_tokens + answered.usage.cache_read_input_tokens, withSystem.input_tokens);
});

test('x-api-key is checked: a wrong key is an AuthenticationError', async () => {
  const wrong = new Anthropic({ baseURL: `http://127.0.0.1:${server.port}`, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(wrong.messages.create(hello), (e) => {
    assert.ok(e instanceof Anthropic.AuthenticationError, String(e));
    assert.equal(e.status, 401);
    assert.equal(e.error.type, 'error');
    assert.equal(e.error.error.type, 'authentication_error');
    return true;
  });
});

test('an unknown model is a NotFoundError in Anthropic\'s error shape', async () => {
  await assert.rejects(client.messages.create({ ...hello, model: 'no-such-model' }), (e) => {
    assert.ok(e instanceof Anthropic.NotFoundError, String(e));
    assert.equal(e.status, 404);
    assert.equal(e.type, 'not_found_error');
    assert.match(e.error.error.message, /no-such-model/);
    return true;
  });
  await assert.rejects(client.messages.countTokens({ model: 'no-such-model', messages: hello.messages }),
    (e) => e instanceof Anthropic.NotFoundError);
});

test('malformed requests are 400 invalid_request_error naming the field; the server answers on', async () => {
  const { max_tokens: _unused, ...noMax } = hello;
  const bad = [
    [noMax, /max_tokens/],
    [{ ...hello, max_tokens: 0 }, /max_tokens/],
    [{ ...hello, max_tokens: 'many' }, /max_tokens/],
    [{ ...hello, messages: 'Hello' }, /messages/],
    [{ ...hello, messages: [] }, /messages/],
    [{ ...hello, messages: [{ role: 'user', content: 42 }] }, /messages\.0\.content/],
    [{ ...hello, messages: [{ role: 'robot', content: 'x' }] }, /messages\.0\.role/],
    [{ ...hello, messages: [{ role: 'user', content: [{ type: 'text' }] }] }, /messages\.0\.content\.0\.text/],
    [{ ...hello, temperature: 'hot' }, /temperature/],
    [{ ...hello, temperature: 1.5 }, /temperature/],
    [{ ...hello, top_k: -1 }, /top_k/],
    [{ ...hello, system: 7 }, /system/],
    [{ ...hello, stop_sequences: 'END' }, /stop_sequences/],
    [{ ...hello, tools: [{ name: 'f' }] }, /tools\.0\.input_schema/],
    [{ ...hello, tools: [weatherTool], tool_choice: { type: 'tool', name: 'nope' } }, /tool_choice/],
    [{ ...hello, tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, /server tools/],
    [{ ...hello, frequency_penalty: 1 }, /frequency_penalty: Extra inputs are not permitted/],
    [{ ...hello, mcp_servers: [{ type: 'url', url: 'https://example.com', name: 'x' }] }, /mcp_servers/],
    [{
      ...hello,
      messages: [{
        role: 'user',
        content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } }],
      }],
    }, /images are not supported/],
    [{ ...hello, messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hel' }] }, /prefill/],
  ];
  for (const [body, field] of bad) {
    await assert.rejects(client.messages.create(body), (e) => {
      assert.ok(e instanceof Anthropic.BadRequestError, `${JSON.stringify(body)}: ${e}`);
      assert.equal(e.status, 400);
      assert.equal(e.error.type, 'error');
      assert.equal(e.error.error.type, 'invalid_request_error');
      assert.match(e.error.error.message, field);
      return true;
    }, JSON.stringify(body));
  }
  // Documented fields that change nothing here are accepted.
  const m = await client.messages.create({
    ...hello, metadata: { user_id: 'u1' }, service_tier: 'auto', top_k: 5, top_p: 0.9,
    thinking: { type: 'disabled' }, cache_control: { type: 'ephemeral' },
  });
  assert.equal(m.type, 'message');
});

test('a required tool call comes back as a tool_use block with a parsed input', async () => {
  const request = {
    model: toolModel, max_tokens: 120, temperature: 0, tools: [weatherTool],
    messages: [{ role: 'user', content: 'What will the weather be in Paris for 3 days?' }],
  };
  for (const toolChoice of [{ type: 'tool', name: 'get_weather' }, { type: 'any' }]) {
    const m = await tools.messages.create({ ...request, tool_choice: toolChoice });
    assert.equal(m.stop_reason, 'tool_use', JSON.stringify(m.content));
    const calls = m.content.filter((b) => b.type === 'tool_use');
    assert.equal(calls.length, 1);
    assert.equal(calls[0].name, 'get_weather');
    assert.match(calls[0].id, /\S/);
    assert.ok(validWeather(calls[0].input), JSON.stringify(validWeather.errors));
  }

  // Streamed: a tool_use block filled by input_json_delta events, assembled by the SDK.
  const whole = await tools.messages.create({ ...request, tool_choice: { type: 'tool', name: 'get_weather' } });
  const stream = tools.messages.stream({ ...request, tool_choice: { type: 'tool', name: 'get_weather' } });
  let jsonDeltas = 0;
  let started = null;
  stream.on('streamEvent', (event) => {
    if (event.type === 'content_block_start' && event.content_block.type === 'tool_use') started = event.content_block;
    if (event.type === 'content_block_delta' && event.delta.type === 'input_json_delta') jsonDeltas++;
  });
  const final = await stream.finalMessage();
  assert.ok(jsonDeltas >= 1);
  assert.equal(started.name, 'get_weather');
  assert.deepEqual(started.input, {});
  assert.equal(final.stop_reason, 'tool_use');
  const call = final.content.find((b) => b.type === 'tool_use');
  assert.deepEqual(call.input, whole.content.find((b) => b.type === 'tool_use').input);

  // The conversation goes on with the result: the template renders it, the model answers.
  const followUp = {
    model: toolModel, max_tokens: 6, temperature: 0, tools: [weatherTool],
    messages: [
      ...request.messages,
      { role: 'assistant', content: final.content },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: call.id, content: [{ type: 'text', text: 'Sunny, 21 C, all three days.' }] },
          { type: 'text', text: 'Thanks!' },
        ],
      },
    ],
  };
  const answer = await tools.messages.create(followUp);
  assert.equal(answer.type, 'message');
  assert.ok(['end_turn', 'max_tokens', 'tool_use'].includes(answer.stop_reason));
  const { input_tokens: before } = await tools.messages.countTokens({ ...request });
  const { input_tokens: after } = await tools.messages.countTokens({ model: toolModel, tools: [weatherTool], messages: followUp.messages });
  assert.ok(after > before + 10, `${after} vs ${before}`);
  // A tool_result that answers with is_error is accepted too.
  followUp.messages[2].content[0].is_error = true;
  const failed = await tools.messages.create(followUp);
  assert.equal(failed.type, 'message');
});

test('output_config.format constrains the text to the JSON schema', async () => {
  const schema = {
    type: 'object',
    properties: { n: { type: 'integer', minimum: 0, maximum: 99 }, ok: { type: 'boolean' } },
    required: ['n', 'ok'],
    additionalProperties: false,
  };
  const m = await client.messages.create({
    ...hello, max_tokens: 200, messages: [{ role: 'user', content: 'Give me a count.' }],
    output_config: { format: { type: 'json_schema', schema } },
  });
  assert.equal(m.stop_reason, 'end_turn');
  const value = JSON.parse(m.content[0].text);
  assert.ok(new Ajv().compile(schema)(value), m.content[0].text);
});

test('thinking is off unless asked, as in Anthropic\'s API; earlier thinking blocks are accepted', async () => {
  const messages = [{ role: 'user', content: 'What is 2+2?' }];
  const count = (thinking) => tools.messages.countTokens({ model: 'qwen3', messages, ...(thinking ? { thinking } : {}) })
    .then((r) => r.input_tokens);
  // Qwen3's template closes an empty thought in the prompt when thinking is off.
  const off = await count(null);
  assert.equal(await count({ type: 'disabled' }), off);
  const on = await count({ type: 'enabled', budget_tokens: 1024 });
  assert.ok(off > on, `${off} vs ${on}`);
  const history = [
    ...messages,
    {
      role: 'assistant',
      content: [
        { type: 'thinking', thinking: 'Two and two make four.', signature: 'sig' },
        { type: 'redacted_thinking', data: 'opaque' },
        { type: 'text', text: 'Four.' },
      ],
    },
    { role: 'user', content: 'And 3+3?' },
  ];
  const m = await tools.messages.create({ model: 'qwen3', max_tokens: 4, temperature: 0, messages: history });
  assert.equal(m.type, 'message');
});
