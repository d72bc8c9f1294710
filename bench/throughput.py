#!/usr/bin/env python3
"""End-to-end throughput: zerolog vs rsyslog vs Python zerolog 0.3 vs a bare libzmq chain.

    python3 bench/throughput.py [--runs 3] [--count 1000000] [--connections 1,4]

Same machine, same run, same load: `zerolog loggen` sends COUNT RFC 5424 lines of 150 bytes
(LF-framed, over TCP; one connection, then 4) to each system in turn:
  1. zerologd: forwarder, one receiver, a worker group of 2 `zerolog worker ... null REPORT`
     counting sinks (type = "zmq");
  2. rsyslogd: imtcp -> omfile (raw message + LF), a config this script writes;
  3. Python zerolog 0.3 (if a venv with zerolog==0.3 and pyzmq is found): forwarder, receiver,
     2 counting BaseWorkers; whole lines, lines cut in pieces, and lost lines are counted;
  4. the bare libzmq chain (target/release/examples/zmq_chain: XPUB NODROP -> SUB/PUSH ->
     PULL x 2, same message size), the transport's ceiling.
Optional rows: --relp (RELP inputs), --tls (zerolog's TLS input against rsyslog imtcp with
GnuTLS, from loggen --tls; and both inputs' handshakes/s, loggen --tls-handshakes), --curve
(1. with CURVE between forwarder and receiver). The TLS rows' certificates are made with the
openssl command, the CURVE keys with zerolog keygen, in the run's temporary directory.
Rate = lines delivered / (time of the last delivered line - time just before loggen starts).
Peak RSS and PSS: sums over the system's processes, sampled every 50 ms. CPU: utime + stime of
those processes over the run, from /proc/PID/stat; loggen's own CPU separately. Each system is
measured --runs times (interleaved); the table shows the median rate, min and max.

Needs Linux /proc and cargo (runs `cargo build --release --all-targets` unless --no-build).
Standard library only. Everything started is killed at the end (process groups; the script is a
child subreaper). Exit status 1, with a message, on any failure.
"""

import argparse
import ctypes
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "target" / "release"
ZEROLOG = RELEASE / "zerolog"
ZEROLOGD = RELEASE / "zerologd"
ZMQ_CHAIN = RELEASE / "examples" / "zmq_chain"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
SAMPLE_PERIOD = 0.05  # seconds between two RSS/PSS samples
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROG = "throughput"


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
        table[int(d)] = int(s[s.rfind(b")") + 2 :].split(b" ", 2)[1])
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


def stat_fields(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rfind(b")") + 2 :].split(b" ")


def cpu_ticks(pid):
    """(start time, utime + stime) in clock ticks, or None if gone."""
    f = stat_fields(pid)
    if f is None:
        return None
    return int(f[19]), int(f[11]) + int(f[12])


def status_kb(pid, key="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


class Meter:
    """The processes of one system under test: `roots` and all their descendants. A thread
    samples the sums of VmRSS and PSS every SAMPLE_PERIOD; CPU is utime + stime, read at
    start() and stop() (a process that appears in between counts from zero)."""

    def __init__(self, roots):
        self.roots = list(roots)
        self.pids = []
        self.peak_rss = self.peak_pss = 0
        self.nprocs = 0
        self._stop = threading.Event()
        self._thread = None
        self._cpu0 = {}
        self.cpu_s = None
        self.names = []
        self.per = {}  # pid -> peak VmRSS (kB)
        self.rss_before = 0  # sum of VmRSS just before the load

    def refresh(self):
        table = proc_table()
        pids = []
        for r in self.roots:
            if r in table:
                pids.append(r)
                pids.extend(descendants(r, table))
        self.pids = pids
        return pids

    def _cpu(self):
        out = {}
        for pid in self.refresh():
            t = cpu_ticks(pid)
            if t is not None:
                out[(pid, t[0])] = t[1]
        return out

    def start(self):
        self._cpu0 = self._cpu()
        self.names = {p: label_of(p) for p in self.pids}
        self.rss_before = sum(status_kb(p) for p in self.pids)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        last_refresh = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_refresh > 1.0:
                self.refresh()
                last_refresh = time.monotonic()
            pids = self.pids
            each = [(p, status_kb(p)) for p in pids]
            for p, kb in each:
                if kb > self.per.get(p, 0):
                    self.per[p] = kb
            rss = sum(kb for _, kb in each)
            pss = sum(pss_kb(p) for p in pids)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.nprocs = max(self.nprocs, len(pids))
            self._stop.wait(SAMPLE_PERIOD)

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        cpu1 = self._cpu()
        ticks = sum(v - self._cpu0.get(k, 0) for k, v in cpu1.items())
        self.cpu_s = ticks / CLK_TCK


def label_of(pid):
    """comm, plus the subcommand for `zerolog SUBCOMMAND ...` and `python .../zerolog SUB`."""
    name = comm(pid)
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return name
    for i, a in enumerate(argv[:-1]):
        if a.endswith(b"zerolog"):
            return f"{name} {argv[i + 1].decode('utf-8', 'replace')}"
    return name


def peaks(meter):
    """'name peak-MB, ...' per process, largest first."""
    items = sorted(((kb, meter.names.get(p, str(p))) for p, kb in meter.per.items()), reverse=True)
    return (", ".join(f"{n} {kb / 1024:.1f}" for kb, n in items)
            + f"; sum before the load {meter.rss_before / 1024:.1f}")


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return len(os.sched_getaffinity(0)), os.cpu_count(), model, platform.release()


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ----------------------------------------------------------------------------------------------
# processes this script starts


def become_subreaper():
    """Orphans of what we start are re-parented to us, so cleanup can find them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except Exception:
        return False


def kill_tree(root):
    """SIGKILL root's process group, every descendant and every descendant's group."""
    victims = [root] + descendants(root)
    groups = set()
    for pid in victims:
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
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def tail(path, n=25):
    try:
        lines = Path(path).read_bytes().decode("utf-8", "replace").splitlines()
        return "\n".join("    " + l for l in lines[-n:])
    except OSError as e:
        return f"    (cannot read: {e})"


class Proc:
    """A process started by this script in its own session (process group), output to a file."""

    def __init__(self, name, argv, log_path, env=None, cwd=None, stdout=None):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.out = open(stdout, "wb") if stdout else None
        try:
            self.proc = subprocess.Popen(
                [str(a) for a in argv], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=self.out or self.log, stderr=self.log, start_new_session=True,
            )
        except OSError as e:
            self.log.close()
            raise BenchError(f"cannot start {name} ({argv[0]}): {e}")
        self.pid = self.proc.pid
        self.rusage = None

    def alive(self):
        if self.proc.returncode is not None:
            return False
        try:
            pid, status, ru = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            return self.proc.poll() is None
        if pid == 0:
            return True
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.rusage = ru
        return False

    def check_alive(self):
        if not self.alive():
            raise BenchError(f"{self.name} exited (status {self.proc.returncode}); its log "
                             f"{self.log_path}:\n{tail(self.log_path)}")

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """sig, wait, then SIGKILL its group and descendants. Never raises."""
        try:
            if self.alive():
                tree = descendants(self.pid)
                try:
                    os.kill(self.pid, sig)
                except OSError:
                    pass
                if not self.wait(timeout):
                    note(f"{self.name} did not stop within {timeout:.0f} s: SIGKILL")
                for pid in [self.pid] + tree:
                    try:
                        if comm(pid) != "?":
                            kill_tree(pid)
                    except OSError:
                        pass
                self.wait(5)
            else:
                kill_tree(self.pid)  # its group may outlive it
        except Exception as e:  # cleanup goes on
            note(f"cleanup of {self.name}: {e}")
        finally:
            self.log.close()
            if self.out:
                self.out.close()


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


def reap_zombies(keep):
    """Reaps exited processes re-parented to this script (zerologd's reaper, for one), except
    the pids in `keep` (processes this script waits for itself)."""
    me = os.getpid()
    for pid, ppid in proc_table().items():
        f = stat_fields(pid) if ppid == me and pid not in keep else None
        if f and f[0] == b"Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def run(argv, timeout, what, env=None, cwd=None):
    try:
        r = subprocess.run([str(a) for a in argv], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: timed out after {timeout} s")
    except OSError as e:
        raise BenchError(f"{what}: cannot run {argv[0]}: {e}")
    if r.returncode != 0:
        raise BenchError(f"{what} failed (exit status {r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout + r.stderr


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


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------
# one measured run


class Run:
    """Result of one run of one system."""

    def __init__(self, **kw):
        self.rate = 0.0
        self.lost = None
        self.rss_kb = self.pss_kb = 0
        self.cpu_s = None
        self.loggen_cpu_s = None
        self.extra = {}
        self.__dict__.update(kw)


def drive(ctx, port, conns, meter, progress, done, label, check=None, relp=False, count=None,
          tls=False, handshakes=False):
    """Starts loggen against 127.0.0.1:port (over RELP with `relp`, over TLS with `tls`,
    verifying the server against the bench's CA; `handshakes`: `count` connections of one
    line each), with `meter` running from just before, and waits until done() or until
    progress() has not changed for ctx.stall seconds after loggen ended. Returns (t0 wall ns,
    loggen report, loggen CPU s, completed)."""
    out = ctx.workdir / f"loggen-{label}.json"
    count = count or ctx.count
    argv = [ZEROLOG, "loggen", "-P", port, "-s", ctx.size, "-c", conns, "--json"]
    argv += ["--tls-handshakes", count] if handshakes else ["-n", count]
    if relp:
        argv.append("--relp")
    if tls or handshakes:
        # The certificate names 127.0.0.1, loggen's default server name.
        argv += ["--tls", "--tls-ca", ctx.pki["ca"]]
    meter.start()
    t0 = time.time_ns()
    lg = Proc(f"loggen[{label}]", argv, ctx.workdir / f"loggen-{label}.log", stdout=out)
    ctx.started.append(lg)
    try:
        loggen_limit = 60 + count / 2_000
        loggen_deadline = time.monotonic() + loggen_limit
        last, last_change = None, time.monotonic()
        loggen_done = False
        completed = False
        while True:
            if check:
                check()
            if not loggen_done and not lg.alive():
                loggen_done = True
                if lg.proc.returncode != 0:
                    raise BenchError(f"loggen against {label} failed (status "
                                     f"{lg.proc.returncode}):\n{tail(lg.log_path)}")
            if done():
                completed = True
                if loggen_done:
                    break
            p = progress()
            now = time.monotonic()
            if p != last:
                last, last_change = p, now
            elif loggen_done and now - last_change > ctx.stall:
                note(f"{label}: no progress for {ctx.stall:.0f} s after loggen ended; stop waiting")
                break
            if not loggen_done and now > loggen_deadline:
                raise BenchError(f"loggen against {label} still running after "
                                 f"{loggen_limit:.0f} s")
            time.sleep(0.02)
    finally:
        meter.stop()
        ctx.started.remove(lg)
        lg.stop(signal.SIGKILL if lg.alive() else signal.SIGTERM, 5)
    report = read_json(out)
    if not report:
        raise BenchError(f"no loggen report in {out}:\n{tail(lg.log_path)}")
    ru = lg.rusage
    lcpu = (ru.ru_utime + ru.ru_stime) if ru else None
    return t0, report, lcpu, completed


class Ctx:
    def __init__(self, args, workdir, started):
        self.count = args.count
        self.size = args.size
        self.relp_count = args.relp_count
        self.handshakes = args.handshakes
        self.stall = args.stall
        self.workdir = workdir
        self.started = started
        self.pki = None  # make_pki()'s files, for the TLS rows
        self.curve = None  # make_curve_keys()'s files, for the CURVE rows


def make_pki(workdir):
    """The TLS rows' certificates, made with the openssl command in workdir/pki: a CA and a
    server certificate it signs for localhost and 127.0.0.1, both ECDSA P-256, the private
    keys mode 0600 (zerolog refuses a key others may read). Returns their paths."""
    if not shutil.which("openssl"):
        raise BenchError("the TLS rows need the openssl command (to make their certificates)")
    d = workdir / "pki"
    d.mkdir()
    pki = {"ca": d / "ca.pem", "ca_key": d / "ca.key", "cert": d / "server.pem",
           "key": d / "server.key"}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ext = d / "server.ext"
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    old = os.umask(0o077)  # the keys are never readable by others, not even for a moment
    try:
        run(["openssl", "req", "-x509", *ec, "-keyout", pki["ca_key"], "-out", pki["ca"],
             "-days", "2", "-subj", "/CN=zerolog bench CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"], 60, "openssl: the bench CA")
        run(["openssl", "req", *ec, "-keyout", pki["key"], "-out", d / "server.csr",
             "-subj", "/CN=localhost"], 60, "openssl: the server key")
        run(["openssl", "x509", "-req", "-in", d / "server.csr", "-CA", pki["ca"],
             "-CAkey", pki["ca_key"], "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
             "-days", "2", "-extfile", ext, "-out", pki["cert"]], 60,
            "openssl: the server certificate")
    finally:
        os.umask(old)
    for f in ("ca", "cert"):
        os.chmod(pki[f], 0o644)
    return pki


def make_curve_keys(workdir):
    """The CURVE rows' key pairs, made with `zerolog keygen` in workdir/curve: the forwarder's
    and the receiver's (each PATH, mode 0600, and PATH.pub)."""
    d = workdir / "curve"
    d.mkdir()
    keys = {"forwarder": d / "forwarder.key", "receiver": d / "receiver.key"}
    for name, path in keys.items():
        run([ZEROLOG, "keygen", path], 60, f"zerolog keygen ({name})")
    return keys


def zerologd_topology(d, fwd, pub, out, variant, ctx=None, jrn=None):
    """variant "acked": the default path (journal, acknowledged delivery to two built-in null
    workers); "unacked": journal = false and PUSH to two `zerolog worker ... null` programs
    (type = "zmq"), the path before the journal; "relp": acked, input over RELP (port fwd);
    "tls": acked, input over TLS (port fwd) with ctx.pki's certificate; "tcp-journal": acked,
    the receiver fetching from the journal over TCP (port jrn) instead of the default IPC;
    "curve": "tcp-journal" with CURVE on that hop and the publish socket (ctx.curve's keys)."""
    if variant == "relp":
        inputs = [f'relp = ["127.0.0.1:{fwd}"]']
    elif variant == "tls":
        # No TCP input: the default one would bind port 6000.
        inputs = ['tcp = []', f'tls = ["127.0.0.1:{fwd}"]',
                  f'tls_cert = "{ctx.pki["cert"]}"', f'tls_key = "{ctx.pki["key"]}"']
    else:
        inputs = [f'tcp = ["127.0.0.1:{fwd}"]']
    lines = ["[forwarder]", *inputs, f'publish = "tcp://127.0.0.1:{pub}"']
    if variant == "unacked":
        lines.append("journal = false")
    if variant in ("tcp-journal", "curve"):
        # The acknowledged path's hop between hosts: on one host it is IPC, without CURVE.
        lines.append(f'journal_endpoint = "tcp://127.0.0.1:{jrn}"')
    receiver = ["[[receiver]]", 'name = "r"', f'output = "tcp://127.0.0.1:{out}"']
    if variant == "curve":
        k = ctx.curve
        lines += [f'curve_secret_key = "{k["forwarder"]}"',
                  f'curve_clients = ["{k["receiver"]}.pub"]']
        receiver += [f'curve_secret_key = "{k["receiver"]}"',
                     f'curve_server_key = "{k["forwarder"]}.pub"']
    lines += ["", *receiver, ""]
    if variant == "unacked":
        sh = (f'exec {ZEROLOG} worker "$ZEROLOG_BACKEND" null '
              f'{d}/sink-"$ZEROLOG_PROCESS_NUM".json')
        lines += ["[[worker]]", 'name = "sink"', 'receiver = "r"', 'type = "zmq"',
                  f"command = {json.dumps(['sh', '-c', sh])}", "numprocs = 2"]
    else:
        for i in range(2):
            lines += ["[[worker]]", f'name = "sink{i}"', 'receiver = "r"',
                      f"command = {json.dumps(['null', f'{d}/sink-{i}.json'])}", ""]
    path = d / "zerolog.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_zerolog(ctx, conns, label, variant="acked", sender=None, handshakes=False):
    """`sender`: loggen -> rsyslogd's omrelp instead of loggen (see via_rsyslog).
    `handshakes`: loggen --tls-handshakes, ctx.handshakes connections of one line each; the
    rate is then loggen's handshakes per second."""
    d = ctx.workdir / label
    d.mkdir()
    fwd, pub, out, jrn = free_ports(4)
    config = zerologd_topology(d, fwd, pub, out, variant, ctx, jrn)
    env = dict(os.environ, ZEROLOG_RUNTIME_DIR=str(d / "rt"), ZEROLOG_STATE_DIR=str(d / "state"))
    for k in ("RUST_LOG", "JOURNAL_STREAM", "NOTIFY_SOCKET"):
        env.pop(k, None)
    run([ZEROLOGD, "--check", "-c", config], 60, f"zerologd --check -c {config}", env=env)
    z = Proc(f"zerologd[{label}]", [ZEROLOGD, "-c", config], d / "zerologd.log", env=env, cwd=d)
    ctx.started.append(z)
    try:
        wait_until(lambda: b"pipeline ready" in Path(z.log_path).read_bytes(), READY_TIMEOUT,
                   f"'pipeline ready' in {z.log_path}", check=z.check_alive)
        sinks = lambda: [r for r in (read_json(p) for p in sorted(d.glob("sink-*.json"))) if r]
        counted = lambda: sum(r.get("messages", 0) for r in sinks())
        meter = Meter([z.pid])
        relp = variant == "relp"
        count = ctx.relp_count if sender else ctx.handshakes if handshakes else ctx.count
        if sender:
            t0, rep, lcpu = via_rsyslog(ctx, d, fwd, conns, meter, counted, count, label,
                                        z.check_alive)
        else:
            t0, rep, lcpu, _ = drive(ctx, fwd, conns, meter, counted, lambda: counted() >= count,
                                     label, check=z.check_alive, relp=relp, count=count,
                                     tls=variant == "tls", handshakes=handshakes)
        journal = journal_bytes(d / "rt")
    finally:
        ctx.started.remove(z)
        z.stop()
    # Final reports (written by each worker as it exits).
    reports = [r for r in (read_json(p) for p in sorted(d.glob("sink-*.json"))) if r]
    if not reports:
        raise BenchError(f"zerolog: no sink report in {d}:\n{tail(z.log_path)}")
    sent = rep["messages"]
    messages = sum(r["messages"] for r in reports)
    dups = sum(r.get("duplicates", 0) for r in reports)
    last = max((r["last_unix_ns"] or 0) for r in reports)
    delivered = messages - dups
    rate = delivered / ((last - t0) / 1e9) if last > t0 else 0.0
    if handshakes:
        rate = rep["handshakes_per_s"]
    return Run(rate=rate, lost=sent - delivered, rss_kb=meter.peak_rss, pss_kb=meter.peak_pss,
               cpu_s=meter.cpu_s, loggen_cpu_s=lcpu,
               extra={"duplicates": dups, "procs": meter.nprocs, "peaks": peaks(meter),
                      "per_worker": [r["messages"] for r in reports],
                      "journal_bytes_per_line": journal / sent if sent else 0})


def journal_bytes(runtime_dir):
    """Bytes the forwarder has written to storage so far (/proc/PID/io write_bytes): the
    journal's segments and offsets, nearly all of its writes."""
    stats = runtime_dir / "stats" / "forwarder.stats"
    try:
        header = stats.read_bytes()[:4096].split(b"\0")[0].decode()
        pid = int(next(l for l in header.splitlines() if l.startswith("pid ")).split()[1])
        io = Path(f"/proc/{pid}/io").read_text()
        return int(next(l for l in io.splitlines() if l.startswith("write_bytes")).split()[1])
    except (OSError, StopIteration, ValueError):
        return 0


class LineCounter:
    """Lines in a growing file, read incrementally."""

    def __init__(self, path):
        self.path, self.offset, self.lines = path, 0, 0

    def __call__(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return self.lines
        self.offset += len(chunk)
        self.lines += chunk.count(b"\n")
        return self.lines


def start_rsyslogd(ctx, d, name, body):
    """rsyslogd -n with `body` after the global settings, in its own directory under d."""
    home = d / name
    (home / "work").mkdir(parents=True)
    conf = home / "rsyslog.conf"
    conf.write_text(f'global(workDirectory="{home / "work"}" net.enableDNS="off")\n'
                    'template(name="raw" type="string" string="%rawmsg%\\n")\n'
                    'template(name="rawrelp" type="string" string="%rawmsg%")\n' + body)
    r = Proc(f"rsyslogd[{name}]", ["rsyslogd", "-n", "-f", conf, "-i", home / "pid"],
             home / "rsyslogd.log", cwd=home)
    ctx.started.append(r)
    return r


def via_rsyslog(ctx, d, target, conns, meter, progress, count, label, check):
    """loggen -> rsyslogd (imtcp -> omrelp, default RELP settings) -> 127.0.0.1:target, until
    progress() reaches count. Returns (t0, loggen report, loggen CPU s)."""
    (port,) = free_ports(1)
    r = start_rsyslogd(ctx, d, "sender", f"""\
module(load="imtcp")
module(load="omrelp")
ruleset(name="relay") {{
  action(type="omrelp" target="127.0.0.1" port="{target}" template="rawrelp"
         queue.type="LinkedList" queue.size="{count * 2}" action.resumeRetryCount="-1")
}}
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="relay")
""")
    try:
        wait_until(lambda: port_open(port), READY_TIMEOUT, f"rsyslogd listening on {port}",
                   poll=0.05, check=r.check_alive)
        t0, rep, lcpu, _ = drive(ctx, port, conns, meter, progress,
                                 lambda: progress() >= count, label,
                                 check=lambda: (check(), r.check_alive()), count=count)
    finally:
        ctx.started.remove(r)
        r.stop()
    return t0, rep, lcpu


def run_rsyslog_relp(ctx, conns, label):
    """rsyslog's own acknowledged path: imtcp -> omrelp -> imrelp -> omfile."""
    d = ctx.workdir / label
    d.mkdir()
    (target,) = free_ports(1)
    outfile = d / "out.log"
    r = start_rsyslogd(ctx, d, "receiver", f"""\
module(load="imrelp")
ruleset(name="bench") {{
  action(type="omfile" file="{outfile}" template="raw")
}}
input(type="imrelp" port="{target}" address="127.0.0.1" ruleset="bench")
""")
    lines = LineCounter(outfile)
    try:
        wait_until(lambda: port_open(target), READY_TIMEOUT, f"imrelp listening on {target}",
                   poll=0.05, check=r.check_alive)
        meter = Meter([r.pid])
        t0, rep, lcpu = via_rsyslog(ctx, d, target, conns, meter, lines, ctx.relp_count, label,
                                    r.check_alive)
        end_ns = outfile.stat().st_mtime_ns if outfile.exists() else 0
    finally:
        ctx.started.remove(r)
        r.stop()
    n = lines()
    rate = n / ((end_ns - t0) / 1e9) if end_ns > t0 and n else 0.0
    return Run(rate=rate, lost=rep["messages"] - n, rss_kb=meter.peak_rss,
               pss_kb=meter.peak_pss, cpu_s=meter.cpu_s, loggen_cpu_s=lcpu,
               extra={"procs": meter.nprocs, "peaks": peaks(meter)})


def run_rsyslog(ctx, conns, label, tls=False, handshakes=False):
    """rsyslogd, imtcp -> omfile; `tls`: imtcp with its GnuTLS stream driver (server
    certificate from ctx.pki, no client authentication); `handshakes`: with it, loggen
    --tls-handshakes (ctx.handshakes connections of one line), the rate loggen's handshakes/s."""
    d = ctx.workdir / label
    d.mkdir()
    (d / "work").mkdir()
    (port,) = free_ports(1)
    outfile = d / "out.log"
    conf = d / "rsyslog.conf"
    tls = tls or handshakes
    if tls:
        pki = ctx.pki
        settings = (f'\n       DefaultNetstreamDriverCAFile="{pki["ca"]}"'
                    f'\n       DefaultNetstreamDriverCertFile="{pki["cert"]}"'
                    f'\n       DefaultNetstreamDriverKeyFile="{pki["key"]}"')
        imtcp = ('module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" '
                 'StreamDriver.AuthMode="anon")')
        # GnuTLS's own defaults, TLS 1.3 included, as loggen and zerolog speak it: without a
        # priority string rsyslog 8.2302 negotiates TLS 1.2.
        priority = ' gnutlsPriorityString="NORMAL"'
    else:
        settings, imtcp, priority = "", 'module(load="imtcp")', ""
    conf.write_text(f"""\
global(workDirectory="{d / 'work'}" net.enableDNS="off"{settings})
{imtcp}
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="bench") {{
  action(type="omfile" file="{outfile}" template="raw")
}}
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="bench"{priority})
""")
    r = Proc(f"rsyslogd[{label}]", ["rsyslogd", "-n", "-f", conf, "-i", d / "rsyslogd.pid"],
             d / "rsyslogd.log", cwd=d)
    ctx.started.append(r)
    count = ctx.handshakes if handshakes else ctx.count
    expect = count * (ctx.size + 1)
    size = lambda: outfile.stat().st_size if outfile.exists() else 0
    try:
        wait_until(lambda: port_open(port), READY_TIMEOUT, f"rsyslogd listening on {port}",
                   poll=0.05, check=r.check_alive)
        meter = Meter([r.pid])
        t0, rep, lcpu, _ = drive(ctx, port, conns, meter, size, lambda: size() >= expect, label,
                                 check=r.check_alive, count=count, tls=tls,
                                 handshakes=handshakes)
        end_ns = outfile.stat().st_mtime_ns if outfile.exists() else 0
    finally:
        ctx.started.remove(r)
        r.stop()
    lines = 0
    bad = 0
    if outfile.exists():
        with open(outfile, "rb") as f:
            while chunk := f.read(1 << 20):
                lines += chunk.count(b"\n")
        if outfile.stat().st_size != lines * (ctx.size + 1):
            bad = 1
        outfile.unlink()
    sent = rep["messages"]
    rate = lines / ((end_ns - t0) / 1e9) if end_ns > t0 and lines else 0.0
    if handshakes:
        rate = rep["handshakes_per_s"]
    return Run(rate=rate, lost=sent - lines, rss_kb=meter.peak_rss, pss_kb=meter.peak_pss,
               cpu_s=meter.cpu_s, loggen_cpu_s=lcpu,
               extra={"size_mismatch": bad, "procs": meter.nprocs, "peaks": peaks(meter)})


PY_WORKER = r'''
"""Counting zerolog 0.3 worker for bench/throughput.py. zerolog 0.3 forwards raw TCP chunks, so
one message may hold many lines, or part of one. Counts, in BENCH_REPORT (JSON, rewritten at
most every 0.2 s while messages arrive): messages; whole loggen lines (the whole line in one
message); heads (a line's start, its rest in another message); tails (other pieces)."""
import json, os, re, time

from zerolog.worker import BaseWorker

LINE = re.compile(rb"<134>1 \S+ loggen \S+ \d+ - - seq=\d+\.\d+ [0-9A-Za-z]*")


class CountWorker(BaseWorker):
    def __init__(self, backend, *args, **kwargs):
        super().__init__(backend, *args, **kwargs)
        self.recv_func = self.backend.recv
        self.path = os.environ["BENCH_REPORT"]
        self.size = int(os.environ["BENCH_SIZE"])
        self.c = dict(messages=0, whole=0, heads=0, tails=0, probes=0, first_unix_ns=None,
                      last_unix_ns=None)

    def process_data(self, data):
        c = self.c
        c["messages"] += 1
        whole = 0
        for seg in data.split(b"\n"):
            if not seg:
                continue
            if seg.startswith(b"probe"):
                c["probes"] += 1
            elif len(seg) == self.size and LINE.fullmatch(seg):
                whole += 1
            elif seg.startswith(b"<134>1 "):
                c["heads"] += 1
            else:
                c["tails"] += 1
        if whole:
            now = time.time_ns()
            c["whole"] += whole
            if c["first_unix_ns"] is None:
                c["first_unix_ns"] = now
            c["last_unix_ns"] = now

    def write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.c, f)
        os.rename(tmp, self.path)

    def run(self):
        self.write()
        dirty, last = False, time.monotonic()
        while True:
            if self.backend.poll(100):
                self.process_data(self.recv_func())
                dirty = True
            if dirty and time.monotonic() - last >= 0.2:
                self.write()
                dirty, last = False, time.monotonic()
'''


def find_python(explicit):
    cands = [explicit] if explicit else [
        os.environ.get("ZEROLOG_PYTHON"), str(REPO / ".venv" / "bin" / "python"),
        "/tmp/zlvenv/bin/python"]
    for c in cands:
        if not c:
            continue
        if not os.access(c, os.X_OK):
            if explicit:
                raise BenchError(f"--python {c}: not an executable")
            continue
        try:
            v = subprocess.run(
                [c, "-c", "import importlib.metadata as m, zmq, zerolog.worker; "
                          "print(m.version('zerolog'), zmq.__version__, zmq.zmq_version())"],
                capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        script = Path(c).parent / "zerolog"
        if v.returncode == 0 and v.stdout.split()[0].startswith("0.3") and script.exists():
            zl, pyzmq, libzmq = v.stdout.split()
            return c, script, f"zerolog {zl} (pyzmq {pyzmq}, libzmq {libzmq})"
        if explicit:
            raise BenchError(f"{c}: no zerolog 0.3 + pyzmq there ({v.stdout}{v.stderr})")
    return None


def run_python(ctx, conns, label, py):
    python, script, _ = py
    d = ctx.workdir / label
    d.mkdir()
    (d / "bench_pyworker.py").write_text(PY_WORKER)
    fwd, pub, out = free_ports(3)
    procs = []
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    try:
        def start(name, argv, extra=None):
            p = Proc(f"{name}[{label}]", [python, script] + argv, d / f"{name}.log",
                     env=dict(env, **(extra or {})), cwd=d)
            ctx.started.append(p)
            procs.append(p)
            return p

        def check():
            for p in procs:
                p.check_alive()

        start("forwarder", ["forwarder", "-b", fwd, "-f", pub])
        start("receiver", ["receiver", "127.0.0.1", pub, "--output-port", out])
        reports = [d / f"py-sink-{i}.json" for i in range(2)]
        for i, rp in enumerate(reports):
            start(f"worker{i}", ["worker", f"tcp://127.0.0.1:{out}", "bench_pyworker.CountWorker",
                                 "-d", d], {"BENCH_REPORT": str(rp), "BENCH_SIZE": str(ctx.size)})
        wait_until(lambda: port_open(fwd), READY_TIMEOUT, "the Python forwarder listening",
                   poll=0.05, check=check)
        # PUB/SUB has no flow control and a slow joiner: probe lines until both workers saw one.
        with socket.create_connection(("127.0.0.1", fwd), timeout=5) as s:
            def both_saw_probe():
                s.sendall(b"probe\n")
                time.sleep(0.05)
                rs = [read_json(p) for p in reports]
                return all(r and r["probes"] > 0 for r in rs)
            wait_until(both_saw_probe, READY_TIMEOUT, "both Python workers to get a probe line",
                       poll=0.05, check=check)
        time.sleep(0.3)
        sums = lambda: [sum(((read_json(p) or {}).get(k) or 0) for p in reports)
                        for k in ("whole", "heads", "tails", "messages")]
        meter = Meter([p.pid for p in procs])
        t0, rep, lcpu, _ = drive(ctx, fwd, conns, meter, sums,
                                 lambda: sums()[0] >= ctx.count, label, check=check)
        final = [read_json(p) or {} for p in reports]
    finally:
        for p in procs:
            ctx.started.remove(p)
            p.stop()
    whole = sum(r.get("whole", 0) for r in final)
    heads = sum(r.get("heads", 0) for r in final)
    tails = sum(r.get("tails", 0) for r in final)
    last = max((r.get("last_unix_ns") or 0) for r in final)
    sent = rep["messages"]
    rate = whole / ((last - t0) / 1e9) if last > t0 and whole else 0.0
    return Run(rate=rate, lost=sent - whole, rss_kb=meter.peak_rss, pss_kb=meter.peak_pss,
               cpu_s=meter.cpu_s, loggen_cpu_s=lcpu,
               extra={"whole": whole, "cut": heads, "tails": tails,
                      "missing": sent - whole - heads, "procs": meter.nprocs,
                      "peaks": peaks(meter),
                      "messages": sum(r.get("messages", 0) for r in final)})


def run_chain(ctx, label):
    out = ctx.workdir / f"{label}.json"
    p = Proc(label, [ZMQ_CHAIN, ctx.count, ctx.size, 2], ctx.workdir / f"{label}.log", stdout=out)
    ctx.started.append(p)
    try:
        if not p.wait(60 + ctx.count / 10_000):
            raise BenchError(f"zmq_chain did not finish within {60 + ctx.count / 10_000:.0f} s")
        if p.proc.returncode != 0:
            raise BenchError(f"zmq_chain failed (status {p.proc.returncode}):\n{tail(p.log_path)}")
    finally:
        ctx.started.remove(p)
        p.stop()
    rep = read_json(out)
    if not rep or "messages_per_s" not in rep:
        raise BenchError(f"zmq_chain: no JSON report in {out}")
    ru = p.rusage
    return Run(rate=rep["messages_per_s"], lost=0,
               rss_kb=ru.ru_maxrss if ru else 0,
               cpu_s=(ru.ru_utime + ru.ru_stime) if ru else None,
               extra={"one_process": True})


# ----------------------------------------------------------------------------------------------
# main


def build():
    note("cargo build --release --all-targets ...")
    run(["cargo", "build", "--release", "--all-targets"], 1800, "cargo build --release "
        "--all-targets", cwd=REPO)


def versions(py):
    out = []
    try:
        r = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=30)
        out.append(f"zerolog {r.stdout.strip() or '?'}")
    except Exception:
        out.append("zerolog ?")
    try:
        # Its second line says how libzmq was linked in (with LTO or not).
        v = subprocess.run([str(ZEROLOG), "--version"], capture_output=True, text=True, timeout=30)
        out[-1] += f" ({v.stdout.splitlines()[1]})"
    except Exception:
        pass
    if shutil.which("rsyslogd"):
        try:
            v = subprocess.run(["rsyslogd", "-v"], capture_output=True, text=True, timeout=30)
            out.append(f"rsyslog {v.stdout.split()[1]}")
        except Exception:
            pass
    if py:
        out.append(f"Python {py[2]}")
    return ", ".join(out)


def rsyslog_gtls():
    """Whether rsyslog's GnuTLS stream driver is installed (Debian: rsyslog-gnutls)."""
    return any(next(Path(d).glob(g), None) for d in ("/usr/lib", "/usr/lib64")
               for g in ("rsyslog/lmnsd_gtls.so", "*/rsyslog/lmnsd_gtls.so"))


def summarize(runs):
    rates = [r.rate for r in runs]
    return statistics.median(rates), min(rates), max(rates)


def fmt_int(x):
    return f"{x:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per system and variant (3)")
    ap.add_argument("--count", type=int, default=1_000_000, help="lines per run (1,000,000)")
    ap.add_argument("--size", type=int, default=150, help="line size in bytes, LF excluded (150)")
    ap.add_argument("--connections", default="1,4",
                    help="loggen connections, one variant each, comma-separated (1,4)")
    ap.add_argument("--skip-zerolog", action="store_true")
    ap.add_argument("--skip-rsyslog", action="store_true")
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--skip-chain", action="store_true")
    ap.add_argument("--skip-unacked", action="store_true",
                    help="skip zerolog without its journal (the path before acknowledgements)")
    ap.add_argument("--relp", action="store_true",
                    help="also RELP: rsyslog omrelp into rsyslog imrelp and into zerolog's RELP "
                         "input, and zerolog loggen --relp into it (1 connection)")
    ap.add_argument("--relp-count", type=int, default=200_000,
                    help="lines per RELP run (200,000; rsyslog's imrelp takes ~3,000/s)")
    ap.add_argument("--tls", action="store_true",
                    help="also TLS: zerolog's TLS input against rsyslog imtcp with its GnuTLS "
                         "driver, zerolog loggen --tls, and (unless --skip-handshakes) both "
                         "inputs' rate of handshakes")
    ap.add_argument("--skip-handshakes", action="store_true",
                    help="with --tls, skip the handshake rows")
    ap.add_argument("--handshakes", type=int, default=2000,
                    help="connections per handshake run, each a full TLS handshake, one line "
                         "and a close (2,000)")
    ap.add_argument("--curve", action="store_true",
                    help="also zerolog, journaled and acknowledged, with CURVE between the "
                         "forwarder and the receiver")
    ap.add_argument("--python", help="python of a venv with zerolog==0.3 and pyzmq (default: "
                    "$ZEROLOG_PYTHON, .venv/bin/python, /tmp/zlvenv/bin/python)")
    ap.add_argument("--stall", type=float, default=3.0,
                    help="stop waiting when nothing more arrived for this many seconds after "
                         "loggen ended (3)")
    ap.add_argument("--no-build", action="store_true", help="skip cargo build")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if args.runs < 1 or args.count < 1 or args.size < 80 or args.handshakes < 1:
        raise BenchError("--runs, --count and --handshakes must be >= 1, --size >= 80")
    try:
        variants = [int(c) for c in args.connections.split(",")]
        assert variants and all(c >= 1 for c in variants)
    except (ValueError, AssertionError):
        raise BenchError(f"--connections: comma-separated numbers >= 1, not {args.connections!r}")
    if not Path("/proc/self/smaps_rollup").exists():
        raise BenchError("needs Linux /proc (with smaps_rollup)")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(f"{PROG}: terminated"))
    subreaper = become_subreaper()
    started = []
    workdir = Path(tempfile.mkdtemp(prefix="zl-throughput-"))
    ctx = Ctx(args, workdir, started)
    results = {}  # (conns, system) -> [Run]
    try:
        if not args.no_build:
            build()
        for b in (ZEROLOG, ZEROLOGD) + (() if args.skip_chain else (ZMQ_CHAIN,)):
            if not os.access(b, os.X_OK):
                raise BenchError(f"{b} missing (cargo build --release --all-targets)")
        systems = []
        if not args.skip_zerolog:
            systems.append("zerolog")
            if not args.skip_unacked:
                systems.append("zerolog-unacked")
        if not args.skip_rsyslog:
            if shutil.which("rsyslogd"):
                systems.append("rsyslog")
            else:
                note("rsyslogd not found: skipping rsyslog")
        py = None
        if not args.skip_python:
            py = find_python(args.python)
            if py:
                systems.append("python")
            else:
                note("no venv with zerolog==0.3 and pyzmq found: skipping Python zerolog 0.3")
        if not args.skip_chain:
            systems.append("chain")
        if args.curve:
            at = systems.index("zerolog") + 1 if "zerolog" in systems else 0
            systems[at:at] = ["tcp-journal", "curve"]
            ctx.curve = make_curve_keys(workdir)
        # The TLS and handshake rows are interleaved with the others, each group in its
        # own section of the table, with its own reference.
        tls_systems = []
        if args.tls:
            ctx.pki = make_pki(workdir)
            tls_systems = ["tls-zerolog"]
            if args.skip_rsyslog:
                pass
            elif not shutil.which("rsyslogd"):
                note("rsyslogd not found: skipping rsyslog's TLS input")
            elif not rsyslog_gtls():
                note("rsyslog's GnuTLS driver (lmnsd_gtls.so, Debian package rsyslog-gnutls) "
                     "not found: skipping rsyslog's TLS input")
            else:
                tls_systems.append("tls-rsyslog")
            if not args.skip_handshakes:
                tls_systems += [t.replace("tls-", "hs-") for t in tls_systems]
        relp_systems = ["relp-rsyslog", "relp-zerolog", "relp-loggen"] if args.relp else []
        if not systems and not tls_systems:
            raise BenchError("nothing to measure")
        nproc, ncpu, model, kernel = machine()
        load_start = loadavg()
        note(f"work directory {workdir}; load average {load_start}")
        for conns in variants:
            for i in range(args.runs):
                for system in systems + tls_systems:
                    label = f"{system}-c{conns}-{i + 1}"
                    if system == "zerolog":
                        r = run_zerolog(ctx, conns, label)
                    elif system == "zerolog-unacked":
                        r = run_zerolog(ctx, conns, label, variant="unacked")
                    elif system in ("curve", "tcp-journal"):
                        r = run_zerolog(ctx, conns, label, variant=system)
                    elif system == "tls-zerolog":
                        r = run_zerolog(ctx, conns, label, variant="tls")
                    elif system == "hs-zerolog":
                        r = run_zerolog(ctx, conns, label, variant="tls", handshakes=True)
                    elif system == "rsyslog":
                        r = run_rsyslog(ctx, conns, label)
                    elif system == "tls-rsyslog":
                        r = run_rsyslog(ctx, conns, label, tls=True)
                    elif system == "hs-rsyslog":
                        r = run_rsyslog(ctx, conns, label, handshakes=True)
                    elif system == "python":
                        r = run_python(ctx, conns, label, py)
                    else:
                        r = run_chain(ctx, label)
                    results.setdefault((conns, system), []).append(r)
                    reap_zombies({p.pid for p in started})
                    unit = "handshakes/s" if system.startswith("hs-") else "lines/s"
                    note(f"{label}: {fmt_int(r.rate)} {unit}, lost {r.lost}, peak RSS "
                         f"{r.rss_kb / 1024:.1f} MB, CPU {r.cpu_s if r.cpu_s is None else round(r.cpu_s, 2)} s"
                         + (f" (load {loadavg()})"))
                    shutil.rmtree(workdir / label, ignore_errors=True)
        for i in range(args.runs):
            for system in relp_systems:
                label = f"{system}-{i + 1}"
                if system == "relp-rsyslog":
                    r = run_rsyslog_relp(ctx, 1, label)
                elif system == "relp-zerolog":
                    r = run_zerolog(ctx, 1, label, variant="relp", sender=True)
                else:
                    r = run_zerolog(ctx, 1, label, variant="relp")
                results.setdefault((1, system), []).append(r)
                reap_zombies({p.pid for p in started})
                note(f"{label}: {fmt_int(r.rate)} lines/s, lost {r.lost}")
                shutil.rmtree(workdir / label, ignore_errors=True)
        load_end = loadavg()
    finally:
        for p in list(started):
            p.stop()
        if subreaper:
            reap_adopted()
        if args.keep:
            note(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    # ---- report
    names = {
        "zerolog": "zerolog, journaled and acknowledged (zerologd: forwarder, receiver, 2 null workers)",
        "zerolog-unacked": "zerolog without journal (journal = false, PUSH to 2 null workers)",
        "relp-rsyslog": "RELP: rsyslog imtcp -> omrelp -> imrelp -> omfile",
        "relp-zerolog": "RELP: rsyslog imtcp -> omrelp -> zerolog RELP input, journaled, 2 null workers",
        "relp-loggen": "RELP: zerolog loggen --relp -> zerolog RELP input, journaled, 2 null workers",
        "rsyslog": "rsyslog (imtcp -> omfile)",
        "tcp-journal": "zerolog, journaled and acknowledged, receiver fetching over TCP (plaintext)",
        "curve": "zerolog, journaled and acknowledged, receiver fetching over TCP with CURVE",
        "tls-zerolog": "TLS: zerolog TLS input, journaled and acknowledged, 2 null workers",
        "tls-rsyslog": "TLS: rsyslog imtcp with its GnuTLS driver (anon) -> omfile",
        "hs-zerolog": "handshakes/s: zerolog TLS input (loggen --tls-handshakes)",
        "hs-rsyslog": "handshakes/s: rsyslog imtcp with its GnuTLS driver",
        "python": "Python zerolog 0.3 (forwarder, receiver, 2 workers)",
        "chain": "bare libzmq chain (zmq_chain, 2 PULL)",
    }
    hdr = ("conns", "system", "lines/s median", "min", "max", "ratio to zerolog", "lost",
           "peak RSS (MB)", "peak PSS (MB)", "CPU s", "loggen CPU s")
    rows = []

    def group_rows(conns, group, ref):
        """The rows of `group` (systems measured with conns connections), each with its ratio
        to the median of `ref`."""
        rs = results.get((conns, ref))
        rmed = summarize(rs)[0] if rs else None
        for system in group:
            rs = results[(conns, system)]
            med, lo, hi = summarize(rs)
            lost = [r.lost for r in rs]
            cpus = [r.cpu_s for r in rs if r.cpu_s is not None]
            lcpus = [r.loggen_cpu_s for r in rs if r.loggen_cpu_s is not None]
            chain = system == "chain"
            rows.append((
                str(conns) if not chain else "-", names[system], fmt_int(med), fmt_int(lo),
                fmt_int(hi), f"{med / rmed:.2f}" if rmed else "-",
                str(lost[0]) if len(set(lost)) == 1 else "/".join(map(str, lost)),
                f"{max(r.rss_kb for r in rs) / 1024:.1f}",
                "-" if chain else f"{max(r.pss_kb for r in rs) / 1024:.1f}",
                f"{statistics.median(cpus):.2f}" if cpus else "-",
                f"{statistics.median(lcpus):.2f}" if lcpus else "-",
            ))

    for conns in variants + (["relp"] if relp_systems else []):
        if conns == "relp":
            zl = results.get((1, "relp-rsyslog"))
            zmed = summarize(zl)[0] if zl else None
            rows.append(("", "RELP rows: ratio to rsyslog's imrelp path; "
                         f"{fmt_int(args.relp_count)} lines", *[""] * 9))
            for system in relp_systems:
                rs = results[(1, system)]
                med, lo, hi = summarize(rs)
                lost = "/".join(str(r.lost) for r in rs)
                rows.append(("1", names[system], fmt_int(med), fmt_int(lo), fmt_int(hi),
                             f"{med / zmed:.1f}" if zmed else "-", lost,
                             f"{max(r.rss_kb for r in rs) / 1024:.1f}",
                             f"{max(r.pss_kb for r in rs) / 1024:.1f}", "-", "-"))
            continue
        group_rows(conns, systems, "zerolog")
    tls_rates = [t for t in tls_systems if t.startswith("tls-")]
    handshake_rates = [t for t in tls_systems if t.startswith("hs-")]
    if tls_rates:
        rows.append(("", "TLS rows: ratio to rsyslog's TLS input; loggen --tls, the same load",
                     *[""] * 9))
        for conns in variants:
            group_rows(conns, tls_rates, "tls-rsyslog")
    if handshake_rates:
        rows.append(("", "handshake rows: handshakes/s, each a connection with one line "
                     f"({fmt_int(args.handshakes)} per run); ratio to rsyslog's", *[""] * 9))
        for conns in variants:
            group_rows(conns, handshake_rates, "hs-rsyslog")
    widths = [max(len(r[i]) for r in [hdr] + rows) for i in range(len(hdr))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 1 else c.rjust(w)
                              for i, (c, w) in enumerate(zip(r, widths)))
    print()
    print(f"machine: nproc={nproc} (of {ncpu} CPUs), {model}, kernel {kernel}; load average at "
          f"start {load_start}, at end {load_end}")
    print(f"versions: {versions(py)}, python {platform.python_version()}")
    print(f"load: zerolog loggen, {fmt_int(args.count)} RFC 5424 lines of {args.size} bytes + LF "
          f"over TCP, as fast as possible; {args.runs} runs per system and variant, interleaved")
    if tls_systems:
        print("TLS: the same load with loggen --tls, verifying the server's ECDSA P-256 "
              "certificate against the bench's CA; handshake rows: loggen --tls-handshakes "
              f"{args.handshakes}, no session resumption")
    print("rate: lines delivered / (time of the last one delivered - time just before loggen "
          "starts); RSS, PSS: peak of the sum over the system's processes (sampled every "
          f"{SAMPLE_PERIOD * 1000:.0f} ms), max over runs; CPU: utime+stime of those processes "
          "over the run, median")
    print()
    print(fmt(hdr))
    print(fmt(tuple("-" * w for w in widths)))
    for r in rows:
        print(fmt(r))
    print()
    for conns in variants:
        for system in systems + tls_systems:
            rs = results[(conns, system)]
            if system in ("zerolog", "zerolog-unacked", "tcp-journal", "curve", "tls-zerolog",
                          "hs-zerolog"):
                d = sum(r.extra["duplicates"] for r in rs)
                per_line = [round(r.extra["journal_bytes_per_line"]) for r in rs]
                if system == "zerolog":
                    print(f"c={conns} zerolog: journal bytes written to storage per line "
                          f"(/proc write_bytes of the forwarder / lines): {per_line}")
                print(f"c={conns} {system}: messages per worker "
                      f"{[r.extra['per_worker'] for r in rs]}; duplicates {d}; "
                      f"{rs[0].extra['procs']} processes, peak RSS each (MB, run 1): "
                      f"{rs[0].extra['peaks']}")
            elif system == "rsyslog":
                bad = sum(r.extra["size_mismatch"] for r in rs)
                print(f"c={conns} rsyslog: output file size = lines x {args.size + 1} bytes in "
                      f"{len(rs) - bad} of {len(rs)} runs; peak RSS (MB, run 1): "
                      f"{rs[0].extra['peaks']}")
            elif system == "python":
                print(f"c={conns} Python zerolog 0.3 (per run): whole lines "
                      f"{[r.extra['whole'] for r in rs]}, lines cut in pieces "
                      f"{[r.extra['cut'] for r in rs]}, lines missing entirely "
                      f"{[r.extra['missing'] for r in rs]}, ZeroMQ messages "
                      f"{[r.extra['messages'] for r in rs]}; lost = sent - whole lines; peak RSS "
                      f"(MB, run 1): {rs[0].extra['peaks']}")
            elif system == "chain" and conns == variants[0]:
                print("chain: one process (4 threads, one context each); RSS = its ru_maxrss, "
                      "CPU = its rusage; no connections (its rows are separate runs per variant)")
    # The targets, from the medians above.
    med = lambda conns, system: (summarize(results[(conns, system)])[0]
                                 if (conns, system) in results else None)
    ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "-"
    share = lambda a, b: f"{a / b:.0%}" if a and b else "-"
    for conns in variants:
        zl, rsys = med(conns, "zerolog"), med(conns, "rsyslog")
        if "curve" in systems:
            c, tj = med(conns, "curve"), med(conns, "tcp-journal")
            print(f"c={conns} CURVE: {fmt_int(c)} lines/s, {share(c, tj)} of the same TCP hop "
                  f"in plaintext ({fmt_int(tj) if tj else '-'}), {share(c, zl)} of the "
                  f"default IPC path's {fmt_int(zl) if zl else '-'}; {ratio(c, rsys)} "
                  "rsyslog's plaintext (target >= 1x)")
        tz, tr = med(conns, "tls-zerolog"), med(conns, "tls-rsyslog")
        if tz:
            print(f"c={conns} TLS input: zerolog {fmt_int(tz)} lines/s, {ratio(tz, tr)} rsyslog's "
                  f"TLS input (target >= 1.5x); of their plaintext rates: zerolog "
                  f"{share(tz, zl)}, rsyslog {share(tr, rsys)}")
        hz, hr = med(conns, "hs-zerolog"), med(conns, "hs-rsyslog")
        if hz:
            print(f"c={conns} handshakes: zerolog {fmt_int(hz)}/s, rsyslog "
                  f"{fmt_int(hr) if hr else '-'}/s ({ratio(hz, hr)})")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # a bug or an unexpected environment: still one clear line last
        import traceback
        traceback.print_exc()
        print(f"{PROG}: error: unexpected {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
