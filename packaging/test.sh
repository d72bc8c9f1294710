#!/usr/bin/env bash
# Tests the packages the way a distribution would, on this machine (as root: it installs and
# removes the zerolog .deb). Run by .ci/run after `cargo test`; idempotent (purges a previous
# install first) and bounded in time (every wait has a deadline).
#
#   1. builds the .deb from a clean copy of the source tree (git's tracked and untracked,
#      not ignored, files) with the documented command, packaging/build-deb.sh
#   2. lintian: no errors, no warnings but those listed in packaging/README.md
#   3. installs it with dpkg -i; checks files, conffile, user, stripped binaries, Depends
#   4. systemd-analyze verify on the installed unit
#   5. zerologd --check on the installed config, then zerologd from the installed files,
#      within the unit's capability bounding set and with no_new_privs (setpriv), receives a
#      line from logger and delivers it to /var/log/zerolog/messages.log; zerologd status;
#      the installed logrotate config rotates that file and the next line goes to a new one
#   6. man zerologd renders
#   7. dpkg -r keeps only the conffile and the user; dpkg -P removes the conffile
#   8. packaging/systemd-test.sh: the .deb in a container booted with systemd as PID 1
#   9. builds the RPM with rpmbuild (packaging/zerolog.spec) and checks its contents
#
# Needs: dpkg, lintian, systemd (systemd-analyze), man-db, bsdutils (logger), util-linux
# (setpriv), binutils (readelf), rpm (rpmbuild), logrotate, cargo-deb, and for step 8
# systemd-container and debootstrap. .ci/run installs them. Set
# ZEROLOG_PKG_ALLOW_SKIP=1 to let a missing rpmbuild skip the RPM step (never in CI).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

step() { echo "== packaging: $*"; }
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

[[ $(id -u) -eq 0 ]] || fail "packaging/test.sh installs a package: run it as root"
for tool in dpkg dpkg-deb dpkg-shlibdeps lintian systemd-analyze man logger setpriv readelf cargo-deb timeout ss logrotate; do
  command -v "$tool" >/dev/null || fail "$tool is missing (.ci/run installs it)"
done

WORK=$(mktemp -d /tmp/zerolog-pkgtest.XXXXXX)
ZPID=
cleanup() {
  if [[ -n $ZPID ]] && kill -0 "$ZPID" 2>/dev/null; then
    kill -KILL "$ZPID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Waits up to $1 seconds for the command in the remaining arguments to succeed.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# True if dpkg is configured not to install PATH (path-exclude in /etc/dpkg/dpkg.cfg.d, as
# slim container images do for man pages and docs) and no path-include brings it back.
dpkg_excludes() {
  local path=$1 excluded=1 line pattern
  while read -r line; do
    pattern=${line#* }
    case $line in
    path-exclude*) [[ $path == $pattern ]] && excluded=0 ;;
    path-include*) [[ $path == $pattern ]] && excluded=1 ;;
    esac
  done < <(cat /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d/* 2>/dev/null | grep -E '^path-(ex|in)clude[= ]' | tr '=' ' ')
  return $excluded
}

# A previous run's install (or an interrupted one) goes first.
if dpkg-query -W -f='${Status}' zerolog 2>/dev/null | grep -qv "not-installed"; then
  step "purging a previous install"
  dpkg -P zerolog >/dev/null
fi

step "build the .deb from a clean copy of the source tree"
SRC=$WORK/src
mkdir -p "$SRC"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [[ -e $f ]] && printf '%s\0' "$f"
  done | tar --null -T - -cf - | tar -xf - -C "$SRC"
else
  tar --exclude=./target --exclude=./.venv --exclude=./.git -cf - . | tar -xf - -C "$SRC"
fi
# The build shares nothing with the working tree but cargo's download cache.
(cd "$SRC" && timeout 1800 packaging/build-deb.sh) || fail "packaging/build-deb.sh failed"
DEB=$(ls "$SRC"/target/debian/zerolog_*.deb)
echo "built $DEB"

step "lintian"
# Tags accepted, each explained in packaging/README.md.
LINTIAN_ACCEPTED=initial-upload-closes-no-bugs
lintian --pedantic --display-info --suppress-tags "$LINTIAN_ACCEPTED" --fail-on error,warning "$DEB" ||
  fail "lintian reports errors or warnings (above)"
echo "lintian: no errors, no warnings besides $LINTIAN_ACCEPTED"

step "Depends covers what dpkg-shlibdeps finds for both binaries"
mkdir -p "$WORK/shlibs/debian" "$WORK/x"
touch "$WORK/shlibs/debian/control"
dpkg-deb -x "$DEB" "$WORK/x"
shlibs=$(cd "$WORK/shlibs" && dpkg-shlibdeps -O "$WORK/x/usr/bin/zerolog" "$WORK/x/usr/bin/zerologd" 2>/dev/null)
depends=$(dpkg-deb -f "$DEB" Depends)
IFS=',' read -ra needed <<<"${shlibs#shlibs:Depends=}"
for d in "${needed[@]}"; do
  d=$(echo "$d" | xargs)
  [[ ", $depends," == *", $d,"* ]] || fail "Depends ($depends) lacks '$d' (dpkg-shlibdeps: $shlibs); update [package.metadata.deb] depends"
done
echo "Depends: $depends"

step "dpkg -i"
dpkg -i "$DEB"
for f in /usr/bin/zerolog /usr/bin/zerologd /etc/zerolog/zerolog.toml /usr/lib/systemd/system/zerologd.service \
  /usr/share/man/man1/zerolog.1.gz /usr/share/man/man1/zerologd.1.gz /usr/share/man/man1/zerolog-forwarder.1.gz \
  /usr/share/bash-completion/completions/zerolog /usr/share/bash-completion/completions/zerologd \
  /usr/share/zsh/vendor-completions/_zerolog /usr/share/zsh/vendor-completions/_zerologd \
  /usr/share/fish/vendor_completions.d/zerolog.fish /usr/share/fish/vendor_completions.d/zerologd.fish \
  /usr/share/doc/zerolog/copyright /usr/share/doc/zerolog/changelog.Debian.gz /etc/logrotate.d/zerolog; do
  if [[ ! -e $f ]]; then
    dpkg_excludes "$f" || fail "$f not installed"
    echo "NOTE: $f is in the package but this machine's dpkg configuration excludes it"
  fi
done
dpkg-query -W -f='${Conffiles}\n' zerolog | grep -q '^ /etc/zerolog/zerolog.toml ' ||
  fail "/etc/zerolog/zerolog.toml is not a conffile"
getent passwd zerolog >/dev/null || fail "no zerolog user after install"
[[ $(stat -c '%U:%G %a' /var/log/zerolog) == "zerolog:adm 2750" ]] ||
  fail "/var/log/zerolog is $(stat -c '%U:%G %a' /var/log/zerolog), want zerolog:adm 2750"
for b in zerolog zerologd; do
  if readelf -S "/usr/bin/$b" | grep -qE '\.(debug_info|symtab)'; then
    fail "/usr/bin/$b is not stripped"
  fi
done
zerologd --version
grep -q "complete -F _zerologd" /usr/share/bash-completion/completions/zerologd ||
  fail "bash completion of zerologd looks wrong"

step "systemd-analyze verify"
# Also checks that ExecStart's binaries exist and the Documentation= man pages resolve.
SYSTEMD_LOG_LEVEL=notice systemd-analyze verify /usr/lib/systemd/system/zerologd.service 2>&1 |
  tee "$WORK/verify.txt"
IGNORE="running with root privileges"
# Documentation=man:... cannot resolve where dpkg excludes the man pages (noted above).
dpkg_excludes /usr/share/man/man1/zerologd.1.gz && IGNORE="$IGNORE|Command 'man "
if grep -Ev "$IGNORE" "$WORK/verify.txt" | grep -q .; then
  fail "systemd-analyze verify complained"
fi
grep -q '^Type=notify' /usr/lib/systemd/system/zerologd.service || fail "the unit is not Type=notify"

step "zerologd --check -c /etc/zerolog/zerolog.toml"
zerologd --check -c /etc/zerolog/zerolog.toml

step "zerologd from the installed files receives a line from logger and delivers it"
for port in 6000 6001 6200; do
  if ss -Hltn "sport = :$port" | grep -q .; then
    fail "port $port is in use; the packaged default topology needs 6000, 6001 and 6200"
  fi
done
if [[ -S /run/zerolog/zerologd.sock ]] && zerologd status >/dev/null 2>&1; then
  fail "a zerologd (the packaged service?) already runs with /run/zerolog; stop it first"
fi
# As the unit runs it: root, only the unit's capabilities (CapabilityBoundingSet=), no new
# privileges. zerologd's default runtime dir as root is /run/zerolog (RuntimeDirectory=).
CAPS=-all,+net_bind_service,+setuid,+setgid,+kill
: >"$WORK/zerologd.log"
setpriv --no-new-privs --bounding-set "$CAPS" --inh-caps -all \
  /usr/bin/zerologd -c /etc/zerolog/zerolog.toml >"$WORK/zerologd.log" 2>&1 &
ZPID=$!
if ! wait_for 30 grep -q "pipeline ready" "$WORK/zerologd.log"; then
  cat "$WORK/zerologd.log"
  fail "zerologd did not log 'pipeline ready' within 30 s"
fi
TAG="pkgtest-$$-$RANDOM"
logger -T -n 127.0.0.1 -P 6000 -t zerolog-pkgtest "$TAG delivered through the package"
if ! wait_for 30 grep -q "$TAG delivered" /var/log/zerolog/messages.log; then
  cat "$WORK/zerologd.log"
  fail "the logger line did not reach /var/log/zerolog/messages.log within 30 s"
fi
grep "$TAG" /var/log/zerolog/messages.log
zerologd status | tee "$WORK/status.txt"
[[ $(grep -c RUNNING "$WORK/status.txt") -eq 3 ]] || fail "zerologd status does not show 3 RUNNING programs"
# Counters kept by programs that run as zerolog, in files zerologd opened for them.
grep -Eq '^forwarder +.*messages_received=1( |$)' "$WORK/status.txt" ||
  fail "zerologd status lacks the forwarder's counters (messages_received=1)"
# The elements run as the zerolog user, as the default topology says.
for pid in $(awk 'NR > 1 && /^$/ { exit } NR > 1 { print $3 }' "$WORK/status.txt"); do
  [[ $(ps -o user= -p "$pid") == zerolog ]] || fail "program pid $pid runs as $(ps -o user= -p "$pid"), not zerolog"
done

step "logrotate renames messages.log (as zerolog, su); the worker writes the next line to a new one"
LOG=/var/log/zerolog/messages.log
logrotate -f -s "$WORK/logrotate.state" /etc/logrotate.d/zerolog
grep -q "$TAG delivered" "$LOG.1" || fail "$LOG.1 (the rotated file) lacks the first line"
[[ $(stat -c '%U:%G %a' "$LOG") == "zerolog:adm 640" ]] ||
  fail "the new $LOG is $(stat -c '%U:%G %a' "$LOG"), want zerolog:adm 640 (logrotate's create)"
logger -T -n 127.0.0.1 -P 6000 -t zerolog-pkgtest "$TAG after the rotation"
if ! wait_for 30 grep -q "$TAG after the rotation" "$LOG"; then
  cat "$WORK/zerologd.log"
  fail "after the rotation, the next line did not reach the new $LOG within 30 s"
fi
! grep -q "$TAG after" "$LOG.1" || fail "a line after the rotation went to the rotated $LOG.1"

kill -TERM "$ZPID"
status=0
timeout 60 tail --pid="$ZPID" -f /dev/null || fail "zerologd did not stop within 60 s of SIGTERM"
wait "$ZPID" || status=$?
ZPID=
[[ $status -eq 0 ]] || {
  cat "$WORK/zerologd.log"
  fail "zerologd exited with status $status after SIGTERM"
}

step "man zerologd"
if [[ -e /usr/share/man/man1/zerologd.1.gz ]]; then
  MAN=(zerologd)
else
  # Only when dpkg excluded the installed page (checked above): the page from the package.
  echo "NOTE: rendering the page from the .deb: dpkg excludes /usr/share/man here"
  MAN=(-l "$WORK/x/usr/share/man/man1/zerologd.1.gz")
fi
MANPAGER=cat MANWIDTH=80 man "${MAN[@]}" >"$WORK/man.txt" 2>"$WORK/man.err" || {
  cat "$WORK/man.err"
  fail "man zerologd failed"
}
grep -q -- "--config" "$WORK/man.txt" || fail "man zerologd does not show --config"
head -n 8 "$WORK/man.txt"

step "dpkg -r keeps the conffile and the user"
dpkg -r zerolog
for f in /usr/bin/zerolog /usr/bin/zerologd /usr/lib/systemd/system/zerologd.service /usr/share/man/man1/zerologd.1.gz \
  /usr/share/bash-completion/completions/zerologd /usr/share/doc/zerolog/copyright; do
  [[ ! -e $f ]] || fail "$f still there after dpkg -r"
done
[[ -f /etc/zerolog/zerolog.toml ]] || fail "dpkg -r removed the conffile"
getent passwd zerolog >/dev/null || fail "dpkg -r removed the zerolog user"
dpkg-query -W -f='${Status}\n' zerolog | grep -q "config-files" || fail "not in config-files state after dpkg -r"

step "dpkg -P removes the conffile, keeps the user"
dpkg -P zerolog
[[ ! -e /etc/zerolog/zerolog.toml ]] || fail "the conffile survived dpkg -P"
[[ ! -e /etc/zerolog ]] || fail "/etc/zerolog survived dpkg -P"
[[ ! -e /var/log/zerolog ]] || fail "/var/log/zerolog survived dpkg -P"
getent passwd zerolog >/dev/null || fail "dpkg -P removed the zerolog user"

step "under systemd as PID 1 (packaging/systemd-test.sh)"
packaging/systemd-test.sh "$DEB"

step "RPM"
if ! command -v rpmbuild >/dev/null; then
  [[ ${ZEROLOG_PKG_ALLOW_SKIP:-} == 1 ]] || fail "rpmbuild missing (apt-get install rpm)"
  echo "SKIP: rpmbuild not installed: the RPM was not built"
else
  # rpm's database on Debian knows no packages: --nodeps skips the BuildRequires check.
  rpmbuild -bb --nodeps --define "zerolog_prebuilt 1" --define "_sourcedir $SRC" \
    --define "_topdir $WORK/rpm" packaging/zerolog.spec >"$WORK/rpmbuild.log" 2>&1 || {
    tail -n 40 "$WORK/rpmbuild.log"
    fail "rpmbuild failed"
  }
  RPM=$(ls "$WORK"/rpm/RPMS/*/zerolog-*.rpm)
  rpm -qlp "$RPM" >"$WORK/rpm-files.txt"
  for f in /usr/bin/zerolog /usr/bin/zerologd /etc/zerolog/zerolog.toml /usr/lib/systemd/system/zerologd.service \
    /usr/share/man/man1/zerologd.1; do
    grep -qx "$f" "$WORK/rpm-files.txt" || fail "$f missing from the RPM"
  done
  rpm -qp --configfiles "$RPM" | grep -qx /etc/zerolog/zerolog.toml || fail "the RPM's zerolog.toml is not %config"
  rpm -qp --scripts "$RPM" | grep -q "useradd -r" || fail "the RPM does not create the zerolog user"
  echo "built $(basename "$RPM")"
fi

echo "== packaging: all checks passed"
