package opendkimconf

import "strings"

type kind int

const (
	kindString kind = iota
	kindBool
	kindInt
)

// options is OpenDKIM 2.11's option table (opendkim/opendkim-config.h,
// branch develop): the spelling and the value type of every option.
var options = []struct {
	name string
	kind kind
}{
	{"AllowSHA1Only", kindBool}, {"AlwaysAddARHeader", kindBool},
	{"ATPSDomains", kindString}, {"ATPSHashAlgorithm", kindString},
	{"AuthservID", kindString}, {"AuthservIDWithJobID", kindBool},
	{"AutoRestart", kindBool}, {"AutoRestartCount", kindInt},
	{"AutoRestartRate", kindString}, {"Background", kindBool},
	{"BaseDirectory", kindString}, {"BodyLengthDB", kindString},
	{"BogusKey", kindString}, {"Canonicalization", kindString},
	{"CaptureUnknownErrors", kindBool}, {"ChangeRootDirectory", kindString},
	{"ClockDrift", kindInt}, {"ConditionalSignatures", kindString},
	{"DefaultSender", kindString}, {"Diagnostics", kindBool},
	{"DiagnosticDirectory", kindString}, {"DisableCryptoInit", kindBool},
	{"DNSConnect", kindBool}, {"DNSTimeout", kindInt},
	{"Domain", kindString}, {"DomainKeysCompat", kindBool},
	{"DontSignMailTo", kindString}, {"EnableCoredumps", kindBool},
	{"ExemptDomains", kindString}, {"ExternalIgnoreList", kindString},
	{"FinalPolicyScript", kindString}, {"FixCRLF", kindBool},
	{"FlowData", kindString}, {"FlowDataFactor", kindInt},
	{"FlowDataTTL", kindInt}, {"IdentityHeader", kindString},
	{"IdentityHeaderRemove", kindBool}, {"IgnoreMalformedMail", kindBool},
	{"Include", kindString}, {"InternalHosts", kindString},
	{"KeepAuthResults", kindBool}, {"KeepTemporaryFiles", kindBool},
	{"KeyFile", kindString}, {"KeyTable", kindString},
	{"LDAPAuthMechanism", kindString}, {"LDAPAuthName", kindString},
	{"LDAPAuthRealm", kindString}, {"LDAPAuthUser", kindString},
	{"LDAPBindPassword", kindString}, {"LDAPBindUser", kindString},
	{"LDAPDisableCache", kindBool}, {"LDAPKeepaliveIdle", kindString},
	{"LDAPKeepaliveInterval", kindString}, {"LDAPKeepaliveProbes", kindString},
	{"LDAPTimeout", kindString}, {"LDAPUseTLS", kindBool},
	{"LogResults", kindBool}, {"LogWhy", kindBool},
	{"LuaOnlySigning", kindBool}, {"MaximumHeaders", kindInt},
	{"MaximumSignedBytes", kindInt}, {"MaximumSignaturesToVerify", kindInt},
	{"MacroList", kindString}, {"MilterDebug", kindInt},
	{"Minimum", kindString}, {"MinimumKeyBits", kindInt},
	{"MultipleSignatures", kindBool}, {"Mode", kindString},
	{"MTA", kindString}, {"MTACommand", kindString},
	{"MustBeSigned", kindString}, {"Nameservers", kindString},
	{"NoHeaderB", kindBool}, {"OmitHeaders", kindString},
	{"On-BadSignature", kindString}, {"On-Default", kindString},
	{"On-DNSError", kindString}, {"On-InternalError", kindString},
	{"On-KeyNotFound", kindString}, {"On-NoSignature", kindString},
	{"On-ReputationError", kindString}, {"On-Security", kindString},
	{"On-SignatureError", kindString}, {"OverSignHeaders", kindString},
	{"PeerList", kindString}, {"PidFile", kindString},
	{"POPDBFile", kindString}, {"Quarantine", kindBool},
	{"QueryCache", kindBool}, {"RateLimits", kindString},
	{"RedirectFailuresTo", kindString}, {"RemoveARAll", kindBool},
	{"RemoveARFrom", kindString}, {"RemoveOldSignatures", kindBool},
	{"ReplaceRules", kindString}, {"ReportAddress", kindString},
	{"ReportBccAddress", kindString}, {"ReputationCache", kindString},
	{"ReputationCacheTTL", kindInt}, {"ReputationDuplicates", kindString},
	{"ReputationLimits", kindString}, {"ReputationLowTime", kindString},
	{"ReputationMinimum", kindInt}, {"ReputationLimitModifiers", kindString},
	{"ReputationRatios", kindString}, {"ReputationRRDHashDepth", kindInt},
	{"ReputationRRDRoot", kindString}, {"ReputationSpamCheck", kindString},
	{"ReputationTest", kindBool}, {"ReputationTimeFactor", kindInt},
	{"ReputationTimeout", kindInt}, {"ReputationVerbose", kindBool},
	{"RequestReports", kindBool}, {"RequiredHeaders", kindBool},
	{"RequireSafeKeys", kindBool}, {"ResignAll", kindBool},
	{"ResignMailTo", kindString}, {"ResolverConfiguration", kindString},
	{"ResolverTracing", kindBool}, {"ScreenPolicyScript", kindString},
	{"Selector", kindString}, {"SelectCanonicalizationHeader", kindString},
	{"SenderHeaders", kindString}, {"SenderMacro", kindString},
	{"SendReports", kindBool}, {"SetupPolicyScript", kindString},
	{"SignatureAlgorithm", kindString}, {"SignatureTTL", kindInt},
	{"SignHeaders", kindString}, {"SigningTable", kindString},
	{"SMTPURI", kindString}, {"Socket", kindString},
	{"SoftwareHeader", kindBool}, {"SoftStart", kindBool},
	{"Statistics", kindString}, {"StatisticsName", kindString},
	{"StatisticsPolicyScript", kindString}, {"StatisticsPrefix", kindString},
	{"StrictHeaders", kindBool}, {"StrictTestMode", kindBool},
	{"SubDomains", kindBool}, {"Syslog", kindBool},
	{"SyslogFacility", kindString}, {"SyslogName", kindString},
	{"SyslogSuccess", kindBool}, {"TemporaryDirectory", kindString},
	{"TestDNSData", kindString}, {"TestPublicKeys", kindString},
	{"TrustAnchorFile", kindString}, {"TrustSignaturesFrom", kindString},
	{"UMask", kindInt}, {"UnprotectedKey", kindString},
	{"UserID", kindString}, {"VBR-Certifiers", kindString},
	{"VBR-PurgeFields", kindBool}, {"VBR-TrustedCertifiers", kindString},
	{"VBR-TrustedCertifiersOnly", kindBool}, {"VBR-Type", kindString},
	{"WeakSyntaxChecks", kindBool}, {"X-Header", kindBool},
}

var (
	canonical = map[string]string{} // lower-case → OpenDKIM's spelling
	kinds     = map[string]kind{}   // lower-case → value type
)

func init() {
	for _, o := range options {
		canonical[strings.ToLower(o.name)] = o.name
		kinds[strings.ToLower(o.name)] = o.kind
	}
}

// Reasons shared by several options.
const (
	whyVerify   = "verification setting: not converted; vouch verifies with its own settings ([verify])"
	whySyslog   = "vouch logs to stderr, which systemd sends to the journal"
	whyRestart  = "systemd restarts vouch (Restart=on-failure in the unit)"
	whyLDAP     = "LDAP is not supported yet (a later vouch release reads keys from LDAP)"
	whyReput    = "reputation checks are not supported"
	whyVBR      = "VBR (RFC 5518) is not supported"
	whyLua      = "Lua policy scripts are not supported"
	whyStats    = "OpenDKIM statistics are not supported"
	whyRate     = "rate limits are not supported"
	whyNoSender = "vouch signs for the domain of the From header field only"
	whyTempFile = "vouch streams messages and writes no temporary files"
)

// notCarried gives the one-line reason for each option that has no vouch
// equivalent. Options converted by Convert are not listed here.
var notCarried = map[string]string{
	"AllowSHA1Only":                whyVerify,
	"AlwaysAddARHeader":            whyVerify,
	"ATPSDomains":                  "ATPS (RFC 6541) is not supported",
	"ATPSHashAlgorithm":            "ATPS (RFC 6541) is not supported",
	"AuthservIDWithJobID":          "vouch's Authentication-Results carry no job ID",
	"AutoRestart":                  whyRestart,
	"AutoRestartCount":             whyRestart,
	"AutoRestartRate":              whyRestart,
	"Background":                   "vouch runs in the foreground; systemd supervises it",
	"BaseDirectory":                "vouch does not change directory: use absolute paths, or WorkingDirectory= in the unit",
	"BodyLengthDB":                 "vouch always signs the whole body (no l= tag)",
	"BogusKey":                     whyVerify,
	"CaptureUnknownErrors":         "no equivalent: vouch logs every error",
	"ChangeRootDirectory":          "no chroot: the systemd unit sandboxes vouch (ProtectSystem=strict)",
	"ClockDrift":                   whyVerify,
	"ConditionalSignatures":        "conditional signatures are not supported",
	"DefaultSender":                whyNoSender,
	"Diagnostics":                  "vouch adds no z= tag",
	"DiagnosticDirectory":          whyVerify,
	"DisableCryptoInit":            "no OpenSSL in vouch",
	"DNSConnect":                   "DNS for verifying: not converted (vouch's lookups: [dns])",
	"DNSTimeout":                   "DNS for verifying: not converted (vouch's lookups: [dns] timeout)",
	"DomainKeysCompat":             whyVerify,
	"DontSignMailTo":               "vouch has no per-recipient exemption from signing",
	"EnableCoredumps":              "systemd decides (LimitCORE= in the unit)",
	"ExemptDomains":                "no equivalent: mail from a domain without a key is not signed anyway",
	"ExternalIgnoreList":           "it only silenced OpenDKIM's \"external host attempted to send as\" log line; vouch does not log that",
	"FinalPolicyScript":            whyLua,
	"FixCRLF":                      "vouch always signs bare LF line ends as CRLF",
	"FlowData":                     whyRate,
	"FlowDataFactor":               whyRate,
	"FlowDataTTL":                  whyRate,
	"IdentityHeader":               "vouch sets i= only from the SigningTable",
	"IdentityHeaderRemove":         "vouch sets i= only from the SigningTable",
	"IgnoreMalformedMail":          "vouch passes malformed mail unsigned and logs why",
	"KeepAuthResults":              "vouch removes only Authentication-Results fields that claim its own authserv_id",
	"KeepTemporaryFiles":           whyTempFile,
	"LDAPAuthMechanism":            whyLDAP,
	"LDAPAuthName":                 whyLDAP,
	"LDAPAuthRealm":                whyLDAP,
	"LDAPAuthUser":                 whyLDAP,
	"LDAPBindPassword":             whyLDAP,
	"LDAPBindUser":                 whyLDAP,
	"LDAPDisableCache":             whyLDAP,
	"LDAPKeepaliveIdle":            whyLDAP,
	"LDAPKeepaliveInterval":        whyLDAP,
	"LDAPKeepaliveProbes":          whyLDAP,
	"LDAPTimeout":                  whyLDAP,
	"LDAPUseTLS":                   whyLDAP,
	"LogResults":                   whyVerify,
	"LogWhy":                       "vouch always logs why a message was or was not signed",
	"LuaOnlySigning":               whyLua,
	"MaximumHeaders":               "vouch's header size limit is built in",
	"MaximumSignedBytes":           "vouch always signs the whole body (no l= tag)",
	"MaximumSignaturesToVerify":    whyVerify,
	"MacroList":                    "vouch does not trust mail by macro values: list the clients in internal_hosts or use SMTP AUTH",
	"MilterDebug":                  "use log_level = \"debug\"",
	"Minimum":                      whyVerify,
	"MinimumKeyBits":               whyVerify,
	"MTA":                          "vouch does not trust mail by {daemon_name}: list the clients in internal_hosts or use SMTP AUTH",
	"MTACommand":                   "vouch sends no reports",
	"MustBeSigned":                 whyVerify,
	"NoHeaderB":                    whyVerify,
	"OmitHeaders":                  "vouch signs only signing.headers: remove names from that list instead",
	"On-Default":                   "vouch's actions are fixed: a key it cannot load tempfails the message, anything else passes",
	"On-ReputationError":           whyReput,
	"PeerList":                     "vouch ignores no client: internal ones are signed, others screened (screening is off here)",
	"PidFile":                      "systemd tracks the process; vouch writes no pid file",
	"POPDBFile":                    "POP-before-SMTP is not supported: use SMTP AUTH or internal_hosts",
	"Quarantine":                   whyVerify,
	"QueryCache":                   "DNS for verifying: not converted (vouch's lookups: [dns])",
	"RateLimits":                   whyRate,
	"RedirectFailuresTo":           whyVerify,
	"RemoveARAll":                  "vouch removes only Authentication-Results fields that claim its own authserv_id",
	"RemoveARFrom":                 "vouch removes only Authentication-Results fields that claim its own authserv_id",
	"RemoveOldSignatures":          "vouch never removes existing DKIM-Signature fields",
	"ReplaceRules":                 "vouch never rewrites header fields before signing",
	"ReportAddress":                "vouch sends no reports",
	"ReportBccAddress":             "vouch sends no reports",
	"ReputationCache":              whyReput,
	"ReputationCacheTTL":           whyReput,
	"ReputationDuplicates":         whyReput,
	"ReputationLimits":             whyReput,
	"ReputationLowTime":            whyReput,
	"ReputationMinimum":            whyReput,
	"ReputationLimitModifiers":     whyReput,
	"ReputationRatios":             whyReput,
	"ReputationRRDHashDepth":       whyReput,
	"ReputationRRDRoot":            whyReput,
	"ReputationSpamCheck":          whyReput,
	"ReputationTest":               whyReput,
	"ReputationTimeFactor":         whyReput,
	"ReputationTimeout":            whyReput,
	"ReputationVerbose":            whyReput,
	"RequestReports":               "vouch does not request reports (no r=y tag)",
	"RequiredHeaders":              "vouch does not reject mail: a message without exactly one From is passed unsigned",
	"ResignAll":                    "re-signing relayed mail is not supported",
	"ResignMailTo":                 "re-signing relayed mail is not supported",
	"ResolverConfiguration":        "libunbound configuration: vouch's lookups are set in [dns]",
	"ResolverTracing":              "DNS for verifying: not converted (vouch's lookups: [dns])",
	"ScreenPolicyScript":           whyLua,
	"SelectCanonicalizationHeader": "vouch always signs relaxed/relaxed",
	"SenderHeaders":                whyNoSender,
	"SenderMacro":                  whyNoSender,
	"SendReports":                  "vouch sends no reports",
	"SetupPolicyScript":            whyLua,
	"SMTPURI":                      "vouch sends no reports",
	"SoftwareHeader":               "vouch adds no DKIM-Filter header field",
	"SoftStart":                    "vouch starts only with a valid configuration; systemd retries (Restart=)",
	"Statistics":                   whyStats,
	"StatisticsName":               whyStats,
	"StatisticsPolicyScript":       whyStats,
	"StatisticsPrefix":             whyStats,
	"StrictHeaders":                whyVerify,
	"StrictTestMode":               whyVerify,
	"Syslog":                       whySyslog,
	"SyslogFacility":               whySyslog,
	"SyslogName":                   whySyslog,
	"SyslogSuccess":                whySyslog + " (one line per message, always)",
	"TemporaryDirectory":           whyTempFile,
	"TestDNSData":                  "test-only DNS data is not supported",
	"TestPublicKeys":               whyVerify,
	"TrustAnchorFile":              "DNSSEC for verifying: not converted; vouch's verification has no trust anchor setting",
	"TrustSignaturesFrom":          whyVerify,
	"UnprotectedKey":               whyVerify,
	"UserID":                       "the systemd unit runs vouch as User=vouch and Group=vouch",
	"VBR-Certifiers":               whyVBR,
	"VBR-PurgeFields":              whyVBR,
	"VBR-TrustedCertifiers":        whyVBR,
	"VBR-TrustedCertifiersOnly":    whyVBR,
	"VBR-Type":                     whyVBR,
	"WeakSyntaxChecks":             whyVerify,
	"X-Header":                     "vouch adds no DKIM-Filter header field",
}

// defaultSignHeaders is libopendkim's dkim_should_signhdrs[] (dkim.c, the
// same in 2.8 to 2.11): what OpenDKIM signs without SignHeaders, and the
// base list that "*" stands for in SignHeaders.
var defaultSignHeaders = []string{
	"from", "reply-to", "subject", "date", "to", "cc", "resent-date",
	"resent-from", "resent-sender", "resent-to", "resent-cc", "in-reply-to",
	"references", "list-id", "list-help", "list-unsubscribe",
	"list-subscribe", "list-post", "list-owner", "list-archive",
}
