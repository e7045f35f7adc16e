#!/bin/sh
# depends.sh STAGE ROOT: print the shared-library part of the package's
# Depends (comma-separated), for the ELF files under ROOT.
#
# With dpkg-shlibdeps (dpkg-dev): it needs a source-package layout, so
# STAGE gets debian/control and debian/switchyard -> ROOT, and the versions
# come from the libraries' shlibs/symbols files.  Without it (or if it
# fails): every library the files link (ldd) is looked up with dpkg -S and
# its package named without a version.  A library no package owns is left
# out with a warning.
set -eu

mkdir -p "$1"
stage=$(cd "$1" && pwd)
root=$(cd "$2" && pwd)

is_elf() {
    [ -f "$1" ] && [ "$(head -c 4 "$1" | od -An -c | tr -d ' \n')" = '177ELF' ]
}

files=$(find "$root" -path "$root/DEBIAN" -prune -o -type f -print | sort |
        while read -r f; do if is_elf "$f"; then echo "$f"; fi; done)
[ -n "$files" ] || { echo "depends.sh: no ELF file under $root" >&2; exit 1; }

if command -v dpkg-shlibdeps >/dev/null 2>&1; then
    mkdir -p "$stage/debian"
    printf 'Source: switchyard\n\nPackage: switchyard\nArchitecture: any\n' >"$stage/debian/control"
    ln -sfn "$root" "$stage/debian/switchyard"
    args=""
    for f in $files; do
        args="$args -e$stage/debian/switchyard/${f#"$root"/}"
    done
    # shellcheck disable=SC2086
    if out=$(cd "$stage" && dpkg-shlibdeps -O --ignore-missing-info $args); then
        deps=$(printf '%s\n' "$out" | sed -n 's/^shlibs:Depends=//p')
        if [ -n "$deps" ]; then
            printf '%s\n' "$deps"
            exit 0
        fi
    fi
    echo "depends.sh: dpkg-shlibdeps failed; naming the libraries' packages instead" >&2
fi

# owner LIB: the package that installed LIB (its path as ldd gives it, the
# real path, and the other side of the /usr merge), or nothing.
owner() {
    for p in "$1" "$(readlink -f "$1")" "/usr$1" "${1#/usr}"; do
        o=$(dpkg -S "$p" 2>/dev/null | grep -v '^diversion by' | head -1) || true
        if [ -n "$o" ]; then
            printf '%s\n' "${o%%: /*}" | tr ',' '\n' | sed -e 's/^ *//' -e 's/:.*//' | head -1
            return 0
        fi
    done
    return 1
}

libs=$(for f in $files; do
           LC_ALL=C ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'
       done | sort -u)
pkgs=$(for l in $libs; do
           owner "$l" || echo "depends.sh: no package owns $l (left out of Depends)" >&2
       done | sort -u)
[ -n "$pkgs" ] || { echo "depends.sh: found no library packages" >&2; exit 1; }
printf '%s\n' "$pkgs" | paste -sd, - | sed 's/,/, /g'
