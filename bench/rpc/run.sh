#!/usr/bin/env bash
# A model split across two ggml-rpc workers on loopback: snug (`snug worker` x2 + `snug serve
# --worker`) vs llama.cpp (`ggml-rpc-server` x2 + `llama-server --rpc -ngl -ts`) with the same
# layers on the same hosts, and the same model run locally by each to show what the split costs;
# then the planner's time with 2 and 8 live workers, and its Fit alone.
# Usage: bench/rpc/run.sh [BUILD_DIR]. Writes bench/results/rpc-split.md (about 5 minutes).
# Knobs (env): PRESET (llama-3.2-1b-q4_k_m), THREADS (1 per process), CTX (2048), TOKENS (64),
# PROMPT_WORDS (100, about 105 tokens), REPEATS (9), and the budgets that force the split:
# MAIN_LIMIT (snug serve --memory-limit), W1_LIMIT / W2_LIMIT (the workers', no headroom);
# SMALL_MAIN_LIMIT (660MiB) for the 8-worker plan.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build}"
root="$(cat "$build/llama-root")"
llama_bin="$root/build/bin"
preset="${PRESET:-llama-3.2-1b-q4_k_m}"
threads="${THREADS:-1}"
ctx="${CTX:-2048}"
tokens="${TOKENS:-64}"
words="${PROMPT_WORDS:-100}"
repeats="${REPEATS:-9}"
main_limit="${MAIN_LIMIT:-1200MiB}"
w1_limit="${W1_LIMIT:-300MiB}"
w2_limit="${W2_LIMIT:-880MiB}"
for tool in llama-server ggml-rpc-server; do
  [ -x "$llama_bin/$tool" ] || { echo "bench/rpc: no $llama_bin/$tool (bash scripts/llama.sh $tool)" >&2; exit 1; }
done
export LD_LIBRARY_PATH="$llama_bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

work="$(mktemp -d /tmp/snug-bench-rpc-XXXXXX)"
# A private copy: a relink of the shared build dir during the run must not change the binary.
snug="$work/snug"
cp "$build/snug" "$snug"
fit_time="$work/plan_rpc_fit_time"
if [ -x "$build/tests/plan/plan_rpc_fit_time" ]; then cp "$build/tests/plan/plan_rpc_fit_time" "$fit_time"; fi
pids=()
# Servers before the workers they use (newest first), each given 10 s before SIGKILL.
stop_all() {
  local i p
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    p=${pids[$i]}
    kill "$p" 2>/dev/null || continue
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
cleanup() { stop_all; [ -n "${KEEP:-}" ] || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "bench/rpc: $*" >&2; exit 1; }
# A port P with P + 1 free too (a snug worker's status endpoint).
free_port() {
  python3 - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 60000)
    try:
        for q in (p, p + 1):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass
EOF
}
wait_tcp() {  # wait_tcp PORT LOG PID: until the port accepts connections
  for _ in $(seq 300); do
    kill -0 "$3" 2>/dev/null || die "process $3 exited: $(tail -5 "$2")"
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on :$1 after 30 s: $(tail -5 "$2")"
}
start_worker() {  # start_worker TAG LIMIT -> port in ${TAG}_port
  local tag=$1 port; port=$(free_port)
  "$snug" worker --port "$port" --threads "$threads" --memory-limit "$2" --headroom 0 \
    >"$work/$tag.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$((port + 1))/snug/worker" >/dev/null && break
    kill -0 $! 2>/dev/null || die "snug worker $tag exited: $(tail -5 "$work/$tag.log")"
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$((port + 1))/snug/worker" >/dev/null || die "snug worker $tag did not come up"
  printf -v "${tag}_port" '%s' "$port"
}
start_rpc() {  # start_rpc TAG -> port in ${TAG}_port
  local tag=$1 port; port=$(free_port)
  "$llama_bin/ggml-rpc-server" -H 127.0.0.1 -p "$port" -t "$threads" >"$work/$tag.log" 2>&1 &
  pids+=($!)
  wait_tcp "$port" "$work/$tag.log" $!
  printf -v "${tag}_port" '%s' "$port"
}
start_snug() {  # start_snug TAG [FLAGS...] -> port in ${TAG}_port (model loaded at start-up)
  local tag=$1; shift
  "$snug" serve "$model" --port 0 --ctx "$ctx" --parallel 1 --threads "$threads" \
    --keep-alive -1 --no-webui "$@" >"$work/$tag.out" 2>"$work/$tag.err" &
  pids+=($!)
  local pid=$! port=""
  for _ in $(seq 600); do
    port=$(grep -oE 'listening on [0-9.]+:[0-9]+' "$work/$tag.out" | grep -oE '[0-9]+$' | head -1 || true)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || die "snug serve $tag exited: $(tail -5 "$work/$tag.err")"
    sleep 0.2
  done
  [ -n "$port" ] || die "snug serve $tag did not start: $(tail -5 "$work/$tag.err")"
  # A model named at start-up that failed to load leaves the server up: ask it once.
  python3 bench/rpc/measure.py "$port" snug "$name" "Hello" 4 >/dev/null 2>"$work/$tag.probe" ||
    die "snug serve $tag does not answer: $(cat "$work/$tag.probe") $(tail -3 "$work/$tag.err")"
  printf -v "${tag}_port" '%s' "$port"
}
start_llama() {  # start_llama TAG [FLAGS...] -> port in ${TAG}_port
  local tag=$1 port; shift; port=$(free_port)
  "$llama_bin/llama-server" -m "$model" --host 127.0.0.1 --port "$port" -c "$ctx" -np 1 \
    -t "$threads" -tb "$threads" -fa "$fa" -fit off --no-webui -lv 4 "$@" >"$work/$tag.log" 2>&1 &
  pids+=($!)
  local pid=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    kill -0 "$pid" 2>/dev/null || die "llama-server $tag exited: $(tail -5 "$work/$tag.log")"
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$port/health" >/dev/null || die "llama-server $tag did not start: $(tail -5 "$work/$tag.log")"
  printf -v "${tag}_port" '%s' "$port"
}

model="$work/$preset.gguf"
name="$preset"
# Zero weights: the same kernels and bytes per token as real ones, and greedy decoding never meets
# end-of-generation (nor text llama-server's output parser rejects, as random weights' does).
"$snug" mkmodel "$preset" "$model" --weights zero >/dev/null
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

# --- 1. the split: snug's plan first, then llama.cpp's flags derived from it ---------------------
start_worker wa "$w1_limit"
start_worker wb "$w2_limit"
workers=(--worker "127.0.0.1:$wa_port" --worker "127.0.0.1:$wb_port")
"$snug" plan "$model" --ctx "$ctx" --parallel 1 --memory-limit "$main_limit" "${workers[@]}" --json \
  >"$work/plan.json" || die "snug plan failed: $(cat "$work/plan.json")"
start_rpc ra
start_rpc rb
# per_device is llama.cpp's device order; the output layer is offload position n_layer, counted on
# the device that holds it (the last). Each snug worker's twin rpc-server takes its place.
read -r ngl ts rpc split_text fa < <(python3 - "$work/plan.json" "$wa_port:$ra_port" "$wb_port:$rb_port" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
twin = dict(a.split(":") for a in sys.argv[2:])
fit, hosts, devs = p["fit"], p["hosts"], p["memory"]["per_device"]
if not fit["ok"]:
    sys.exit("the plan does not fit: " + fit["reason"])
if len(hosts) != 3 or any(h["n_layers"] == 0 for h in hosts):
    sys.exit("the budgets do not split the model across this host and both workers: " + fit["reason"])
if not devs[-1]["output"] or any(d["output"] for d in devs[:-1]):
    sys.exit("expected the output on the last device: " + json.dumps(devs))
ts = [d["n_layers"] + (1 if d["output"] else 0) for d in devs]
assert sum(ts) == fit["n_gpu_layers"], (ts, fit["n_gpu_layers"])
rpc = ["127.0.0.1:" + twin[d["host"].split(":")[1]] for d in devs]
text = ", ".join(f'{h["host"]} {h["n_layers"]}{"+output" if h["output"] else ""}' for h in hosts)
print(fit["n_gpu_layers"], ",".join(map(str, ts)), ",".join(rpc), text.replace(" ", "_"),
      "on" if fit["flash_attn"] else "off")
EOF
) || die "cannot derive llama.cpp's split from snug's plan"
split_text=${split_text//_/ }
echo "split (snug plan): $split_text"
echo "llama-server: --rpc $rpc -ngl $ngl -ts $ts -fa $fa"

start_snug ssplit --memory-limit "$main_limit" "${workers[@]}"
start_llama lsplit --rpc "$rpc" -ngl "$ngl" -ts "$ts"
start_snug slocal
start_llama llocal -ngl 0
# What each process holds: the workers' buffers (status endpoint) and llama.cpp's load log.
held=$(for p in "$wa_port" "$wb_port"; do
  curl -sf "http://127.0.0.1:$((p + 1))/snug/worker" |
    python3 -c "import json,sys; s=json.load(sys.stdin); print(f'127.0.0.1:$p holds {s[\"allocated_bytes\"]/2**20:.1f} MiB')"
done | paste -sd, - | sed 's/,/, /g' || true)
llama_bufs=$(grep -E 'offloaded [0-9]+/[0-9]+ layers|model buffer size|KV buffer size|compute buffer size' "$work/lsplit.log" |
  sed -E 's/.*(load_tensors|llama_kv_cache|sched_reserve): *//; s/ +/ /g' | paste -sd';' - | sed 's/;/; /g' || true)
planned=$(python3 -c "import json,sys; p=json.load(open(sys.argv[1])); print(', '.join(f'{h[\"host\"]} {h[\"total_bytes\"]/2**20:.1f} MiB' for h in p['hosts']))" "$work/plan.json")
echo "snug plan: $planned"
echo "snug workers: $held"
echo "llama-server: $llama_bufs"

prompt_words=$(python3 -c "import random; r=random.Random(7); w='the of and to in is was for on that with as by at from his her an which are'.split(); print(' '.join(r.choice(w) for _ in range($words)))")
declare -A res
servers=(ssplit lsplit slocal llocal)
for round in $(seq "$repeats"); do
  for i in 0 1 2 3; do  # rotate the order so no server always runs first
    s=${servers[$(((i + round) % 4))]}
    port_var="${s}_port"; kind=$([ "${s:0:1}" = s ] && echo snug || echo llama)
    # A fresh first word each time: no prompt prefix is reused from an earlier request.
    line=$(python3 bench/rpc/measure.py "${!port_var}" "$kind" "$name" \
      "Request $round$i: $prompt_words" "$tokens") || die "$s: measurement failed"
    read -r pp tg n np < <(echo "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["prompt_tps"], d["decode_tps"], d["tokens"], d["prompt_tokens"])')
    [ "$n" = "$tokens" ] || echo "  warning: $s generated $n of $tokens tokens" >&2
    echo "  round $round $s: prompt $np tok at $pp tok/s, decode $tg tok/s   $line"
    res[$s,pp]+="$pp "; res[$s,tg]+="$tg "; res[$s,np]="$np"
  done
done
stop_all

# --- 3. the planner with 2 and 8 live workers --------------------------------------------------
# The same two budgets as above, plus six small workers of one layer each; with this host holding
# none of the layers (SMALL_MAIN_LIMIT leaves it room for the embeddings only), all eight are used.
start_worker pa "$w1_limit"
start_worker pb "$w2_limit"
eight=(--worker "127.0.0.1:$pa_port" --worker "127.0.0.1:$pb_port")
for k in 3 4 5 6 7 8; do
  start_worker "p$k" 130MiB
  pv="p${k}_port"; eight+=(--worker "127.0.0.1:${!pv}")
done
small_limit="${SMALL_MAIN_LIMIT:-660MiB}"
"$snug" plan "$model" --ctx "$ctx" --parallel 1 --memory-limit "$main_limit" "${eight[@]:0:4}" --json >"$work/plan2.json" || true
"$snug" plan "$model" --ctx "$ctx" --parallel 1 --memory-limit "$small_limit" "${eight[@]}" --json >"$work/plan8.json" || true
hosts_of() { python3 -c "import json,sys; p=json.load(open(sys.argv[1])); print('fits' if p['fit']['ok'] else 'does not fit', '/'.join(str(h['n_layers']) for h in p.get('hosts', [])))" "$1"; }
time_cmd() {  # time_cmd RUNS CMD... -> median ms (after 3 warm-ups)
  python3 - "$@" <<'EOF'
import statistics, subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
times = []
for i in range(runs + 3):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if i >= 3:
        times.append((time.perf_counter() - t) * 1000)
print(f"{statistics.median(times):.1f} {min(times):.1f}")
EOF
}
plan_runs=50
read -r t_start t_startmin < <(time_cmd $plan_runs "$snug" --version)
read -r t0 t0min < <(time_cmd $plan_runs "$snug" plan "$model" --ctx "$ctx" --parallel 1 --json)
read -r t2 t2min < <(time_cmd $plan_runs "$snug" plan "$model" --ctx "$ctx" --parallel 1 --memory-limit "$main_limit" "${eight[@]:0:4}" --json)
read -r t8 t8min < <(time_cmd $plan_runs "$snug" plan "$model" --ctx "$ctx" --parallel 1 --memory-limit "$small_limit" "${eight[@]}" --json)
echo "snug --version $t_start ms; snug plan: no worker $t0 ms, 2 workers $t2 ms ($(hosts_of "$work/plan2.json")), 8 workers $t8 ms ($(hosts_of "$work/plan8.json"))"
# Fit alone, with the budgets the probes reported (after headroom).
fit2="" fit8=""
if [ -x "$fit_time" ]; then
  read -r hb2 wb2 < <(python3 - "$work/plan2.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
print(p["budget"]["host_bytes"] / 2**20, ",".join(str(d["budget_bytes"] / 2**20) for d in p["budget"]["devices"]))
EOF
)
  read -r hb8 wb8 < <(python3 - "$work/plan8.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
print(p["budget"]["host_bytes"] / 2**20, ",".join(str(d["budget_bytes"] / 2**20) for d in p["budget"]["devices"]))
EOF
)
  fit2=$("$fit_time" "$model" "$ctx" "$hb2" "$wb2" 500)
  fit8=$("$fit_time" "$model" "$ctx" "$hb8" "$wb8" 500)
  echo "Fit alone: $fit2 / $fit8"
fi
stop_all

# --- results -------------------------------------------------------------------------------------
median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { python3 -c "print(f'{$1/$2:.3f}')"; }
jf() { echo "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
out=bench/results/rpc-split.md
{
  echo "# A model split across two ggml-rpc workers: snug vs llama.cpp"
  echo
  echo "Generated by \`bench/rpc/run.sh\` on $(date -u +%Y-%m-%d) ($(nproc) CPUs: $cpu), everything on loopback"
  echo "(127.0.0.1) on this one machine. Model: \`$preset\` (synthetic zero weights: the same compute per token as real ones, $(du -m --apparent-size "$model" | cut -f1) MiB file),"
  echo "context $ctx, one slot, flash attention $fa, greedy; each request a prompt of ${res[ssplit,np]} tokens"
  echo "(the first word differs per request, so no prefix is reused; llama-server also \`cache_prompt: false\`)"
  echo "and $tokens generated tokens (greedy on zero weights never stops early; llama-server also \`ignore_eos\`)."
  echo "**$threads thread(s) per process** — snug serve / llama-server and each worker / rpc-server: one stream"
  echo "through a layer split runs its hosts one after another (ggml-rpc has no pipelining here), so one"
  echo "thread each keeps the $(nproc) cores free of spinning thread pools while the other chain sits idle; the"
  echo "local runs use the same $threads thread(s), so the comparison isolates the split itself."
  echo "Speeds are measured on the client from the stream: prompt tok/s = prompt tokens / time to the first"
  echo "token; decode tok/s = (tokens - 1) / time from the first to the last token. Median of $repeats rounds,"
  echo "the four servers alternating in rotating order, all loaded at once."
  echo
  echo "Split (from \`snug plan --json\` with \`--memory-limit $main_limit\` here, workers \`--memory-limit $w1_limit\` /"
  echo "\`$w2_limit\` \`--headroom 0\`): **$split_text**. llama.cpp gets the same placement:"
  echo "\`llama-server --rpc A',B' -ngl $ngl -ts $ts\` (n_gpu_layers counts the output layer; the split"
  echo "counts it on the last device; devices in the plan's \`per_device\` order)."
  echo
  echo "- twins: snug worker 127.0.0.1:$wa_port and ggml-rpc-server 127.0.0.1:$ra_port (the snug one with \`--memory-limit $w1_limit\`),"
  echo "  snug worker 127.0.0.1:$wb_port and ggml-rpc-server 127.0.0.1:$rb_port (\`--memory-limit $w2_limit\`)"
  echo "- snug's plan per host (resident): $planned"
  echo "- snug workers' status after the load (\`allocated_bytes\`): $held"
  echo "- llama-server's load log: $llama_bufs"
  echo
  echo "| run | prompt tok/s snug | llama.cpp | ratio | decode tok/s snug | llama.cpp | ratio | target |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for pair in "split:ssplit:lsplit" "local:slocal:llocal"; do
    IFS=: read -r label s l <<<"$pair"
    sp=$(median "${res[$s,pp]}"); lp=$(median "${res[$l,pp]}")
    st=$(median "${res[$s,tg]}"); lt=$(median "${res[$l,tg]}")
    echo "| $label | $sp | $lp | $(ratio "$sp" "$lp") | $st | $lt | $(ratio "$st" "$lt") | >= 0.97 |"
  done
  echo
  echo "Cost of the split (split / local, same server): snug prompt $(ratio "$(median "${res[ssplit,pp]}")" "$(median "${res[slocal,pp]}")"), decode $(ratio "$(median "${res[ssplit,tg]}")" "$(median "${res[slocal,tg]}")");"
  echo "llama.cpp prompt $(ratio "$(median "${res[lsplit,pp]}")" "$(median "${res[llocal,pp]}")"), decode $(ratio "$(median "${res[lsplit,tg]}")" "$(median "${res[llocal,tg]}")")."
  echo
  echo "## Planner time"
  echo
  echo "\`snug plan MODEL --ctx $ctx --json\`, wall time of the whole process (start, GGUF header, probe of"
  echo "every worker's status endpoint in parallel, fit), median of $plan_runs runs after 3 warm-ups; live"
  echo "\`snug worker\`s on loopback. Fit alone: \`plan::Fit\` in-process on the budgets those probes"
  echo "reported (\`tests/plan/plan_rpc_fit_time\`, median of 500 calls)."
  echo
  echo "| workers | layers here/per worker | snug plan (ms, median / min) | Fit alone (µs, median) | target |"
  echo "|---:|---|---:|---:|---:|"
  echo "| (\`snug --version\`: process start) | | $t_start / $t_startmin | | |"
  echo "| 0 | all here | $t0 / $t0min | | |"
  echo "| 2 | $(hosts_of "$work/plan2.json") | $t2 / $t2min | ${fit2:+$(jf "$fit2" median_us)} | < 100 ms |"
  echo "| 8 | $(hosts_of "$work/plan8.json") | $t8 / $t8min | ${fit8:+$(jf "$fit8" median_us)} | < 100 ms |"
  echo
  echo "Raw rounds (tok/s, prompt | decode): snug split ${res[ssplit,pp]}| ${res[ssplit,tg]}; llama split ${res[lsplit,pp]}| ${res[lsplit,tg]};"
  echo "snug local ${res[slocal,pp]}| ${res[slocal,tg]}; llama local ${res[llocal,pp]}| ${res[llocal,tg]}"
} >"$out"
cat "$out"
