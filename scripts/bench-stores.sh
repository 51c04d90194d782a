#!/usr/bin/env bash
# The two stores back to back, in one run: scripts/bench.sh's OpenAI lines with TokenGuard on a
# SQLite file, then on PostgreSQL (a fresh database, tokenguard_bench, on the server of
# TG_TEST_POSTGRES_URL — `source scripts/pgtest.sh` starts a throwaway one), then SQLite again,
# so machine drift shows as the two SQLite runs disagreeing.
# Usage: scripts/bench-stores.sh [seconds-per-latency-run]   (needs what bench.sh needs, and psql)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${TG_TEST_POSTGRES_URL:?set TG_TEST_POSTGRES_URL (source scripts/pgtest.sh)}"
admin=${TG_TEST_POSTGRES_URL%%\?*}
bench_url="${admin%/*}/tokenguard_bench?sslmode=disable"
psql "$admin" -XAqc 'DROP DATABASE IF EXISTS tokenguard_bench' -c 'CREATE DATABASE tokenguard_bench'
bin=$(mktemp -d)/tokenguard
go build -o "$bin" .
export TG_BIN=$bin BENCH_OPENAI_ONLY=1
echo "##### SQLite"; bash scripts/bench.sh "${1:-20}"
echo "##### PostgreSQL"; TG_DATABASE_URL=$bench_url bash scripts/bench.sh "${1:-20}"
echo "##### SQLite again"; bash scripts/bench.sh "${1:-20}"
psql "$admin" -XAqc 'DROP DATABASE IF EXISTS tokenguard_bench'
rm -rf "$(dirname "$bin")"
