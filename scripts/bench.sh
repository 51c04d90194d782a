#!/usr/bin/env bash
# Load test: what TokenGuard adds on top of a local upstream, with auth, budgets and usage
# logging all on. Starts scripts/benchupstream and TokenGuard on loopback, creates a project
# through the API, then measures with hey (Debian package `hey`):
#   - CPU per proxied request (process CPU time / requests) at saturation, beside the upstream's;
#   - latency at a fixed 100 req/s, direct to the upstream, through a bare Go reverse proxy (the
#     cost of one more loopback hop alone) and through TokenGuard, in one run;
#   - time to first byte of a streamed response, direct and proxied;
#   - TokenGuard's peak RSS.
# Usage: scripts/bench.sh [seconds-per-latency-run]   (needs: go, hey, curl, jq)
# TG_BIN=path measures a prebuilt tokenguard binary instead of building this tree (to compare a
# build of an older commit with this one, run back to back).
# TG_DATABASE_URL=postgres://… runs TokenGuard on PostgreSQL instead of a SQLite file in a temp
# dir (an empty database or schema: the script signs up its own user); the CPU lines then add
# the CPU of TokenGuard's PostgreSQL server processes ("db CPU"), the work SQLite does inside
# TokenGuard's process. BENCH_OPENAI_ONLY=1 runs only the OpenAI lines (to compare the two
# stores back to back: scripts/bench-stores.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-20}
TG_PORT=${TG_PORT:-18080}
UP_PORT=${UP_PORT:-18081}
RP_PORT=${RP_PORT:-18082}
for tool in hey curl jq; do
  command -v $tool >/dev/null || { echo "bench: $tool is required (apt-get install -y $tool)"; exit 1; }
done

work=$(mktemp -d)
cleanup() { kill ${TG_PID:-} ${UP_PID:-} ${RP_PID:-} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

if [ -n "${TG_BIN:-}" ]; then cp "$TG_BIN" "$work/tokenguard"; else go build -o "$work/tokenguard" .; fi
go build -o "$work/benchupstream" ./scripts/benchupstream

"$work/benchupstream" -addr 127.0.0.1:$UP_PORT 2>"$work/upstream.log" &
UP_PID=$!
"$work/benchupstream" -addr 127.0.0.1:$RP_PORT -reverse-proxy http://127.0.0.1:$UP_PORT 2>>"$work/upstream.log" &
RP_PID=$!
DB_URL=${TG_DATABASE_URL:-$work/tg.db}
LISTEN_ADDR=127.0.0.1:$TG_PORT DATABASE_URL="$DB_URL" \
  JWT_SECRET=${JWT_SECRET:-bench-jwt-secret-0123456789abcdef0123456789} \
  ENCRYPTION_KEY=${ENCRYPTION_KEY:-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef} \
  OPENAI_UPSTREAM_URL=http://127.0.0.1:$UP_PORT ANTHROPIC_UPSTREAM_URL=http://127.0.0.1:$UP_PORT \
  GEMINI_UPSTREAM_URL=http://127.0.0.1:$UP_PORT \
  OPENAI_API_KEY=sk-bench ANTHROPIC_API_KEY=sk-ant-bench GEMINI_API_KEY=AIza-bench \
  "$work/tokenguard" 2>"$work/tokenguard.log" &
TG_PID=$!
for _ in $(seq 50); do curl -sf 127.0.0.1:$TG_PORT/healthz >/dev/null && break; sleep 0.1; done

TG=http://127.0.0.1:$TG_PORT
UP=http://127.0.0.1:$UP_PORT
RP=http://127.0.0.1:$RP_PORT
TOKEN=$(curl -sf $TG/api/auth/signup -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.com","password":"bench-password-1","name":"Bench"}' | jq -r .token)
KEY=$(curl -sf $TG/api/projects -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"bench","dailyBudgetUsd":100000,"monthlyBudgetUsd":1000000}' | jq -r .key)

echo '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}' >"$work/chat.json"
echo '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello"}]}' >"$work/stream.json"
echo '{"model":"claude-3-5-haiku-latest","max_tokens":300,"messages":[{"role":"user","content":"Hello"}]}' >"$work/claude.json"
echo '{"model":"claude-3-5-haiku-latest","max_tokens":300,"stream":true,"messages":[{"role":"user","content":"Hello"}]}' >"$work/claude-stream.json"
echo '{"contents":[{"parts":[{"text":"Hello"}]}]}' >"$work/gemini.json"
GEM=v1beta/models/gemini-2.0-flash

ticks() { awk '{print $14+$15}' /proc/$1/stat; }
# db_ticks: CPU ticks of the PostgreSQL server processes serving TokenGuard's connections (0 on
# SQLite, whose work is in TokenGuard's own ticks).
db_ticks() {
  case "$DB_URL" in postgres://*|postgresql://*) ;; *) echo 0; return ;; esac
  local t=0 pid
  for pid in $(psql "${DB_URL%%\?*}" -XAtc "SELECT pid FROM pg_stat_activity WHERE application_name = '' AND pid <> pg_backend_pid() AND datname = current_database()"); do
    t=$((t + $(awk '{print $14+$15}' /proc/$pid/stat 2>/dev/null || echo 0)))
  done
  echo $t
}
hz=$(getconf CLK_TCK)

# cpu_run NAME URL BODY N [PID]: saturating run, prints µs of CPU per request for the proxy in
# front (TokenGuard, or the bare reverse proxy when its PID is given) and for the upstream.
cpu_run() {
  local name=$1 url=$2 body=$3 n=$4 pid=${5:-$TG_PID}
  local tg0 up0 tg1 up1 db0=0 db1=0
  [ "$pid" = "$TG_PID" ] && db0=$(db_ticks)
  tg0=$(ticks $pid); up0=$(ticks $UP_PID)
  hey -n "$n" -c 32 -m POST -T application/json -H "x-tokenguard-key: $KEY" -D "$body" "$url" >"$work/hey.txt"
  tg1=$(ticks $pid); up1=$(ticks $UP_PID)
  # The server processes of connections opened during the run are counted from zero.
  [ "$pid" = "$TG_PID" ] && db1=$(db_ticks)
  local rps; rps=$(awk '/Requests\/sec/{print $2}' "$work/hey.txt")
  awk -v n="$n" -v hz="$hz" -v tg=$((tg1-tg0)) -v up=$((up1-up0)) -v db=$((db1-db0)) -v name="$name" -v rps="$rps" \
    'BEGIN{printf "%-28s %8.0f req/s   proxy CPU %6.1f µs/req   upstream CPU %6.1f µs/req", name, rps, tg*1e6/hz/n, up*1e6/hz/n;
      if (db > 0) printf "   db CPU %6.1f µs/req", db*1e6/hz/n; printf "\n"}'
}

# latency_run NAME URL BODY: fixed 100 req/s (10 workers x 10 qps); prints p50/p90/p99 total and TTFB.
latency_run() {
  local name=$1 url=$2 body=$3
  hey -z "${DUR}s" -c 10 -q 10 -m POST -T application/json -H "x-tokenguard-key: $KEY" -D "$body" -o csv "$url" >"$work/lat.csv"
  awk -F, 'NR>1 && $7==200 {print $1*1000, $5*1000}' "$work/lat.csv" >"$work/lat.txt"
  local n; n=$(wc -l <"$work/lat.txt")
  pct() { sort -n -k"$1" "$work/lat.txt" | awk -v col="$1" -v p="$2" -v n="$n" 'NR==int(n*p/100+0.999){printf "%.3f", $col}'; }
  printf "%-28s n=%-5d total p50 %s ms  p99 %s ms   first byte p50 %s ms  p99 %s ms\n" \
    "$name" "$n" "$(pct 1 50)" "$(pct 1 99)" "$(pct 2 50)" "$(pct 2 99)"
}

echo "== warm-up"
hey -n 2000 -c 16 -m POST -T application/json -H "x-tokenguard-key: $KEY" -D "$work/chat.json" $TG/proxy/openai/v1/chat/completions >/dev/null

echo "== CPU per request at saturation (20000 requests, 32 connections)"
cpu_run "direct non-stream" $UP/v1/chat/completions "$work/chat.json" 20000
cpu_run "proxied non-stream" $TG/proxy/openai/v1/chat/completions "$work/chat.json" 20000
cpu_run "bare proxy non-stream" $RP/v1/chat/completions "$work/chat.json" 20000 $RP_PID
cpu_run "direct stream" $UP/v1/chat/completions "$work/stream.json" 10000
cpu_run "bare proxy stream" $RP/v1/chat/completions "$work/stream.json" 10000 $RP_PID
cpu_run "proxied stream" $TG/proxy/openai/v1/chat/completions "$work/stream.json" 10000
if [ -z "${BENCH_OPENAI_ONLY:-}" ]; then
cpu_run "anthropic direct" $UP/v1/messages "$work/claude.json" 10000
cpu_run "anthropic proxied" $TG/proxy/anthropic/v1/messages "$work/claude.json" 10000
cpu_run "anthropic direct stream" $UP/v1/messages "$work/claude-stream.json" 5000
cpu_run "anthropic bare proxy stream" $RP/v1/messages "$work/claude-stream.json" 5000 $RP_PID
cpu_run "anthropic proxied stream" $TG/proxy/anthropic/v1/messages "$work/claude-stream.json" 5000
cpu_run "gemini direct" "$UP/$GEM:generateContent" "$work/gemini.json" 10000
cpu_run "gemini proxied" "$TG/proxy/gemini/$GEM:generateContent" "$work/gemini.json" 10000
cpu_run "gemini direct stream" "$UP/$GEM:streamGenerateContent?alt=sse" "$work/gemini.json" 5000
cpu_run "gemini bare proxy stream" "$RP/$GEM:streamGenerateContent?alt=sse" "$work/gemini.json" 5000 $RP_PID
cpu_run "gemini proxied stream" "$TG/proxy/gemini/$GEM:streamGenerateContent?alt=sse" "$work/gemini.json" 5000
fi

echo "== latency at 100 req/s for ${DUR}s"
latency_run "direct non-stream" $UP/v1/chat/completions "$work/chat.json"
latency_run "bare reverse proxy" $RP/v1/chat/completions "$work/chat.json"
latency_run "proxied non-stream" $TG/proxy/openai/v1/chat/completions "$work/chat.json"
latency_run "direct stream" $UP/v1/chat/completions "$work/stream.json"
latency_run "bare reverse proxy stream" $RP/v1/chat/completions "$work/stream.json"
latency_run "proxied stream" $TG/proxy/openai/v1/chat/completions "$work/stream.json"
if [ -z "${BENCH_OPENAI_ONLY:-}" ]; then
latency_run "anthropic direct" $UP/v1/messages "$work/claude.json"
latency_run "anthropic proxied" $TG/proxy/anthropic/v1/messages "$work/claude.json"
latency_run "gemini direct" "$UP/$GEM:generateContent" "$work/gemini.json"
latency_run "gemini proxied" "$TG/proxy/gemini/$GEM:generateContent" "$work/gemini.json"
fi

echo "== memory"
grep -E 'VmHWM|VmRSS' /proc/$TG_PID/status | sed 's/^/tokenguard /'

echo "== errors logged by tokenguard: $(grep -c 'level=ERROR' "$work/tokenguard.log" || true)"
