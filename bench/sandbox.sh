# Sourced by the bench scripts: builds the release binary, starts `wxpush sandbox` with the
# given knobs on a free 127.0.0.1 port, and stops it (and removes the scratch folder) on exit.
# Sets: bin, work (a scratch folder), port, sb (the sandbox's pid).
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$root/target/release/wxpush
work=$(mktemp -d); trap 'kill $sb 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" sandbox --port "$port" "$@" > "$work/sandbox.log" 2>&1 & sb=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/sandbox/stats" >/dev/null && break; sleep 0.1; done
