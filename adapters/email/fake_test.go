package email

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// fakeServer is a real SMTP server (github.com/emersion/go-smtp) on
// loopback whose backend records what it accepts and answers with canned
// replies at the step it is told to. Replies follow RFC 5321 §4.2 (code,
// optional RFC 3463 enhanced code, text), as go-smtp writes them.
type fakeServer struct {
	Addr string

	mu       sync.Mutex
	received []receivedMail
	replies  map[stage]*smtp.SMTPError
	tlsSeen  []bool // per accepted message: was the session under TLS
	block    stage  // a step whose handler waits until the test ends
	release  chan struct{}
}

type receivedMail struct {
	From string
	To   []string
	Data []byte
}

// fakeOptions configure a fakeServer.
type fakeOptions struct {
	TLS  string          // "none", "starttls" or "implicit"
	Cert tls.Certificate // for starttls and implicit
	User string          // when set, AUTH PLAIN with User/Pass is required
	Pass string
}

func startFake(t *testing.T, o fakeOptions) *fakeServer {
	t.Helper()
	f := &fakeServer{replies: map[stage]*smtp.SMTPError{}, release: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		if e := f.reply(stageHello); e != nil {
			return nil, e
		}
		_, isTLS := c.TLSConnectionState()
		return &fakeSession{f: f, user: o.User, pass: o.Pass, tls: isTLS}, nil
	}))
	srv.Domain = "fake.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{o.Cert}}
	switch o.TLS {
	case "starttls":
		srv.TLSConfig = tlsConf
	case "implicit":
		l = tls.NewListener(l, tlsConf)
	default:
		srv.AllowInsecureAuth = true // loopback: AUTH without TLS
	}
	f.Addr = l.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		close(f.release)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Shutdown waits for every connection to end: the adapter must
		// not leave sessions open.
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("fake SMTP server: connections left open: %v", err)
			srv.Close()
		}
		// Serve registers its listener only once it runs: close it here
		// too, or a Shutdown that came first would leave Accept waiting.
		l.Close()
		<-served
	})
	return f
}

// setReply makes the server answer line ("550 5.1.1 No such user") at st.
func (f *fakeServer) setReply(st stage, line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies[st] = parseReplyLine(line)
}

func (f *fakeServer) reply(st stage) *smtp.SMTPError {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.replies[st]
}

func (f *fakeServer) setBlock(st stage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.block = st
}

func (f *fakeServer) wait(st stage) {
	f.mu.Lock()
	b := f.block
	f.mu.Unlock()
	if b == st {
		<-f.release
	}
}

func (f *fakeServer) messages() []receivedMail {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]receivedMail(nil), f.received...)
}

func (f *fakeServer) delivered() int { return len(f.messages()) }

// parseReplyLine parses "code [x.y.z] text" into an SMTPError.
func parseReplyLine(line string) *smtp.SMTPError {
	codeStr, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	code, err := strconv.Atoi(codeStr)
	if err != nil {
		panic("bad reply line " + line)
	}
	e := &smtp.SMTPError{Code: code, EnhancedCode: smtp.NoEnhancedCode, Message: rest}
	if first, text, ok := strings.Cut(rest, " "); ok {
		parts := strings.Split(first, ".")
		if len(parts) == 3 {
			var ec smtp.EnhancedCode
			good := true
			for i, p := range parts {
				n, err := strconv.Atoi(p)
				good = good && err == nil
				ec[i] = n
			}
			if good {
				e.EnhancedCode, e.Message = ec, text
			}
		}
	}
	return e
}

type fakeSession struct {
	f          *fakeServer
	user, pass string
	tls        bool
	authed     bool
	from       string
	to         []string
}

func (s *fakeSession) AuthMechanisms() []string {
	if s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *fakeSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if e := s.f.reply(stageAuth); e != nil {
			return e
		}
		if username != s.user || password != s.pass {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *fakeSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.user != "" && !s.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	if e := s.f.reply(stageMail); e != nil {
		return e
	}
	s.from = from
	return nil
}

func (s *fakeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.f.wait(stageRcpt)
	if e := s.f.reply(stageRcpt); e != nil {
		return e
	}
	s.to = append(s.to, to)
	return nil
}

func (s *fakeSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.f.wait(stageDataEnd)
	if e := s.f.reply(stageData); e != nil {
		return e
	}
	s.f.mu.Lock()
	s.f.received = append(s.f.received, receivedMail{From: s.from, To: s.to, Data: b})
	s.f.tlsSeen = append(s.f.tlsSeen, s.tls)
	s.f.mu.Unlock()
	return nil
}

func (s *fakeSession) Reset()        { s.from, s.to = "", nil }
func (s *fakeSession) Logout() error { return nil }

// hangingServer accepts connections and never writes a byte.
func hangingServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// refusedAddr returns a loopback address where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// testCert makes a self-signed certificate for 127.0.0.1 and localhost
// and writes it as PEM to a file, for ca_file.
func testCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relay test SMTP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, file
}
