#!/usr/bin/env bash
# A bulk send against the sandbox with faults, checked at the server.
#   bench/fault-run.sh [N] [RATE] [SANDBOX KNOBS...]
#   bench/fault-run.sh 10000 500 --busy 0.03 --token-ttl 3s
#   SANDBOX_BIN=old/wxpush CLIENT_BIN=new/wxpush bench/fault-run.sh 200000 20000  (two builds)
# Traffic goes only to 127.0.0.1; the run is bounded by N and RATE.
set -euo pipefail
n=${1:-10000}; rate=${2:-500}; shift $(( $# >= 2 ? 2 : $# ))
source "$(dirname "$0")/sandbox.sh" "$@"
write_people "$n"
cat > "$work/bench.yaml" <<YAML
name: bench
target: official
appid: wx0123456789abcdef
template_id: n44_YbDNEqrrSEEvd8The8HpWYo1gWOVAXj7zIz4vHA
url: "https://example.com/u/{{ openid }}"
recipients: people.csv
vars: { course: 巅峰单词 }
data:
  first: "{{ name }}同学,提醒您背单词啦"
  keyword1: "{{ course }}{{ words }}个背诵"
rate: $rate
concurrency: 64
YAML
echo "# wxpush send (N=$n, rate=$rate, sandbox $*)"
WXPUSH_API_BASE=http://127.0.0.1:$port WXPUSH_SECRET=sandbox-secret \
  command time -f "client: %e s wall, %U s user, %S s sys, %M KB max RSS" \
  "${CLIENT_BIN:-$bin}" send "$work/bench.yaml" --yes 2>&1 | grep -v '^progress:'
echo "# sandbox counters"
curl -s "http://127.0.0.1:$port/sandbox/stats"; echo
echo "# report: rows by status, openids with more than one row"
tail -n +2 "$work/reports/bench.sandbox.csv" | cut -d, -f2 | sort | uniq -c
tail -n +2 "$work/reports/bench.sandbox.csv" | cut -d, -f1 | sort | uniq -d | wc -l
