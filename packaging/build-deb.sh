#!/usr/bin/env bash
# Builds vouch_VERSION_ARCH.deb with dpkg-deb alone (no debhelper, no
# network once the Go modules are in the module cache).
#
#   packaging/build-deb.sh VERSION [OUTDIR]     (OUTDIR defaults to ./dist)
#
# Environment: GO (default go), GOARCH (default: go env GOARCH),
# DEBFULLNAME and DEBEMAIL for the Maintainer field, CRYPTO=boring (the
# default: the fast build, the BoringCrypto module of the Go toolchain and
# RSA signing through OpenSSL's libcrypto; cgo, needs gcc and libssl-dev,
# links libc and libcrypto) or CRYPTO=go (pure Go, a static binary).
set -euo pipefail

usage() { echo "usage: $0 VERSION [OUTDIR]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
version=${1#v}
# Debian policy 5.6.12: starts with a digit; letters, digits, . + ~ -.
[[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || { echo "$0: $1 is not a Debian version" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
outdir=${2:-$PWD/dist}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
go=${GO:-go}
goarch=${GOARCH:-$("$go" env GOARCH)}
case $goarch in
amd64 | arm64 | riscv64 | s390x | ppc64le) arch=${goarch/ppc64le/ppc64el} ;;
386) arch=i386 ;;
arm) arch=armhf; export GOARM=${GOARM:-7} ;;
*) echo "$0: no Debian architecture for GOARCH=$goarch" >&2; exit 2 ;;
esac

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/vouch
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/sbin" "$pkg/lib/systemd/system" \
	"$pkg/usr/share/doc/vouch/examples"

# The fast build by default: BoringCrypto, and RSA signatures through
# OpenSSL's libcrypto (-tags openssl), a quarter of pure Go's cost
# (bench/README.md); building it needs gcc and libssl-dev. CRYPTO=go gives
# a static binary with no libc dependency.
crypto=${CRYPTO:-boring}
commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
case $crypto in
boring) buildenv=(GOEXPERIMENT=boringcrypto CGO_ENABLED=1) tags=openssl depends="adduser, libc6 (>= 2.34), libssl3 (>= 3.0.0)" ;;
go) buildenv=(CGO_ENABLED=0) tags= depends="adduser" ;;
*) echo "$0: CRYPTO=$crypto: want boring or go" >&2; exit 2 ;;
esac
(cd "$root" && env "${buildenv[@]}" GOOS=linux GOARCH="$goarch" "$go" build -trimpath -tags "$tags" \
	-ldflags "-X main.version=$version -X main.commit=$commit" -o "$pkg/usr/sbin/vouch" ./cmd/vouch)
chmod 0755 "$pkg/usr/sbin/vouch"

install -m 0644 "$root/contrib/systemd/vouch.service" "$pkg/lib/systemd/system/vouch.service"

# The configuration is shipped as an example, not as a conffile: postinst
# copies it to /etc/vouch/vouch.toml when that file does not exist and
# never touches it again. It documents the embedded defaults (every
# setting commented out) and so changes with every release; as a conffile,
# any local edit would make dpkg stop at its "install the maintainer's
# version?" prompt on upgrade, which fails outright without a terminal
# (unattended-upgrades, Ansible, dpkg -i </dev/null).
{
	cat <<EOF
# /etc/vouch/vouch.toml: vouch's configuration (created from vouch $version's
# /usr/share/doc/vouch/examples/vouch.toml; upgrades leave it alone).
#
# vouch has every setting built in; this file only needs what you change.
# Below are the built-in defaults, commented out: uncomment a setting and
# its [table] line to change it. Check with: vouch serve -check
# Reference: /usr/share/doc/vouch/README.md
# Coming from OpenDKIM: vouch import-opendkim /etc/opendkim.conf

EOF
	awk '/^[[:space:]]*(#|$)/ { print; next } { print "#" $0 }' "$root/internal/config/default.toml"
} >"$pkg/usr/share/doc/vouch/examples/vouch.toml"
chmod 0644 "$pkg/usr/share/doc/vouch/examples/vouch.toml"

install -m 0644 "$root/README.md" "$pkg/usr/share/doc/vouch/README.md"
for f in postfix/main.cf.snippet opendkim/README.md sendmail/README.md zimbra/README.md runit/run runit/log/run; do
	if [ -f "$root/contrib/$f" ]; then
		install -m 0644 "$root/contrib/$f" "$pkg/usr/share/doc/vouch/examples/${f//\//-}"
	fi
done

install -m 0755 "$here/debian/postinst" "$here/debian/prerm" "$here/debian/postrm" "$pkg/DEBIAN/"
(cd "$pkg" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"

maintainer="${DEBFULLNAME:-vouch maintainers} <${DEBEMAIL:-root@localhost}>"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<EOF
Package: vouch
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: $depends
Suggests: postfix | sendmail-bin | mail-transport-agent
Section: mail
Priority: optional
Description: DKIM-signing and inbound-screening milter
 vouch is a mail filter (milter) for Postfix, Sendmail and Zimbra. It signs
 outbound mail with DKIM (rsa-sha256, ed25519-sha256), reading OpenDKIM's
 KeyTable, SigningTable and InternalHosts files unchanged, and screens
 inbound SMTP clients by their PTR, HELO and sender domain.
 .
 It replaces OpenDKIM's signing: vouch import-opendkim converts an
 opendkim.conf.
EOF

deb=$outdir/vouch_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
