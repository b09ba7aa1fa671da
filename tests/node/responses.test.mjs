// OpenAI's Responses API (POST /v1/responses) and embeddings through the clients' defaults: the
// official openai client and LangChain's OpenAIEmbeddings, as an app developer calls them.
// Run: SNUG_BINARY=build/snug SNUG_LLAMA_SRC=<llama.cpp source> node --test (scripts/test.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { zodTextFormat } from 'openai/helpers/zod';
import { OpenAIEmbeddings } from '@langchain/openai';
import { z } from 'zod';
import Ajv from 'ajv';
import { startServer, stopServer } from './server.mjs';
import { weatherSchema } from './fixtures.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const snug = process.env.SNUG_BINARY ?? path.resolve(here, '../../build/snug');
const llamaSrc = process.env.SNUG_LLAMA_SRC;
let dir;
let server;
let client;
let baseURL;

before(async () => {
  assert.ok(llamaSrc, 'SNUG_LLAMA_SRC must name llama.cpp\'s source tree (scripts/test.sh sets it)');
  dir = mkdtempSync(path.join(tmpdir(), 'snug-node-responses-'));
  // tiny: no chat template (snug's plain fallback); llama32: a real template that renders tools.
  const tiny = path.join(dir, 'tiny.gguf');
  const llama32 = path.join(dir, 'llama32.gguf');
  for (const [file, extra] of [
    [tiny, []],
    [llama32, ['--chat-template',
      path.join(llamaSrc, 'models', 'templates', 'meta-llama-Llama-3.2-3B-Instruct.jinja')]],
  ]) {
    const made = spawnSync(snug, ['mkmodel', 'tiny', file, '--weights', 'random', ...extra]);
    assert.equal(made.status, 0, String(made.stderr));
  }
  server = await startServer(snug, [tiny, llama32, '--port', '0', '--ctx', '1024', '--parallel', '4']);
  baseURL = `http://127.0.0.1:${server.port}/v1`;
  client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  await stopServer(server);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function assertUsage(usage) {
  assert.ok(usage.input_tokens > 0);
  assert.ok(usage.output_tokens >= 1);
  assert.equal(usage.total_tokens, usage.input_tokens + usage.output_tokens);
  assert.equal(typeof usage.input_tokens_details.cached_tokens, 'number');
  assert.equal(usage.output_tokens_details.reasoning_tokens, 0);
}

test('responses.create answers with a message and output_text', async () => {
  const r = await client.responses.create({
    model: 'tiny', input: 'Hello there', max_output_tokens: 8, temperature: 0,
  });
  assert.equal(r.object, 'response');
  assert.match(r.id, /^resp_/);
  assert.equal(r.model, 'tiny');
  assert.ok(['completed', 'incomplete'].includes(r.status));
  assert.equal(r.error, null);
  assert.equal(typeof r.output_text, 'string');
  assert.ok(r.output_text.length > 0);
  const message = r.output.find((item) => item.type === 'message');
  assert.equal(message.role, 'assistant');
  assert.equal(message.content[0].type, 'output_text');
  assert.equal(message.content[0].text, r.output_text);
  assertUsage(r.usage);
  assert.ok(r.usage.output_tokens <= 8);
  // The request's settings come back.
  assert.equal(r.max_output_tokens, 8);
  assert.equal(r.temperature, 0);
  assert.equal(r.store, false);
  assert.deepEqual(r.tools, []);
  assert.deepEqual(r.text.format, { type: 'text' });
});

test('instructions come before the input', async () => {
  const request = { model: 'tiny', input: 'Hello there', max_output_tokens: 2, temperature: 0 };
  const plain = await client.responses.create(request);
  const told = await client.responses.create({
    ...request, instructions: 'You are a terse assistant who answers in one word.',
  });
  assert.ok(told.usage.input_tokens > plain.usage.input_tokens,
    `${told.usage.input_tokens} <= ${plain.usage.input_tokens}`);
  assert.equal(told.instructions, 'You are a terse assistant who answers in one word.');
  // The same input given as a message item with a developer message reads the same way.
  const items = await client.responses.create({
    ...request,
    input: [
      { role: 'developer', content: 'You are a terse assistant who answers in one word.' },
      { role: 'user', content: [{ type: 'input_text', text: 'Hello there' }] },
    ],
  });
  assert.equal(items.usage.input_tokens, told.usage.input_tokens);
  assert.equal(items.output_text, told.output_text);
});

test('a stream sends typed events in order, and its deltas make the whole answer', async () => {
  const request = { model: 'tiny', input: 'Tell me a story', max_output_tokens: 12, temperature: 0 };
  const whole = await client.responses.create(request);
  const stream = await client.responses.create({ ...request, stream: true });
  const types = [];
  let text = '';
  let final = null;
  let sequence = 0;
  for await (const event of stream) {
    types.push(event.type);
    assert.equal(event.sequence_number, sequence++);
    if (event.type === 'response.output_text.delta') {
      assert.equal(event.output_index, 0);
      assert.equal(event.content_index, 0);
      assert.match(event.item_id, /^msg_/);
      text += event.delta;
    }
    if (event.type === 'response.completed' || event.type === 'response.incomplete') {
      final = event.response;
    }
  }
  assert.equal(types[0], 'response.created');
  assert.equal(types[1], 'response.in_progress');
  const order = ['response.output_item.added', 'response.content_part.added',
    'response.output_text.delta', 'response.output_text.done', 'response.content_part.done',
    'response.output_item.done'];
  let at = 1;
  for (const type of order) {
    const next = types.indexOf(type, at);
    assert.ok(next > at, `${type} missing or out of order: ${types}`);
    at = next;
  }
  assert.equal(types.at(-1), whole.status === 'completed' ? 'response.completed' : 'response.incomplete');
  assert.equal(text, whole.output_text);
  assert.equal(final.status, whole.status);
  assert.equal(final.output[0].content[0].text, text);
  assert.equal(final.usage.output_tokens, whole.usage.output_tokens);
  assert.equal(final.usage.input_tokens, whole.usage.input_tokens);

  // The SDK's stream helper assembles the same response from the events (its final response
  // has no output_text convenience unless a format is parsed: read the message).
  const helper = client.responses.stream(request);
  let helperText = '';
  helper.on('response.output_text.delta', (event) => { helperText += event.delta; });
  const assembled = await helper.finalResponse();
  assert.equal(helperText, whole.output_text);
  assert.equal(assembled.output.find((item) => item.type === 'message').content[0].text,
    whole.output_text);
});

test('max_output_tokens cuts the answer: status incomplete', async () => {
  const r = await client.responses.create({
    model: 'tiny', input: 'Write a long essay about rivers.', max_output_tokens: 2, temperature: 0,
  });
  assert.equal(r.status, 'incomplete');
  assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
  assert.equal(r.usage.output_tokens, 2);
  assert.equal(typeof r.output_text, 'string');
});

test('store and previous_response_id continue a conversation; retrieve and delete', async () => {
  const first = await client.responses.create({
    model: 'tiny', input: 'My name is Ada.', max_output_tokens: 6, temperature: 0, store: true,
  });
  assert.equal(first.store, true);
  const second = await client.responses.create({
    model: 'tiny', input: 'What is my name?', previous_response_id: first.id,
    max_output_tokens: 6, temperature: 0, store: true,
  });
  assert.equal(second.previous_response_id, first.id);
  // The second prompt holds the first exchange as well.
  assert.ok(second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens - 2,
    `${second.usage.input_tokens} vs ${first.usage.input_tokens} + ${first.usage.output_tokens}`);

  const again = await client.responses.retrieve(first.id);
  assert.equal(again.id, first.id);
  assert.equal(again.output_text, first.output_text);
  const items = await client.responses.inputItems.list(first.id);
  assert.equal(items.data.length, 1);
  assert.equal(items.data[0].content[0].text, 'My name is Ada.');

  await client.responses.delete(first.id);
  await assert.rejects(client.responses.retrieve(first.id),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404);
  // The second still stands on its own: it kept the whole conversation.
  const third = await client.responses.create({
    model: 'tiny', input: 'And again?', previous_response_id: second.id, max_output_tokens: 2,
  });
  assert.ok(third.usage.input_tokens > second.usage.input_tokens);
  await client.responses.delete(second.id);

  // Without store nothing is kept.
  const unstored = await client.responses.create({ model: 'tiny', input: 'x', max_output_tokens: 1 });
  await assert.rejects(client.responses.retrieve(unstored.id), (e) => e instanceof OpenAI.NotFoundError);
});

test('an unknown previous_response_id is a 404', async () => {
  await assert.rejects(
    client.responses.create({ model: 'tiny', input: 'x', previous_response_id: 'resp_unknown' }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && /resp_unknown/.test(e.message),
  );
});

test('malformed requests are 400s that name the field', async () => {
  const cases = [
    [{ model: 'tiny', input: 42 }, /'input'/],
    [{ model: 'tiny' }, /'input' is required/],
    [{ model: 'tiny', input: [{ role: 'wizard', content: 'x' }] }, /input\[0\]\.role/],
    [{ model: 'tiny', input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'https://x/y.png' }] }] },
      /input_image/],
    [{ model: 'tiny', input: 'x', tools: [{ type: 'web_search' }] }, /web_search/],
    [{ model: 'tiny', input: 'x', temperature: 'hot' }, /'temperature'/],
    [{ model: 'tiny', input: 'x', max_output_tokens: 0 }, /'max_output_tokens'/],
    [{ model: 'tiny', input: 'x', text: { format: { type: 'json_schema', name: 'x' } } }, /text\.format\.schema/],
    [{ model: 'tiny', input: 'x', truncation: 'auto' }, /truncation/],
    [{ model: 'tiny', input: [{ type: 'function_call_output', output: 'x' }] }, /input\[0\]\.call_id/],
  ];
  for (const [request, message] of cases) {
    await assert.rejects(client.responses.create(request),
      (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && message.test(e.message),
      `${JSON.stringify(request)}`);
  }
  // Still serving.
  const r = await client.responses.create({ model: 'tiny', input: 'still there?', max_output_tokens: 1 });
  assert.equal(typeof r.output_text, 'string');
});

const countSchema = {
  type: 'object',
  properties: {
    n: { type: 'integer', minimum: 0, maximum: 99 },
    ok: { type: 'boolean' },
    tag: { type: 'string', enum: ['a', 'b'] },
  },
  required: ['n', 'ok', 'tag'],
  additionalProperties: false,
};

test('text.format json_schema: the grammar makes even a random model write matching JSON', async () => {
  const valid = new Ajv().compile(countSchema);
  const r = await client.responses.create({
    model: 'tiny', input: 'Give me a count.', temperature: 0, max_output_tokens: 200,
    text: { format: { type: 'json_schema', name: 'count', schema: countSchema, strict: true } },
  });
  assert.equal(r.status, 'completed');
  const value = JSON.parse(r.output_text);
  assert.ok(valid(value), JSON.stringify(valid.errors));
  assert.equal(r.text.format.type, 'json_schema');

  // The SDK's parse helper with a zod schema.
  const Count = z.object({ n: z.number().int().min(0).max(99), ok: z.boolean(), tag: z.enum(['a', 'b']) });
  const parsed = await client.responses.parse({
    model: 'tiny', input: 'Another count.', temperature: 0, max_output_tokens: 200,
    text: { format: zodTextFormat(Count, 'count') },
  });
  assert.ok(Count.safeParse(parsed.output_parsed).success, parsed.output_text);
});

test('function calls and their outputs in the input render with the model\'s template', async () => {
  const tools = [{
    type: 'function', name: 'get_weather', description: 'Forecast for a city',
    parameters: {
      type: 'object', properties: { city: { type: 'string' } }, required: ['city'],
      additionalProperties: false,
    },
  }];
  const question = { role: 'user', content: 'What is the weather in Paris?' };
  const asked = await client.responses.create({
    model: 'llama32', input: [question], tools, max_output_tokens: 4, temperature: 0,
  });
  const answered = await client.responses.create({
    model: 'llama32', tools, max_output_tokens: 4, temperature: 0,
    input: [
      question,
      { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' },
      { type: 'function_call_output', call_id: 'call_1', output: 'Sunny, 24 degrees' },
    ],
  });
  assert.ok(answered.usage.input_tokens > asked.usage.input_tokens + 8);
  assert.equal(answered.tools[0].name, 'get_weather');
  assert.equal(answered.tools[0].type, 'function');
  assert.equal(typeof answered.output_text, 'string');
  // A named tool_choice must name one of the tools.
  await assert.rejects(
    client.responses.create({
      model: 'llama32', input: [question], tools, tool_choice: { type: 'function', name: 'nope' },
    }),
    (e) => e instanceof OpenAI.BadRequestError && /nope/.test(e.message),
  );
});

// Random weights would ramble before opening a call (llama.cpp's grammar for a required call
// lets a model write text first); snug's logit_bias extension on "{" (token 90 of the llama-bpe
// tokenizer) makes them open it at once, as chat-tools.test.mjs does. The rest is the grammar's.

test('a required call comes back as a function_call item, whole and streamed, and is answered', async () => {
  const valid = new Ajv().compile(weatherSchema);
  const request = {
    model: 'llama32', input: [{ role: 'user', content: 'Weather in Paris for 3 days?' }],
    tools: [{ type: 'function', name: 'get_weather', description: 'Forecast', parameters: weatherSchema }],
    tool_choice: 'required', parallel_tool_calls: false, temperature: 0, max_output_tokens: 120,
    logit_bias: { 90: 30 },
  };
  const r = await client.responses.create({ ...request, store: true });
  assert.equal(r.status, 'completed');
  const calls = r.output.filter((item) => item.type === 'function_call');
  assert.equal(calls.length, 1, JSON.stringify(r.output));
  const call = calls[0];
  assert.equal(call.name, 'get_weather');
  assert.equal(call.status, 'completed');
  assert.match(call.id, /^fc_/);
  assert.match(call.call_id, /\S/);
  assert.ok(valid(JSON.parse(call.arguments)), JSON.stringify(valid.errors));

  const stream = client.responses.stream(request);
  let deltas = '';
  stream.on('response.function_call_arguments.delta', (event) => { deltas += event.delta; });
  const final = await stream.finalResponse();
  const streamed = final.output.find((item) => item.type === 'function_call');
  assert.equal(streamed.name, 'get_weather');
  assert.equal(streamed.arguments, deltas);
  // Not compared with the whole answer's: on random weights the grammar's near-ties can fall
  // either way once the slot reuses a cached prompt.
  assert.ok(valid(JSON.parse(streamed.arguments)), JSON.stringify(valid.errors));

  // The call's result continues the stored conversation.
  const answered = await client.responses.create({
    model: 'llama32', previous_response_id: r.id, tools: request.tools,
    input: [{ type: 'function_call_output', call_id: call.call_id, output: 'Sunny, 24 degrees' }],
    max_output_tokens: 4, temperature: 0,
  });
  assert.ok(answered.usage.input_tokens > r.usage.input_tokens);
  assert.equal(typeof answered.output_text, 'string');
  await client.responses.delete(r.id);
});

test('embeddings with the clients\' defaults: openai (base64) and LangChain agree', async () => {
  const texts = ['hello there', 'the quick brown fox'];
  const sdk = await client.embeddings.create({ model: 'tiny', input: texts }); // base64 on the wire
  const floats = await client.embeddings.create({ model: 'tiny', input: texts, encoding_format: 'float' });
  assert.equal(sdk.data.length, 2);
  for (let i = 0; i < 2; i++) {
    assert.equal(sdk.data[i].embedding.length, 128); // tiny's n_embd
    sdk.data[i].embedding.forEach((x, k) => assert.ok(Math.abs(x - floats.data[i].embedding[k]) < 1e-6));
  }
  const langchain = new OpenAIEmbeddings({ model: 'tiny', configuration: { baseURL, apiKey: 'unused' } });
  const query = await langchain.embedQuery(texts[0]);
  assert.equal(query.length, 128);
  query.forEach((x, k) => assert.ok(Math.abs(x - floats.data[0].embedding[k]) < 1e-6));
  const documents = await langchain.embedDocuments(texts);
  assert.equal(documents.length, 2);
  for (let i = 0; i < 2; i++) {
    assert.equal(documents[i].length, 128);
    documents[i].forEach((x, k) => assert.ok(Math.abs(x - floats.data[i].embedding[k]) < 1e-6));
  }
});
