#!/bin/sh
# build.sh DIR ROOT FILE: turn the tree `make install DESTDIR=ROOT
# PREFIX=/usr` staged into the Debian package FILE (`make deb` calls it;
# DIR is the package's work directory, $(BUILD)/deb).
#
# From the environment: DEB_VERSION (0.1.0-1), DEB_ARCH (amd64),
# DEB_MAINTAINER, and optionally DEB_MULTIARCH (x86_64-linux-gnu), STRIP
# and SOURCE_DATE_EPOCH.
#
# The binaries are stripped, the man page and the changelog compressed,
# LICENSE becomes the copyright file; Depends is computed from the ELF
# files (depends.sh); the maintainer scripts are postinst, prerm and postrm
# beside this script (no ldconfig: libswitchyard.so, the only library, has
# no SONAME and /usr/lib is on ld.so's built-in path); switchyard-sink.pc
# moves to /usr/lib/<multiarch>/pkgconfig, where cross pkg-config looks too.
set -eu

dir=$1 root=$2 file=$3
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
: "${DEB_VERSION:?}" "${DEB_ARCH:?}" "${DEB_MAINTAINER:?}"
strip=${STRIP:-strip}
doc=$root/usr/share/doc/switchyard

find "$root" -name '*.so' -type f -exec "$strip" --remove-section=.comment \
    --remove-section=.note --strip-unneeded {} +
"$strip" --remove-section=.comment --remove-section=.note "$root/usr/bin/switchyard"
gzip -9nf "$root/usr/share/man/man8/switchyard.8"
rm -f "$doc/LICENSE"

# where pkg-config looks for this architecture, cross-compilers included
if [ -n "${DEB_MULTIARCH:-}" ]; then
    install -d "$root/usr/lib/$DEB_MULTIARCH/pkgconfig"
    mv "$root/usr/lib/pkgconfig/switchyard-sink.pc" "$root/usr/lib/$DEB_MULTIARCH/pkgconfig/"
    rmdir "$root/usr/lib/pkgconfig"
fi
install -D -m 644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/switchyard"

# the copyright file: the header, then LICENSE's text from its Copyright
# line on, indented, blank lines as " ."
{ cat "$here/copyright.in"
  sed -e '1,/^Copyright/d' -e '/./,$!d' "$repo/LICENSE" | sed -e 's/^$/./' -e 's/^/ /'
} >"$doc/copyright"
date=$(LC_ALL=C date -R ${SOURCE_DATE_EPOCH:+-d @$SOURCE_DATE_EPOCH})
sed -e "s#@VERSION@#$DEB_VERSION#" -e "s#@MAINTAINER@#$DEB_MAINTAINER#" -e "s#@DATE@#$date#" \
    "$here/changelog.in" | gzip -9n >"$doc/changelog.Debian.gz"
chmod 644 "$doc/copyright" "$doc/changelog.Debian.gz"

install -d -m 755 "$root/DEBIAN"
install -m 755 "$here/postinst" "$here/prerm" "$here/postrm" "$root/DEBIAN/"
(cd "$root" && find etc -type f -printf '/%p\n' | LC_ALL=C sort >DEBIAN/conffiles)
(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' |
    LC_ALL=C sort -z | xargs -0 md5sum >DEBIAN/md5sums)
deps=$("$here/depends.sh" "$dir" "$root")
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s#@VERSION@#$DEB_VERSION#" -e "s#@ARCH@#$DEB_ARCH#" \
    -e "s#@MAINTAINER@#$DEB_MAINTAINER#" -e "s#@INSTALLED_SIZE@#$size#" \
    -e "s#@DEPENDS@#adduser, $deps#" "$here/control.in" >"$root/DEBIAN/control"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
dpkg-deb --root-owner-group --build "$root" "$file"
