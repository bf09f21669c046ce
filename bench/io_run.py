"""bench/io_run.py - the issue-12 benchmarks, run by bench/run.py (not a script).

echo   TCP echo over loopback (bench/echo.cpp, target fiber_echo): the same
       client against the epoll loop, a thread per connection, the fiber
       server on 1 and 2 KLTs (and the same with idle KLTs kept out of the
       poller, fiber-nopoll: the A/B of core/src/idle_poll.hpp) and Go's net (bench/go/echo.go) on GOMAXPROCS
       1 and 2, at each connection count.  Every round runs every
       configuration once, in a fresh random order (interleaved), so that a
       change of the machine's load hits all servers alike; the load average
       is recorded before each run.  Output: <results>/echo.json.
latency  fiber_io_latency (bench/io_latency.cpp): readiness latency of a
       fiber parked in read() on a pipe, 1 KLT, idle poll on/off, with and
       without a CPU-bound fiber on the KLT; interleaved rounds.  Output:
       <results>/io_latency.json.
locks  bench_blocking_locks (a plain program printing Markdown tables):
       contended std::mutex in fibers vs fiber::mutex vs std::thread.
       Output: <results>/blocking_locks.out (its stdout as printed) and
       blocking_locks.json (the command, load averages before and after).

papers/scripts/io_table.py turns both into Markdown and SVG figures.
"""
import json
import os
import random
import resource
import shutil
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def find(build, name):
    for d in (os.path.join(build, "bench"), build):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK) and os.path.isfile(p):
            return p
    return None


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def build_go_echo(log):
    go = shutil.which("go")
    if not go:
        print("  go not found: the Go echo server is skipped", flush=True)
        return None, None
    tmp = tempfile.mkdtemp(prefix="fiber-echo-go-")
    env = dict(os.environ, GOCACHE=os.path.join(tmp, "cache"), GOFLAGS="", GOPROXY="off",
               GOTOOLCHAIN="local", CGO_ENABLED="0")
    out = os.path.join(tmp, "echo_go")
    p = subprocess.run([go, "build", "-o", out, "echo.go"], cwd=os.path.join(HERE, "go"), env=env,
                       capture_output=True, text=True)
    log.write("== go build echo rc=%d\n%s\n" % (p.returncode, p.stderr))
    if p.returncode != 0:
        print("  go build echo failed: %s" % p.stderr.strip()[-300:], flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
        return None, None
    return out, tmp


def parse_line(out):
    """fiber_echo's result line -> dict (req_s, p50_us, p99_us), or None."""
    for line in out.splitlines():
        if line.startswith("echo "):
            kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
            return {"req_s": float(kv["req/s"]), "p50_us": int(kv["p50_us"]), "p99_us": int(kv["p99_us"])}
    return None


def run_one(echo, go_bin, cfg, seconds, log):
    server, conns, procs = cfg
    base = ["--conns", str(conns), "--seconds", str(seconds), "--klts", str(procs)]
    timeout = seconds + 60
    if server != "go":
        cmd = [echo, "--server", server] + base
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        log.write("== %s rc=%d\n%s%s\n" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
        return parse_line(p.stdout) if p.returncode == 0 else None
    g = subprocess.Popen([go_bin, "-procs", str(procs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=dict(os.environ, GOMAXPROCS=str(procs)))
    try:
        first = g.stdout.readline().split()  # "port N gomaxprocs P"
        if len(first) < 2 or first[0] != "port":
            log.write("== go echo did not start: %r\n" % first)
            return None
        cmd = [echo, "--connect", "127.0.0.1:" + first[1], "--label", "go"] + base
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        log.write("== %s (%s) rc=%d\n%s%s\n" % (" ".join(cmd), " ".join(first), p.returncode, p.stdout,
                                                 p.stderr))
        return parse_line(p.stdout) if p.returncode == 0 else None
    finally:
        g.kill()
        g.wait()


def run_echo(build, results, log, rounds, seconds, conns_list, procs_list):
    echo = find(build, "fiber_echo")
    if echo is None:
        print("  fiber_echo not built: echo skipped", flush=True)
        return False
    limit = raise_fd_limit(4 * max(conns_list) + 256)  # both ends of every connection in one process
    go_bin, tmp = build_go_echo(log)
    cfgs = []
    for c in conns_list:
        cfgs += [("epoll", c, 1), ("thread", c, 1)]
        cfgs += [("fiber", c, k) for k in procs_list]
        cfgs += [("fiber-nopoll", c, k) for k in procs_list]
        if go_bin:
            cfgs += [("go", c, k) for k in procs_list]
    runs, n, total = [], 0, rounds * len(cfgs)
    t0 = time.monotonic()
    try:
        for r in range(rounds):
            order = cfgs[:]
            random.shuffle(order)
            for cfg in order:
                n += 1
                load = os.getloadavg()
                left = (time.monotonic() - t0) / (n - 1) * (total - n + 1) if n > 1 else (seconds + 0.5) * total
                print("  echo [%d/%d] round %d: %s conns=%d procs=%d (load %.1f, ~%ds left)" %
                      (n, total, r + 1, cfg[0], cfg[1], cfg[2], load[0], left), flush=True)
                res = run_one(echo, go_bin, cfg, seconds, log)
                runs.append({"round": r, "server": cfg[0], "conns": cfg[1], "procs": cfg[2],
                             "loadavg": [round(x, 2) for x in load], "result": res})
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    doc = {"seconds": seconds, "rounds": rounds, "fd_limit": limit, "nproc": os.cpu_count(),
           "loadavg_end": [round(x, 2) for x in os.getloadavg()], "runs": runs}
    with open(os.path.join(results, "echo.json"), "w") as f:
        json.dump(doc, f, indent=1)
    return True


def run_latency(build, results, log, rounds, samples):
    exe = find(build, "fiber_io_latency")
    if exe is None:
        print("  fiber_io_latency not built: latency skipped", flush=True)
        return False
    cfgs = [(poll, spin) for poll in (True, False) for spin in (False, True)]
    runs, n, total = [], 0, rounds * len(cfgs)
    for r in range(rounds):
        order = cfgs[:]
        random.shuffle(order)
        for poll, spin in order:
            n += 1
            load = os.getloadavg()
            print("  latency [%d/%d] round %d: idle poll %s, spinner %s (load %.1f)" %
                  (n, total, r + 1, "on" if poll else "off", "on" if spin else "off", load[0]), flush=True)
            cmd = [exe, "--samples", str(samples)] + ([] if poll else ["--no-idle-poll"]) + (["--spinner"] if spin else [])
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            log.write("== %s rc=%d\n%s%s\n" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
            res = None
            for line in p.stdout.splitlines():
                if p.returncode == 0 and line.startswith("io_latency "):
                    res = {k: float(v) for k, v in (f.split("=", 1) for f in line.split()[1:])}
            runs.append({"round": r, "idle_poll": poll, "spinner": spin, "loadavg": [round(x, 2) for x in load],
                         "result": res})
    with open(os.path.join(results, "io_latency.json"), "w") as f:
        json.dump({"rounds": rounds, "samples": samples, "nproc": os.cpu_count(), "runs": runs}, f, indent=1)
    return True


def run_locks(build, results, log, quick):
    exe = find(build, "bench_blocking_locks")
    if exe is None:
        print("  bench_blocking_locks not built: skipped", flush=True)
        return False
    cmd = [exe] + (["--quick"] if quick else [])
    before = [round(x, 2) for x in os.getloadavg()]
    print("  locks: %s (load %.1f)" % (" ".join([os.path.basename(exe)] + cmd[1:]), before[0]), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    log.write("== %s rc=%d\n%s\n" % (" ".join(cmd), p.returncode, p.stderr))
    if p.returncode != 0:
        print("  bench_blocking_locks failed (rc=%d)" % p.returncode, flush=True)
        return False
    with open(os.path.join(results, "blocking_locks.out"), "w") as f:
        f.write(p.stdout)
    with open(os.path.join(results, "blocking_locks.json"), "w") as f:
        json.dump({"cmd": [os.path.basename(exe)] + cmd[1:], "loadavg_before": before,
                   "loadavg_after": [round(x, 2) for x in os.getloadavg()]}, f, indent=1)
    return True
