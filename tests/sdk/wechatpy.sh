#!/usr/bin/env bash
# Points a real third-party SDK, wechatpy (from the Python package index), at `wxpush sandbox`
# and sends the three kinds of message wxpush sends: an Official Account template message, a
# Mini Program subscribe message and an Official Account subscribe notification (bizsend).
# Each must be answered errcode 0, and the sandbox's request log must hold the three bodies.
#
#   bash tests/sdk/wechatpy.sh            # needs python3 with venv, and PyPI
#
# It runs twice: against the default sandbox (as tolerant as WeChat, as a user's own SDK would
# meet it) and against `--strict` (wechatpy sends only documented fields, so it passes too).
set -euo pipefail
cd "$(dirname "$0")/../.."
WECHATPY=${WECHATPY:-wechatpy==1.8.18}
work=$(mktemp -d)
trap 'kill "${sandbox:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --quiet
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "$WECHATPY" cryptography

secret="sdk-secret-$$"
for mode in "" --strict; do
  # shellcheck disable=SC2086 # $mode is empty or one flag
  target/debug/wxpush sandbox --port 0 --secret "$secret" $mode >"$work/banner" 2>&1 &
  sandbox=$!
  for _ in $(seq 100); do grep -q "emulator on" "$work/banner" && break; sleep 0.1; done
  base=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/banner" | head -1)
  grep -q "WXPUSH_SECRET=$secret " "$work/banner" || { cat "$work/banner"; echo "banner lacks the secret"; exit 1; }
  echo "== wxpush sandbox ${mode:-(tolerant)} at $base, $("$work/venv/bin/pip" show wechatpy | grep ^Version)"
  "$work/venv/bin/python" tests/sdk/wechatpy_sends.py "$base" "$secret"
  kill "$sandbox"; wait "$sandbox" 2>/dev/null || true
done
