#!/usr/bin/env bash
# Two builds against each other: SANDBOX_BIN serves, CLIENT_BIN sends N recipients at RATE.
#   bench/cross.sh old/target/release/wxpush target/release/wxpush 200000 20000
# Traffic goes only to 127.0.0.1.
set -euo pipefail
sbin=$1; cbin=$2; n=$3; rate=$4
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$sbin" sandbox --port "$port" --daily-quota 1000000000 > "$work/sb.log" 2>&1 & sb=$!
trap 'kill $sb 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/sandbox/stats" >/dev/null && break; sleep 0.1; done
python3 - "$n" > "$work/people.csv" <<'PY'
import sys
print("openid,name,words")
for i in range(1, int(sys.argv[1]) + 1):
    print(f"o_bench_{i:07},用户{i},{i % 900 + 100}")
PY
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
WXPUSH_API_BASE=http://127.0.0.1:$port WXPUSH_SECRET=sandbox-secret \
  command time -f "client: %e s wall, %U s user, %S s sys" "$cbin" send "$work/bench.yaml" --yes 2>&1 | grep -E "took|client:"
