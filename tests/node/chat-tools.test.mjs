// Tools, structured output and reasoning through the official openai client, on synthetic models
// that carry real chat templates from llama.cpp's source tree (models/templates/*.jinja).
// Run: SNUG_BINARY=build/snug SNUG_LLAMA_SRC=<llama.cpp source> node --test (scripts/test.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { startServer, stopServer } from './server.mjs';
import { weatherSchema } from './fixtures.mjs';
import { zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import Ajv from 'ajv';

const here = path.dirname(fileURLToPath(import.meta.url));
const snug = process.env.SNUG_BINARY ?? path.resolve(here, '../../build/snug');
const llamaSrc = process.env.SNUG_LLAMA_SRC;
let dir;
let server;
let client;
let baseUrl;

// The models: the tiny preset (llama-bpe tokenizer) with each template written into the GGUF.
const templates = {
  llama32: 'meta-llama-Llama-3.2-3B-Instruct.jinja',
  qwen25: 'Qwen-Qwen2.5-7B-Instruct.jinja',
  nemo: 'mistralai-Mistral-Nemo-Instruct-2407.jinja',
  qwen3: 'Qwen-Qwen3-0.6B.jinja',
};

const tools = [{
  type: 'function',
  function: { name: 'get_weather', description: 'Forecast for a city', parameters: weatherSchema },
}];
const validWeather = new Ajv().compile(weatherSchema);

// llama.cpp's grammar for a required call lets a model write text first, as a real model may;
// random weights would ramble on, so a bias on "{" (token 90 of the llama-bpe tokenizer) makes
// them open the call at once. What follows the brace is the grammar's doing alone.
const openCall = { 90: 30 };

before(async () => {
  assert.ok(llamaSrc, 'SNUG_LLAMA_SRC must name llama.cpp\'s source tree (scripts/test.sh sets it)');
  dir = mkdtempSync(path.join(tmpdir(), 'snug-node-chat-'));
  const models = [];
  for (const [name, file] of Object.entries(templates)) {
    const model = path.join(dir, `${name}.gguf`);
    const made = spawnSync(snug, ['mkmodel', 'tiny', model, '--weights', 'random',
      '--chat-template', path.join(llamaSrc, 'models', 'templates', file)]);
    assert.equal(made.status, 0, String(made.stderr));
    models.push(model);
  }
  server = await startServer(snug, [...models, '--port', '0', '--ctx', '2048', '--parallel', '4']);
  baseUrl = `http://127.0.0.1:${server.port}`;
  client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  await stopServer(server);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function assertWeatherCall(call) {
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.match(call.id, /\S/);
  assert.equal(typeof call.function.arguments, 'string');
  const args = JSON.parse(call.function.arguments);
  assert.ok(validWeather(args), JSON.stringify(validWeather.errors));
}

const weatherQuestion = [{ role: 'user', content: 'What will the weather be in Paris for 3 days?' }];

test('tool_choice required returns a schema-valid call', async () => {
  for (const temperature of [0, 1]) {
    const r = await client.chat.completions.create({
      model: 'llama32', messages: weatherQuestion, tools, tool_choice: 'required',
      parallel_tool_calls: false, temperature, seed: 5, max_tokens: 120, logit_bias: openCall,
    });
    const choice = r.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.content, null);
    assert.equal(choice.message.tool_calls.length, 1);
    assertWeatherCall(choice.message.tool_calls[0]);
  }
});

test('a streamed call is assembled by the SDK from delta.tool_calls chunks', async () => {
  const stream = client.chat.completions.stream({
    model: 'llama32', messages: weatherQuestion, tools,
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
    temperature: 0, max_tokens: 120, logit_bias: openCall,
  });
  let argumentDeltas = 0;
  stream.on('chunk', (chunk) => {
    for (const c of chunk.choices) {
      for (const call of c.delta?.tool_calls ?? []) if (call.function?.arguments) argumentDeltas++;
    }
  });
  const final = await stream.finalChatCompletion();
  const choice = final.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.tool_calls.length, 1);
  assertWeatherCall(choice.message.tool_calls[0]);
  assert.ok(argumentDeltas >= 1);
  // The same request, not streamed, gives the same call.
  const whole = await client.chat.completions.create({
    model: 'llama32', messages: weatherQuestion, tools,
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
    temperature: 0, max_tokens: 120, logit_bias: openCall,
  });
  assert.deepEqual(JSON.parse(whole.choices[0].message.tool_calls[0].function.arguments),
    JSON.parse(choice.message.tool_calls[0].function.arguments));
});

const Count = z.object({
  n: z.number().int().min(0).max(99),
  ok: z.boolean(),
  tag: z.enum(['a', 'b']),
});

test('chat.completions.parse with a zod response_format returns a parsed object', async () => {
  for (const model of ['llama32', 'qwen25', 'nemo']) {
    const r = await client.chat.completions.parse({
      model, messages: [{ role: 'user', content: 'Give me a count.' }],
      response_format: zodResponseFormat(Count, 'count'), temperature: 0.7, seed: 11,
      max_tokens: 200,
    });
    const parsed = r.choices[0].message.parsed;
    assert.ok(parsed, `${model}: ${r.choices[0].message.content}`);
    assert.deepEqual(Count.parse(parsed), parsed);
  }
});

test('json_object returns parseable JSON', async () => {
  const r = await client.chat.completions.create({
    model: 'llama32', messages: [{ role: 'user', content: 'Describe Paris as JSON.' }],
    response_format: { type: 'json_object' }, temperature: 0, max_tokens: 300,
    // '"' (token 1): random weights would otherwise fill one string until max_tokens.
    logit_bias: { 1: 10 },
  });
  const value = JSON.parse(r.choices[0].message.content);
  assert.equal(typeof value, 'object');
  assert.equal(r.choices[0].finish_reason, 'stop');
});

test('a tool conversation (call, result, answer) on three templates', async () => {
  for (const model of ['llama32', 'qwen25', 'nemo']) {
    const messages = [...weatherQuestion];
    let call;
    if (model === 'llama32') {
      const first = await client.chat.completions.create({
        model, messages, tools, tool_choice: 'required', temperature: 0, max_tokens: 120,
        logit_bias: openCall,
      });
      call = first.choices[0].message.tool_calls[0];
      messages.push(first.choices[0].message);
    } else {
      // Random weights cannot write these formats' tag tokens: the client replays a call
      // (Mistral's template wants 9-character alphanumeric ids).
      call = {
        id: 'abc123xyz', type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Paris","days":3}' },
      };
      messages.push({ role: 'assistant', content: null, tool_calls: [call] });
    }
    messages.push({ role: 'tool', tool_call_id: call.id, content: 'Sunny, 21 C, all three days.' });
    const rendered = await fetch(`${baseUrl}/apply-template`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages, tools }),
    }).then((res) => res.json());
    assert.match(rendered.prompt, /Sunny, 21 C, all three days\./, model);
    assert.match(rendered.prompt, /get_weather/, model);
    const answer = await client.chat.completions.create({
      model, messages, tools, temperature: 0, max_tokens: 8,
    });
    assert.equal(typeof answer.choices[0].message.content, 'string', model);
    assert.ok(answer.usage.prompt_tokens > 50, model);
  }
});

test('reasoning goes to reasoning_content, streamed and not', async () => {
  const request = {
    model: 'qwen3', messages: [{ role: 'user', content: 'What is 2+2?' }], temperature: 0,
    max_tokens: 60, grammar: 'root ::= "<think>\\nTwo and two.\\n</think>\\n\\nFour."',
  };
  const whole = await client.chat.completions.create(request);
  assert.equal(whole.choices[0].message.reasoning_content.trim(), 'Two and two.');
  assert.equal(whole.choices[0].message.content, 'Four.');
  const stream = await client.chat.completions.create({ ...request, stream: true });
  let reasoning = '';
  let content = '';
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      reasoning += c.delta?.reasoning_content ?? '';
      content += c.delta?.content ?? '';
    }
  }
  assert.equal(reasoning.trim(), 'Two and two.');
  assert.equal(content, 'Four.');
  // Thinking off: the template closes an empty thought in the prompt itself.
  const off = await fetch(`${baseUrl}/apply-template`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...request, chat_template_kwargs: { enable_thinking: false } }),
  }).then((res) => res.json());
  assert.match(off.prompt, /<think>\s*<\/think>\s*$/);
});

test('32 concurrent requests mixing grammar-bound and free answers all complete', async () => {
  const runs = Array.from({ length: 32 }, (_, i) => {
    if (i % 2 === 0) {
      return client.chat.completions.parse({
        model: 'llama32', messages: [{ role: 'user', content: `count ${i}` }],
        response_format: zodResponseFormat(Count, 'count'), temperature: 0.8, seed: i,
        max_tokens: 200,
      }).then((r) => {
        assert.deepEqual(Count.parse(r.choices[0].message.parsed), r.choices[0].message.parsed);
        return 'parsed';
      });
    }
    return client.chat.completions.create({
      model: 'llama32', messages: [{ role: 'user', content: `free ${i}` }], max_tokens: 16,
      temperature: 0.8, seed: i,
    }).then((r) => r.choices[0].finish_reason);
  });
  const results = await Promise.all(runs);
  assert.equal(results.filter((r) => r === 'parsed').length, 16);
  for (const r of results.filter((x) => x !== 'parsed')) assert.ok(['stop', 'length'].includes(r));
});

test('bad tools, schemas and templates are 400s with OpenAI error objects', async () => {
  const bad = [
    { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 12 } } } },
    // A reference the schema does not define: llama.cpp's converter cannot resolve it.
    { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { $ref: '#/$defs/missing' } } } },
    { tools: [{ type: 'function', function: { name: 'f', parameters: 'object' } }] },
    { tools, tool_choice: { type: 'function', function: { name: 'nope' } } },
    { messages: [{ role: 'user', content: 'x' }, { role: 'tool', content: 'r' }] },
  ];
  for (const extra of bad) {
    await assert.rejects(
      client.chat.completions.create({
        model: 'llama32', messages: weatherQuestion, max_tokens: 4, ...extra,
      }),
      (e) => e instanceof OpenAI.BadRequestError && e.status === 400 &&
        e.type === 'invalid_request_error' && e.message.length > 10,
      JSON.stringify(extra),
    );
  }
  // Mistral's template raises on roles that do not alternate: the message says it is the template.
  await assert.rejects(
    client.chat.completions.create({
      model: 'nemo', max_tokens: 4,
      messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }],
    }),
    (e) => e instanceof OpenAI.BadRequestError && /template/.test(e.message),
  );
  const health = await fetch(`${baseUrl}/health`);
  assert.equal(health.status, 200);
});
