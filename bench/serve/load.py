#!/usr/bin/env python3
"""Aggregate decode throughput of a server: N concurrent greedy streamed completions.

Usage: load.py PORT MODEL STREAMS MAX_TOKENS REPEATS [SCHEMA_JSON]
MODEL "llama-server" selects llama.cpp's native /completion route (its OpenAI routes parse the
output for a chat format and fail on a random model's text; streamed, the tokens still arrive
one event each and are counted). Any other MODEL uses snug's /v1/completions with usage.
SCHEMA_JSON constrains every answer to that JSON schema (snug: response_format json_schema;
llama-server: its json_schema field), so the grammar sampler's cost is in the figure.
Prints one JSON line per repeat: {"streams", "tokens", "seconds", "tokens_per_second"}.
Standard library only.
"""
import json
import sys
import threading
import time
import urllib.error
import urllib.request


def complete(port, model, prompt, max_tokens, out, i, schema=None):
    llama = model == "llama-server"
    if llama:
        path = "/completion"
        body = {"prompt": prompt, "n_predict": max_tokens, "temperature": 0, "stream": True}
        if schema is not None:
            body["json_schema"] = schema
    else:
        path = "/v1/completions"
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                "stream": True, "stream_options": {"include_usage": True}}
        if schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "bench", "schema": schema}}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    tokens = 0
    try:
        with urllib.request.urlopen(req, timeout=900) as r:
            for raw in r:
                line = raw.decode(errors="replace").strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    break
                if llama:
                    if event.get("stop") and "tokens_predicted" in event:
                        tokens = event["tokens_predicted"]
                    elif not event.get("stop"):
                        tokens += 1  # one partial result per sampled token
                elif event.get("usage"):
                    tokens = event["usage"]["completion_tokens"]
    except urllib.error.HTTPError as e:
        print(f"request {i} failed: HTTP {e.code}: {e.read().decode(errors='replace')}",
              file=sys.stderr)
    out[i] = tokens


def main():
    port, model = int(sys.argv[1]), sys.argv[2]
    streams, max_tokens, repeats = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    schema = json.loads(sys.argv[6]) if len(sys.argv) > 6 else None
    complete(port, model, "warm up", 8, [0], 0, schema)  # first request pays the weights' page faults
    for _ in range(repeats):
        out = [0] * streams
        threads = [threading.Thread(target=complete,
                                    args=(port, model, f"Story {i}: once upon a time", max_tokens,
                                          out, i, schema)) for i in range(streams)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.monotonic() - start
        tokens = sum(out)
        print(json.dumps({"streams": streams, "tokens": tokens, "seconds": round(seconds, 3),
                          "tokens_per_second": round(tokens / seconds, 2)}), flush=True)


if __name__ == "__main__":
    main()
