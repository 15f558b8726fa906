package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/mdp/qrterminal/v3"

	"github.com/relay-project/relay/adapters/kakao"
	"github.com/relay-project/relay/relay"
)

// cmdWhatsApp links and unlinks the WhatsApp channel through the daemon,
// which holds the only connection to the session.
func cmdWhatsApp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "link" && args[0] != "unlink") {
		fmt.Fprintln(stderr, "usage: relay whatsapp link [--phone NUMBER] | unlink")
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("whatsapp "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "configuration file")
	channel := fs.String("channel", "whatsapp", "the WhatsApp channel's name")
	phone := fs.String("phone", "", "link with a pairing code for this phone number instead of a QR code")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	c, err := newClient(*cfgPath, "admin")
	if err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	path := "/v1/channels/" + url.PathEscape(*channel) + "/" + sub
	if sub == "unlink" {
		ctx, cancel := timeoutCtx(30 * time.Second)
		defer cancel()
		if err := c.do(ctx, http.MethodPost, path, nil, nil); err != nil {
			fmt.Fprintf(stderr, "relay: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, "WhatsApp device unlinked.")
		return 0
	}
	ctx, cancel := timeoutCtx(5 * time.Minute)
	defer cancel()
	resp, err := c.request(ctx, http.MethodPost, path, map[string]string{"phone": *phone})
	if err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var ev relay.LinkEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			continue
		}
		switch ev.Kind {
		case "qr":
			fmt.Fprintln(stdout, "\nScan this code in WhatsApp: Settings → Linked devices → Link a device")
			qrterminal.GenerateHalfBlock(ev.Code, qrterminal.L, stdout)
		case "code":
			fmt.Fprintf(stdout, "\nIn WhatsApp on your phone: Linked devices → Link with phone number instead, and enter:\n\n    %s\n\n", ev.Code)
		case "success":
			fmt.Fprintf(stdout, "\nLinked: %s\n", ev.Account)
			return 0
		case "error":
			fmt.Fprintf(stderr, "relay: linking failed: %s\n", ev.Error)
			return 1
		}
	}
	fmt.Fprintln(stderr, "relay: linking ended without success")
	return 1
}

// cmdKakao runs Kakao's OAuth code flow through a loopback redirect: it
// prints the login URL, waits for the browser to come back with a code,
// and hands the code to the daemon, which stores the tokens.
func cmdKakao(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "login" {
		fmt.Fprintln(stderr, "usage: relay kakao login [--channel NAME] [--port N]")
		return 2
	}
	fs := flag.NewFlagSet("kakao login", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "configuration file")
	channel := fs.String("channel", "kakao", "the Kakao channel's name")
	port := fs.Int("port", 8781, "loopback port for the redirect (register http://localhost:PORT"+kakao.LoginRedirectPath()+" in the Kakao app)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	c, err := newClient(*cfgPath, "admin")
	if err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	redirect := fmt.Sprintf("http://localhost:%d%s", *port, kakao.LoginRedirectPath())
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	state := hex.EncodeToString(b)
	ctx, cancel := timeoutCtx(10 * time.Minute)
	defer cancel()
	var au struct {
		URL string `json:"url"`
	}
	q := url.Values{"redirect_uri": {redirect}, "state": {state}}
	if err := c.do(ctx, http.MethodGet, "/v1/channels/"+url.PathEscape(*channel)+"/auth-url?"+q.Encode(), nil, &au); err != nil {
		l.Close()
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "Open this address in a browser on this machine and log in with Kakao:\n\n  %s\n\nWaiting for the redirect to %s ...\n", au.URL, redirect)
	codes := make(chan string, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != kakao.LoginRedirectPath() || r.URL.Query().Get("state") != state {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		if e := r.URL.Query().Get("error"); e != "" {
			http.Error(w, "Kakao refused: "+e, http.StatusBadRequest)
			select {
			case codes <- "":
			default:
			}
			return
		}
		fmt.Fprintln(w, "relay: Kakao login received. You can close this tab.")
		select {
		case codes <- r.URL.Query().Get("code"):
		default:
		}
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Shutdown(context.Background())
	var code string
	select {
	case code = <-codes:
	case <-ctx.Done():
		fmt.Fprintln(stderr, "relay: no login within 10 minutes")
		return 1
	}
	if code == "" {
		fmt.Fprintln(stderr, "relay: Kakao login was refused")
		return 1
	}
	err = c.do(ctx, http.MethodPost, "/v1/channels/"+url.PathEscape(*channel)+"/authorize", map[string]string{"code": code, "redirect_uri": redirect}, nil)
	if err != nil {
		fmt.Fprintf(stderr, "relay: storing the Kakao login: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "Kakao login stored; the channel will come up at its next health check.")
	return 0
}
