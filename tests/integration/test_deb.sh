#!/bin/bash
# Integration test: `make deb`, and the package's whole life on this
# machine: install, start, send a metric, read it back, stop, remove, purge.
#
#   1. make deb: build/switchyard_VERSION-1_ARCH.deb, its control fields
#      (Depends on the libraries the binaries link, and adduser), conffiles,
#      maintainer scripts, every file owned by root; lintian has nothing
#      above pedantic to say (when lintian is installed);
#   2. apt-get install ./the.deb (nothing to download: a machine that built
#      it has every dependency): files in place, dpkg --verify clean, the
#      system user and group "switchyard", the shipped config passes
#      `switchyard --check` as that user with the installed Lua library and
#      plugins;
#   3. the daemon runs as the unit runs it: under systemd, the unit itself
#      (with a runtime drop-in pointing it at a test config); without
#      systemd (CI containers), the unit's command run as user switchyard
#      with an empty environment from / (setpriv, which execs: the signal
#      and the exit status are the daemon's own).  The test config listens
#      on free loopback ports, writes to a console sink (a file the user
#      owns) and a graphite sink (a capture listener), and serves HTTP;
#   4. a UDP metric comes back out of both sinks, /health answers 200 "up",
#      SIGTERM (systemctl stop) exits 0 after the final flush has written
#      a metric sent just before it;
#   5. dpkg -r removes the files and keeps the conffile and the user;
#      dpkg -P removes the conffile, /etc/switchyard, the user and the
#      group, and leaves systemd's state as it was before the test.
#
# Needs root (it installs a package): run as anyone else it fails, saying
# so.  It refuses to run if switchyard is already installed (as a package,
# by `make install PREFIX=/usr`, or as a user), and on any exit it purges
# what it installed.
#
# Prints `test_deb: N passed, M failed` last; exits non-zero on failure.
# shellcheck disable=SC2317 # (cleanup and helpers run indirectly)
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
NAME=test_deb
passed=0
failed=0
pids=()
installed=0      # this run installed the package (cleanup purges it)
dropin=          # a systemd drop-in this run wrote
made_user=0      # the user did not exist before this run

tmp=$(mktemp -d /tmp/sy-deb.XXXXXX)
# fd 9: the test's own output, for cleanup messages even when a signal
# interrupts a check whose output goes to /dev/null (children close it)
exec 9>&1
cleanup() {
    exec >&9 2>&1
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    if [ -n "$dropin" ] && [ -e "$dropin" ]; then
        systemctl stop switchyard.service >/dev/null 2>&1
        rm -rf "$(dirname "$dropin")"
        systemctl daemon-reload >/dev/null 2>&1
    fi
    if [ "$installed" = 1 ] && dpkg_known; then
        echo "cleanup: purging the switchyard package this test installed"
        dpkg -P switchyard >/dev/null 2>&1
    fi
    if [ "$made_user" = 1 ] && getent passwd switchyard >/dev/null; then
        echo "cleanup: removing the user switchyard this test created"
        deluser --quiet --system switchyard >/dev/null 2>&1
    fi
    if [ "$made_user" = 1 ] && getent group switchyard >/dev/null; then
        delgroup --quiet --system switchyard >/dev/null 2>&1
    fi
    if [ "${SY_KEEP_TMP:-}" = 1 ]; then
        echo "keeping temp dir $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# check LABEL CMD...: tests/lib/check.sh
. "$(dirname "$0")/../lib/check.sh"

# fail MESSAGE: a failed check that is not a command.
fail() {
    failed=$((failed + 1))
    echo "FAIL  $1"
}

finish() {
    if [ $((passed + failed)) -eq 0 ]; then
        failed=1
        echo "no check ran"
    fi
    echo "$NAME: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

# dpkg_known: dpkg knows switchyard in any state but not-installed.
dpkg_known() {
    local s
    s=$(dpkg-query -W -f='${db:Status-Status}' switchyard 2>/dev/null)
    [ -n "$s" ] && [ "$s" != not-installed ]
}

free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT [PID]: until something accepts on 127.0.0.1:PORT (10 s).
wait_port() {
    for _ in $(seq 200); do
        if [ -n "${2:-}" ]; then kill -0 "$2" 2>/dev/null || return 1; fi
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# wait_file FILE PATTERN: until a line of FILE matches PATTERN (10 s).
wait_file() {
    for _ in $(seq 200); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# http_get PORT PATH: the whole HTTP/1.0 response.
http_get() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
     printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3 &&
     timeout 5 cat <&3)
}

# snapshot: what the package may touch outside its own files, to compare
# before and after (systemd's enablement state, the user, the group).
snapshot() {
    find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
         /var/lib/systemd/deb-systemd-helper-masked -printf '%p %y %l\n' 2>/dev/null | sort
    getent passwd switchyard
    getent group switchyard
    ls -d /etc/switchyard /usr/lib/switchyard /usr/share/switchyard \
        /usr/share/doc/switchyard 2>/dev/null
    return 0
}

cd "$REPO" || exit 1

# ---------------------------------------------------------------------
# 0. root, and a machine without switchyard
# ---------------------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
    fail "test_deb installs a Debian package and must run as root (uid $(id -u)); run it as root, e.g. in CI"
    finish
fi
for tool in dpkg dpkg-deb dpkg-query setpriv python3; do
    command -v "$tool" >/dev/null 2>&1 || { fail "this test needs $tool"; finish; }
done
if dpkg_known; then
    fail "switchyard is already installed here ($(dpkg-query -W -f='${Version} ${db:Status-Status}' switchyard)): refusing to replace it; dpkg -P switchyard first"
    finish
fi
for f in /usr/bin/switchyard /usr/lib/libswitchyard.so /usr/lib/switchyard /usr/share/switchyard \
         /etc/switchyard /lib/systemd/system/switchyard.service; do
    if [ -e "$f" ]; then
        fail "$f exists without the package (a make install PREFIX=/usr?): refusing to let dpkg take it over and delete it"
        finish
    fi
done
if getent passwd switchyard >/dev/null || getent group switchyard >/dev/null; then
    fail "a user or group named switchyard exists: refusing (purging the package would delete it)"
    finish
fi
made_user=1
before=$(snapshot)
systemd=0
[ -d /run/systemd/system ] && systemd=1

# ---------------------------------------------------------------------
# 1. make deb, and what is in the package
# ---------------------------------------------------------------------
version=$(sed -n 's/^VERSION *:= *//p' Makefile)
arch=$(dpkg --print-architecture)
deb=$REPO/build/switchyard_${version}-1_${arch}.deb
DETAIL=$tmp/make-deb.log
check "make deb builds build/switchyard_${version}-1_${arch}.deb" \
    bash -c "make --no-print-directory deb >'$tmp/make-deb.log' 2>&1 && test -s '$deb'" || finish

field() { dpkg-deb -f "$deb" "$1"; }
check "control: Package switchyard, Version ${version}-1, Architecture $arch" \
    test "$(field Package) $(field Version) $(field Architecture)" = "switchyard ${version}-1 $arch"
check "control: Section net, Priority optional, a Maintainer, an extended Description" \
    bash -c "test '$(field Section) $(field Priority)' = 'net optional' &&
             test -n '$(field Maintainer)' && test \$(dpkg-deb -f '$deb' Description | wc -l) -gt 2"
depends=$(field Depends)
echo "      Depends: $depends"
check "control: Depends names adduser, libc6, libluajit, libevent, libhiredis, libprotobuf-c and libsnappy" \
    bash -c "d='$depends'; for p in adduser libc6 libluajit libevent-2.1 libhiredis libprotobuf-c libsnappy; do
                 case \"\$d\" in *\"\$p\"*) ;; *) exit 1;; esac; done"
# every Depends alternative group is satisfied here (the machine built it)
unmet=
IFS=, read -ra groups <<<"$depends"
for g in "${groups[@]}"; do
    ok=0
    IFS='|' read -ra alts <<<"$g"
    for a in "${alts[@]}"; do
        p=$(echo "$a" | sed -e 's/(.*//' -e 's/ //g')
        dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed && ok=1
    done
    [ "$ok" = 1 ] || unmet="$unmet [$g]"
done
check "every Depends is installed on this machine (nothing to download)$unmet" test -z "$unmet"
ctl=$tmp/control
dpkg-deb -e "$deb" "$ctl" 2>/dev/null
check "conffiles is exactly /etc/switchyard/switchyard.lua" \
    test "$(cat "$ctl/conffiles" 2>/dev/null)" = /etc/switchyard/switchyard.lua
check "md5sums lists the files (and not the conffile)" \
    bash -c "grep -q ' usr/bin/switchyard\$' '$ctl/md5sums' && ! grep -q ' etc/' '$ctl/md5sums'"
for s in postinst prerm postrm; do
    check "maintainer script $s is executable and valid sh" \
        bash -c "test -x '$ctl/$s' && sh -n '$ctl/$s'"
done
dpkg-deb -c "$deb" >"$tmp/contents"
DETAIL=$tmp/contents
check "every file in the package is owned by root/root" \
    bash -c "! awk '\$2 != \"root/root\"' '$tmp/contents' | grep -q ."
missing=
for f in ./usr/bin/switchyard ./usr/lib/libswitchyard.so ./usr/include/switchyard_sink.h \
         ./usr/lib/switchyard/plugins/console.so ./usr/lib/switchyard/plugins/graphite.so \
         ./usr/share/switchyard/lua/switchyard/config.lua ./usr/share/switchyard/lua/switchyard/route.lua \
         ./etc/switchyard/switchyard.lua ./lib/systemd/system/switchyard.service \
         ./usr/share/man/man8/switchyard.8.gz ./usr/share/doc/switchyard/copyright \
         ./usr/share/doc/switchyard/changelog.Debian.gz; do
    grep -q " $f\$" "$tmp/contents" || missing="$missing $f"
done
DETAIL=$tmp/contents
check "the package holds the daemon, plugins, Lua library, header, config, unit, man page, docs$missing" \
    test -z "$missing"
if command -v lintian >/dev/null 2>&1; then
    lintian --pedantic "$deb" >"$tmp/lintian.log" 2>&1
    lintian_rc=$?
    DETAIL=$tmp/lintian.log
    # its exit status too: a lintian that could not run prints no tag
    check "lintian ran (exit $lintian_rc) and found no error, warning or info" \
        bash -c "[ $lintian_rc -eq 0 ] && ! grep -qE '^[EWI]: ' '$tmp/lintian.log'"
    grep -E '^[EWIPX]: ' "$tmp/lintian.log" | sed 's/^/      lintian /'
else
    # .ci/deps.sh test installs it: a missing lintian fails, not skips
    DETAIL=
    check "lintian is installed (.ci/deps.sh test)" false
fi

# ---------------------------------------------------------------------
# 2. a test config, a capture listener (and, under systemd, a drop-in)
# ---------------------------------------------------------------------
# The user does not exist yet: the daemon's output directory is sticky and
# world-writable, as /tmp is.
chmod 755 "$tmp"
out=$tmp/out
mkdir -p "$out"
chmod 1777 "$out"
port=$(free_port)
hport=$(free_port)
cap=$tmp/carbon.txt
cat >"$tmp/capture.py" <<'EOF'
# A Graphite plaintext listener: appends whatever arrives to argv[1],
# writes its port to argv[2] once it listens.
import socket, sys, threading
out = open(sys.argv[1], "ab", buffering=0)
lock = threading.Lock()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(srv.getsockname()[1]))
import os; os.rename(sys.argv[2] + ".tmp", sys.argv[2])
def serve(c):
    while True:
        data = c.recv(65536)
        if not data:
            break
        with lock:
            out.write(data)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
: >"$cap"
/usr/bin/python3 "$tmp/capture.py" "$cap" "$tmp/carbon.port" 2>"$tmp/capture.log" 9>&- &
pids+=("$!")
for _ in $(seq 100); do [ -s "$tmp/carbon.port" ] && break; sleep 0.05; done
cport=$(cat "$tmp/carbon.port" 2>/dev/null)
check "the graphite capture listener is up (port ${cport:-none})" test -n "$cport" || finish

conf=$tmp/test.lua
cat >"$conf" <<EOF
-- test_deb: the installed package, run as its unit runs it.
return {
  listen = { "udp://127.0.0.1:$port", "tcp://127.0.0.1:$port" },
  flushInterval = 1000,
  graphite = { legacyNamespace = false, globalPrefix = "stats" },
  httpAddress = "127.0.0.1:$hport",
  sinks = {
    out = { plugin = "console", path = "$out/console.txt" },
    carbon = { plugin = "graphite", host = "127.0.0.1", port = $cport },
  },
}
EOF
chmod 644 "$conf"

# Under systemd the postinst starts the unit: a runtime drop-in written
# before the installation points it at the test config, so the shipped
# config (which sends to a carbon on 127.0.0.1:2003, maybe this machine's)
# never runs.  Everything else is the unit as shipped.
if [ "$systemd" = 1 ]; then
    dropin=/run/systemd/system/switchyard.service.d/test-deb.conf
    mkdir -p "$(dirname "$dropin")"
    cat >"$dropin" <<EOF
# test_deb.sh: the unit as shipped, with the test's config
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/switchyard --check $conf
ExecStart=
ExecStart=/usr/bin/switchyard -c $conf
PrivateTmp=no
ReadWritePaths=$out
Restart=no
EOF
    systemctl daemon-reload
fi

# ---------------------------------------------------------------------
# 3. install
# ---------------------------------------------------------------------
installed=1
DETAIL=$tmp/install.log
if command -v apt-get >/dev/null 2>&1; then
    check "apt-get install ./$(basename "$deb") succeeds" \
        bash -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                     -o DPkg::Lock::Timeout=120 '$deb' >'$tmp/install.log' 2>&1"
else
    check "dpkg -i $(basename "$deb") succeeds" bash -c "dpkg -i '$deb' >'$tmp/install.log' 2>&1"
fi
if ! check "dpkg: switchyard ${version}-1 is installed" \
        test "$(dpkg-query -W -f='${Status} ${Version}' switchyard 2>/dev/null)" = \
             "install ok installed ${version}-1"; then
    finish
fi
missing=
for f in /usr/bin/switchyard /usr/lib/libswitchyard.so /usr/lib/switchyard/plugins/console.so \
         /usr/lib/switchyard/plugins/graphite.so /usr/share/switchyard/lua/switchyard/config.lua \
         /etc/switchyard/switchyard.lua /lib/systemd/system/switchyard.service \
         /usr/share/man/man8/switchyard.8.gz /usr/share/doc/switchyard/copyright; do
    test -s "$f" || missing="$missing $f"
done
check "installed files are in place$missing" test -z "$missing"
DETAIL=$tmp/verify.log
check "dpkg --verify switchyard: every file as packaged" \
    bash -c "dpkg --verify switchyard >'$tmp/verify.log' 2>&1 && ! test -s '$tmp/verify.log'"
pw=$(getent passwd switchyard)
IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
check "the system user switchyard exists ($pw)" test -n "$pw"
check "it is a system user (uid $uid < 1000) whose primary group is switchyard" \
    bash -c "test '${uid:-99999}' -lt 1000 && test \"\$(getent group switchyard | cut -d: -f3)\" = '${gid:-x}'"
check "it has no login shell and no home directory ($shell, $home)" \
    bash -c "case '$shell' in */nologin|*/false) ;; *) exit 1;; esac && test ! -e '$home'"
check "the unit runs /usr/bin/switchyard -c /etc/switchyard/switchyard.lua as User=switchyard" \
    bash -c "grep -qx 'ExecStart=/usr/bin/switchyard -c /etc/switchyard/switchyard.lua' /lib/systemd/system/switchyard.service &&
             grep -qx 'User=switchyard' /lib/systemd/system/switchyard.service"
check "every library the daemon and plugins need is found (ldd)" \
    bash -c "! ldd /usr/bin/switchyard /usr/lib/switchyard/plugins/*.so /usr/lib/libswitchyard.so | grep -q 'not found'"
check "/usr/bin/switchyard --version says $version" \
    bash -c "/usr/bin/switchyard --version 2>&1 | grep -qF '$version'"
if command -v pkg-config >/dev/null 2>&1; then
    check "pkg-config finds switchyard-sink: plugindir /usr/lib/switchyard/plugins" \
        test "$(pkg-config --variable=plugindir switchyard-sink 2>/dev/null)" = /usr/lib/switchyard/plugins
fi

# as_switchyard CMD...: run as the unit runs its commands: user and group
# switchyard, an empty environment, from /, no new privileges, with the
# unit's capabilities when this process has them to give.
caps=()
capbnd=$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)
if [ -n "$capbnd" ] && (( (0x$capbnd >> 10 & 1) && (0x$capbnd >> 12 & 1) )); then
    # shellcheck disable=SC2054 # (the commas are setpriv's)
    caps=(--inh-caps=+net_admin,+net_bind_service --ambient-caps=+net_admin,+net_bind_service
          --bounding-set=-all,+net_admin,+net_bind_service)
fi
as_switchyard() {
    (cd / && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        setpriv --reuid=switchyard --regid=switchyard --init-groups --no-new-privs \
        "${caps[@]}" "$@")
}
if [ ${#caps[@]} -gt 0 ] && ! as_switchyard /bin/true 2>/dev/null; then
    echo "      (setpriv cannot pass CAP_NET_ADMIN/CAP_NET_BIND_SERVICE here: running without them)"
    caps=()
fi
DETAIL=$tmp/check-etc.log
check "as user switchyard, switchyard --check /etc/switchyard/switchyard.lua accepts the shipped config" \
    bash -c "$(declare -p caps); $(declare -f as_switchyard);
             as_switchyard /usr/bin/switchyard --check /etc/switchyard/switchyard.lua >'$tmp/check-etc.log' 2>&1"

# ---------------------------------------------------------------------
# 4. run it as the unit would
# ---------------------------------------------------------------------
pid=
if [ "$systemd" = 1 ]; then
    echo "      systemd is running: the postinst started the unit (with the test config's drop-in)"
    check "postinst enabled switchyard.service" systemctl is-enabled --quiet switchyard.service
    for _ in $(seq 100); do
        systemctl is-active --quiet switchyard.service && break
        sleep 0.1
    done
    check "postinst started switchyard.service" systemctl is-active --quiet switchyard.service
    pid=$(systemctl show -p MainPID --value switchyard.service)
    [ "$pid" = 0 ] && pid=
else
    echo "      systemd is not running: the unit's command runs as user switchyard (setpriv)"
    DETAIL=$tmp/check.log
    check "ExecStartPre: switchyard --check accepts the test config, as user switchyard" \
        bash -c "$(declare -p caps); $(declare -f as_switchyard);
                 as_switchyard /usr/bin/switchyard --check '$conf' >'$tmp/check.log' 2>&1"
    # one fork, exec'd down to the daemon: $! is the daemon itself
    (cd / && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        setpriv --reuid=switchyard --regid=switchyard --init-groups --no-new-privs \
        "${caps[@]}" /usr/bin/switchyard -c "$conf") >"$tmp/run.log" 2>&1 9>&- &
    pid=$!
    pids+=("$pid")
fi
DETAIL=$tmp/run.log
if ! check "the daemon is up: it accepts on its TCP listener (pid ${pid:-none})" \
        wait_port "$port" "$pid"; then
    [ "$systemd" = 1 ] && journalctl -u switchyard.service -n 30 --no-pager 2>/dev/null | sed 's/^/      /'
    finish
fi
check "it runs as user switchyard" test "$(ps -o user= -p "$pid" | tr -d ' ')" = switchyard

# ---------------------------------------------------------------------
# 5. a metric in, the same metric out; /health; a clean stop
# ---------------------------------------------------------------------
printf 'deb.gauge:42|g\ndeb.count:3|c\n' >"/dev/udp/127.0.0.1/$port"
DETAIL=$tmp/run.log
check "the UDP gauge comes out of the console sink: stats.gauges.deb.gauge 42" \
    wait_file "$out/console.txt" '^stats\.gauges\.deb\.gauge 42 '
check "the UDP counter too: stats.counters.deb.count.count 3" \
    wait_file "$out/console.txt" '^stats\.counters\.deb\.count\.count 3 '
check "the console file was written by the daemon as user switchyard" \
    test "$(stat -c %U "$out/console.txt" 2>/dev/null)" = switchyard
DETAIL=$tmp/run.log
check "the graphite sink delivers it to the capture listener" \
    wait_file "$cap" '^stats\.gauges\.deb\.gauge 42 '
http_get "$hport" /health >"$tmp/health.txt" 2>&1
DETAIL=$tmp/health.txt
check "GET /health on the admin HTTP port answers 200 up" \
    bash -c "head -1 '$tmp/health.txt' | grep -q '^HTTP/1\.[01] 200' && tail -1 '$tmp/health.txt' | grep -qx up"

# the final flush: a metric sent just before the stop must reach both sinks
printf 'deb.final:7|g\n' >"/dev/udp/127.0.0.1/$port"
if [ "$systemd" = 1 ]; then
    DETAIL=$tmp/systemctl.log
    check "systemctl stop switchyard" bash -c "systemctl stop switchyard.service >'$tmp/systemctl.log' 2>&1"
    st="$(systemctl show -p ExecMainCode --value switchyard.service) $(systemctl show -p ExecMainStatus --value switchyard.service)"
    check "the daemon exited 0 on SIGTERM (ExecMainCode/Status: $st)" test "$st" = "1 0"
    journalctl -u switchyard.service --no-pager -n 50 >"$tmp/run.log" 2>/dev/null
else
    kill -TERM "$pid"
    for _ in $(seq 400); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
        fail "the daemon did not exit within 20 s of SIGTERM"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid"
    rc=$?
    DETAIL=$tmp/run.log
    check "the daemon exited 0 on SIGTERM (exit $rc)" test "$rc" -eq 0
fi
DETAIL=$tmp/run.log
check "the final flush wrote the last gauge to the console file" \
    grep -q '^stats\.gauges\.deb\.final 7 ' "$out/console.txt"
sleep 0.2 # the capture thread's last write
check "and sent it to graphite before the daemon exited" \
    grep -q '^stats\.gauges\.deb\.final 7 ' "$cap"
DETAIL=$tmp/run.log
check "the daemon logged no error" bash -c "! grep -qiw error '$tmp/run.log'"
if [ -n "$dropin" ]; then
    rm -rf "$(dirname "$dropin")"
    dropin=
    systemctl daemon-reload
fi

# ---------------------------------------------------------------------
# 6. remove, purge
# ---------------------------------------------------------------------
DETAIL=$tmp/remove.log
check "dpkg -r switchyard succeeds" bash -c "dpkg -r switchyard >'$tmp/remove.log' 2>&1"
check "dpkg: switchyard is removed, its config files kept" \
    test "$(dpkg-query -W -f='${db:Status-Status}' switchyard 2>/dev/null)" = config-files
left=
for f in /usr/bin/switchyard /usr/lib/libswitchyard.so /usr/lib/switchyard /usr/share/switchyard \
         /usr/include/switchyard_sink.h /lib/systemd/system/switchyard.service \
         /usr/share/man/man8/switchyard.8.gz /usr/share/doc/switchyard; do
    [ -e "$f" ] && left="$left $f"
done
check "remove: every packaged file is gone$left" test -z "$left"
check "remove: the conffile /etc/switchyard/switchyard.lua stays" test -s /etc/switchyard/switchyard.lua
check "remove: the user switchyard stays" getent passwd switchyard
if [ "$systemd" = 1 ]; then
    check "remove: the service is not running" bash -c "! systemctl is-active --quiet switchyard.service"
fi
DETAIL=$tmp/purge.log
check "dpkg -P switchyard succeeds" bash -c "dpkg -P switchyard >'$tmp/purge.log' 2>&1"
check "dpkg no longer knows switchyard" bash -c "! dpkg-query -W -f='\${db:Status-Status}' switchyard 2>/dev/null | grep -qv not-installed"
installed=0
check "purge: /etc/switchyard and its config are gone" test ! -e /etc/switchyard
check "purge: the user switchyard is gone" bash -c "! getent passwd switchyard"
check "purge: the group switchyard is gone" bash -c "! getent group switchyard"
# deb-systemd-helper (what debhelper's scripts use too) keeps its mask
# state directory once it made one; an empty one left by this run goes.
if [ -d /var/lib/systemd/deb-systemd-helper-masked ] &&
   ! grep -q '^/var/lib/systemd/deb-systemd-helper-masked ' <<<"$before"; then
    rmdir /var/lib/systemd/deb-systemd-helper-masked 2>/dev/null
fi
after=$(snapshot)
diff <(echo "$before") <(echo "$after") >"$tmp/state.diff"
DETAIL=$tmp/state.diff
check "purge: systemd's unit state, users and directories are as before the test" \
    test ! -s "$tmp/state.diff"

finish
