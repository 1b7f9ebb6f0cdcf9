package daemon

import (
	"fmt"
	"os"
	"strings"

	"vouch/internal/config"
	"vouch/internal/dmarcreport"
	"vouch/internal/hijack"
	"vouch/internal/redisconn"
	"vouch/internal/sockaddr"
	"vouch/policy"
	"vouch/signer"
	"vouch/whitelist"
)

// The configuration, as each package wants its settings. The config
// package only knows the file (its schema, defaults and the checks that
// need nothing else); what an action name or an outcome means is the
// business of the package that acts on it, so those checks happen here,
// while translating.

// checkSettings reports, in the config's own format, every problem the
// translation into screen, verify and hijack settings finds.
func checkSettings(cfg *config.Config) error {
	_, errs := ScreenConfig(cfg)
	if _, err := sockaddr.Parse(cfg.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %v", err))
	}
	_, verrs := VerifyConfig(cfg)
	errs = append(errs, verrs...)
	if err := HijackConfig(cfg).Validate(); err != nil {
		errs = append(errs, err)
	}
	return cfg.Problems(errs)
}

// ScreenConfig converts the [screen] section into the screen's configuration.
func ScreenConfig(cfg *config.Config) (*policy.Config, []error) {
	c := cfg.Screen
	pc := &policy.Config{
		Mode:        policy.Mode(cfg.ScreenMode()),
		Budget:      c.Budget,
		MaxPTRNames: c.MaxPTRNames,
		Checks:      map[policy.Check]policy.CheckConfig{},
	}
	var errs []error
	for check, ch := range map[policy.Check]config.Check{policy.PTR: c.PTR, policy.HELO: c.HELO, policy.Mail: c.Mail} {
		cc := policy.CheckConfig{Enabled: ch.Enabled, Rules: map[policy.Outcome]policy.Rule{}}
		for o, a := range ch.Actions {
			action, err := policy.ParseAction(a)
			if err != nil {
				errs = append(errs, fmt.Errorf("screen.%s.%s: %v", check, o, err))
				continue
			}
			cc.Rules[policy.Outcome(o)] = policy.Rule{Action: action, Text: ch.Replies[o]}
		}
		for o, text := range ch.Replies {
			if _, ok := ch.Actions[o]; !ok {
				errs = append(errs, fmt.Errorf("screen.%s.replies.%s: no such outcome", check, o))
			}
			if strings.ContainsAny(text, "\r\n") {
				errs = append(errs, fmt.Errorf("screen.%s.replies.%s: must be one line", check, o))
			}
		}
		pc.Checks[check] = cc
	}
	errs = append(errs, pc.Validate()...)
	return pc, errs
}

// VerifyConfig converts the [verify] section into the end-of-message
// policy's configuration.
func VerifyConfig(cfg *config.Config) (*policy.VerifyConfig, []error) {
	v := cfg.Verify
	vc := &policy.VerifyConfig{Enabled: v.Enabled, DKIMFailWhenDMARCPasses: v.DKIMFailWhenDMARCPasses}
	var errs []error
	for _, f := range []struct {
		key string
		val string
		dst *policy.MessageAction
	}{
		{"dmarc_reject", v.DMARCReject, &vc.DMARCReject},
		{"dmarc_quarantine", v.DMARCQuarantine, &vc.DMARCQuarantine},
		{"spf_fail", v.SPFFail, &vc.SPFFail},
		{"dkim_fail", v.DKIMFail, &vc.DKIMFail},
		{"temp_error", v.TempError, &vc.TempError},
	} {
		a, err := policy.ParseMessageAction(f.val)
		if err != nil {
			errs = append(errs, fmt.Errorf("verify.%s: %v", f.key, err))
			continue
		}
		*f.dst = a
	}
	if len(errs) == 0 {
		errs = vc.Validate()
	}
	return vc, errs
}

// SyncConfig is the [whitelist.sync] section for the whitelist package.
func SyncConfig(cfg *config.Config) (whitelist.SyncConfig, bool) {
	s := cfg.Whitelist.Sync
	urls := map[whitelist.Kind]string{}
	for k, u := range map[whitelist.Kind]string{whitelist.Reverse: s.ReverseURL, whitelist.HELO: s.HELOURL, whitelist.Mail: s.MailURL} {
		if u != "" {
			urls[k] = u
		}
	}
	return whitelist.SyncConfig{URLs: urls, MaxSize: s.MaxSize, Timeout: s.Timeout}, len(urls) > 0
}

// HijackConfig is the [hijack] section for the hijack package.
func HijackConfig(cfg *config.Config) hijack.Config {
	h := cfg.Hijack
	return hijack.Config{
		Enabled: h.Enabled, Messages: h.Messages, Recipients: h.Recipients, Window: h.Window,
		Action: h.Action, ExemptFile: h.ExemptFile, Postmaster: h.Postmaster,
		NotifySMTP: h.NotifySMTP, NotifyFrom: h.NotifyFrom, StateFile: h.StateFile,
		AdminSocket: h.AdminSocket, Backend: h.Backend, RedisURL: h.RedisURL,
		RedisFailOpen: h.RedisFailOpen, Trial: cfg.HijackTrial(),
		RedisSentinels: h.RedisSentinels, RedisMasterName: h.RedisMasterName, RedisCluster: h.RedisCluster,
		RedisUsername: h.RedisUsername, RedisPassword: h.RedisPassword, RedisSentinelPassword: h.RedisSentinelPassword,
		ReleaseAddress: h.ReleaseAddress, ReleaseTokenTTL: h.ReleaseTokenTTL, ReleaseKeyFile: h.ReleaseKeyFile,
	}
}

// SignerConfig is the [signing] section for the signer package.
func SignerConfig(cfg *config.Config) signer.Config {
	s := cfg.Signing
	inline := make([]signer.InlineKey, len(s.Keys))
	for i, k := range s.Keys {
		inline[i] = signer.InlineKey{Domain: k.Domain, Selector: k.Selector, PrivateKey: k.PrivateKey,
			NextSelector: k.NextSelector, NextPrivateKey: k.NextPrivateKey}
	}
	r := cfg.Rotation
	return signer.Config{
		InternalHosts: s.InternalHosts, InternalHostsFile: s.InternalHostsFile,
		KeyTable: s.KeyTable, SigningTable: s.SigningTable,
		MultipleSignatures: s.MultipleSignatures, RequireSafeKeys: s.RequireSafeKeys,
		Headers: s.Headers, Oversign: s.Oversign, SignatureTTL: s.SignatureTTL,
		LDAPBindDN: s.LDAPBindDN, LDAPBindPassword: s.LDAPBindPassword, LDAPBindPasswordFile: s.LDAPBindPasswordFile,
		LDAPUseTLS: s.LDAPUseTLS, LDAPTLSCAFile: s.LDAPTLSCAFile, LDAPTimeout: s.LDAPTimeout, LDAPCacheTTL: s.LDAPCacheTTL,
		Keys: inline,
		Rotation: signer.RotationConfig{CheckInterval: r.CheckInterval, PublishDelay: r.PublishDelay,
			AutoSwitch: r.AutoSwitch, StateFile: r.StateFile},
	}
}

// ReportStoreOptions is the [dmarc_reports] store for
// dmarcreport.OpenStore: the one place the store's keys are translated.
func ReportStoreOptions(cfg *config.Config) dmarcreport.StoreOptions {
	r := cfg.DMARCReports
	return dmarcreport.StoreOptions{Kind: r.Store, Path: r.Path, Redis: redisconn.Options{
		URL: r.RedisURL, Sentinels: r.RedisSentinels, MasterName: r.RedisMasterName, Cluster: r.RedisCluster,
		Username: r.RedisUsername, Password: r.RedisPassword, SentinelPassword: r.RedisSentinelPassword,
	}}
}

// ReportCaptureOptions are the [dmarc_reports] receiving keys.
func ReportCaptureOptions(cfg *config.Config) dmarcreport.CaptureOptions {
	r := cfg.DMARCReports
	return dmarcreport.CaptureOptions{
		Mailboxes: r.RUAMailboxes, Discard: r.DiscardReceived,
		Limits: dmarcreport.Limits{MaxMessage: r.MaxMessageSize, MaxXML: r.MaxXMLSize},
	}
}

// ReportSenderOptions is the sending part of [dmarc_reports]; the EHLO
// name is the host name.
func ReportSenderOptions(cfg *config.Config) dmarcreport.SenderOptions {
	d := cfg.DMARCReports
	host, _ := os.Hostname()
	return dmarcreport.SenderOptions{
		Reporter: dmarcreport.Reporter{OrgName: d.OrgName, Email: d.From, ExtraContactInfo: d.ExtraContactInfo},
		SMTP:     d.SMTP, HELO: host, SendAt: d.SendAt, MaxReportSize: d.MaxReportSize, RetryFor: d.RetryFor,
	}
}
