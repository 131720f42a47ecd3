#!/usr/bin/env bash
# How long a resume takes to decide on a big report: a full send of N recipients to the
# sandbox, then `send` again (read the report and journal under the lock, decide, validate
# every row: "nothing left to send"), timed, and the same with `--retry-failed`.
#   bench/resume.sh [N] [RATE] [SANDBOX KNOBS...]
#   bench/resume.sh 1000000 20000
# Traffic goes only to 127.0.0.1; the run is bounded by N and RATE.
set -euo pipefail
n=${1:-100000}; rate=${2:-20000}; shift $(( $# >= 2 ? 2 : $# ))
source "$(dirname "$0")/sandbox.sh" "$@"
write_people "$n"
cat > "$work/bench.yaml" <<YAML
name: bench
target: mini
appid: wx0123456789abcdef
template_id: TPL
recipients: people.csv
data:
  thing1: "{{ name }}你好"
rate: $rate
concurrency: 64
YAML
export WXPUSH_API_BASE=http://127.0.0.1:$port WXPUSH_SECRET=sandbox-secret
echo "# full send (N=$n, rate=$rate)"
"$bin" send "$work/bench.yaml" --yes 2>&1 | grep -E 'sent|took'
ls -l "$work/reports" | awk 'NR>1 {print "  " $5 " bytes  " $9}'
for extra in "" "--retry-failed"; do
  echo "# resume: wxpush send bench.yaml --yes $extra"
  command time -f "  %e s wall, %U s user, %S s sys, %M KB max RSS" \
    "$bin" send "$work/bench.yaml" --yes $extra 2>&1 | grep -vE '^progress:'
done
echo "# sandbox counters"
curl -s "http://127.0.0.1:$port/sandbox/stats"; echo
