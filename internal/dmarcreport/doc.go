// Package dmarcreport is DMARC aggregate reporting both ways (RFC 7489
// §7.2, tightened where the DMARCbis aggregate-report draft does):
//
//   - outgoing: the milter records one Row per inbound message it
//     evaluated for DMARC; once a day the rows of each policy domain and
//     day are built into one <feedback> report, gzipped and mailed to the
//     domain's rua= mailto URIs (size limits, the external-destination
//     check, retries);
//   - incoming: reports that receivers (Google, Microsoft, Yahoo, ...)
//     send to the admin's own rua mailboxes are taken from the mail as it
//     passes the milter, parsed defensively and kept, for `vouch reports
//     list` and `vouch reports html`.
//
// Both directions keep their data in a Store: bbolt on the local disk by
// default, Redis when several MTAs share it.
package dmarcreport
