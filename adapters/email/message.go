package email

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/relay-project/relay/relay"
)

// subjectRunes is how much of the text's first line makes a subject when
// the message has none.
const subjectRunes = 60

// subjectOf returns the subject line for out: its Subject, else the start
// of the text's first line, with the prefix in front.
func subjectOf(out *relay.Outgoing, prefix string) string {
	s := oneLine(out.Subject)
	if s == "" {
		first, _, _ := strings.Cut(strings.TrimSpace(out.Text), "\n")
		s = oneLine(first)
		if utf8.RuneCountInString(s) > subjectRunes {
			r := []rune(s)
			s = strings.TrimRightFunc(string(r[:subjectRunes-1]), unicode.IsSpace) + "…"
		}
	}
	if prefix = strings.TrimSpace(prefix); prefix != "" {
		if s == "" {
			return prefix
		}
		return prefix + " " + s
	}
	return s
}

// oneLine makes s safe for a header: control characters (CR and LF among
// them, which would inject headers) become spaces, runs of spaces collapse.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// messageID returns a Message-ID derived from the Outgoing's Key, so every
// attempt of the same part carries the same id (receivers that dedupe on
// Message-ID drop a resend), in the sender's domain.
func messageID(out *relay.Outgoing, from *mail.Address) string {
	key := out.Key
	if key == "" && out.DeliveryID != "" {
		key = out.DeliveryID + "/" + out.MessageID
	}
	var sum []byte
	if key != "" {
		h := sha256.Sum256([]byte("relay-email\x00" + key))
		sum = h[:16]
	} else {
		sum = make([]byte, 16)
		rand.Read(sum) // never fails (crypto/rand since Go 1.24)
	}
	domain := "relay.invalid"
	if i := strings.LastIndexByte(from.Address, '@'); i >= 0 && i < len(from.Address)-1 {
		domain = from.Address[i+1:]
	}
	return "<" + hex.EncodeToString(sum) + "@" + domain + ">"
}

// composed is one message ready for DATA.
type composed struct {
	MessageID string
	Bytes     []byte
}

// compose builds the RFC 5322 message: UTF-8 plain text, the subject as
// RFC 2047 encoded words, the body quoted-printable (mostly ASCII) or
// base64 (mostly not, like Korean, where it is a third shorter), CRLF
// line ends throughout.
func compose(out *relay.Outgoing, from, to *mail.Address, subject string, date time.Time) composed {
	id := messageID(out, from)
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("Date", date.Format(time.RFC1123Z))
	header("From", from.String())
	header("To", to.String())
	header("Message-ID", id)
	if subject != "" {
		header("Subject", encodeHeader(subject))
	}
	if out.Priority == relay.PriorityHigh {
		header("Importance", "high") // RFC 2156; read by most clients
	}
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")

	text := strings.ReplaceAll(out.Text, "\r\n", "\n")
	if mostlyASCII(text) {
		header("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		w := quotedprintable.NewWriter(&b)
		w.Write([]byte(text)) // writes to a bytes.Buffer do not fail
		w.Close()
	} else {
		header("Content-Transfer-Encoding", "base64")
		b.WriteString("\r\n")
		enc := base64.StdEncoding.EncodeToString([]byte(strings.ReplaceAll(text, "\n", "\r\n")))
		for len(enc) > 76 { // RFC 2045 §6.8: lines of at most 76 characters
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return composed{MessageID: id, Bytes: b.Bytes()}
}

// encodeHeader encodes a header value as RFC 2047 "B" encoded words when
// it is not plain ASCII, one word per line, each short enough that even
// the first one, after "Subject: ", stays within 78 characters (RFC 5322
// §2.1.1). Words are cut at rune boundaries (RFC 2047 §5: an encoded word
// holds whole characters). Plain ASCII is folded at spaces.
func encodeHeader(v string) string {
	if mime.BEncoding.Encode("utf-8", v) == v {
		return foldASCII(v)
	}
	const chunk = 36 // bytes of UTF-8: 48 of base64, 60 with the =?utf-8?b? ?= frame
	var words []string
	for len(v) > 0 {
		n := 0
		for n < len(v) {
			_, size := utf8.DecodeRuneInString(v[n:])
			if n+size > chunk && n > 0 {
				break
			}
			n += size
		}
		words = append(words, "=?utf-8?b?"+base64.StdEncoding.EncodeToString([]byte(v[:n]))+"?=")
		v = v[n:]
	}
	return strings.Join(words, "\r\n ")
}

// foldASCII folds an ASCII header value at spaces (RFC 5322 §2.2.3) so that
// no line passes 78 characters where the words allow.
func foldASCII(v string) string {
	var b strings.Builder
	line := len("Subject: ")
	for i, w := range strings.Split(v, " ") {
		if i > 0 {
			if line+1+len(w) > 78 {
				b.WriteString("\r\n")
				line = 0
			}
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}

// mostlyASCII reports whether at least two thirds of s's bytes are ASCII,
// where quoted-printable is the more readable and compact encoding.
func mostlyASCII(s string) bool {
	high := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			high++
		}
	}
	return high*3 <= len(s)
}
