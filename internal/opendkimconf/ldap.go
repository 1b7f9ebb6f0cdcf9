package opendkimconf

import (
	"fmt"
	"strings"
)

// ldapOptions carries OpenDKIM's LDAP options over to [signing] when the
// KeyTable or SigningTable is an LDAP data set (vouch reads those as
// OpenDKIM does), and lists them as not carried over otherwise.
func (c *converter) ldapOptions(used bool) {
	sasl := []string{"LDAPAuthName", "LDAPAuthRealm", "LDAPAuthUser"}
	keepalive := []string{"LDAPKeepaliveIdle", "LDAPKeepaliveInterval", "LDAPKeepaliveProbes"}
	if !used {
		for _, n := range append(append([]string{"LDAPBindUser", "LDAPBindPassword", "LDAPUseTLS", "LDAPTimeout", "LDAPDisableCache", "LDAPAuthMechanism"}, sasl...), keepalive...) {
			if s, set := c.get(n); set {
				c.drop(n, s, true, "no KeyTable or SigningTable here is an LDAP data set")
			}
		}
		return
	}
	if s, set := c.get("LDAPBindUser"); set {
		c.signing = append(c.signing, tomlLine{"ldap_bind_dn", tomlString(s.Value), from(s)})
	}
	if s, set := c.get("LDAPBindPassword"); set {
		// A secret does not belong in a file that is printed, mailed and
		// kept in version control: it goes into a file of its own.
		c.signing = append(c.signing, tomlLine{"ldap_bind_password_file", tomlString(c.opts.LDAPPasswordFile), from(s)})
		c.res.LDAPBindPassword = s.Value
		c.note("LDAPBindPassword", s, true, "written to "+c.opts.LDAPPasswordFile+" (mode 0600, owner vouch), not into the configuration; ldap_bind_password_file names it")
	}
	if s, set := c.get("LDAPUseTLS"); set {
		v, _ := parseBool(s.Value)
		c.signing = append(c.signing, tomlLine{"ldap_use_tls", fmt.Sprint(v), from(s)})
		if v {
			c.note("LDAPUseTLS", s, true, "vouch checks the LDAP server's certificate against the system's CAs, or the CA file in ldap_tls_ca_file (Zimbra: /opt/zimbra/conf/ca/ca.pem)")
		}
	}
	if s, set := c.get("LDAPTimeout"); set {
		n, ok := parseInt(s.Value)
		switch {
		case !ok || n <= 0:
			c.drop("LDAPTimeout", s, true, "not a number of seconds: vouch keeps its default, 5s (OpenDKIM's too)")
		default:
			c.signing = append(c.signing, tomlLine{"ldap_timeout", tomlString(fmt.Sprintf("%ds", n)), from(s)})
			if n >= 30 {
				c.note("LDAPTimeout", s, true, "as long as Postfix's milter_command_timeout (30s): with a hanging LDAP server Postfix gives up on the milter first; 5s (OpenDKIM's default) is safer")
			}
		}
	}
	if s, set := c.get("LDAPDisableCache"); set {
		if off, _ := parseBool(s.Value); off {
			c.note("LDAPDisableCache", s, true, "vouch keeps LDAP answers for ldap_cache_ttl (60s); set it to \"0s\" to ask LDAP for every message")
		}
	}
	if s, set := c.get("LDAPAuthMechanism"); set {
		if m := strings.ToLower(s.Value); m != "" && m != "none" && m != "simple" {
			c.drop("LDAPAuthMechanism", s, true, "SASL binds are not supported: vouch binds with ldap_bind_dn and its password (simple bind)")
		}
	}
	for _, n := range sasl {
		if s, set := c.get(n); set {
			c.drop(n, s, true, "SASL binds are not supported: vouch binds with ldap_bind_dn and its password (simple bind)")
		}
	}
	for _, n := range keepalive {
		if s, set := c.get(n); set {
			c.drop(n, s, true, "vouch's LDAP connection uses TCP keepalives (30s) and reconnects when it breaks")
		}
	}
}
