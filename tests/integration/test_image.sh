#!/bin/bash
# Integration test: `make image` and `make image-save`, the container image
# FROM scratch, checked without a container runtime where none works.
#
#   1. make image-save, under a tag of the test's own (removed at the end):
#      podman builds the image and writes it as an OCI archive;
#   2. the archive is a valid OCI layout with one image of one layer; its
#      config runs /usr/bin/switchyard -c /etc/switchyard/switchyard.lua as
#      65532:65532, declares the two volumes and the ports, and carries the
#      OCI labels for version (the Makefile's), revision and source; the
#      layer is unpacked into a root directory;
#   3. every file in it has a reason to be there: the daemon; one plugin per
#      plugins/*.c and plugins/*/; the Lua modules a config requires, as in lua/switchyard;
#      the default config (core/dist/image/switchyard.lua); /etc/passwd and
#      /etc/group naming 65532; and the shared libraries, which must be
#      exactly those the ELF files need (their DT_NEEDED entries, followed
#      from library to library, and the interpreter, all read with readelf,
#      not ldd).  Everything is root's and read-only except the two volumes;
#   4. under chroot (as root), as user 65532 and without /proc: --version,
#      --check of the image's own /etc/switchyard/switchyard.lua, and of a
#      broken config (refused);
#   5. the daemon, run under chroot as 65532 with a test config copied over
#      /etc/switchyard/switchyard.lua (every plugin configured): StatsD
#      lines over UDP, TCP and the Unix socket in /run/switchyard come out
#      at a Graphite listener; the files it maps (/proc/PID/maps) are all
#      in the root and are every ELF file there; SIGTERM exits 0;
#   6. the image's default config, run for real in a network namespace of
#      its own (unshare -n; skipped where that is refused): a UDP line sent
#      to 127.0.0.1:8125 is printed on the daemon's standard output at the
#      next flush, and /health answers on port 8127;
#   7. podman run, where a runtime works: podman's default one, else runc
#      with lower rlimits (in this sandbox crun refuses podman's
#      RLIMIT_NOFILE and hybrid cgroups; runc works): --version, --check;
#      the image as it is, ports published on loopback: /health answers,
#      UDP and TCP lines are in `podman logs` at the flush, the daemon runs
#      as 65532, its socket is in the /run/switchyard volume, `podman
#      stop` exits 0; then a config volume, a host directory as the socket
#      volume and the host's network: lines through the socket and UDP
#      reach the Graphite listener, and `podman kill -s HUP` reloads the
#      config.  Where no runtime works it says SKIP and why.
#
# Needs podman, and root for chroot and the unpacked file ownership.
#
# Prints `test_image: N passed, M failed` last; exits non-zero on failure.
# shellcheck disable=SC2317 # (cleanup and helpers run indirectly)
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
NAME=test_image
passed=0
failed=0
skipped=()
pids=()
UID_SY=65532

tmp=$(mktemp -d /tmp/sy-image.XXXXXX)
version=$(sed -n 's/^VERSION *:= *//p' "$REPO/Makefile")
image=localhost/switchyard-test-$$:$version
built=0
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    [ -n "${ctr:-}" ] && podman rm -f -v "$ctr" >/dev/null 2>&1
    [ "$built" = 1 ] && podman rmi -f "$image" >/dev/null 2>&1
    if [ "${SY_KEEP_TMP:-}" = 1 ]; then
        echo "keeping temp dir $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

# check LABEL CMD...: tests/lib/check.sh
. "$(dirname "$0")/../lib/check.sh"

skip() {
    skipped+=("$1")
    echo "SKIP  $1"
}

finish() {
    if [ $((passed + failed)) -eq 0 ]; then
        failed=1
        echo "no check ran"
    fi
    [ ${#skipped[@]} -gt 0 ] && echo "$NAME: ${#skipped[@]} skipped"
    echo "$NAME: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID: until something accepts on 127.0.0.1:PORT (5 s).
wait_port() {
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# wait_file FILE PATTERN [SECONDS]: until a line of FILE matches PATTERN.
wait_file() {
    for _ in $(seq $((${3:-10} * 20))); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

cd "$REPO" || exit 1
CHROOT=$(command -v chroot)
export CHROOT

if ! command -v podman >/dev/null 2>&1; then
    check "podman is installed (./.ci/deps.sh test installs it)" false
    finish
fi
if [ "$(id -u)" -ne 0 ]; then
    check "running as root (chroot, and the image's file owners when unpacked)" false
    finish
fi

# ---------------------------------------------------------------------
# 1. make image-save
# ---------------------------------------------------------------------
archive=$tmp/image.tar
DETAIL=$tmp/make.log
built=1
check "make image-save builds $image and writes an OCI archive" \
    bash -c "make --no-print-directory IMAGE='$image' IMAGE_ARCHIVE='$archive' image-save \
                 >'$tmp/make.log' 2>&1 && test -s '$archive'" || finish
size=$(podman image inspect --format '{{.Size}}' "$image" 2>/dev/null)
echo "      image size: ${size:-?} bytes ($(du -k "$archive" | cut -f1) KiB archive)"
check "podman lists the image" test -n "$size"

# ---------------------------------------------------------------------
# 2. the OCI layout, the image config, the layer unpacked
# ---------------------------------------------------------------------
oci=$tmp/oci
root=$tmp/root
mkdir -p "$oci" "$root"
DETAIL=$tmp/oci.log
check "the archive unpacks (tar)" bash -c "tar -xf '$archive' -C '$oci' 2>'$tmp/oci.log'"
cat >"$tmp/oci.py" <<'EOF'
# oci.py DIR IMAGE VERSION UID: check the OCI layout in DIR and print the
# path of each layer blob, base first.  Fails (exit 1) saying why.
import json, os, sys
d, image, version, uid = sys.argv[1:5]
def blob(digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(d, "blobs", algo, hexd)
def need(cond, why):
    if not cond:
        sys.exit("oci: " + why)
need(json.load(open(os.path.join(d, "oci-layout")))["imageLayoutVersion"] == "1.0.0", "oci-layout")
index = json.load(open(os.path.join(d, "index.json")))
ms = index["manifests"]
need(len(ms) == 1, "one manifest in index.json, not %d" % len(ms))
need(ms[0]["mediaType"] == "application/vnd.oci.image.manifest.v1+json", ms[0]["mediaType"])
ref = ms[0].get("annotations", {}).get("org.opencontainers.image.ref.name", "")
need(ref in (image, image.split(":", 1)[1]), "ref.name %r" % ref)
man = json.load(open(blob(ms[0]["digest"])))
cfg = json.load(open(blob(man["config"]["digest"])))
need(cfg["os"] == "linux", "os %r" % cfg["os"])
need(len(man["layers"]) == 1, "one layer (squashed), not %d" % len(man["layers"]))
c = cfg["config"]
need(c.get("User") == "%s:%s" % (uid, uid), "User %r" % c.get("User"))
need(c.get("Entrypoint") == ["/usr/bin/switchyard"], "Entrypoint %r" % c.get("Entrypoint"))
need(c.get("Cmd") == ["-c", "/etc/switchyard/switchyard.lua"], "Cmd %r" % c.get("Cmd"))
need(set(c.get("Volumes", {})) == {"/run/switchyard", "/var/lib/switchyard/spool"},
     "Volumes %r" % c.get("Volumes"))
need({"8125/udp", "8125/tcp", "8127/tcp"} <= set(c.get("ExposedPorts", {})),
     "ExposedPorts %r" % c.get("ExposedPorts"))
need(not c.get("Env") or all(not e.startswith("LD_") for e in c["Env"]), "Env %r" % c.get("Env"))
labels = c.get("Labels", {})
need(labels.get("org.opencontainers.image.version") == version, "version label %r" % labels)
for k in ("source", "revision", "created", "title", "licenses"):
    v = labels.get("org.opencontainers.image." + k, "")
    need(v and v != "unknown", "label %s is %r" % (k, v))
for l in man["layers"]:
    print(blob(l["digest"]))
EOF
DETAIL=$tmp/oci.log
check "OCI layout: one manifest, one layer; config: user $UID_SY, entrypoint, cmd, volumes, ports, labels" \
    bash -c "/usr/bin/python3 '$tmp/oci.py' '$oci' '$image' '$version' $UID_SY >'$tmp/layers' 2>'$tmp/oci.log'" ||
    finish
: >"$tmp/untar.log"
while read -r layer; do
    tar --numeric-owner -xpf "$layer" -C "$root" >>"$tmp/untar.log" 2>&1 || echo "failed: $layer" >>"$tmp/untar.log"
    tar -tf "$layer" 2>/dev/null | grep -E '(^|/)\.wh\.' >>"$tmp/untar.log"
done <"$tmp/layers"
DETAIL=$tmp/untar.log
check "the layer unpacks into a root directory, with no whiteout entries" \
    bash -c "! test -s '$tmp/untar.log' && test -x '$root/usr/bin/switchyard'" || finish

# ---------------------------------------------------------------------
# 3. every file has a reason
# ---------------------------------------------------------------------
cat >"$tmp/reasons.py" <<'EOF'
# reasons.py ROOT REPO UID: every file and directory in ROOT, with the
# reason it is there; exit 1 if any has none, or if something needed is
# missing.  Libraries: DT_NEEDED followed from the daemon and the plugins
# through the libraries found, and the interpreter, read with readelf.
import os, re, subprocess, sys
root, repo, uid = sys.argv[1], sys.argv[2], int(sys.argv[3])
reason, problems = {}, []

def rd(path):
    with open(path, "rb") as f:
        return f.read()

def want(path, why, same_as=None):
    if not os.path.isfile(root + path) or os.path.islink(root + path):
        problems.append("missing: %s (%s)" % (path, why))
        return
    if same_as and rd(root + path) != rd(same_as):
        problems.append("%s differs from %s" % (path, os.path.relpath(same_as, repo)))
    reason[path] = why

want("/usr/bin/switchyard", "the daemon")
# a plugin is plugins/NAME.c or a folder plugins/NAME/ (not lib, examples, proto)
plugins = sorted([f[:-2] for f in os.listdir(repo + "/plugins") if f.endswith(".c")] +
                 [f for f in os.listdir(repo + "/plugins") if os.path.isdir(repo + "/plugins/" + f)
                  and f not in ("lib", "examples", "proto")])
for p in plugins:
    want("/usr/lib/switchyard/plugins/%s.so" % p, "sink plugin (plugins/%s)" % p)
for m in sorted(os.listdir(repo + "/lua/switchyard")):
    if m.endswith(".lua") and m != "testing.lua":  # testing.lua: specs, needs libswitchyard.so
        want("/usr/share/switchyard/lua/switchyard/" + m, "Lua module switchyard." + m[:-4],
             repo + "/lua/switchyard/" + m)
want("/etc/switchyard/switchyard.lua", "default config", repo + "/core/dist/image/switchyard.lua")
for f in ("passwd", "group"):
    want("/etc/" + f, "the daemon's user")
    lines = rd(root + "/etc/" + f).decode().splitlines() if "/etc/" + f in reason else []
    if len(lines) != 1 or lines[0].split(":")[2] != str(uid):
        problems.append("/etc/%s is not one entry for %d: %r" % (f, uid, lines))

def readelf(args, path):
    return subprocess.run(["readelf", "-W"] + args + [path], capture_output=True,
                          text=True, check=True).stdout

# The loader's search: DT_RUNPATH, else the default directories (there is
# no ld.so.cache in the image).
DEFAULT = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
           "/lib", "/usr/lib"]
def resolve(soname, runpath):
    for d in runpath + DEFAULT:
        p = os.path.join(d, soname)
        if os.path.isfile(root + p):
            return p
    return None

todo = [p for p in reason if p.startswith("/usr/bin/") or p.endswith(".so")]
seen = set()
while todo:
    f = todo.pop()
    if f in seen:
        continue
    seen.add(f)
    dyn = readelf(["-d"], root + f)
    runpath = []
    for m in re.finditer(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[([^\]]*)\]", dyn):
        runpath += m.group(1).split(":")
    interp = re.search(r"Requesting program interpreter: ([^\]]+)\]", readelf(["-l"], root + f))
    libs = [(interp.group(1), "interpreter requested")] if interp else []
    libs += [(s, "needed") for s in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)]
    for name, kind in libs:
        p = name if name.startswith("/") else resolve(name, runpath)
        if not p or not os.path.isfile(root + p):
            problems.append("%s needs %s: not in the image" % (f, name))
            continue
        reason.setdefault(p, "%s by %s" % (kind, f))
        todo.append(p)

volumes = {"/run/switchyard", "/var/lib/switchyard/spool"}
dirs = set(volumes)
for p in list(reason) + list(volumes):
    while p != "/":
        p = os.path.dirname(p)
        dirs.add(p)
listing = []
for d, subdirs, files in os.walk(root):
    rel = "/" + os.path.relpath(d, root) if d != root else "/"
    for s in subdirs:
        full = os.path.join(rel, s)
        if os.path.islink(root + full):
            problems.append("no reason: symlink %s" % full)
        elif full not in dirs:
            problems.append("no reason: directory %s" % full)
    for name in files:
        full = os.path.join(rel, name)
        listing.append("%-48s %s" % (full, reason.get(full, "NO REASON")))
        if full not in reason:
            problems.append("no reason: %s" % full)
print("\n".join(sorted(listing)))
for p in problems:
    print("PROBLEM " + p)
sys.exit(1 if problems else 0)
EOF
DETAIL=$tmp/reasons.log
check "every file in the image has a reason, and nothing needed is missing" \
    bash -c "/usr/bin/python3 '$tmp/reasons.py' '$root' '$REPO' $UID_SY >'$tmp/reasons.log' 2>&1"
sed 's/^/      /' "$tmp/reasons.log" | grep -v PROBLEM
libs=$(grep -c '^/lib\|^/usr/lib/x86_64' "$tmp/reasons.log")
check "the libraries found include libc, the loader, LuaJIT, libevent and hiredis" \
    bash -c "for l in libc.so libluajit libevent ld-linux libhiredis; do grep -q \"^/[^ ]*\$l\" '$tmp/reasons.log' || exit 1; done"
echo "      $libs shared libraries"
check "no CA certificates (no sink speaks TLS)" \
    bash -c "! find '$root' -name '*.crt' -o -name '*.pem' -o -path '*/ssl/*' | grep -q ."
find "$root" ! -uid 0 -printf '/%P %u:%g\n' | sort >"$tmp/owners"
DETAIL=$tmp/owners
check "only the two volumes belong to $UID_SY, everything else to root" \
    test "$(cat "$tmp/owners")" = "/run/switchyard $UID_SY:$UID_SY
/var/lib/switchyard/spool $UID_SY:$UID_SY"
find "$root" \( -perm -o+w -o -perm -g+w -o -perm /6000 \) -printf '/%P %m\n' >"$tmp/modes"
DETAIL=$tmp/modes
check "nothing is group- or world-writable, nothing setuid or setgid" test ! -s "$tmp/modes"

# ---------------------------------------------------------------------
# 4. --version and --check under chroot, as the image's user
# ---------------------------------------------------------------------
# sy_chroot CMD...: run in the image's root as its user, with an empty
# environment, as the image's ENTRYPOINT does.
sy_chroot() {
    env -i "$CHROOT" --userspec=$UID_SY:$UID_SY "$root" "$@"
}
sy_chroot /usr/bin/switchyard --version >"$tmp/version.log" 2>&1
DETAIL=$tmp/version.log
check "chroot: switchyard --version says $version" grep -q "^switchyard $version " "$tmp/version.log"
sy_chroot /usr/bin/switchyard --check /etc/switchyard/switchyard.lua >"$tmp/check-default.log" 2>&1
DETAIL=$tmp/check-default.log
check "chroot: --check accepts the image's /etc/switchyard/switchyard.lua" \
    grep -qx '/etc/switchyard/switchyard.lua: OK' "$tmp/check-default.log"
cp "$root/etc/switchyard/switchyard.lua" "$tmp/default.lua"
sed 's/plugin = "console"/plugin = "consol"/' "$tmp/default.lua" >"$root/etc/switchyard/switchyard.lua"
sy_chroot /usr/bin/switchyard --check /etc/switchyard/switchyard.lua >"$tmp/check-bad.log" 2>&1
rc=$?
DETAIL=$tmp/check-bad.log
check "chroot: --check refuses the config with an unknown plugin (exit $rc)" \
    bash -c "test $rc -ne 0 && grep -q consol '$tmp/check-bad.log'"

# ---------------------------------------------------------------------
# 5. the daemon under chroot with a test config
# ---------------------------------------------------------------------
cat >"$tmp/capture.py" <<'EOF'
# A Graphite plaintext listener: appends whatever arrives to argv[1],
# writes its port to argv[2] once it listens.
import os, socket, sys, threading
out = open(sys.argv[1], "ab", buffering=0)
lock = threading.Lock()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(srv.getsockname()[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
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
cap=$tmp/carbon.txt
: >"$cap"
/usr/bin/python3 "$tmp/capture.py" "$cap" "$tmp/carbon.port" 2>"$tmp/capture.log" &
pids+=("$!")
for _ in $(seq 100); do [ -s "$tmp/carbon.port" ] && break; sleep 0.05; done
cport=$(cat "$tmp/carbon.port" 2>/dev/null)
check "the graphite capture listener is up (port ${cport:-none})" test -n "$cport" || finish
port=$(free_port)
dead=$(free_port) # nothing listens there: the other sinks only queue
page=$(free_port) # the prometheus sink's scrape page
cat >"$root/etc/switchyard/switchyard.lua" <<EOF
-- test_image: every plugin the image has; graphite to the test's listener.
return {
  listen = { "udp://127.0.0.1:$port", "tcp://127.0.0.1:$port",
             "unix:///run/switchyard/switchyard.sock" },
  flushInterval = 1000,
  graphite = { legacyNamespace = false, globalPrefix = "stats" },
  sinks = {
    carbon = { plugin = "graphite", host = "127.0.0.1", port = $cport },
    console = { plugin = "console" },
    redis = { plugin = "redis", host = "127.0.0.1", port = $dead },
    traces = { plugin = "memcache_traces", host = "127.0.0.1", port = $dead },
    next = { plugin = "repeater", host = "127.0.0.1", port = $dead, protocol = "tcp" },
    influx = { plugin = "influxdb", url = "http://127.0.0.1:$dead/write?db=sy" },
    page = { plugin = "prometheus", listen = "127.0.0.1:$page" },
    rw = { plugin = "remote_write", url = "http://127.0.0.1:$dead/api/v1/write" },
  },
}
EOF
chmod 644 "$root/etc/switchyard/switchyard.lua"
DETAIL=$tmp/check-test.log
check "chroot: --check accepts the test config naming every plugin" \
    bash -c "$(declare -f sy_chroot); UID_SY=$UID_SY root='$root' CHROOT='$CHROOT'
             sy_chroot /usr/bin/switchyard --check /etc/switchyard/switchyard.lua >'$tmp/check-test.log' 2>&1"
env -i "$CHROOT" --userspec=$UID_SY:$UID_SY "$root" \
    /usr/bin/switchyard -c /etc/switchyard/switchyard.lua >"$tmp/run.log" 2>&1 &
pid=$!
pids+=("$pid")
DETAIL=$tmp/run.log
if check "chroot: the daemon starts as $UID_SY with /etc/switchyard/switchyard.lua" wait_port "$port" "$pid"; then
    printf 'img.udp:5|c\n' >"/dev/udp/127.0.0.1/$port"
    printf 'img.tcp:7|g\n' >"/dev/tcp/127.0.0.1/$port"
    sock=$root/run/switchyard/switchyard.sock
    /usr/bin/python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"img.unix:3|ms\n"); s.close()' \
        "$sock" >"$tmp/unix.log" 2>&1
    DETAIL=$tmp/unix.log
    check "the Unix socket in the /run/switchyard volume belongs to $UID_SY and accepts a line" \
        bash -c "test \"\$(stat -c %u '$sock')\" = $UID_SY && ! test -s '$tmp/unix.log'"
    DETAIL=$cap
    check "UDP: stats.counters.img.udp.count 5 reaches the graphite listener" \
        wait_file "$cap" '^stats\.counters\.img\.udp\.count 5 '
    DETAIL=$cap
    check "TCP: stats.gauges.img.tcp 7 reaches the graphite listener" \
        wait_file "$cap" '^stats\.gauges\.img\.tcp 7 '
    DETAIL=$cap
    check "Unix socket: stats.timers.img.unix.upper 3 reaches the graphite listener" \
        wait_file "$cap" '^stats\.timers\.img\.unix\.upper 3 '
    DETAIL=$tmp/run.log
    check "the console sink prints the same flush on standard output" \
        wait_file "$tmp/run.log" '^stats\.gauges\.img\.tcp 7 '
    # What the running daemon loaded, every plugin included: each mapped
    # file is in the root, and every ELF file in the root is mapped.
    awk '$6 ~ /^\// { print $6 }' "/proc/$pid/maps" | sort -u >"$tmp/maps"
    find "$root" -type f -exec sh -c 'head -c 4 "$1" | grep -q "ELF" && echo "$1"' _ {} \; |
        sort >"$tmp/elves"
    DETAIL=$tmp/maps
    check "every file the running daemon maps lies in the image's root" \
        bash -c "test -s '$tmp/maps' && ! grep -v '^$root/' '$tmp/maps' | grep -q ."
    diff "$tmp/elves" "$tmp/maps" >"$tmp/maps.diff" 2>&1
    DETAIL=$tmp/maps.diff
    check "every ELF file in the image ($(wc -l <"$tmp/elves")) is loaded by the running daemon" \
        test ! -s "$tmp/maps.diff"
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    DETAIL=$tmp/run.log
    check "SIGTERM: the daemon exits 0 (exit $rc)" test "$rc" -eq 0
fi
cp "$tmp/default.lua" "$root/etc/switchyard/switchyard.lua"
rm -f "$root/run/switchyard/switchyard.sock"

# ---------------------------------------------------------------------
# 6. the image's default config, in a network namespace of its own
# ---------------------------------------------------------------------
cat >"$tmp/netns.sh" <<'EOF'
# netns.sh ROOT UID OUT: inside `unshare -n`, run the image's default
# config and feed it one UDP line; the daemon's output goes to OUT.
root=$1 uid=$2 out=$3
ip link set lo up || exit 3
env -i "$CHROOT" --userspec="$uid:$uid" "$root" /usr/bin/switchyard -c /etc/switchyard/switchyard.lua >"$out" 2>&1 &
pid=$!
/usr/bin/python3 - <<'PY'
import socket, time
deadline = time.time() + 5
while True:
    try:
        socket.create_connection(("127.0.0.1", 8125), 1).close()
        break
    except OSError:
        if time.time() > deadline:
            raise SystemExit("nothing listens on 127.0.0.1:8125")
        time.sleep(0.05)
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"img.default:1|c\n", ("127.0.0.1", 8125))
c = socket.create_connection(("127.0.0.1", 8127), 2)
c.sendall(b"GET /health HTTP/1.0\r\n\r\n")
reply = b""
while True:
    d = c.recv(4096)
    if not d:
        break
    reply += d
head, _, body = reply.partition(b"\r\n\r\n")
print("health:", head.split(b"\r\n")[0].decode(), body.strip().decode())
PY
# the default flushInterval is 10 s
for _ in $(seq 150); do
    grep -q '^stats.counters.img.default.count 1 ' "$out" && break
    sleep 0.1
done
kill -TERM $pid
wait $pid
echo "exit: $?"
EOF
if unshare -n true 2>/dev/null; then
    unshare -n bash "$tmp/netns.sh" "$root" $UID_SY "$tmp/default.log" >"$tmp/netns.log" 2>&1
    cat "$tmp/default.log" >>"$tmp/netns.log"
    DETAIL=$tmp/netns.log
    check "default config: /health on 0.0.0.0:8127 answers 200 up" \
        grep -q '^health: HTTP/1.[01] 200 .* up$' "$tmp/netns.log"
    DETAIL=$tmp/netns.log
    check "default config: a UDP line to port 8125 is printed at the next flush" \
        grep -q '^stats.counters.img.default.count 1 ' "$tmp/default.log"
    DETAIL=$tmp/netns.log
    check "default config: SIGTERM exits 0" grep -qx 'exit: 0' "$tmp/netns.log"
else
    skip "the default config's run: unshare -n (a private network namespace) is refused here"
fi

# ---------------------------------------------------------------------
# 7. podman run, where a container runtime works
# ---------------------------------------------------------------------
# runtime_refused LOG: the run failed for the runtime, not the image (a
# missing executable, library or loader is "not found" / "No such file").
runtime_refused() {
    grep -qiE 'OCI|crun|runc|cgroup' "$1" && ! grep -qiE 'not found|no such file|exec format' "$1"
}
# First as podman runs by default; if its runtime refuses (here crun cannot
# set podman's RLIMIT_NOFILE, nor work with hybrid cgroups), runc with
# limits no higher than this process's own, which works in some sandboxes.
prun=(podman run)
timeout 60 "${prun[@]}" --rm --network none "$image" --version >"$tmp/podman-run.log" 2>&1
if runtime_refused "$tmp/podman-run.log" && command -v runc >/dev/null 2>&1; then
    why=$(grep -m1 -iE 'OCI|crun|runc|cgroup' "$tmp/podman-run.log")
    lim=$(ulimit -Hn)
    [ "$lim" = unlimited ] || [ "$lim" -gt 65536 ] && lim=65536
    prun=(podman --runtime runc run --ulimit "nofile=$lim:$lim" --ulimit nproc=4096:4096)
    timeout 60 "${prun[@]}" --rm --network none "$image" --version >"$tmp/podman-run.log" 2>&1 &&
        echo "      the default runtime refused ($why): running with runc, nofile $lim, nproc 4096"
fi
ctr=switchyard-test-$$
rm_ctr() {
    podman rm -f -v "$ctr" >/dev/null 2>&1
}
# prun_d LOG ARGS...: podman run -d --name $ctr ARGS, its output to LOG.
prun_d() {
    local log=$1; shift
    "${prun[@]}" -d --name "$ctr" "$@" >"$log" 2>&1
}
if grep -q "^switchyard $version " "$tmp/podman-run.log"; then
    check "podman run IMAGE --version" true
    "${prun[@]}" --rm --network none "$image" --check /etc/switchyard/switchyard.lua \
        >"$tmp/podman-check.log" 2>&1
    DETAIL=$tmp/podman-check.log
    check "podman run IMAGE --check /etc/switchyard/switchyard.lua: OK" \
        grep -qx '/etc/switchyard/switchyard.lua: OK' "$tmp/podman-check.log"

    # The image as it is: its default config, ports published.
    sport=$(free_port)
    hport=$(free_port)
    DETAIL=$tmp/podman-run.log
    if check "podman run -d IMAGE, ports 8125/udp, 8125/tcp and 8127 published on loopback" \
            prun_d "$tmp/podman-run.log" -p "127.0.0.1:$sport:8125/udp" \
                -p "127.0.0.1:$sport:8125/tcp" -p "127.0.0.1:$hport:8127/tcp" "$image"; then
        /usr/bin/python3 - "$hport" >"$tmp/podman-health.log" 2>&1 <<'PY'
import socket, sys, time
deadline = time.time() + 10
while True:
    try:
        c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)
        c.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        reply = b""
        while True:
            d = c.recv(4096)
            if not d:
                break
            reply += d
        if reply:
            head, _, body = reply.partition(b"\r\n\r\n")
            print("health:", head.split(b"\r\n")[0].decode(), body.strip().decode())
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("no HTTP answer on the published port")
    time.sleep(0.2)
PY
        DETAIL=$tmp/podman-health.log
        check "podman: /health on the published port answers 200 up" \
            grep -q '^health: HTTP/1.[01] 200 .* up$' "$tmp/podman-health.log"
        printf 'img.published.udp:4|c\n' >"/dev/udp/127.0.0.1/$sport"
        printf 'img.published.tcp:6|g\n' >"/dev/tcp/127.0.0.1/$sport"
        # the default flushInterval is 10 s
        for _ in $(seq 150); do
            podman logs "$ctr" 2>&1 | grep -q '^stats.gauges.img.published.tcp 6 ' && break
            sleep 0.1
        done
        podman logs "$ctr" >"$tmp/podman-logs.log" 2>&1
        DETAIL=$tmp/podman-logs.log
        check "podman: UDP and TCP lines to the published port are in podman logs at the flush" \
            bash -c "grep -q '^stats.counters.img.published.udp.count 4 ' '$tmp/podman-logs.log' &&
                     grep -q '^stats.gauges.img.published.tcp 6 ' '$tmp/podman-logs.log'"
        cpid=$(podman inspect --format '{{.State.Pid}}' "$ctr" 2>/dev/null)
        check "podman: the daemon runs as uid and gid $UID_SY" \
            bash -c "grep -qE '^Uid:\s+$UID_SY\s+$UID_SY\s' /proc/${cpid:-0}/status &&
                     grep -qE '^Gid:\s+$UID_SY\s+$UID_SY\s' /proc/${cpid:-0}/status"
        vol=$(podman inspect --format \
              '{{range .Mounts}}{{if eq .Destination "/run/switchyard"}}{{.Source}}{{end}}{{end}}' "$ctr")
        check "podman: its socket is in the /run/switchyard volume, owned by $UID_SY" \
            test "$(stat -c '%F %u' "$vol/switchyard.sock" 2>/dev/null)" = "socket $UID_SY"
        podman stop -t 10 "$ctr" >/dev/null 2>&1
        code=$(podman inspect --format '{{.State.ExitCode}}' "$ctr" 2>/dev/null)
        check "podman stop: the daemon exits 0 (exit ${code:-?})" test "${code:-x}" = 0
    fi
    rm_ctr

    # A config volume, a host directory as the socket volume, the host's
    # network (to reach the graphite listener), and a reload.
    mkdir -p "$tmp/conf" "$tmp/sock"
    chmod 755 "$tmp/conf"
    chmod 1777 "$tmp/sock"
    hostport=$(free_port)
    cat >"$tmp/conf/switchyard.lua" <<EOF
return {
  listen = { "udp://127.0.0.1:$hostport", "unix:///run/switchyard/switchyard.sock" },
  flushInterval = 1000,
  graphite = { legacyNamespace = false, globalPrefix = "stats" },
  sinks = { carbon = { plugin = "graphite", host = "127.0.0.1", port = $cport } },
}
EOF
    chmod 644 "$tmp/conf/switchyard.lua"
    DETAIL=$tmp/podman-run.log
    if check "podman run -d with a config volume and a host directory as the socket volume" \
            prun_d "$tmp/podman-run.log" --network host -v "$tmp/conf:/etc/switchyard:ro,Z" \
                -v "$tmp/sock:/run/switchyard:Z" "$image"; then
        for _ in $(seq 100); do [ -S "$tmp/sock/switchyard.sock" ] && break; sleep 0.1; done
        /usr/bin/python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"img.podman.unix:2|c\n"); s.close()' \
            "$tmp/sock/switchyard.sock" >"$tmp/podman-send.log" 2>&1
        printf 'img.podman.udp:3|c\n' >"/dev/udp/127.0.0.1/$hostport"
        DETAIL=$cap
        check "podman: a line through the socket volume reaches the graphite listener" \
            wait_file "$cap" '^stats\.counters\.img\.podman\.unix\.count 2 '
        DETAIL=$cap
        check "podman: a UDP line, with the config from the volume, reaches it too" \
            wait_file "$cap" '^stats\.counters\.img\.podman\.udp\.count 3 '
        sed -i 's/globalPrefix = "stats"/globalPrefix = "reloaded"/' "$tmp/conf/switchyard.lua"
        podman kill -s HUP "$ctr" >/dev/null 2>&1
        for _ in $(seq 50); do
            podman logs "$ctr" 2>&1 | grep -q 'reloading /etc/switchyard/switchyard.lua' && break
            sleep 0.1
        done
        printf 'img.podman.udp:3|c\n' >"/dev/udp/127.0.0.1/$hostport"
        DETAIL=$cap
        check "podman kill -s HUP reloads the config from the volume (its new prefix is used)" \
            wait_file "$cap" '^reloaded\.counters\.img\.podman\.udp\.count 3 '
    fi
    rm_ctr
elif runtime_refused "$tmp/podman-run.log"; then
    skip "podman run: the container runtime refuses to start containers here ($(grep -m1 -iE 'OCI|crun|runc|cgroup' "$tmp/podman-run.log"))"
else
    DETAIL=$tmp/podman-run.log
    check "podman run IMAGE --version" false
fi

finish
