#!/usr/bin/env bash
# Runs every test of vouch, end-to-end tests against a private Postfix
# included. As root on Debian 12: installs what the tests need from apt
# first when something is missing (Postfix, OpenDKIM, dkimpy), then runs
# go test with the race detector.
set -euo pipefail
cd "$(dirname "$0")"

packages=(gcc libc6-dev libssl-dev libxml2-utils postfix opendkim opendkim-tools python3-dkim python3-nacl ca-certificates redis-server redis-tools sasl2-bin libsasl2-modules systemd adduser slapd ldap-utils chromium-headless-shell)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# No main.cf: the tests run their own Postfix instances (postfix -c DIR).
	echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
	# No slapd database either: the LDAP tests run their own slapd.
	echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Sendmail conflicts with Postfix as a package: test/sendmail_test.go runs
# it from these .debs, extracted privately.
sendmail_debs=/var/cache/vouch-test/sendmail
if ! ls "$sendmail_debs"/{sendmail-bin,sendmail-cf,m4,libwrap0}_*.deb >/dev/null 2>&1; then
	mkdir -p "$sendmail_debs"
	apt-get update -q
	(cd "$sendmail_debs" && apt-get download sendmail-bin sendmail-cf m4 libwrap0)
fi

export PATH="/usr/local/go/bin:$PATH"
go test -race -count=1 -timeout 40m "$@" ./...
