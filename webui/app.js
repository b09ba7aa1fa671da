// snug's page: chat over the OpenAI chat API (streamed), and a live view of memory from the
// server's own routes (/v1/ps, /v1/hardware, /v1/events, /v1/fit). No framework: the page is
// small, and every byte of it ships inside the binary.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const md = window.SnugMarkdown;
  const esc = md.escapeHtml;

  const STORE_KEY = 'snug.apiKey';
  const STORE_CHAT = 'snug.chat';
  const STORE_SETTINGS = 'snug.settings';
  const POLL_MS = 1500;

  // localStorage can be unavailable (private modes, disabled storage): the page still works,
  // it just forgets on reload.
  const storage = {
    get(key, fallback) {
      try {
        const v = localStorage.getItem(key);
        return v === null ? fallback : JSON.parse(v);
      } catch (_) { return fallback; }
    },
    set(key, value) {
      try { localStorage.setItem(key, JSON.stringify(value)); } catch (_) { /* not kept */ }
    },
    remove(key) {
      try { localStorage.removeItem(key); } catch (_) { /* nothing to forget */ }
    },
  };

  const state = {
    key: storage.get(STORE_KEY, ''),
    locked: false,
    messages: storage.get(STORE_CHAT, []),
    settings: Object.assign({ model: '', system: '', temperature: 0.7, maxTokens: '' },
      storage.get(STORE_SETTINGS, {})),
    abort: null,
    lastEventId: 0,
    hardware: null,
    ps: null,
    polls: 0,
    reachable: true,
  };
  if (!Array.isArray(state.messages)) state.messages = [];

  // ---------------------------------------------------------------------------------------
  // Formatting

  function formatBytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = n;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
  }
  const bytesDd = (field, n) =>
    `<dd data-field="${field}" data-bytes="${Number(n) || 0}">${formatBytes(n)}</dd>`;
  const pct = (part, whole) => (whole > 0 ? Math.max(0, Math.min(100, (100 * part) / whole)) : 0);

  // ---------------------------------------------------------------------------------------
  // Talking to the server

  // An error answer as one readable line with its numbers: "HTTP 507 does_not_fit: model 'x'
  // needs 2.3 GiB ... but only 700 MiB of the 1.0 GiB budget ... is free".
  async function errorFromResponse(res) {
    let code = '';
    let message = '';
    const text = await res.text().catch(() => '');
    try {
      const body = JSON.parse(text);
      const e = body.error;
      if (typeof e === 'string') message = e;
      else if (e) { message = e.message || ''; code = e.code || e.type || ''; }
    } catch (_) { message = text.slice(0, 500); }
    let line = `HTTP ${res.status}${code ? ` ${code}` : ''}: ${message || res.statusText}`;
    const retry = res.headers.get('Retry-After');
    if (res.status === 503) line += retry ? ` (busy; retry in ${retry} s)` : ' (busy; retry shortly)';
    return { status: res.status, code, message, text: line };
  }

  async function api(path, init = {}) {
    const headers = new Headers(init.headers || {});
    if (state.key) headers.set('Authorization', `Bearer ${state.key}`);
    if (init.body !== undefined) headers.set('Content-Type', 'application/json');
    let res;
    try {
      res = await fetch(path, Object.assign({}, init, { headers, cache: 'no-store' }));
    } catch (e) {
      if (e.name !== 'AbortError') setReachable(false, e.message);
      throw e;
    }
    setReachable(true);
    if (res.status === 401) {
      const err = await errorFromResponse(res.clone());
      setLocked(err);
    } else if (res.ok && state.locked) {
      setLocked(null);
    }
    return res;
  }

  async function getJson(path) {
    const res = await api(path);
    if (!res.ok) throw await errorFromResponse(res);
    return res.json();
  }

  function setReachable(ok, why) {
    if (state.reachable === ok) return;
    state.reachable = ok;
    if (!ok) setStatus(`cannot reach the server (${why || 'network error'})`, true);
  }

  function setStatus(text, bad) {
    const el = $('status');
    el.textContent = text;
    el.classList.toggle('bad', !!bad);
  }

  function setLocked(err) {
    state.locked = !!err;
    const auth = $('auth');
    if (err) {
      $('auth-detail').textContent = state.key
        ? `The key this page holds was refused (${err.text}).`
        : `Without it the server answers ${err.text}`;
      auth.hidden = false;
      setStatus(`locked: ${err.text}`, true);
      const locked = `<p class="error" data-state="locked">No data: ${esc(err.text)}</p>`;
      $('memory').innerHTML = locked;
      $('devices').innerHTML = locked;
    } else {
      auth.hidden = true;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Models

  async function refreshModels() {
    let list;
    try { list = await getJson('/v1/models'); } catch (_) { return; }
    const select = $('model');
    const names = (list.data || []).map((m) => m.id);
    const current = select.value || state.settings.model;
    select.innerHTML = '';
    for (const m of list.data || []) {
      const option = document.createElement('option');
      option.value = m.id;
      option.textContent = m.loaded ? `${m.id} (loaded)` : m.id;
      select.appendChild(option);
    }
    if (names.includes(current)) select.value = current;
    else {
      const loaded = (list.data || []).find((m) => m.loaded);
      if (loaded) select.value = loaded.id;
    }
    const datalist = $('fit-names');
    datalist.innerHTML = '';
    for (const name of names) {
      const option = document.createElement('option');
      option.value = name;
      datalist.appendChild(option);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Memory view

  function segments(model) {
    const m = (model.plan && model.plan.detail && model.plan.detail.memory) || {};
    const peak = model.plan ? model.plan.peak_host_bytes : 0;
    // The planned peak's parts on the host: the compute buffer counts only the pages llama.cpp
    // touches, as the planner does.
    const weights = m.host_weights_bytes ?? m.weights_bytes ?? 0;
    const kv = m.host_kv_bytes ?? m.kv_bytes ?? 0;
    const compute = m.host_compute_touched_bytes ?? m.compute_bytes ?? 0;
    const other = Math.max(0, peak - weights - kv - compute);
    return { peak, weights, kv, compute, other };
  }

  function renderMemory() {
    const ps = state.ps;
    if (!ps) return;
    const budget = ps.budget_bytes;
    const hwBudget = state.hardware && state.hardware.budget;
    const source = hwBudget ? `${hwBudget.source}${hwBudget.detail ? `: ${hwBudget.detail}` : ''}` : '…';
    const free = Math.max(0, budget - ps.planned_bytes);
    let bar = '';
    let label = [];
    for (const model of ps.models) {
      const s = segments(model);
      for (const [kind, bytes] of [['weights', s.weights], ['kv', s.kv], ['compute', s.compute], ['other', s.other]]) {
        if (bytes <= 0) continue;
        bar += `<span class="seg-${kind}" style-width="${pct(bytes, budget)}" title="${esc(model.name)}: ${kind} ${formatBytes(bytes)}"></span>`;
      }
      label.push(`${model.name} ${formatBytes(s.peak)}`);
    }
    let html = '<dl class="kv">' +
      `<dt>Budget</dt>${bytesDd('budget_bytes', budget)}` +
      `<dt>Source</dt><dd data-field="budget_source">${esc(source)}</dd>` +
      `<dt>Planned</dt>${bytesDd('planned_bytes', ps.planned_bytes)}` +
      `<dt>Free</dt>${bytesDd('free_bytes', free)}` +
      `<dt>Process resident</dt>${bytesDd('resident_bytes', ps.resident_bytes)}` +
      '</dl>' +
      `<div class="bar" role="img" aria-label="budget ${formatBytes(budget)}: ${esc(label.join(', ') || 'nothing loaded')}, ${formatBytes(free)} free">${bar}</div>` +
      '<ul class="legend"><li><i class="seg-weights"></i>weights</li><li><i class="seg-kv"></i>KV cache</li>' +
      '<li><i class="seg-compute"></i>compute</li><li><i class="seg-other"></i>output, overhead</li></ul>';
    if (!ps.models.length) html += '<p class="muted">No model is loaded. A chat message loads its model.</p>';
    for (const model of ps.models) {
      const s = segments(model);
      const plan = model.plan || {};
      const expires = model.expires_in_seconds < 0 ? (model.active ? 'in use' : 'never')
        : `in ${model.expires_in_seconds} s`;
      html += `<div class="model-card" data-model="${esc(model.name)}">` +
        `<h3>${esc(model.name)}</h3><dl class="kv">` +
        `<dt>Context</dt><dd>${plan.n_ctx} × ${plan.n_parallel} slots, ${esc(plan.kv_type)} KV, ${plan.n_gpu_layers} GPU layers</dd>` +
        `<dt>Planned peak</dt>${bytesDd('planned', plan.peak_host_bytes)}` +
        `<dt>Allocated</dt>${bytesDd('allocated', model.allocated_bytes)}` +
        `<dt>Weights · KV · compute</dt><dd>${formatBytes(s.weights)} · ${formatBytes(s.kv)} · ${formatBytes(s.compute)}</dd>` +
        `<dt>KV cells</dt><dd data-field="kv_cells" data-used="${model.kv_cells_used}" data-total="${model.kv_cells_total}">${model.kv_cells_used} / ${model.kv_cells_total}</dd>` +
        `<dt>Requests</dt><dd data-field="requests" data-active="${model.active}" data-queued="${model.queued}">${model.active} running, ${model.queued} waiting, ${model.slots} slots</dd>` +
        `<dt>Unloads</dt><dd>${esc(expires)}</dd></dl>` +
        `<div class="bar small" role="img" aria-label="KV cells ${model.kv_cells_used} of ${model.kv_cells_total} in use"><span class="seg-used" style-width="${pct(model.kv_cells_used, model.kv_cells_total)}"></span></div>` +
        '</div>';
    }
    const el = $('memory');
    el.innerHTML = html;
    // Widths through the CSSOM: the page's CSP allows no inline style attributes.
    for (const span of el.querySelectorAll('[style-width]')) {
      span.style.width = `${span.getAttribute('style-width')}%`;
      span.removeAttribute('style-width');
    }
  }

  function renderDevices() {
    const hw = state.hardware;
    if (!hw) return;
    const host = hw.host || {};
    const mem = host.memory || {};
    const cpu = host.cpu || {};
    const cgroup = host.cgroup;
    let limit = null;
    for (const level of (cgroup && cgroup.levels) || []) {
      if (level.limit_bytes !== null && level.limit_bytes !== undefined &&
          (limit === null || level.limit_bytes < limit)) limit = level.limit_bytes;
    }
    let html = '<dl class="kv">' +
      `<dt>CPU</dt><dd>${esc(cpu.model || '?')}, ${cpu.usable_cpus ?? cpu.logical_cores ?? '?'} usable cores</dd>` +
      `<dt>RAM</dt><dd>${formatBytes(mem.total_bytes)} total, ${formatBytes(mem.available_bytes)} available</dd>` +
      `<dt>cgroup</dt><dd>${cgroup ? `v${cgroup.version}, ${limit === null ? 'no limit' : `limit ${formatBytes(limit)}`}` : 'none'}</dd>` +
      `<dt>Headroom</dt><dd>${formatBytes(hw.budget && hw.budget.headroom_bytes)}</dd>` +
      '</dl>';
    const devices = (hw.budget && hw.budget.devices) || [];
    if (devices.length) {
      html += '<table class="small"><thead><tr><th>Device</th><th>Total</th><th>Free</th><th>Budget</th></tr></thead><tbody>';
      for (const d of devices) {
        html += `<tr><td>${esc(d.name)} ${esc(d.description || '')}${d.unified ? ' (unified)' : ''}</td>` +
          `<td>${formatBytes(d.total_bytes)}</td><td>${formatBytes(d.free_bytes)}</td><td>${formatBytes(d.budget_bytes)}</td></tr>`;
      }
      html += '</tbody></table>';
    } else {
      html += '<p class="muted">No accelerator: models run on the CPU.</p>';
    }
    $('devices').innerHTML = html;
  }

  function renderEvents(events) {
    const list = $('events');
    for (const e of events) {
      const li = document.createElement('li');
      li.dataset.kind = e.kind;
      const time = new Date(e.time_ms).toLocaleTimeString();
      li.innerHTML = `<span class="badge ${esc(e.kind)}">${esc(e.kind)}</span> ` +
        `<time>${esc(time)}</time> <strong>${esc(e.model)}</strong>` +
        `${e.bytes ? ` ${formatBytes(e.bytes)}` : ''}<br><span class="event-message">${esc(e.message)}</span>`;
      list.insertBefore(li, list.firstChild);
    }
    while (list.children.length > 100) list.removeChild(list.lastChild);
  }

  async function poll() {
    state.polls++;
    try {
      const jobs = [getJson('/v1/ps').then((ps) => { state.ps = ps; renderMemory(); })];
      jobs.push(getJson(`/v1/events?since=${state.lastEventId}`).then((r) => {
        renderEvents(r.events || []);
        if (r.last_id !== undefined) state.lastEventId = r.last_id;
      }));
      // The machine changes slowly; its probe reads /proc and cgroup files.
      if (!state.hardware || state.polls % 7 === 0) {
        jobs.push(getJson('/v1/hardware').then((hw) => {
          state.hardware = hw;
          renderDevices();
          renderMemory();
        }));
      }
      if (state.polls % 4 === 1) jobs.push(refreshModels());
      const results = await Promise.allSettled(jobs);
      const failed = results.find((r) => r.status === 'rejected' && r.reason && r.reason.text);
      if (!state.locked && state.reachable) {
        if (failed) setStatus(failed.reason.text, true);
        else if (state.ps) {
          const n = state.ps.models.length;
          setStatus(`connected · ${n} model${n === 1 ? '' : 's'} loaded · ` +
            `${formatBytes(state.ps.planned_bytes)} of ${formatBytes(state.ps.budget_bytes)} planned`);
        }
      }
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Will it fit?

  async function planFit(event) {
    event.preventDefault();
    const out = $('fit-result');
    const model = $('fit-model').value.trim();
    if (!model) { out.innerHTML = '<p class="error">Name a model first.</p>'; return; }
    const body = { model };
    if ($('fit-ctx').value.trim()) body.ctx = $('fit-ctx').value.trim();
    if ($('fit-kv').value) body.kv_type = $('fit-kv').value;
    out.innerHTML = '<p class="muted">planning from the header…</p>';
    $('fit-go').disabled = true;
    try {
      const res = await api('/v1/fit', { method: 'POST', body: JSON.stringify(body) });
      if (!res.ok) {
        const err = await errorFromResponse(res);
        out.innerHTML = `<p class="error" data-state="error">${esc(err.text)}</p>`;
        return;
      }
      out.innerHTML = renderPlan(await res.json(), model);
    } catch (e) {
      out.innerHTML = `<p class="error">${esc(e.text || e.message || String(e))}</p>`;
    } finally {
      $('fit-go').disabled = false;
    }
  }

  function renderPlan(p, asked) {
    const fit = p.fit || {};
    const mem = p.memory || {};
    const model = p.model || {};
    const server = p.server || {};
    let html = fit.ok
      ? `<p class="verdict ok" data-fits="true">Fits: ctx ${fit.n_ctx} × ${fit.n_parallel} slot${fit.n_parallel === 1 ? '' : 's'}, ${esc(fit.kv_type)} KV, ${fit.n_gpu_layers} GPU layers</p>`
      : '<p class="verdict no" data-fits="false">Does not fit</p>';
    html += `<p class="reason">${esc(fit.reason || '')}</p>`;
    if (fit.ok) {
      let now;
      if ((server.loaded || []).includes(asked)) now = 'It is loaded on this server now.';
      else if (server.fits_now) now = `It would load now beside the loaded models (needs ${formatBytes(server.needs_bytes)}, ${formatBytes(server.free_bytes)} free).`;
      else if (server.fits_after_evicting_idle) now = `It would load after evicting idle models (needs ${formatBytes(server.needs_bytes)}, ${formatBytes(server.free_bytes)} free, ${formatBytes(server.idle_bytes)} idle).`;
      else now = `Not now: the models in use leave ${formatBytes(server.free_bytes)} free and it needs ${formatBytes(server.needs_bytes)}.`;
      html += `<p class="server-now">${esc(now)}</p>`;
    }
    html += '<dl class="kv">' +
      `<dt>Model</dt><dd>${esc(model.arch || '?')}, ${model.n_layer ?? '?'} layers, trained ctx ${model.n_ctx_train ?? '?'}, ${formatBytes(model.file_bytes)} file (${esc(model.source || '')})</dd>` +
      `<dt>Budget</dt><dd>${formatBytes(p.budget && p.budget.host_bytes)} (${esc((p.budget && (p.budget.detail || p.budget.source)) || '')})</dd>` +
      `<dt>Weights</dt><dd>${formatBytes(mem.weights_bytes)}</dd>` +
      `<dt>KV cache</dt><dd>${formatBytes(mem.kv_bytes)}</dd>` +
      `<dt>Compute</dt><dd>${formatBytes(mem.compute_bytes)}</dd>` +
      `<dt>Output, overhead</dt><dd>${formatBytes(mem.output_bytes)}, ${formatBytes(mem.overhead_bytes)}</dd>` +
      `<dt>Host peak</dt><dd data-field="peak_host_bytes" data-bytes="${mem.peak_host_bytes || 0}">${formatBytes(mem.peak_host_bytes)}</dd>` +
      '</dl>';
    const maxCtx = p.max_ctx || {};
    html += '<table class="small"><caption class="note">Largest context per KV type</caption><thead><tr><th>f16</th><th>q8_0</th><th>q4_0</th></tr></thead>' +
      `<tbody><tr><td>${maxCtx.f16 ?? '–'}</td><td>${maxCtx.q8_0 ?? '–'}</td><td>${maxCtx.q4_0 ?? '–'}</td></tr></tbody></table>`;
    if ((mem.per_device || []).length) {
      html += '<table class="small"><thead><tr><th>Device</th><th>Layers</th><th>Total</th></tr></thead><tbody>';
      for (const d of mem.per_device) {
        html += `<tr><td>${esc(d.name)}</td><td>${d.n_layers}</td><td>${formatBytes(d.total_bytes)}</td></tr>`;
      }
      html += '</tbody></table>';
    }
    const r = p.request;
    if (r) {
      const location = model.location || asked;
      html += `<p class="note">The server's settings: <code>snug plan ${esc(location)} --ctx ${esc(String(r.ctx))} --kv-type ${esc(String(r.kv_type))} --ngl ${esc(String(r.ngl))} --parallel ${r.parallel}</code> against its budget.</p>`;
    }
    return html;
  }

  // ---------------------------------------------------------------------------------------
  // Chat

  function saveChat() { storage.set(STORE_CHAT, state.messages); }
  function saveSettings() { storage.set(STORE_SETTINGS, state.settings); }

  function messageHtml(m) {
    if (m.role === 'user') return `<div class="who">you</div>${esc(m.content)}`;
    let html = `<div class="who">${esc(m.model || 'assistant')}</div>`;
    if (m.reasoning) {
      html += `<details class="reasoning"${m.pending ? ' open' : ''}><summary>Reasoning</summary><div>${esc(m.reasoning)}</div></details>`;
    }
    html += `<div class="content">${md.render(m.content || '')}</div>`;
    for (const call of m.tool_calls || []) {
      if (!call) continue;
      let args = call.arguments || '';
      try { args = JSON.stringify(JSON.parse(args), null, 2); } catch (_) { /* as sent */ }
      html += `<div class="tool-call"><div class="who">tool call</div><strong>${esc(call.name || '?')}</strong>` +
        `<pre><code>${esc(args)}</code></pre></div>`;
    }
    if (m.error) html += `<div class="error" role="alert">${esc(m.error)}</div>`;
    const meta = [];
    if (m.pending && !m.content && !m.reasoning) meta.push('waiting for the first token…');
    if (m.stopped) meta.push('stopped');
    if (m.finish) meta.push(`finish: ${m.finish}`);
    if (m.usage) meta.push(`${m.usage.prompt_tokens} prompt + ${m.usage.completion_tokens} answer tokens`);
    if (m.speed) meta.push(`${m.speed} tokens/s`);
    if (meta.length) html += `<div class="meta">${esc(meta.join(' · '))}</div>`;
    return html;
  }

  function messageElement(m, index) {
    const el = document.createElement('div');
    el.className = `msg ${m.role === 'user' ? 'user' : 'assistant'}`;
    el.dataset.index = String(index);
    el.innerHTML = messageHtml(m);
    return el;
  }

  function renderMessages() {
    const box = $('messages');
    box.innerHTML = '';
    state.messages.forEach((m, i) => box.appendChild(messageElement(m, i)));
    if (!state.messages.length) {
      box.innerHTML = '<p class="muted">Pick a model and send a message. The conversation stays in this browser.</p>';
    }
    box.scrollTop = box.scrollHeight;
  }

  let frame = 0;
  function updateMessage(index) {
    if (frame) return;
    // One repaint per frame however fast tokens arrive.
    frame = requestAnimationFrame(() => {
      frame = 0;
      const box = $('messages');
      const el = box.querySelector(`.msg[data-index="${index}"]`);
      if (!el) return renderMessages();
      const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
      el.innerHTML = messageHtml(state.messages[index]);
      if (atBottom) box.scrollTop = box.scrollHeight;
    });
  }

  // What the model sees: the system prompt, then the turns that were answered.
  function history(upTo) {
    const out = [];
    if (state.settings.system.trim()) out.push({ role: 'system', content: state.settings.system });
    for (const m of state.messages.slice(0, upTo)) {
      if (m.role === 'user') out.push({ role: 'user', content: m.content });
      else if (m.content) out.push({ role: 'assistant', content: m.content });
    }
    return out;
  }

  function setBusy(busy) {
    $('send').disabled = busy;
    $('stop').disabled = !busy;
  }

  async function send(text) {
    const model = $('model').value;
    if (!model) {
      state.messages.push({ role: 'assistant', error: state.locked
        ? 'No model can be listed: the server needs an API key (see above).'
        : 'This server knows no model to chat with.' });
      renderMessages();
      return;
    }
    state.messages.push({ role: 'user', content: text });
    const index = state.messages.length;
    const answer = { role: 'assistant', model, content: '', reasoning: '', tool_calls: [], pending: true };
    state.messages.push(answer);
    saveChat();
    renderMessages();

    const body = { model, messages: history(index), stream: true, stream_options: { include_usage: true } };
    const temperature = parseFloat(state.settings.temperature);
    if (isFinite(temperature)) body.temperature = temperature;
    const maxTokens = parseInt(state.settings.maxTokens, 10);
    if (maxTokens > 0) body.max_tokens = maxTokens;

    const controller = new AbortController();
    state.abort = controller;
    setBusy(true);
    const started = performance.now();
    let firstToken = 0;
    let finished = false;
    try {
      const res = await api('/v1/chat/completions', { method: 'POST', body: JSON.stringify(body), signal: controller.signal });
      if (!res.ok) {
        answer.error = (await errorFromResponse(res)).text;
      } else {
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, '');
            const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:'))
              .map((l) => l.slice(5).replace(/^ /, '')).join('\n');
            if (!data) continue;
            if (data === '[DONE]') { finished = true; continue; }
            let chunk;
            try { chunk = JSON.parse(data); } catch (_) { continue; }
            if (chunk.error) {
              const e = chunk.error;
              answer.error = `${e.code || e.type || 'error'}: ${e.message || JSON.stringify(e)}`;
              continue;
            }
            if (chunk.usage) answer.usage = chunk.usage;
            for (const choice of chunk.choices || []) {
              const d = choice.delta || {};
              if (d.content || d.reasoning_content) { if (!firstToken) firstToken = performance.now(); }
              if (d.content) answer.content += d.content;
              if (d.reasoning_content) answer.reasoning += d.reasoning_content;
              for (const call of d.tool_calls || []) {
                const i = call.index ?? 0;
                const slot = answer.tool_calls[i] || (answer.tool_calls[i] = { name: '', arguments: '' });
                if (call.function && call.function.name) slot.name += call.function.name;
                if (call.function && call.function.arguments) slot.arguments += call.function.arguments;
              }
              if (choice.finish_reason) answer.finish = choice.finish_reason;
            }
            updateMessage(index);
          }
        }
        if (!finished && !answer.error) {
          answer.error = 'The answer stream ended before the server finished it (the connection was lost or the server stopped).';
        }
      }
    } catch (e) {
      if (e.name === 'AbortError') answer.stopped = true;
      else answer.error = `Could not reach the server: ${e.message}`;
    } finally {
      state.abort = null;
      answer.pending = false;
      if (answer.usage && firstToken && answer.usage.completion_tokens > 1) {
        const seconds = (performance.now() - firstToken) / 1000;
        if (seconds > 0) answer.speed = ((answer.usage.completion_tokens - 1) / seconds).toFixed(1);
      }
      answer.elapsed_ms = Math.round(performance.now() - started);
      saveChat();
      setBusy(false);
      updateMessage(index);
    }
  }

  function stop() {
    if (state.abort) state.abort.abort();
  }

  // ---------------------------------------------------------------------------------------
  // Wiring

  function init() {
    $('system').value = state.settings.system;
    $('temperature').value = state.settings.temperature;
    $('max-tokens').value = state.settings.maxTokens;
    for (const [id, field] of [['system', 'system'], ['temperature', 'temperature'], ['max-tokens', 'maxTokens']]) {
      $(id).addEventListener('input', () => { state.settings[field] = $(id).value; saveSettings(); });
    }
    $('model').addEventListener('change', () => { state.settings.model = $('model').value; saveSettings(); });

    $('composer').addEventListener('submit', (e) => {
      e.preventDefault();
      const text = $('prompt').value.trim();
      if (!text || state.abort) return;
      $('prompt').value = '';
      send(text);
    });
    $('prompt').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $('composer').requestSubmit();
      }
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && state.abort) { e.preventDefault(); stop(); }
    });
    $('stop').addEventListener('click', stop);
    $('new-chat').addEventListener('click', () => {
      stop();
      state.messages = [];
      saveChat();
      renderMessages();
      $('prompt').focus();
    });
    $('messages').addEventListener('click', (e) => {
      const button = e.target.closest('button.copy');
      if (!button) return;
      const code = button.parentElement.querySelector('code');
      if (code && navigator.clipboard) {
        navigator.clipboard.writeText(code.textContent).then(() => { button.textContent = 'Copied'; },
          () => { button.textContent = 'Copy failed'; });
      }
    });

    $('key-button').addEventListener('click', () => {
      $('auth').hidden = false;
      if (!state.locked) $('auth-detail').textContent = 'Set the key this page sends (the server\'s --api-key).';
      $('auth-key').focus();
    });
    $('auth-form').addEventListener('submit', (e) => {
      e.preventDefault();
      state.key = $('auth-key').value.trim();
      storage.set(STORE_KEY, state.key);
      $('auth-key').value = '';
      $('auth').hidden = true;
      state.locked = false;
      state.hardware = null;
      state.polls = 0;
      setStatus('checking the key…');
      refreshModels();
    });
    $('auth-forget').addEventListener('click', () => {
      state.key = '';
      storage.remove(STORE_KEY);
      setStatus('key forgotten');
    });

    $('fit-form').addEventListener('submit', planFit);

    // A conversation stored while an answer was streaming ends there.
    for (const m of state.messages) {
      if (m.pending) { m.pending = false; m.stopped = true; }
    }
    renderMessages();
    setBusy(false);
    poll();
  }

  init();
})();
