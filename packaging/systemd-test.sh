#!/usr/bin/env bash
# The packaged service under real systemd: boots systemd (the distribution's, 252 on Debian 12)
# as PID 1 of a container (systemd-nspawn) on a minimal Debian root of its own, installs the
# .deb in it with dpkg, and drives the service through systemctl.
#
#   packaging/systemd-test.sh ZEROLOG.deb
#
# Isolation: the root is made once with debootstrap (cached in $ZEROLOG_SYSTEMD_ROOTFS, default
# /var/tmp/zerolog-systemd-rootfs) and booted with --volatile=overlay, so every run starts from
# it as it was and writes only to a tmpfs; the container has its own PID, mount, UTS, IPC and
# network namespaces (only a loopback), /proc/sys read-only, and nspawn's runtime files go to a
# tmpfs of a private mount namespace. The script checks that the host's /tmp, /etc/passwd and
# /etc/group are as they were at the end.
#
# Scenarios (each asserted): 1 install and start (READY = accepting input), 2 a drop-in with
# RUST_LOG=warn, 3 reload (numprocs changed: the forwarder keeps its pid; an invalid file: the
# reload fails with file:line and nothing changes), 4 watchdog (SIGSTOP of zerologd), 5 kill -9
# of zerologd, 6 stop during a burst of 100,000 lines, 7 the journal (priorities and
# ZEROLOG_PROGRAM), 8 upgrade with dpkg -i of a newer build under load.
#
# Needs root, systemd-nspawn (systemd-container), debootstrap and a Debian mirror. Without them
# it skips with the reason, unless ZEROLOG_REQUIRE_INTEROP=1 (CI), which makes that a failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEB=${1:?usage: packaging/systemd-test.sh ZEROLOG.deb}
DEB=$(realpath "$DEB")
ROOTFS=${ZEROLOG_SYSTEMD_ROOTFS:-/var/tmp/zerolog-systemd-rootfs}
MIRROR=${ZEROLOG_DEBIAN_MIRROR:-http://deb.debian.org/debian}
LOG=/var/log/zerolog/messages.log

step() { echo "== systemd: $*"; }
fail() {
  echo "FAIL: $*" >&2
  if [[ -n ${CPID:-} ]]; then
    echo "--- journalctl -u zerologd (last 60 lines)" >&2
    ct journalctl -u zerologd --no-pager -n 60 >&2 || true
  fi
  exit 1
}
skip() {
  [[ ${ZEROLOG_REQUIRE_INTEROP:-} == 1 ]] && fail "cannot run systemd here: $*"
  echo "SKIP: the systemd test did not run: $*"
  exit 0
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

[[ $(id -u) -eq 0 ]] || skip "it needs root"
for tool in systemd-nspawn debootstrap unshare nsenter dpkg-deb; do
  command -v "$tool" >/dev/null || skip "$tool is missing (apt-get install systemd-container debootstrap)"
done

WORK=$(mktemp -d /var/tmp/zerolog-systemd.XXXXXX)
NSPAWN=
CPID=
host_state() { (ls -A /tmp; md5sum /etc/passwd /etc/group) | md5sum; }
HOST_BEFORE=$(host_state)
cleanup() {
  if [[ -n $CPID ]] && kill -0 "$CPID" 2>/dev/null; then
    kill -s SIGRTMIN+4 "$CPID" 2>/dev/null || true # poweroff
    timeout 20 tail --pid="$NSPAWN" -f /dev/null 2>/dev/null || kill -KILL "$CPID" "$NSPAWN" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Waits up to $1 seconds for the command in the remaining arguments to succeed.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# A command inside the container, as a process of it (its namespaces, root and environment).
ct() {
  nsenter --target "$CPID" --all -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

step "the root: minimal Debian 12 with systemd ($ROOTFS)"
if [[ ! -e $ROOTFS/.zerolog-complete ]]; then
  rm -rf "$ROOTFS"
  start=$(now)
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,adduser \
    bookworm "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 20 "$WORK/debootstrap.log"
    skip "debootstrap of bookworm from $MIRROR failed"
  }
  # Nothing a test does not need at boot.
  for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    fstrim.timer systemd-timesyncd.service console-getty.service; do
    ln -sf /dev/null "$ROOTFS/etc/systemd/system/$unit"
  done
  echo "zltest" >"$ROOTFS/etc/hostname"
  touch "$ROOTFS/.zerolog-complete"
  echo "debootstrap: $(since "$start") s"
fi
cp "$DEB" "$WORK/zerolog.deb"

step "boot systemd as PID 1 of the container"
start=$(now)
# nspawn keeps runtime files under /run/systemd/nspawn and insists that it be a tmpfs; a
# private mount namespace gives it one without touching the host's /run.
unshare --mount --propagation private -- sh -c '
  mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn &&
  exec systemd-nspawn --quiet --directory="$1" --volatile=overlay --boot --private-network \
    --register=no --keep-unit --machine="zltest-$$" --bind-ro="$2:/zltest" --console=read-only
' sh "$ROOTFS" "$WORK" >"$WORK/console.log" 2>&1 &
NSPAWN=$!
# The container's init: nspawn's child named systemd. (A first child of nspawn's may be its
# short-lived intermediate process, gone by the time nsenter looks: that failed a CI run.)
find_init() { CPID=$(pgrep -x -P "$NSPAWN" systemd | sed -n 1p) && [[ -n $CPID ]]; }
wait_for 30 find_init || {
  cat "$WORK/console.log"
  skip "systemd-nspawn did not start a container"
}
booted() { find_init && { ct systemctl is-system-running --wait >/dev/null || [[ $(ct systemctl is-system-running) == degraded ]]; }; }
wait_for 60 booted || {
  cat "$WORK/console.log"
  fail "the container did not finish booting in 60 s ($(ct systemctl is-system-running || true))"
}
[[ $(ct cat /proc/1/comm) == systemd ]] || fail "PID 1 of the container is not systemd"
echo "booted in $(since "$start") s: $(ct systemctl --version | sed -n 1p)"

# Helpers on the service. (No reader in a pipeline stops early: with pipefail, the writer's
# SIGPIPE would end the script.)
main_pid() { ct systemctl show -p MainPID --value zerologd; }
active() { [[ $(ct systemctl is-active zerologd) == active ]]; }
# From the table of `zerologd status` (it ends at the first empty line, before the counters).
pid_of() { ct zerologd status | awk -v n="$1" '/^$/ { t = 1 } !t && $1 == n { print $3 }'; }
program_running() { ct zerologd status | awk -v n="$1" '/^$/ { t = 1 } !t && $1 == n && $2 == "RUNNING" { f = 1 } END { exit !f }'; }
# kill(1) is the shell's in this minimal root.
ct_kill() { ct sh -c 'kill "$@"' sh "$@"; }
# Every process of the service now (its cgroup, whichever hierarchy holds it).
service_pids() {
  local cg
  cg=$(ct systemctl show -p ControlGroup --value zerologd)
  ct sh -c "cat /sys/fs/cgroup/unified$cg/cgroup.procs 2>/dev/null || cat /sys/fs/cgroup/systemd$cg/cgroup.procs 2>/dev/null || cat /sys/fs/cgroup$cg/cgroup.procs"
}
gone() { for p in "$@"; do ! ct_kill -0 "$p" 2>/dev/null || return 1; done; }
delivered() { ct grep -q -- "$1" "$LOG"; }
# Sends one line with logger and waits for it in the worker's file.
deliver() {
  ct logger -T -n 127.0.0.1 -P 6000 -t zltest "$1" || fail "logger could not send '$1' (input not accepting)"
  wait_for 30 delivered "$1" || fail "'$1' did not reach $LOG within 30 s"
}
dropin() {
  ct mkdir -p /etc/systemd/system/zerologd.service.d
  printf '[Service]\n%s\n' "$2" | ct sh -c "cat > /etc/systemd/system/zerologd.service.d/$1.conf"
  ct systemctl daemon-reload
}
no_dropin() {
  ct rm -f "/etc/systemd/system/zerologd.service.d/$1.conf"
  ct systemctl daemon-reload
}
start_ready_s() {
  ct systemctl show -p ExecMainStartTimestampMonotonic -p ActiveEnterTimestampMonotonic --value zerologd |
    awk 'NR == 1 { s = $1 } NR == 2 { printf "%.3f", ($1 - s) / 1e6 }'
}
# The last exit counters of the forwarder in the journal since $1: "name=value ...".
forwarder_counters() {
  ct journalctl -u zerologd --since "@$1" --no-pager -o cat ZEROLOG_PROGRAM=forwarder |
    grep 'forwarder counters:' | tail -n 1
}
counter() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<" $2"; }

step "1. dpkg -i: the service is enabled and started; started means accepting input"
start=$(now)
ct dpkg -i /zltest/zerolog.deb >"$WORK/dpkg.log" 2>&1 || {
  cat "$WORK/dpkg.log"
  fail "dpkg -i failed"
}
active || fail "zerologd is not active after the install"
[[ $(ct systemctl is-enabled zerologd) == enabled ]] || fail "zerologd is not enabled"
echo "install and start: $(since "$start") s; start to READY=1: $(start_ready_s) s"
exposure=$(ct systemd-analyze security --no-pager zerologd | sed -n 's/.*Overall exposure level for zerologd.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security zerologd: $exposure"
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 3.0) }' || fail "the unit's exposure is '$exposure', above 3.0: a sandboxing setting was lost"
ct systemctl stop zerologd
start=$(now)
ct systemctl start zerologd || fail "systemctl start failed"
echo "systemctl start returned after $(since "$start") s; start to READY=1: $(start_ready_s) s"
# systemctl start returned: the input must accept at once.
deliver "scenario-1 $$"
for p in forwarder all messages:0; do program_running "$p" || fail "$p is not RUNNING"; done

step "2. a drop-in with Environment=RUST_LOG=warn: the service still starts"
dropin loglevel "Environment=RUST_LOG=warn"
ct systemctl restart zerologd || fail "systemctl restart failed with RUST_LOG=warn"
active || fail "zerologd is not active with RUST_LOG=warn"
deliver "scenario-2 $$"
echo "start to READY=1 at RUST_LOG=warn: $(start_ready_s) s"
no_dropin loglevel
ct systemctl restart zerologd

step "3. systemctl reload: numprocs 1 -> 2 keeps the forwarder; an invalid file fails the reload"
ct cp /etc/zerolog/zerolog.toml /root/zerolog.toml.orig
fwd=$(pid_of forwarder)
ct sed -i '/^command = \["file"/a numprocs = 2' /etc/zerolog/zerolog.toml
ct systemctl reload zerologd || fail "systemctl reload of a valid change failed"
wait_for 10 program_running messages:1 || fail "messages:1 did not start after the reload"
[[ $(pid_of forwarder) == "$fwd" ]] || fail "the forwarder was restarted by a reload that did not change it"
echo "reload applied: forwarder pid $fwd kept, messages:0 and messages:1 running"
ct sh -c 'echo "numprocs = \"many\"" >> /etc/zerolog/zerolog.toml'
since_t=$(ct date +%s)
if ct systemctl reload zerologd 2>"$WORK/reload.err"; then
  fail "systemctl reload of an invalid topology succeeded"
fi
ct journalctl -u zerologd --since "@$since_t" --no-pager -o cat >"$WORK/reload.journal"
grep -q 'zerolog.toml:[0-9]' "$WORK/reload.journal" ||
  fail "the journal does not say where the topology is invalid: $(cat "$WORK/reload.journal")"
grep -m 2 'zerolog.toml:[0-9]' "$WORK/reload.journal"
active || fail "a failed reload stopped the service"
program_running messages:1 && [[ $(pid_of forwarder) == "$fwd" ]] || fail "the failed reload changed the running topology"
ct cp /root/zerolog.toml.orig /etc/zerolog/zerolog.toml
ct systemctl reload zerologd || fail "reload back to the packaged topology failed"
one_worker() { ! ct zerologd status | grep -q '^messages:1 '; }
wait_for 10 one_worker || fail "messages:1 still runs after the reload back to numprocs 1"

step "4. watchdog: zerologd stopped with SIGSTOP is killed and restarted"
dropin watchdog $'WatchdogSec=4s\nTimeoutAbortSec=2s'
ct systemctl restart zerologd
old_main=$(main_pid)
old_pids=$(service_pids)
start=$(now)
ct_kill -STOP "$old_main"
restarted() { local m; m=$(main_pid) && [[ $m != 0 && $m != "$old_main" ]] && active; }
wait_for 40 restarted || fail "the watchdog did not restart zerologd within 40 s"
restart_s=$(since "$start")
fired=$(ct journalctl -u zerologd --since "@${start%.*}" -o short-unix --no-pager | awk '/Watchdog timeout/ && !f { print $1; f = 1 }')
[[ -n $fired ]] || fail "no 'Watchdog timeout' in the journal"
detect_s=$(awk -v a="$start" -v b="$fired" 'BEGIN { printf "%.2f", b - a }')
# zerologd pinged at most WatchdogSec/2 before the SIGSTOP.
awk -v d="$detect_s" 'BEGIN { exit !(d <= 4.5) }' || fail "the watchdog fired $detect_s s after the SIGSTOP, WatchdogSec is 4 s"
echo "watchdog: fired $detect_s s after SIGSTOP (WatchdogSec=4s); a new READY zerologd $restart_s s after it (then TimeoutAbortSec=2s for the SIGABRT a stopped process cannot act on, RestartSec=2s)"
# shellcheck disable=SC2086
gone $old_pids || fail "processes of the old run are left: $(for p in $old_pids; do ct cat /proc/$p/cmdline 2>/dev/null | tr '\0' ' '; done)"
deliver "scenario-4 $$"
no_dropin watchdog
ct systemctl restart zerologd

step "5. kill -9 of zerologd: systemd restarts it, nothing of the old run is left"
old_main=$(main_pid)
old_pids=$(service_pids)
start=$(now)
ct_kill -KILL "$old_main"
wait_for 30 restarted || fail "zerologd was not restarted within 30 s of kill -9"
echo "kill -9: a new READY zerologd in $(since "$start") s (RestartSec=2s)"
# shellcheck disable=SC2086
gone $old_pids || fail "processes of the old run are left after kill -9"
deliver "scenario-5 $$"

step "6. systemctl stop during a burst of 100,000 lines: all the forwarder read is delivered"
ct systemctl restart zerologd
t0=$(ct date +%s)
before=$(ct grep -c 'burst' "$LOG" || true)
# 50,000 lines a second: the stop comes while loggen is still sending.
ct sh -c 'exec zerolog loggen --app burst -n 100000 -r 50000 -c 2 -P 6000 > /root/loggen.out 2>&1' &
LOGGEN=$!
burst_started() { [[ $(ct grep -c 'burst' "$LOG") -gt $((before + 1000)) ]]; }
wait_for 30 burst_started || fail "the burst did not start"
start=$(now)
ct systemctl stop zerologd || fail "systemctl stop failed"
stop_s=$(since "$start")
wait "$LOGGEN" || true
[[ $(ct systemctl show -p Result --value zerologd) == success ]] ||
  fail "the stop did not end cleanly: Result=$(ct systemctl show -p Result --value zerologd)"
ct journalctl -u zerologd --since "@$t0" --no-pager -o cat >"$WORK/stop.journal"
if grep -Eq 'Killing process|timed out|SIGKILL' "$WORK/stop.journal"; then
  fail "systemd had to kill: $(grep -E 'Killing process|timed out|SIGKILL' "$WORK/stop.journal")"
fi
grep -q 'shutting down: forwarder first' "$WORK/stop.journal" || fail "the journal does not show the drain"
counters=$(forwarder_counters "$t0")
received=$(counter messages_received "$counters")
[[ -n $received ]] || fail "no forwarder counters in the journal"
delivered_n=$(($(ct grep -c 'burst' "$LOG") - before))
echo "stop in $stop_s s during the burst: the forwarder read $received of 100,000 lines, $delivered_n delivered; $(grep -c 'closed_sending_at_stop=[1-9]' <<<"$counters") connection(s) closed while sending"
[[ $delivered_n -eq $received ]] || fail "the forwarder read $received lines and $delivered_n were delivered"
ct systemctl start zerologd

step "7. the journal: each program's lines at their level's priority, ZEROLOG_PROGRAM per program"
ct sh -c 'cat >> /etc/zerolog/zerolog.toml' <<'EOF'

[[worker]]
name = "probe"
receiver = "all"
command = ["sh", "-c", "echo 'INFO probe-info' >&2; echo 'WARN probe-warning' >&2; echo 'ERROR probe-error' >&2; exec cat > /dev/null"]
EOF
ct systemctl reload zerologd || fail "reload adding the probe worker failed"
probe_logged() { ct journalctl -u zerologd --no-pager -o cat ZEROLOG_PROGRAM=probe:0 | grep -q probe-error; }
wait_for 10 probe_logged || fail "the probe's lines are not in the journal under ZEROLOG_PROGRAM=probe:0"
ct journalctl -u zerologd --no-pager -o export ZEROLOG_PROGRAM=probe:0 >"$WORK/probe.export"
priority_of() {
  awk -v w="$1" '/^MESSAGE=/ { m = $0 } /^PRIORITY=/ { p = substr($0, 10) } /^$/ { if (index(m, w)) print p; m = ""; p = "" }' "$WORK/probe.export" | tail -n 1
}
for pair in probe-info:6 probe-warning:4 probe-error:3; do
  got=$(priority_of "${pair%%:*}")
  [[ $got == "${pair##*:}" ]] || fail "${pair%%:*} is at priority '$got', want ${pair##*:}"
done
others=$(ct journalctl -u zerologd --no-pager -o export ZEROLOG_PROGRAM=forwarder | grep '^ZEROLOG_PROGRAM=' | sort -u)
[[ $others == "ZEROLOG_PROGRAM=forwarder" ]] || fail "ZEROLOG_PROGRAM=forwarder selects other programs too: $others"
echo "probe lines at priorities 6, 4, 3; $(ct journalctl -u zerologd --no-pager -o cat ZEROLOG_PROGRAM=forwarder | wc -l) forwarder lines"
ct cp /root/zerolog.toml.orig /etc/zerolog/zerolog.toml
ct systemctl reload zerologd

step "8. upgrade: dpkg -i of a newer build under load; the conffile keeps a local edit"
dpkg-deb -R "$WORK/zerolog.deb" "$WORK/newer"
version=$(sed -n 's/^Version: //p' "$WORK/newer/DEBIAN/control")
sed -i "s/^Version: .*/Version: $version+zltest1/" "$WORK/newer/DEBIAN/control"
dpkg-deb -b "$WORK/newer" "$WORK/zerolog-newer.deb" >/dev/null
ct sh -c 'echo "# a local edit, kept across upgrades" >> /etc/zerolog/zerolog.toml'
ct systemctl restart zerologd
t0=$(ct date +%s)
old_main=$(main_pid)
# One line per logger run: a line logger sent without error was accepted.
ct sh -c 'i=0; while [ $i -lt 1500 ]; do
    if logger -T -n 127.0.0.1 -P 6000 -t zltest "upgrade-line $i" 2>/dev/null; then echo $i; fi
    i=$((i + 1))
  done > /root/accepted' &
LOAD=$!
sleep 1
ct dpkg -i /zltest/zerolog-newer.deb >"$WORK/upgrade.log" 2>&1 || {
  cat "$WORK/upgrade.log"
  fail "dpkg -i of the newer build failed"
}
wait "$LOAD"
[[ $(ct dpkg-query -W -f='${Version}' zerolog) == "$version+zltest1" ]] || fail "the newer version is not installed"
[[ $(main_pid) != "$old_main" ]] && active || fail "the service was not restarted by the upgrade"
ct grep -q 'a local edit, kept' /etc/zerolog/zerolog.toml || fail "the upgrade lost the local edit of the conffile"
accepted=$(ct sh -c 'wc -l < /root/accepted')
all_in() { [[ $(ct sh -c "grep -c 'upgrade-line' $LOG") -ge $accepted ]]; }
wait_for 30 all_in || true
missing=$(ct sh -c "grep -o 'upgrade-line [0-9]*' $LOG | awk '{ print \$2 }' | sort -n > /root/got; sort -n /root/accepted | comm -23 - /root/got | wc -l")
refused=$((1500 - accepted))
echo "upgrade: $accepted of 1,500 lines accepted ($refused refused while the input was down), $missing of them missing"
[[ $missing -eq 0 ]] || fail "$missing accepted lines were lost across the upgrade"
[[ $refused -gt 0 ]] || echo "NOTE: no line was refused: the restart fell between two lines"
deliver "after-upgrade $$"

step "the host is as it was (/tmp, /etc/passwd, /etc/group)"
[[ $(host_state) == "$HOST_BEFORE" ]] || fail "the test changed the host's /tmp, /etc/passwd or /etc/group"
step "all scenarios passed"
