package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestZZDebugLDAP(t *testing.T) {
	f := newLDAPFixture(t)
	ld := f.slapd(t, "ldap", nil)
	signingTable, keyTable := zimbraLDAPTables(ld.url())
	conf := fmt.Sprintf(`Mode			s
Canonicalization	relaxed/relaxed
SignHeaders		message-id,date,from,mime-version,to
InternalHosts		csl:127.0.0.1
LDAPBindUser		%s
LDAPBindPassword	%s
LDAPUseTLS		no
SigningTable		%s
KeyTable		%s
Syslog			no
LogWhy			yes
Socket inet:8899@127.0.0.1
`, zmpostfixDN, zmpostfixPW, signingTable, keyTable)
	os.WriteFile("/tmp/odk.conf", []byte(conf), 0o644)
	os.WriteFile("/tmp/odk.ready", []byte(filepath.Join(f.dir)), 0o644)
	time.Sleep(120 * time.Second)
}
