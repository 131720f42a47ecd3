#!/usr/bin/env python3
"""Fault runs against the sandbox, counted at the server and in the report.

    python3 bench/faults.py [N]            # all scenarios, N recipients each (default 10000)
    python3 bench/faults.py 10000 resets   # one scenario

Builds the release binary, then for each scenario starts `wxpush sandbox` on a free
127.0.0.1 port with the scenario's fault knobs, runs `wxpush send` (killing or interrupting
it where the scenario says, then resuming), and prints one line of figures:

  duplicates  recipients the sandbox accepted more than once (its duplicate_deliveries)
  lost        recipients without a row in the report
  unknown     report rows with status unknown
Traffic goes only to 127.0.0.1; every run is bounded by N and the rate.
"""
import csv, json, os, signal, socket, subprocess, sys, tempfile, time, urllib.request
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "wxpush")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def stats(port):
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/sandbox/stats"))

def post(port, path):
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST"))

def wait_until(pred, limit=120):
    end = time.time() + limit
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    raise SystemExit("timed out")

class Run:
    def __init__(self, n, target, rate, knobs):
        self.dir = tempfile.mkdtemp()
        self.n = n
        self.port = free_port()
        # The sandbox enforces WeChat's default daily quotas; lift them unless the scenario is one.
        if "--daily-quota" not in knobs:
            knobs = ["--daily-quota", "1000000000", *knobs]
        self.sandbox = subprocess.Popen([BIN, "sandbox", "--port", str(self.port), "--seed", "7", *knobs],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._up())
        with open(os.path.join(self.dir, "people.csv"), "w") as f:
            f.write("openid,name\n")
            for i in range(1, n + 1):
                f.write(f"o_fault_{i:07},用户{i}\n")
        target_yaml = "target: official\n" if target == "official" else "target: mini\n"
        with open(os.path.join(self.dir, "c.yaml"), "w") as f:
            f.write(f"name: faults\n{target_yaml}appid: wx0123456789abcdef\ntemplate_id: TPL\n"
                    f"recipients: people.csv\ndata:\n  thing1: \"{{{{ name }}}}你好\"\n"
                    f"rate: {rate}\nconcurrency: 32\n")
        self.env = dict(os.environ, WXPUSH_API_BASE=f"http://127.0.0.1:{self.port}",
                        WXPUSH_SECRET="sandbox-secret")
        self.runs = []

    def _up(self):
        try:
            stats(self.port); return True
        except OSError:
            return False

    def start(self, *extra):
        return subprocess.Popen([BIN, "send", "c.yaml", "--yes", *extra], cwd=self.dir, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def send(self, *extra):
        code = self.start(*extra).wait()
        self.runs.append(code)
        return code

    def figures(self):
        s = stats(self.port)
        with open(os.path.join(self.dir, "reports", "faults.sandbox.csv")) as f:
            rows = list(csv.DictReader(f))
        openids = Counter(r["openid"] for r in rows)
        status = Counter(r["status"] for r in rows)
        self.sandbox.terminate(); self.sandbox.wait()
        return (f"exit codes {self.runs}; report rows {len(rows)}: sent {status['sent']}, "
                f"failed {status['failed']}, unknown {status['unknown']}; "
                f"lost {self.n - len(openids)}; rows repeated {sum(c - 1 for c in openids.values())}; "
                f"duplicates {s['duplicate_deliveries']}; requests {s['send_requests']} "
                f"(accepted {s['accepted']}, busy {s['by_errcode'].get('-1', 0)}, resets {s['resets']}, "
                f"client_msg_id repeats {s['client_msg_id_repeats']}); tokens minted {s['tokens_minted']}")

def busy_tokens(n):
    r = Run(n, "official", 500, ["--busy", "0.03", "--token-ttl", "2s"]); r.send(); return r

def resets(n, target):
    r = Run(n, target, 1000, ["--reset", "0.02"]); r.send(); return r

def kill9(n, target):
    r = Run(n, target, 500, ["--latency", "40ms"])
    p = r.start()
    wait_until(lambda: stats(r.port)["send_requests"] >= n // 3)
    p.send_signal(signal.SIGKILL); r.runs.append(p.wait())
    r.send()
    return r

def sigint(n, target):
    r = Run(n, target, 500, ["--latency", "40ms", "--busy", "0.1"])
    p = r.start()
    wait_until(lambda: stats(r.port)["send_requests"] >= n // 3)
    p.send_signal(signal.SIGINT); r.runs.append(p.wait())
    r.send()
    return r

def quota(n):
    r = Run(n, "official", 1000, ["--daily-quota", str(n * 2 // 5)])
    while r.send() != 0 and len(r.runs) < 5:
        post(r.port, "/sandbox/next_day")
    return r

SCENARIOS = {
    "busy-tokens": ("3% busy, tokens expire every 2 s (official)", busy_tokens),
    "resets": ("2% connection resets after processing (official, client_msg_id)", lambda n: resets(n, "official")),
    "resets-mini": ("2% connection resets after processing (subscribe)", lambda n: resets(n, "mini")),
    "kill9": ("kill -9 at 1/3, then resume (official)", lambda n: kill9(n, "official")),
    "kill9-mini": ("kill -9 at 1/3, then resume (subscribe)", lambda n: kill9(n, "mini")),
    "sigint": ("Ctrl-C at 1/3 with 10% busy, then resume (subscribe)", lambda n: sigint(n, "mini")),
    "quota": ("daily quota of 40%, resumed on the next days (official)", quota),
}

def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    chosen = sys.argv[2:] or list(SCENARIOS)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    print(f"# python3 bench/faults.py {n} {' '.join(sys.argv[2:])}".rstrip())
    for name in chosen:
        title, fn = SCENARIOS[name]
        start = time.time()
        r = fn(n)
        print(f"{name:12} {title}: N={n}; {r.figures()}; {time.time() - start:.1f} s")

if __name__ == "__main__":
    main()
