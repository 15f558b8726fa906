package email

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay"
)

var kindByName = map[string]relay.Kind{
	"temporary": relay.KindTemporary, "rate_limited": relay.KindRateLimited, "auth": relay.KindAuth,
	"permanent": relay.KindPermanent, "invalid": relay.KindInvalid, "ambiguous": relay.KindAmbiguous,
}

// TestClassifyCannedReplies replays every reply in testdata/replies.txt
// from a real SMTP server at its step and checks the kind Send returns.
func TestClassifyCannedReplies(t *testing.T) {
	file, err := os.Open("testdata/replies.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	steps := map[string]stage{"ehlo": stageHello, "auth": stageAuth, "mail": stageMail, "rcpt": stageRcpt, "data": stageData}
	sc := bufio.NewScanner(file)
	n := 0
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Fatalf("replies.txt:%d: malformed", lineNo)
		}
		st, ok := steps[f[0]]
		want, ok2 := kindByName[f[1]]
		if !ok || !ok2 {
			t.Fatalf("replies.txt:%d: unknown step or kind", lineNo)
		}
		reply := strings.Join(f[2:], " ")
		n++
		t.Run(strconv.Itoa(lineNo)+"_"+f[0]+"_"+f[2], func(t *testing.T) {
			srv := startFake(t, fakeOptions{TLS: "none", User: "relay", Pass: "pw"})
			srv.setReply(st, reply)
			a := newAdapter(t, Config{SMTP: srv.Addr, TLS: "none", Username: "relay", Password: "pw"})
			_, err := a.Send(context.Background(), outgoing("분류 테스트", ""))
			if got := relay.KindOf(err); got != want {
				t.Fatalf("%s at %s: kind %v (%v), want %v", reply, f[0], got, err, want)
			}
			if !strings.Contains(err.Error(), f[2]) {
				t.Errorf("error %q does not show the reply code", err)
			}
			if srv.delivered() != 0 {
				t.Errorf("server recorded the message although it refused it")
			}
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 30 {
		t.Fatalf("only %d canned replies", n)
	}
}

// TestClassifyTransportErrors pins the kinds of failures that are not SMTP
// replies: where the final dot may have been written, a lost answer is
// ambiguous; before it, nothing was accepted.
func TestClassifyTransportErrors(t *testing.T) {
	netErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	certErr := &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
	for _, c := range []struct {
		name   string
		st     stage
		err    error
		ctxErr error
		want   relay.Kind
	}{
		{"refused", stageConnect, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, nil, relay.KindTemporary},
		{"reset before dot", stageData, netErr, nil, relay.KindTemporary},
		{"reset after dot", stageDataEnd, netErr, nil, relay.KindAmbiguous},
		{"eof after dot", stageDataEnd, io.ErrUnexpectedEOF, nil, relay.KindAmbiguous},
		{"deadline in rcpt", stageRcpt, netErr, context.DeadlineExceeded, relay.KindTemporary},
		{"deadline after dot", stageDataEnd, netErr, context.DeadlineExceeded, relay.KindAmbiguous},
		{"cancelled after dot", stageDataEnd, netErr, context.Canceled, relay.KindAmbiguous},
		{"untrusted certificate", stageTLS, certErr, nil, relay.KindAuth},
		{"wrong host name", stageTLS, x509.HostnameError{Host: "smtp.example.com", Certificate: &x509.Certificate{}}, nil, relay.KindAuth},
		{"not TLS", stageTLS, tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, nil, relay.KindAuth},
		{"handshake alert", stageTLS, errors.New("remote error: tls: handshake failure"), nil, relay.KindTemporary},
		{"no STARTTLS", stageHello, errNoStartTLS, nil, relay.KindAuth},
		{"no AUTH", stageAuth, errNoAuth, nil, relay.KindAuth},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := classify(c.st, c.err, c.ctxErr)
			if e.Kind != c.want {
				t.Fatalf("classify = %v (%v), want %v", e.Kind, e, c.want)
			}
			// A context's end is the cause worth keeping, not the closed
			// connection it left behind.
			cause := c.err
			if c.ctxErr != nil {
				cause = c.ctxErr
			}
			if !errors.Is(e, cause) {
				t.Errorf("classified error does not wrap %v", cause)
			}
		})
	}
}
