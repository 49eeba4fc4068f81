#!/bin/sh
# Builds otpd_VERSION-1_ARCH.deb and otpd-dbgsym_VERSION-1_ARCH.deb into
# $BUILD/deb/ with Debian's own tools: a `make install` into a staging
# root (PREFIX=/usr), the binary's debug symbols split off with objcopy
# into /usr/lib/debug/.build-id/ (the dbgsym layout), Depends from
# dpkg-shlibdeps, and dpkg-deb --root-owner-group (no fakeroot needed).
# Run from the repository root after `make otpd man` (make deb does).
set -eu
BUILD=${BUILD:-build}
VERSION=${VERSION:-$(cat VERSION)}
MAKE=${MAKE:-make}
out=$BUILD/deb
stage=$out/otpd
dbg=$out/otpd-dbgsym
debversion=$VERSION-1
arch=$(dpkg --print-architecture)
rm -rf "$stage" "$dbg"
mkdir -p "$stage/DEBIAN" "$dbg/DEBIAN"

# Keep the unstripped binary's debug info, then install (which strips).
build_id=$(readelf -n otpd | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p')
[ -n "$build_id" ] || { echo "make_deb: otpd has no build ID" >&2; exit 1; }
debug_dir=$dbg/usr/lib/debug/.build-id/$(echo "$build_id" | cut -c1-2)
mkdir -p "$debug_dir"
objcopy --only-keep-debug --compress-debug-sections otpd \
  "$debug_dir/$(echo "$build_id" | cut -c3-).debug"
chmod 0644 "$debug_dir"/*.debug
$MAKE -s --no-print-directory install DESTDIR="$(pwd)/$stage" PREFIX=/usr BUILD="$BUILD" >/dev/null

# Made by postinst instead: a token written by the administrator must not
# be a conffile dpkg asks about on upgrade.
rm -f "$stage/etc/otpd/twilio_auth_token"
gzip -9n "$stage/usr/share/man/man8/otpd.8" "$stage/usr/share/man/man5/otpd.conf.5"
install -d "$stage/usr/share/doc/otpd" "$dbg/usr/share/doc"
install -m 0644 packaging/copyright "$stage/usr/share/doc/otpd/copyright"
ln -s otpd "$dbg/usr/share/doc/otpd-dbgsym"

# Depends: from the libraries the binary links (dpkg-shlibdeps wants a
# debian/control to read; an empty source stanza is enough).
shlib=$(mktemp -d)
trap 'rm -rf "$shlib"' EXIT
mkdir -p "$shlib/debian"
printf 'Source: otpd\n\nPackage: otpd\nArchitecture: any\n' >"$shlib/debian/control"
bin=$(pwd)/$stage/usr/bin/otpd
depends=$(cd "$shlib" && dpkg-shlibdeps -O -e"$bin" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "make_deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: otpd
Version: $debversion
Architecture: $arch
Maintainer: otpd maintainers <otpd@localhost>
Installed-Size: $size
Depends: $depends
Recommends: ca-certificates
Section: net
Priority: optional
Homepage: https://localhost/otpd
Description: one-time passcode daemon (SMS codes over HTTP)
 otpd texts a one-time code to a user's phone (POST /send-code) and checks
 the code the user typed (POST /verify-code). It stores only an HMAC of
 each code, with an expiry and an exact attempt counter, in one SQLite
 file. A drop-in replacement for an earlier Python OTP service.
CONTROL
echo /etc/otpd/otpd.conf >"$stage/DEBIAN/conffiles"
install -m 0755 packaging/postinst packaging/prerm packaging/postrm "$stage/DEBIAN/"

dsize=$(du -sk --exclude=DEBIAN "$dbg" | cut -f1)
cat >"$dbg/DEBIAN/control" <<CONTROL
Package: otpd-dbgsym
Source: otpd
Version: $debversion
Architecture: $arch
Maintainer: otpd maintainers <otpd@localhost>
Installed-Size: $dsize
Depends: otpd (= $debversion)
Section: debug
Priority: optional
Auto-Built-Package: debug-symbols
Build-Ids: $build_id
Description: debug symbols for otpd
CONTROL

dpkg-deb --root-owner-group -Zxz --build "$stage" "$out/otpd_${debversion}_$arch.deb" >/dev/null
dpkg-deb --root-owner-group -Zxz --build "$dbg" "$out/otpd-dbgsym_${debversion}_$arch.deb" >/dev/null
echo "$out/otpd_${debversion}_$arch.deb"
echo "$out/otpd-dbgsym_${debversion}_$arch.deb"
