#!/usr/bin/env python3
"""zerologd vs supervisord, on the same machine in the same run.

    python3 bench/supervisor_compare.py [--zerologd-defaults] [--kills N]

Measures
  1. crash-to-replacement time: a worker (`sleep 1000000`, a direct child of the supervisor) is
     killed with SIGKILL; the clock stops when a new child of the supervisor whose
     /proc/PID/cmdline is the worker's command (i.e. after exec) exists. /proc is polled about
     every millisecond, by the same code for both supervisors. N kills (default 20) per
     configuration; median, min, max.
  2. memory: VmRSS of the supervisor process, and the sum over the supervisor and all its
     descendants, running the repository's zerolog.toml.example (free ports, temporary paths)
     after 2 s idle; supervisord runs the very same processes (argv, environment, cwd taken
     from /proc of the processes zerologd started, checked against `zerologd --check`).

Needs: cargo (it runs `cargo build --release`), python3 with venv; installs `supervisor` from
PyPI into target/bench-venv when missing. Standard library only otherwise.
Everything started is killed at the end (process groups, plus whatever this script adopted as a
child subreaper). Exit status 1, with a message, on any failure.
"""

import argparse
import ctypes
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import xmlrpc.client
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "target"
VENV = TARGET / "bench-venv"
ZEROLOGD = TARGET / "release" / "zerologd"
ZEROLOG = TARGET / "release" / "zerolog"
EXAMPLE = REPO / "zerolog.toml.example"

WORKER_ARGV = ["sleep", "1000000"]
POLL_PERIOD = 0.001  # seconds between two /proc scans
KILL_TIMEOUT = 15.0  # a replacement must appear within this
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


def note(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# /proc


def proc_table():
    """{pid: ppid} of every process."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(b")") + 2 :].split(b" ", 2)
        table[int(d)] = int(rest[1])
    return table


def descendants(root, table=None):
    table = proc_table() if table is None else table
    kids = {}
    for pid, ppid in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not raw:
        return []
    return [a.decode("utf-8", "surrogateescape") for a in raw.rstrip(b"\0").split(b"\0")]


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        raw = f.read()
    env = {}
    for item in raw.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            env[k.decode("utf-8", "surrogateescape")] = v.decode("utf-8", "surrogateescape")
    return env


def status_kb(pid, key="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0  # kernel threads / zombies have no VmRSS line


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def starttime(pid):
    """Start time in clock ticks since boot: with the pid, identifies a process for good."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read()
    except OSError:
        return None
    return int(s[s.rfind(b")") + 2 :].split(b" ")[19])


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rfind(b")") + 2 :].split(b" ")[0].decode()


def age_s(pid):
    """Seconds since the process started (10 ms resolution)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        s = f.read()
    start_ticks = int(s[s.rfind(b")") + 2 :].split(b" ")[19])
    with open("/proc/uptime") as f:
        up = float(f.read().split()[0])
    return up - start_ticks / CLK_TCK


def memory(sup_pid):
    """(supervisor VmRSS, tree VmRSS, tree PSS, number of processes), in kB."""
    tree = [sup_pid] + descendants(sup_pid)
    rss = [status_kb(p) for p in tree]
    pss = [pss_kb(p) for p in tree]
    if rss[0] is None:
        raise BenchError(f"supervisor pid {sup_pid} vanished while measuring memory")
    return rss[0], sum(r or 0 for r in rss), sum(p or 0 for p in pss), len(tree)


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = len(os.sched_getaffinity(0))
    return nproc, model, platform.release()


# ----------------------------------------------------------------------------------------------
# processes this script starts


def become_subreaper():
    """Orphans of what we start are re-parented to us, so cleanup can find them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except Exception:
        return False


def kill_tree(root):
    """SIGKILL root's process group, every descendant and every descendant's group."""
    victims = descendants(root)
    groups = set()
    for pid in [root] + victims:
        try:
            groups.add(os.getpgid(pid))
        except OSError:
            pass
    groups.discard(os.getpgrp())
    for g in groups:
        try:
            os.killpg(g, signal.SIGKILL)
        except OSError:
            pass
    for pid in [root] + victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


class Supervised:
    """A supervisor process started by this script, in its own session and process group."""

    def __init__(self, name, argv, env, log_path, cwd):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        note(f"started {name} (pid {self.pid}): {' '.join(map(str, argv))}")

    def alive(self):
        return self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            raise BenchError(
                f"{self.name} exited (status {self.proc.returncode}); its log "
                f"{self.log_path}:\n{tail(self.log_path)}"
            )

    def stop(self):
        """SIGTERM, wait, then SIGKILL whatever is left of its tree. Never raises."""
        try:
            if self.alive():
                tree = [(p, starttime(p)) for p in descendants(self.pid)]
                os.kill(self.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    note(f"{self.name} did not stop within {STOP_TIMEOUT:.0f} s: SIGKILL")
                    kill_tree(self.pid)
                    try:
                        self.proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        note(f"{self.name} (pid {self.pid}) survives SIGKILL")
                # Anything of its tree still there (same pid *and* start time: no pid reuse).
                # Its descendants die with it (zerologd's reaper exits on its own); orphans
                # are re-parented to this script, a subreaper, and are reaped here.
                deadline = time.monotonic() + 2
                while True:
                    left = [p for p, st in tree if st is not None and starttime(p) == st]
                    for pid in left:
                        if proc_state(pid) == "Z" and proc_table().get(pid) == os.getpid():
                            try:
                                os.waitpid(pid, os.WNOHANG)
                            except ChildProcessError:
                                pass
                    left = [p for p, st in tree if st is not None and starttime(p) == st]
                    if not left or time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                for pid in left:
                    note(f"{self.name}: leftover pid {pid} {cmdline(pid)}: SIGKILL")
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        except Exception as e:  # cleanup must go on
            note(f"cleanup of {self.name}: {e}")
        finally:
            self.log.close()


def tail(path, n=30):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join("    " + l for l in lines[-n:])
    except OSError as e:
        return f"    (cannot read: {e})"


def reap_adopted():
    """Kill and reap whatever was re-parented to this script (we are a subreaper)."""
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if not descendants(os.getpid()):
                return
            time.sleep(0.01)


def run(argv, timeout, what, env=None, cwd=None):
    try:
        r = subprocess.run(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: timed out after {timeout} s: {' '.join(map(str, argv))}")
    except OSError as e:
        raise BenchError(f"{what}: cannot run {argv[0]}: {e}")
    if r.returncode != 0:
        raise BenchError(
            f"{what} failed (exit status {r.returncode}): {' '.join(map(str, argv))}\n"
            f"{r.stdout}{r.stderr}"
        )
    return r.stdout


def wait_until(pred, timeout, what, poll=0.01, check=None):
    deadline = time.monotonic() + timeout
    while True:
        if check:
            check()
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


def free_ports(n):
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


# ----------------------------------------------------------------------------------------------
# setup


def build():
    note("cargo build --release ...")
    run(["cargo", "build", "--release", "--bins"], 1800, "cargo build --release", cwd=REPO)
    for b in (ZEROLOGD, ZEROLOG):
        if not os.access(b, os.X_OK):
            raise BenchError(f"{b} missing after cargo build --release")


def ensure_supervisor():
    bindir = VENV / "bin"
    if not (bindir / "supervisord").exists():
        note(f"installing supervisor into {VENV} ...")
        run([sys.executable, "-m", "venv", str(VENV)], 300, "python3 -m venv")
        run([str(bindir / "pip"), "install", "supervisor"], 600, "pip install supervisor")
    version = run([str(bindir / "supervisord"), "--version"], 60, "supervisord --version").strip()
    return bindir / "supervisord", version


# ----------------------------------------------------------------------------------------------
# zerologd


def zerologd_env(runtime):
    env = dict(os.environ, ZEROLOG_RUNTIME_DIR=str(runtime))
    env.pop("RUST_LOG", None)
    env.pop("JOURNAL_STREAM", None)
    return env


def zerologd_check(config, runtime):
    """Runs `zerologd --check -c config` (with the runtime dir zerologd will get) and returns
    {program: printed command line}."""
    out = run([str(ZEROLOGD), "--check", "-c", str(config)], 60, f"zerologd --check -c {config}",
              env=zerologd_env(runtime))
    lines = out.splitlines()
    if not lines or ": OK," not in lines[0]:
        raise BenchError(f"unexpected zerologd --check output:\n{out}")
    progs = {}
    for line in lines[1:]:
        m = re.match(r"^  (\S+)\s+(.*)$", line)
        if not m:
            raise BenchError(f"unexpected zerologd --check line: {line!r}")
        progs[m.group(1)] = m.group(2)
    return progs


def runtime_dir(workdir, label):
    return workdir / f"rt-{label}"


class Zerologd(Supervised):
    def __init__(self, config, workdir, label):
        self.runtime = runtime_dir(workdir, label)
        super().__init__(
            f"zerologd[{label}]", [str(ZEROLOGD), "-c", str(config)], zerologd_env(self.runtime),
            workdir / f"zerologd-{label}.log", workdir,
        )
        self.socket = self.runtime / "zerologd.sock"

    def wait_ready(self):
        wait_until(
            lambda: b"pipeline ready" in Path(self.log_path).read_bytes(),
            READY_TIMEOUT, f"'pipeline ready' in {self.log_path}", check=self.check_alive,
        )

    def status(self):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.socket))
            s.sendall(b"status --json\n")
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return {p["name"]: p for p in json.loads(data)["programs"]}

    def running(self, name):
        return self.status()[name]["state"] == "RUNNING"

    def programs(self):
        """{name: pid} of the running programs."""
        return {n: p["pid"] for n, p in self.status().items() if p["state"] == "RUNNING"}


def capture_programs(sup, check_lines):
    """Exact argv, extra environment and cwd of every program zerologd runs, from /proc,
    checked against what `zerologd --check` printed."""
    own_env = environ(sup.pid)
    progs = {}
    running = sup.programs()
    if set(running) != set(check_lines):
        raise BenchError(f"zerologd runs {sorted(running)}, --check printed {sorted(check_lines)}")
    for name, pid in running.items():
        argv = cmdline(pid)
        joined = " ".join(argv)
        printed = check_lines[name]
        if joined != printed:
            # zerologd appends startup arguments --check does not print (the forwarder's
            # --wait-subscribers N); anything else is a mismatch.
            extra = joined[len(printed):].split() if joined.startswith(printed + " ") else None
            if not (extra and extra[0] == "--wait-subscribers" and len(extra) == 2):
                raise BenchError(
                    f"{name}: running argv {joined!r} differs from --check's {printed!r}"
                )
        env = environ(pid)
        extra_env = {k: v for k, v in env.items() if own_env.get(k) != v}
        progs[name] = {
            "argv": argv,
            "env": extra_env,
            "cwd": os.readlink(f"/proc/{pid}/cwd"),
        }
    return progs


# ----------------------------------------------------------------------------------------------
# supervisord


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=5)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path):
        super().__init__()
        self._path = path

    def make_connection(self, host):
        return _UnixHTTPConnection(self._path)


def sv_quote(s):
    return s.replace("%", "%%")


def supervisord_conf(workdir, label, programs):
    """programs: {name: {argv, env, cwd, extra: {key: value}}}."""
    d = workdir / f"sv-{label}"
    (d / "logs").mkdir(parents=True)
    sock = d / "supervisor.sock"
    lines = [
        "[unix_http_server]", f"file={sock}", "chmod=0700", "",
        "[supervisord]", f"logfile={d / 'supervisord.log'}", "loglevel=info",
        f"pidfile={d / 'supervisord.pid'}", f"childlogdir={d / 'logs'}", "nodaemon=true", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{sock}", "",
    ]
    names = {}
    for name, p in programs.items():
        sv_name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        names[name] = sv_name
        lines += [f"[program:{sv_name}]", f"command={sv_quote(shlex.join(p['argv']))}"]
        if p.get("env"):
            for k, v in p["env"].items():
                if '"' in v or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
                    raise BenchError(f"{name}: cannot write {k}={v!r} in a supervisord environment=")
            env = ",".join(
                f'{k}="{sv_quote(v)}"' for k, v in sorted(p["env"].items())
            )
            lines.append(f"environment={env}")
        if p.get("cwd"):
            lines.append(f"directory={sv_quote(p['cwd'])}")
        lines += [
            f"stdout_logfile={d / 'logs' / (sv_name + '.out')}",
            f"stderr_logfile={d / 'logs' / (sv_name + '.err')}",
            "stopasgroup=true", "killasgroup=true", "stopwaitsecs=10",
        ]
        for k, v in p.get("extra", {}).items():
            lines.append(f"{k}={v}")
        lines.append("")
    conf = d / "supervisord.conf"
    conf.write_text("\n".join(lines))
    return conf, sock, names, d


class Supervisord(Supervised):
    def __init__(self, supervisord_bin, conf, sock, names, d, label):
        self.rpc_sock = str(sock)
        self.names = names
        self.dir = d
        self.sv_log = d / "supervisord.log"
        super().__init__(
            f"supervisord[{label}]", [str(supervisord_bin), "-n", "-c", str(conf)],
            dict(os.environ), d / "supervisord.stdout", d,
        )

    def rpc(self):
        return xmlrpc.client.ServerProxy("http://localhost", transport=_UnixTransport(self.rpc_sock))

    def infos(self):
        try:
            return {i["name"]: i for i in self.rpc().supervisor.getAllProcessInfo()}
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            return None

    def running(self, name):
        i = (self.infos() or {}).get(self.names.get(name, name))
        return bool(i) and i["statename"] == "RUNNING"

    def all_running(self):
        infos = self.infos()
        return bool(infos) and all(
            infos.get(n, {}).get("statename") == "RUNNING" for n in self.names.values()
        )


# ----------------------------------------------------------------------------------------------
# crash-to-replacement


def worker_pids(sup_pid, argv):
    table = proc_table()
    return [pid for pid, ppid in table.items() if ppid == sup_pid and cmdline(pid) == argv]


def measure_restarts(sup, worker_name, kills, min_age):
    """Kills the worker `kills` times; returns [(seconds, kill wall time, new pid)]."""
    results = []
    current = wait_until(
        lambda: worker_pids(sup.pid, WORKER_ARGV), READY_TIMEOUT,
        f"worker {WORKER_ARGV} as a child of {sup.name}", check=sup.check_alive,
    )
    if len(current) != 1:
        raise BenchError(f"{sup.name}: expected one worker child, found pids {current}")
    old = current[0]
    for i in range(kills):
        # Settle: the supervisor says RUNNING and the worker has run min_age (so the kill
        # is an isolated crash, not a quick failure that backs off).
        wait_until(lambda: sup.running(worker_name), READY_TIMEOUT,
                   f"{sup.name}: {worker_name} RUNNING", poll=0.02, check=sup.check_alive)
        wait_until(lambda: age_s(old) >= min_age, min_age + READY_TIMEOUT,
                   f"{sup.name}: worker age {min_age} s", poll=0.01)
        sup.check_alive()
        wall = time.time()
        t0 = time.perf_counter()
        os.kill(old, signal.SIGKILL)
        new = None
        while True:
            scan_start = time.perf_counter()
            for pid, ppid in proc_table().items():
                if ppid == sup.pid and pid != old and cmdline(pid) == WORKER_ARGV:
                    new = pid
                    break
            now = time.perf_counter()
            if new is not None:
                break
            if now - t0 > KILL_TIMEOUT:
                sup.check_alive()
                raise BenchError(
                    f"{sup.name}: no replacement worker {KILL_TIMEOUT} s after kill #{i + 1}; "
                    f"log:\n{tail(sup.log_path)}"
                )
            time.sleep(max(0.0, POLL_PERIOD - (now - scan_start)))
        results.append((now - t0, wall, new))
        old = new
    return results


def summarize(samples):
    ms = [s * 1000 for s in samples]
    return statistics.median(ms), min(ms), max(ms)


# Log timestamps, to tell where the time goes.

ZL_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\s")


def zl_events(log_path, program):
    exited, started = [], {}
    for line in Path(log_path).read_text(errors="replace").splitlines():
        m = ZL_TS.match(line)
        if not m or f'program="{program}"' not in line:
            continue
        ts = datetime.fromisoformat(m.group(1)).replace(tzinfo=timezone.utc).timestamp()
        if "exited unexpectedly" in line:
            delay = re.search(r"restart_in_ms=(\d+)", line)
            exited.append((ts, int(delay.group(1)) if delay else None))
        elif " started " in line:
            pid = re.search(r"pid=(\d+)", line)
            if pid:
                started[int(pid.group(1))] = ts
    return exited, started


SV_TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def sv_events(log_path, sv_name):
    exited, started = [], {}
    for line in Path(log_path).read_text(errors="replace").splitlines():
        m = SV_TS.match(line)
        if not m:
            continue
        ts = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time
        if f"exited: {sv_name} " in line:
            exited.append((ts, None))
        else:
            sp = re.search(rf"spawned: '{re.escape(sv_name)}' with pid (\d+)", line)
            if sp:
                started[int(sp.group(1))] = ts
    return exited, started


def breakdown(results, exited, started):
    """Medians (ms) of kill -> 'exited' log line -> 'started' log line -> new pid seen."""
    if len(exited) < len(results):
        return None
    ex = exited[-len(results):]
    a, b, c, delays = [], [], [], []
    for (secs, wall, new), (t_exit, delay) in zip(results, ex):
        if new not in started:
            return None
        seen = wall + secs
        a.append((t_exit - wall) * 1000)
        b.append((started[new] - t_exit) * 1000)
        c.append((seen - started[new]) * 1000)
        delays.append(delay)
    return statistics.median(a), statistics.median(b), statistics.median(c), delays


# ----------------------------------------------------------------------------------------------
# scenarios


def restart_topology(workdir, label, min_uptime):
    fwd, pub, out = free_ports(3)
    lines = [
        "[forwarder]",
        f'tcp = ["127.0.0.1:{fwd}"]',
        f'publish = "tcp://127.0.0.1:{pub}"',
        "",
        "[[receiver]]",
        'name = "r"',
        f'output = "tcp://127.0.0.1:{out}"',
        "",
        "[[worker]]",
        'name = "w"',
        'receiver = "r"',
        'type = "zmq"',
        f"command = {json.dumps(WORKER_ARGV)}",
    ]
    if min_uptime:
        lines.append(f'min_uptime = "{min_uptime}"')
    path = workdir / f"restart-{label}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def zerologd_restart(workdir, label, min_uptime, min_age, kills, started):
    config = restart_topology(workdir, label, min_uptime)
    check = zerologd_check(config, runtime_dir(workdir, label))
    z = Zerologd(config, workdir, label)
    started.append(z)
    z.wait_ready()
    progs = capture_programs(z, check)
    results = measure_restarts(z, "w:0", kills, min_age)
    exited, st = zl_events(z.log_path, "w:0")
    z.stop()
    started.remove(z)
    return results, breakdown(results, exited, st), progs


def supervisord_restart(supervisord_bin, workdir, label, progs, worker_extra, min_age, kills,
                        started):
    programs = {}
    for name, p in progs.items():
        if name == "w:0":
            programs["w"] = {"argv": WORKER_ARGV, "env": {}, "cwd": None, "extra": worker_extra}
        else:
            programs[name] = dict(p, extra={"startsecs": "0"})
    conf, sock, names, d = supervisord_conf(workdir, label, programs)
    s = Supervisord(supervisord_bin, conf, sock, names, d, label)
    started.append(s)
    wait_until(s.all_running, READY_TIMEOUT, f"{s.name}: every program RUNNING",
               poll=0.05, check=s.check_alive)
    results = measure_restarts(s, "w", kills, min_age)
    time.sleep(0.2)  # let supervisord write its last log lines
    exited, st = sv_events(s.sv_log, "w")
    s.stop()
    started.remove(s)
    return results, breakdown(results, exited, st)


def example_config(workdir):
    text = EXAMPLE.read_text()
    ports = free_ports(4)
    subs = {
        "127.0.0.1:6000": f"127.0.0.1:{ports[0]}",
        "127.0.0.1:6001": f"127.0.0.1:{ports[1]}",
        "127.0.0.1:6002": f"127.0.0.1:{ports[2]}",
        "127.0.0.1:6200": f"127.0.0.1:{ports[3]}",
        "/tmp/nginx-archive.log": str(workdir / "nginx-archive.log"),
        'cwd = "/tmp"': f'cwd = "{workdir}"',
    }
    for old, new in subs.items():
        if old not in text and old != "127.0.0.1:6002":
            raise BenchError(f"{EXAMPLE} no longer contains {old!r}: update this script")
        text = text.replace(old, new)
    if re.search(r"^[^#\n]*(/run/|/var/)", text, re.M):
        raise BenchError(f"{EXAMPLE} has an uncommented system path: update this script")
    path = workdir / "example.toml"
    path.write_text(text)
    tomllib.loads(text)  # sanity
    return path


def verify_same_programs(s, progs):
    """supervisord runs exactly what zerologd ran: argv, the environment zerologd added, cwd."""
    infos = s.infos() or {}
    for name, p in progs.items():
        pid = infos.get(s.names[name], {}).get("pid")
        if not pid:
            raise BenchError(f"{s.name}: no pid for {name}")
        if cmdline(pid) != p["argv"]:
            raise BenchError(f"{s.name}: {name} runs {cmdline(pid)}, zerologd ran {p['argv']}")
        env = environ(pid)
        wrong = {k: env.get(k) for k, v in p["env"].items() if env.get(k) != v}
        if wrong:
            raise BenchError(f"{s.name}: {name} environment differs: {wrong}")
        if os.readlink(f"/proc/{pid}/cwd") != p["cwd"]:
            raise BenchError(f"{s.name}: {name} cwd {os.readlink(f'/proc/{pid}/cwd')} != {p['cwd']}")


def rss_scenario(supervisord_bin, workdir, started):
    config = example_config(workdir)
    check = zerologd_check(config, runtime_dir(workdir, "example"))
    note(f"zerologd --check: {len(check)} processes: {', '.join(check)}")
    z = Zerologd(config, workdir, "example")
    started.append(z)
    z.wait_ready()
    progs = capture_programs(z, check)
    time.sleep(2.0)
    z.check_alive()
    zmem = memory(z.pid)
    reaper_rss = sum(status_kb(p) or 0 for p in descendants(z.pid) if comm(p) == "zerologd-reaper")
    z.stop()
    started.remove(z)

    programs = {n: dict(p, extra={"startsecs": "0"}) for n, p in progs.items()}
    conf, sock, names, d = supervisord_conf(workdir, "example", programs)
    s = Supervisord(supervisord_bin, conf, sock, names, d, "example")
    started.append(s)
    wait_until(s.all_running, READY_TIMEOUT, f"{s.name}: every program RUNNING",
               poll=0.05, check=s.check_alive)
    fwd_err = d / "logs" / f"{names['forwarder']}.err"
    wait_until(lambda: fwd_err.exists() and b"forwarder ready, reading input" in fwd_err.read_bytes(),
               READY_TIMEOUT, f"'forwarder ready' in {fwd_err}", check=s.check_alive)
    verify_same_programs(s, progs)
    time.sleep(2.0)
    s.check_alive()
    smem = memory(s.pid)
    s.stop()
    started.remove(s)
    return zmem, smem, reaper_rss, len(progs)


# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="kills per configuration (20)")
    ap.add_argument("--zerologd-defaults", action="store_true",
                    help="also measure zerologd with the default min_uptime (5 s): kills "
                         "5.3 s apart, about 2 more minutes")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if args.kills < 1:
        raise BenchError("--kills must be at least 1")
    if not Path("/proc/self/stat").exists():
        raise BenchError("needs Linux /proc")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit("supervisor_compare: terminated"))
    subreaper = become_subreaper()
    started = []
    workdir = Path(tempfile.mkdtemp(prefix="zl-bench-"))
    rows = []
    notes = []
    try:
        build()
        supervisord_bin, sv_version = ensure_supervisor()
        nproc, model, kernel = machine()
        load_start = loadavg()
        note(f"work directory {workdir}")

        # 1. crash-to-replacement
        note(f"zerologd, min_uptime=100ms: {args.kills} kills ...")
        zr, zb, progs = zerologd_restart(workdir, "fast", "100ms", 0.3, args.kills, started)
        rows.append(("zerologd", 'min_uptime="100ms"; kill when up >= 0.3 s', zr, zb))
        if args.zerologd_defaults:
            note(f"zerologd, defaults (min_uptime 5 s): {args.kills} kills 5.3 s apart ...")
            zd, zdb, _ = zerologd_restart(workdir, "defaults", None, 5.3, args.kills, started)
            rows.append(("zerologd", "defaults (min_uptime 5 s); kill when up >= 5.3 s", zd, zdb))
        note(f"supervisord, autorestart=true startsecs=0: {args.kills} kills ...")
        sr, sb = supervisord_restart(
            supervisord_bin, workdir, "fast", progs,
            {"autorestart": "true", "startsecs": "0"}, 0.3, args.kills, started)
        rows.append(("supervisord", "autorestart=true startsecs=0; kill when RUNNING, up >= 0.3 s", sr, sb))
        note(f"supervisord, defaults (startsecs=1, autorestart=unexpected): {args.kills} kills ...")
        sd, sdb = supervisord_restart(
            supervisord_bin, workdir, "defaults", progs, {}, 1.3, args.kills, started)
        rows.append(("supervisord", "defaults (startsecs=1); kill when RUNNING, up >= 1.3 s", sd, sdb))

        # 2. memory
        note("memory: zerolog.toml.example under zerologd, then the same processes under supervisord ...")
        zmem, smem, reaper_rss, nprogs = rss_scenario(supervisord_bin, workdir, started)
    finally:
        for s in list(started):
            s.stop()
        if subreaper:
            reap_adopted()
        if args.keep:
            note(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    # 3. report
    mb = lambda kb: f"{kb / 1024:.1f}"
    hdr = ("tool", "configuration", "restart median (ms)", "min (ms)", "max (ms)",
           "supervisor RSS (MB)", "tree RSS (MB)")
    table = []
    first = {}
    for tool, conf, res, _ in rows:
        med, lo, hi = summarize([r[0] for r in res])
        mem = zmem if tool == "zerologd" else smem
        show_mem = tool not in first
        first[tool] = True
        table.append((tool, conf, f"{med:.1f}", f"{lo:.1f}", f"{hi:.1f}",
                      mb(mem[0]) if show_mem else "", mb(mem[1]) if show_mem else ""))
    widths = [max(len(str(r[i])) for r in [hdr] + table) for i in range(len(hdr))]
    fmt = lambda r: "  ".join(
        str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    print()
    print(f"machine: nproc={nproc}, {model}, kernel {kernel}; load average at start "
          f"{load_start}, at end {loadavg()}")
    print(f"versions: zerolog {git_version()}, {sv_version and 'supervisor ' + sv_version}, "
          f"python {platform.python_version()}")
    print(f"restart: SIGKILL of `{' '.join(WORKER_ARGV)}` until a new child of the supervisor "
          f"runs it (/proc polled every ~{POLL_PERIOD * 1000:.0f} ms), {args.kills} kills")
    print(f"memory: zerolog.toml.example ({nprogs} programs) after 2 s idle; "
          f"tree = supervisor + all descendants")
    print()
    print(fmt(hdr))
    print(fmt(tuple("-" * w for w in widths)))
    for r in table:
        print(fmt(r))
    print()
    print("where the restart time goes (medians, ms; from the supervisor's log timestamps):")
    print("  kill -> 'exited' logged -> 'started'/'spawned' logged -> new pid seen after exec")
    print("  (zerologd logs 'started' once the exec succeeded, supervisord logs 'spawned' after fork)")
    for tool, conf, res, b in rows:
        if b is None:
            print(f"  {tool} ({conf}): log lines not matched")
            continue
        a, bb, c, delays = b
        extra = ""
        if tool == "zerologd":
            nonzero = [d for d in delays if d]
            extra = ("; every restart was immediate (restart_in_ms=0)" if not nonzero
                     else f"; {len(nonzero)} restarts backed off: {nonzero} ms")
        print(f"  {tool} ({conf}): {a:.1f} + {bb:.1f} + {c:.1f}{extra}")
    print()
    print(f"memory detail: zerologd tree {zmem[3]} processes (incl. zerologd-reaper, "
          f"{mb(reaper_rss)} MB RSS), PSS sum {mb(zmem[2])} MB; supervisord tree {smem[3]} "
          f"processes, PSS sum {mb(smem[2])} MB (RSS sums count shared pages once per process)")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def git_version():
    try:
        r = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=30)
        return r.stdout.strip() or "?"
    except Exception:
        return "?"


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"supervisor_compare: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("supervisor_compare: interrupted", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # a bug or an unexpected environment: still one clear line last
        import traceback
        traceback.print_exc()
        print(f"supervisor_compare: error: unexpected {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
