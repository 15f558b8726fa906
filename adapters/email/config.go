package email

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strconv"
	"strings"
)

// TLS modes of the `tls` key.
const (
	TLSStartTLS = "starttls" // plain connect, then STARTTLS, which is required
	TLSImplicit = "implicit" // TLS from the first byte (submissions, port 465)
	TLSNone     = "none"     // no TLS at all: only for a server on loopback
)

// Config is the [channels.NAME] table of an email channel.
type Config struct {
	// SMTP is the submission server, "host:port".
	SMTP string `toml:"smtp"`
	// TLS is "starttls" (the default), "implicit" or "none".
	TLS string `toml:"tls"`
	// Username turns on SMTP AUTH (PLAIN, or LOGIN when that is all the
	// server offers). Empty: no AUTH.
	Username string `toml:"username"`
	// Password is the AUTH password; PasswordFile is read into it by the
	// config package.
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	// From is the sender, "relay@example.com" or "Relay <relay@example.com>";
	// its address is also the envelope sender.
	From string `toml:"from"`
	// SubjectPrefix is put before every subject: "[relay]".
	SubjectPrefix string `toml:"subject_prefix"`
	// Helo is the name given in EHLO; default: this machine's host name.
	Helo string `toml:"helo"`
	// InsecureSkipVerify turns off certificate checks (tests, self-signed
	// servers). Prefer CAFile.
	InsecureSkipVerify bool `toml:"insecure_skip_verify"`
	// CAFile is a PEM file of extra CA certificates to trust besides the
	// system's (a private server, tests).
	CAFile string `toml:"ca_file"`
}

// tlsMode returns the TLS mode with its default applied.
func (c *Config) tlsMode() string {
	if c.TLS == "" {
		return TLSStartTLS
	}
	return c.TLS
}

// Validate reports every problem of the configuration, each naming its key.
func (c *Config) Validate() []error {
	var errs []error
	host, err := splitHostPort(c.SMTP)
	if err != nil {
		errs = append(errs, err)
	}
	switch c.tlsMode() {
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		// Without TLS the password and the messages cross the network in
		// clear; that is only acceptable when they never leave the machine.
		if err == nil && !isLoopback(host) {
			errs = append(errs, fmt.Errorf("tls: %q is allowed only for a loopback smtp host (localhost, 127.0.0.1, ::1), not %q", TLSNone, host))
		}
	default:
		errs = append(errs, fmt.Errorf("tls: %q is not one of starttls, implicit, none", c.TLS))
	}
	if c.From == "" {
		errs = append(errs, errors.New("from: required"))
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		errs = append(errs, fmt.Errorf("from: %q is not an email address: %v", c.From, err))
	}
	if c.Username != "" && c.Password == "" && c.PasswordFile == "" {
		errs = append(errs, errors.New("password: required with username (or password_file)"))
	}
	if c.Username == "" && (c.Password != "" || c.PasswordFile != "") {
		errs = append(errs, errors.New("username: required with password"))
	}
	if strings.ContainsAny(c.SubjectPrefix, "\r\n") {
		errs = append(errs, errors.New("subject_prefix: must be one line"))
	}
	if strings.ContainsAny(c.Helo, " \t\r\n") {
		errs = append(errs, fmt.Errorf("helo: %q must be a host name without spaces", c.Helo))
	}
	return errs
}

// ValidateAddress checks a contact's email address ("owner@example.com" or
// "Owner <owner@example.com>").
func (c *Config) ValidateAddress(addr string) error {
	_, err := parseRecipient(addr)
	return err
}

// parseRecipient parses a contact's address.
func parseRecipient(addr string) (*mail.Address, error) {
	a, err := mail.ParseAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("%q is not an email address: %v", addr, err)
	}
	return a, nil
}

// splitHostPort checks the smtp key and returns its host.
func splitHostPort(hostport string) (string, error) {
	if hostport == "" {
		return "", errors.New(`smtp: required ("host:port", e.g. "smtp.example.com:587")`)
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf(`smtp: %q is not "host:port": %v`, hostport, err)
	}
	if host == "" {
		return "", fmt.Errorf("smtp: %q has no host", hostport)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("smtp: %q has no valid port", hostport)
	}
	return host, nil
}

// isLoopback reports whether host names this machine over loopback only.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
