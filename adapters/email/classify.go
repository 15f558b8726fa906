package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/relay-project/relay/relay"
)

// stage is the step of an SMTP session an error happened in. The same
// reply means different things at different steps: a 550 to RCPT is about
// this recipient, a 550 to MAIL FROM is about our sender, which no resend
// fixes.
type stage string

const (
	stageConnect stage = "connect"  // TCP dial
	stageTLS     stage = "tls"      // implicit TLS handshake, or STARTTLS
	stageHello   stage = "ehlo"     // greeting and EHLO
	stageAuth    stage = "auth"     // AUTH
	stageMail    stage = "mail"     // MAIL FROM
	stageRcpt    stage = "rcpt"     // RCPT TO
	stageData    stage = "data"     // DATA and the content, before the final dot
	stageDataEnd stage = "data end" // the final dot was (maybe) written: waiting for the verdict
	stageNoop    stage = "noop"     // the probe's NOOP
)

// Errors the adapter itself finds while setting up a session.
var (
	errNoStartTLS = errors.New("server does not offer STARTTLS, which tls = \"starttls\" requires")
	errNoAuth     = errors.New("server offers no AUTH mechanism that relay supports (PLAIN, LOGIN)")
)

// throttleWords are what servers say when they slow a sender down: Postfix
// "421 4.7.0 Error: too many connections", Gmail "450 4.2.1 ... receiving
// mail too quickly", Amazon SES "454 Throttling failure: Maximum sending
// rate exceeded", "452 4.5.3 Error: too many recipients".
var throttleWords = regexp.MustCompile(`(?i)too many|rate limit|ratelimit|throttl|slow down|too fast|too quickly|sending rate`)

// classify turns a failure at stage st into a *relay.Error with its Kind.
// ctxErr is the Send's context error, if the context ended: a connection
// that the adapter closed because time ran out looks like any network
// error otherwise.
//
// The policy, from RFC 5321 §4.2.1 (reply code classes) and RFC 3463
// (enhanced status codes):
//   - 4xx: temporary; rate-limited when it is throttling (421/450/451 with
//     an x.7.x policy code, or throttling words, e.g. 452 "too many").
//     SMTP gives no retry-after, so RetryAfter is zero (unknown).
//   - 530, 534, 535, 538 anywhere, and any 5xx to AUTH: auth.
//   - 5xx to the greeting, EHLO, STARTTLS or MAIL FROM: auth as well. The
//     server refuses this sender or this client (relay access, sender
//     address not owned, blocklisted host): every send on the channel
//     would fail the same way until the operator acts, so the channel must
//     go down rather than blame each recipient. 552 / x.3.4 to MAIL (too
//     big) is invalid.
//   - 5xx to RCPT: permanent for this recipient (550, 551, 553, x.1.x,
//     x.2.x and the rest), except a malformed address (501, x.1.3):
//     invalid.
//   - 5xx to DATA: invalid when the message itself is refused (552,
//     x.3.4 too big, x.6.x bad content), else permanent.
//   - TLS: a certificate that does not verify, a server that does not
//     speak TLS where tls says it should, or no STARTTLS when it is
//     required are configuration errors: auth (the channel goes down until
//     the operator fixes the CA, the host name or the tls mode; retrying
//     cannot help and sending in clear is not an option). Any other
//     handshake failure is temporary.
//   - Network errors and deadlines: temporary before the final dot of DATA
//     was written (RFC 5321 §3.8: a connection closed before the end of
//     the data aborts the transaction), ambiguous after it, when the server
//     may have queued the message before the reply was lost.
func classify(st stage, err error, ctxErr error) *relay.Error {
	var re *relay.Error
	if errors.As(err, &re) {
		return re
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return classifyReply(st, se)
	}
	if ctxErr != nil || errors.Is(err, context.DeadlineExceeded) {
		if ctxErr == nil {
			ctxErr = context.DeadlineExceeded
		}
		if st == stageDataEnd {
			return relay.Errorf(relay.KindAmbiguous, "email: %s: %w: the server may have accepted the message", st, ctxErr)
		}
		return relay.Errorf(relay.KindTemporary, "email: %s: %w", st, ctxErr)
	}
	switch {
	case errors.Is(err, errNoStartTLS), errors.Is(err, errNoAuth):
		return relay.Errorf(relay.KindAuth, "email: %s: %w", st, err)
	case isCertError(err):
		return relay.Errorf(relay.KindAuth, "email: %s: certificate not trusted (set ca_file for a private CA): %w", st, err)
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return relay.Errorf(relay.KindAuth, "email: %s: the server does not speak TLS here (check tls and the port): %w", st, err)
	}
	if st == stageDataEnd {
		return relay.Errorf(relay.KindAmbiguous, "email: %s: %w: the server may have accepted the message", st, err)
	}
	return relay.Errorf(relay.KindTemporary, "email: %s: %w", st, err)
}

// isCertError reports whether err is a failed certificate verification.
func isCertError(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

// classifyReply classifies an SMTP error reply at stage st.
func classifyReply(st stage, e *smtp.SMTPError) *relay.Error {
	enh := e.EnhancedCode
	hasEnh := enh != smtp.EnhancedCodeNotSet && enh != smtp.NoEnhancedCode && enh[0] != 0
	desc := fmt.Sprintf("%d", e.Code)
	if hasEnh {
		desc += fmt.Sprintf(" %d.%d.%d", enh[0], enh[1], enh[2])
	}
	if m := oneLine(e.Message); m != "" {
		if len(m) > 200 {
			m = m[:200]
		}
		desc += " " + m
	}
	mk := func(k relay.Kind) *relay.Error {
		return &relay.Error{Kind: k, Msg: fmt.Sprintf("email: %s: %s", st, desc), Err: e}
	}
	subject := -1 // the x.S.x subject of the enhanced code
	if hasEnh {
		subject = enh[1]
	}
	switch {
	case e.Code >= 400 && e.Code < 500:
		if throttled(e, subject) {
			return mk(relay.KindRateLimited)
		}
		// Even after the final dot a 4xx is a definite refusal: the server
		// did not take the message (RFC 5321 §4.2.5).
		return mk(relay.KindTemporary)
	case e.Code >= 500 && e.Code < 600:
	default:
		// A 2xx or 3xx where another reply was due: the server does not
		// speak the protocol we expect. Nothing was accepted.
		return mk(relay.KindTemporary)
	}
	switch e.Code {
	case 530, 534, 535, 538:
		return mk(relay.KindAuth)
	}
	switch st {
	case stageAuth, stageConnect, stageTLS, stageHello, stageNoop:
		return mk(relay.KindAuth)
	case stageMail:
		if e.Code == 552 || (subject == 3 && enh[2] == 4) {
			return mk(relay.KindInvalid)
		}
		return mk(relay.KindAuth)
	case stageRcpt:
		if e.Code == 501 || (subject == 1 && enh[2] == 3) {
			return mk(relay.KindInvalid)
		}
		return mk(relay.KindPermanent)
	case stageData, stageDataEnd:
		if e.Code == 552 || (subject == 3 && enh[2] == 4) || subject == 6 {
			return mk(relay.KindInvalid)
		}
		return mk(relay.KindPermanent)
	}
	return mk(relay.KindPermanent)
}

// throttled reports whether a 4xx reply asks the client to slow down.
func throttled(e *smtp.SMTPError, subject int) bool {
	switch e.Code {
	case 421, 450, 451:
		// x.7.x is "security or policy status" (RFC 3463 §3.8): with these
		// codes it is the server's sending policy, e.g. Postfix's
		// "421 4.7.0 too many connections", Microsoft's "451 4.7.500-699
		// Access denied, please try again later", greylisting "450 4.7.1".
		if subject == 7 {
			return true
		}
	}
	return throttleWords.MatchString(e.Message)
}

// isStartTLSMissing recognises go-smtp's error for a server without
// STARTTLS; the library has no sentinel for it (client.go initStartTLS:
// errors.New("smtp: server doesn't support STARTTLS")). A test pins it.
func isStartTLSMissing(err error) bool {
	var se *smtp.SMTPError
	return !errors.As(err, &se) && strings.Contains(err.Error(), "doesn't support STARTTLS")
}
