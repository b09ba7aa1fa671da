#!/usr/bin/env python3
"""One greedy streamed completion; prints prompt and decode speed as the client sees them.

Usage: measure.py PORT KIND MODEL PROMPT MAX_TOKENS
KIND "snug" posts to /v1/completions (usage counts the tokens); KIND "llama" posts to
llama-server's native /completion with cache_prompt off and ignore_eos (its OpenAI routes parse
the output for a chat format and fail on a random model's text).
Both are timed the same way, on the client: prompt tok/s = prompt tokens / time to the first
streamed token (prefill plus the first sample), decode tok/s = (tokens - 1) / time from the first
to the last token. llama-server's own timings are printed beside them as a cross-check.
Prints one JSON line. Standard library only.
"""
import json
import sys
import time
import urllib.request


def main():
    port, kind, model, prompt, max_tokens = sys.argv[1:6]
    max_tokens = int(max_tokens)
    if kind == "llama":
        path = "/completion"
        body = {"prompt": prompt, "n_predict": max_tokens, "temperature": 0, "stream": True,
                "cache_prompt": False, "ignore_eos": True}
    else:
        path = "/v1/completions"
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                "stream": True, "stream_options": {"include_usage": True}}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    t0 = time.perf_counter()
    first = last = None
    events = 0
    prompt_tokens = tokens = 0
    server = {}
    with urllib.request.urlopen(req, timeout=600) as r:
        for raw in r:
            line = raw.decode(errors="replace").strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                sys.exit(f"{kind} on :{port}: {event['error']}")
            now = time.perf_counter()
            if kind == "llama":
                if event.get("stop"):
                    t = event.get("timings", {})
                    prompt_tokens = t.get("prompt_n", 0)
                    tokens = t.get("predicted_n", events)
                    server = {"server_prompt_tps": t.get("prompt_per_second"),
                              "server_decode_tps": t.get("predicted_per_second")}
                    continue
                got = True
            else:
                if event.get("usage"):
                    prompt_tokens = event["usage"]["prompt_tokens"]
                    tokens = event["usage"]["completion_tokens"]
                choices = event.get("choices") or []
                got = bool(choices) and choices[0].get("text", "") != ""
            if got:
                events += 1
                first = first if first is not None else now
                last = now
    if first is None or tokens < 2:
        sys.exit(f"{kind} on :{port}: no tokens streamed")
    out = {"prompt_tokens": prompt_tokens, "tokens": tokens, "events": events,
           "ttft_s": round(first - t0, 4), "decode_s": round(last - first, 4),
           "prompt_tps": round(prompt_tokens / (first - t0), 2),
           "decode_tps": round((tokens - 1) / (last - first), 2)}
    out.update(server)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
