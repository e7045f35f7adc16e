#!/bin/sh
# rootfs.sh INSTALL ROOTFS: stage the image's root file system in ROOTFS
# from INSTALL, a `make install DESTDIR=INSTALL PREFIX=/usr` tree.
#
# It takes from INSTALL only what the daemon runs with: usr/bin/switchyard,
# the sink plugins and the Lua modules a config requires (not
# switchyard/testing.lua, which is for specs and loads libswitchyard.so
# through the FFI, nor the examples).  Then the shared libraries: every ELF
# file in ROOTFS is given to ldd, which lists what the dynamic loader would
# load for it, transitively, and its interpreter; each is copied to the
# same path in ROOTFS (the file a symbolic link leads to, under the name
# ldd gives, with its mode), and the new files are looked at in turn until
# nothing is added.  So the list follows the binaries, whatever they link.
# ldd runs the host's loader: the image is for the architecture it is
# built on.
#
# Last, the default config (core/dist/image/switchyard.lua) as
# /etc/switchyard/switchyard.lua, and /etc/passwd and /etc/group naming
# the daemon's user, 65532 (the Containerfile's USER), so that tools show a
# name and `--user switchyard` works.  No CA certificates: no sink speaks
# TLS.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
inst=$1
root=$2
uid=65532

rm -rf "$root"
mkdir -p "$root"

install -D -m 755 "$inst/usr/bin/switchyard" "$root/usr/bin/switchyard"
install -d -m 755 "$root/usr/lib/switchyard/plugins" "$root/usr/share/switchyard/lua/switchyard"
install -m 644 "$inst"/usr/lib/switchyard/plugins/*.so "$root/usr/lib/switchyard/plugins/"
for f in "$inst"/usr/share/switchyard/lua/switchyard/*.lua; do
    case $(basename "$f") in
    testing.lua) ;;
    *) install -m 644 "$f" "$root/usr/share/switchyard/lua/switchyard/" ;;
    esac
done

is_elf() {
    [ -f "$1" ] && [ ! -L "$1" ] && [ "$(head -c 4 "$1" | od -An -c | tr -d ' \n')" = '177ELF' ]
}

# needs FILE: the absolute paths of what FILE loads (ldd's "=> /path" and
# its interpreter's line); fails on a library ldd does not find.
needs() {
    out=$(ldd "$1") || { echo "rootfs.sh: ldd $1 failed" >&2; return 1; }
    if printf '%s\n' "$out" | grep -q 'not found'; then
        printf 'rootfs.sh: %s: a library is missing:\n%s\n' "$1" "$out" >&2
        return 1
    fi
    printf '%s\n' "$out" | sed -n -e 's/^.*=> \(\/[^ ]*\) (0x.*$/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) (0x.*$/\1/p'
}

seen=""
while :; do
    added=0
    for f in $(find "$root" -type f | sort); do
        is_elf "$f" || continue
        case " $seen " in *" $f "*) continue ;; esac
        seen="$seen $f"
        for lib in $(needs "$f"); do
            [ -e "$root$lib" ] && continue
            mkdir -p "$root$(dirname "$lib")"
            cp -L --preserve=mode "$lib" "$root$lib"
            echo "  $lib (for ${f#"$root"})"
            added=1
        done
    done
    [ "$added" = 1 ] || break
done

install -D -m 644 "$here/switchyard.lua" "$root/etc/switchyard/switchyard.lua"
printf 'switchyard:x:%d:%d:switchyard:/nonexistent:/nonexistent\n' $uid $uid >"$root/etc/passwd"
printf 'switchyard:x:%d:\n' $uid >"$root/etc/group"
chmod 644 "$root/etc/passwd" "$root/etc/group"
# the volumes' parents, root's (the Containerfile creates the volumes)
install -d -m 755 "$root/run" "$root/var/lib/switchyard"
