# Sourced by the bench scripts: builds the release binary, starts `wxpush sandbox` with the
# given knobs on a free 127.0.0.1 port, and stops it (and removes the scratch folder) on exit.
# SANDBOX_BIN=PATH serves with another build. Sets: bin, work (a scratch folder), port, sb (the sandbox's pid); `write_people N` writes
# $work/people.csv with N generated recipients (openid, name, words).
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$root/target/release/wxpush
# Two builds against each other: SANDBOX_BIN serves, CLIENT_BIN (fault-run.sh) sends.
sandbox_bin=${SANDBOX_BIN:-$bin}
work=$(mktemp -d); trap 'kill $sb 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The sandbox enforces WeChat's default daily quotas (100,000 template messages); a benchmark
# measures throughput, so it lifts them unless the caller sets one.
case " $* " in *" --daily-quota "*) ;; *) set -- --daily-quota 1000000000 "$@" ;; esac
"$sandbox_bin" sandbox --port "$port" "$@" > "$work/sandbox.log" 2>&1 & sb=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/sandbox/stats" >/dev/null && break; sleep 0.1; done
write_people() {
  python3 - "$1" > "$work/people.csv" <<'PY'
import sys
print("openid,name,words")
for i in range(1, int(sys.argv[1]) + 1):
    print(f"o_bench_{i:07},用户{i},{i % 900 + 100}")
PY
}
