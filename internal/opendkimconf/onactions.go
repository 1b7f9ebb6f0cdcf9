package opendkimconf

import (
	"fmt"
	"strings"
)

// onActions carries OpenDKIM's On-* handling over where vouch has the same
// action, and says why not elsewhere. OpenDKIM takes each value by its
// first letter: accept, discard, quarantine, reject, tempfail.
func (c *converter) onActions() {
	for _, o := range []struct {
		name string
		do   func(s Setting, action string)
	}{
		{"On-BadSignature", c.onBadSignature},
		{"On-DNSError", c.onDNSError},
		{"On-NoSignature", c.sameAs("accept", "vouch accepts unsigned mail; DMARC (verify.dmarc_reject) refuses it for domains that ask")},
		{"On-KeyNotFound", c.sameAs("accept", "vouch never acts on a signature whose key is not published (dkim=permerror)")},
		{"On-InternalError", c.sameAs("tempfail", "vouch tempfails a message it cannot handle because of an internal error")},
		{"On-SignatureError", c.sameAs("tempfail", "vouch tempfails a message it should sign but cannot (for instance a missing key file)")},
		{"On-Security", c.sameAs("", "vouch has no separate action for messages that break OpenDKIM's limits")},
	} {
		s, set := c.get(o.name)
		if !set {
			continue
		}
		action := onAction(s.Value)
		if action == "" {
			c.drop(o.name, s, true, fmt.Sprintf("%q is not an OpenDKIM action (accept, discard, quarantine, reject, tempfail)", s.Value))
			continue
		}
		if c.verifyOff && o.name != "On-SignatureError" && o.name != "On-InternalError" {
			c.drop(o.name, s, true, "OpenDKIM did not verify (Mode): nothing to carry over")
			continue
		}
		o.do(s, action)
	}
}

// onAction is the action an On-* value names, or "".
func onAction(v string) string {
	v = strings.ToLower(v)
	for _, a := range []string{"accept", "discard", "quarantine", "reject", "tempfail"} {
		if v != "" && strings.HasPrefix(a, v) {
			return a
		}
	}
	return ""
}

// onBadSignature: verify.dkim_fail, applied also when DMARC passes
// (OpenDKIM knows no DMARC), with rejects enforced as OpenDKIM sends them.
func (c *converter) onBadSignature(s Setting, action string) {
	switch action {
	case "accept":
		c.note(s.Name, s, true, "accept is vouch's default (verify.dkim_fail)")
	case "discard":
		c.drop(s.Name, s, true, "vouch never drops mail silently: set verify.dkim_fail = \"reject\" to refuse it")
	default:
		c.verify = append(c.verify,
			tomlLine{"dkim_fail", tomlString(action), from(s)},
			tomlLine{"dkim_fail_when_dmarc_passes", "true", from(s) + ": OpenDKIM acts on a bad signature whatever DMARC says"})
		c.enforce(s)
	}
}

// onDNSError: verify.temp_error, which takes accept or tempfail only.
// test/onactions_test.go shows OpenDKIM ignoring On-DNSError for failed
// key lookups; the note says where vouch then differs.
func (c *converter) onDNSError(s Setting, action string) {
	switch action {
	case "accept", "tempfail":
		c.verify = append(c.verify, tomlLine{"temp_error", tomlString(action), from(s)})
		c.note(s.Name, s, true, "OpenDKIM accepts a message whose key lookup fails (SERVFAIL, timeout) whatever On-DNSError says; "+
			"vouch applies temp_error where the failure leaves open a result it would act on (with On-BadSignature reject it tempfails such a message by default)")
	default:
		c.drop(s.Name, s, true, "a DNS failure says nothing about the message: vouch accepts or tempfails (verify.temp_error), never "+action)
	}
}

// sameAs handles an option whose only carried value is vouch's fixed
// behaviour (want; "" none).
func (c *converter) sameAs(want, behaviour string) func(Setting, string) {
	return func(s Setting, action string) {
		if action == want {
			c.note(s.Name, s, true, "the same in vouch: "+behaviour)
			return
		}
		c.drop(s.Name, s, true, behaviour)
	}
}

// enforce writes verify.mode = "enforce" once: OpenDKIM has no trial
// mode, its rejects are sent as they are. The top-level mode stays
// "trial" for what OpenDKIM did not do (the screen, if turned on later).
func (c *converter) enforce(s Setting) {
	for _, l := range c.verify {
		if l.key == "mode" {
			return
		}
	}
	c.verify = append(c.verify, tomlLine{"mode", `"enforce"`, from(s) + ": OpenDKIM refuses at once; \"trial\" tempfails instead"})
}
