package sms

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/relay-project/relay/relay"
)

// provider is one SMS API: send one text to one number, and probe.
type provider interface {
	send(ctx context.Context, to, subject, text string) (id string, err error)
	probe(ctx context.Context) error
	// cost is what one send of text costs in max_per_day units.
	cost(subject, text string) int
}

const maxResponse = 64 << 10

func readBody(resp *http.Response) []byte {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	return b
}

// twilio sends through the Programmable Messaging API:
// POST /2010-04-01/Accounts/{sid}/Messages.json, form-encoded To, From
// (or MessagingServiceSid) and Body, HTTP Basic auth with the account SID
// and auth token (https://www.twilio.com/docs/messaging/api/message-resource).
type twilio struct {
	base, sid, token, from string
	client                 *http.Client
}

// twilioBodyLimit is the longest Body Twilio accepts (error 21617).
const twilioBodyLimit = 1600

func (p *twilio) body(subject, text string) string {
	if subject == "" {
		return text
	}
	// SMS has no subject: put it on the first line when it still fits.
	if b := subject + "\n" + text; len([]rune(b)) <= twilioBodyLimit {
		return b
	}
	return text
}

func (p *twilio) cost(subject, text string) int {
	n, _ := Segments(p.body(subject, text))
	return n
}

func (p *twilio) send(ctx context.Context, to, subject, text string) (string, error) {
	form := url.Values{"To": {to}, "Body": {p.body(subject, text)}}
	if strings.HasPrefix(p.from, "MG") {
		form.Set("MessagingServiceSid", p.from)
	} else {
		form.Set("From", p.from)
	}
	u := p.base + "/2010-04-01/Accounts/" + url.PathEscape(p.sid) + "/Messages.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return "", relay.Errorf(relay.KindAuth, "twilio: bad api_url: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(p.sid, p.token)
	resp, err := p.client.Do(req)
	if err != nil {
		return "", classifyTransport("twilio", "send", err)
	}
	defer resp.Body.Close()
	raw := readBody(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", classifyTwilio(resp.StatusCode, resp.Header, raw)
	}
	var m struct {
		SID string `json:"sid"`
	}
	_ = json.Unmarshal(raw, &m) // accepted either way; only the id is lost
	return m.SID, nil
}

func (p *twilio) probe(ctx context.Context) error {
	u := p.base + "/2010-04-01/Accounts/" + url.PathEscape(p.sid) + ".json"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return relay.Errorf(relay.KindAuth, "twilio: bad api_url: %w", err)
	}
	req.SetBasicAuth(p.sid, p.token)
	resp, err := p.client.Do(req)
	if err != nil {
		return classifyTransport("twilio", "probe", err)
	}
	defer resp.Body.Close()
	raw := readBody(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return classifyTwilio(resp.StatusCode, resp.Header, raw)
	}
	var acct struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &acct); err != nil {
		return relay.Errorf(relay.KindTemporary, "twilio: probe: unreadable account: %w", err)
	}
	if acct.Status != "active" {
		return relay.Errorf(relay.KindAuth, "twilio: account is %s", acct.Status)
	}
	return nil
}

// solapi sends through Solapi's message API v4: POST /messages/v4/send
// with {"message":{"to","from","text","type","subject"}} and the
// Authorization header "HMAC-SHA256 apiKey=…, date=…, salt=…, signature=…"
// where signature = hex(HMAC-SHA256(key=api_secret, date+salt))
// (https://docs.solapi.com/authentication/api-key,
// https://docs.solapi.com/api-reference/messages/sendsimplemessage).
type solapi struct {
	base, key, secret, from string // from in national form
	client                  *http.Client
	now                     func() time.Time
}

// Solapi limits (message status 1031; subject 1014): SMS up to 90 bytes,
// LMS up to 2000 bytes, subject up to 40 bytes, counted in EUC-KR.
const (
	solapiSMSBytes     = 90
	solapiLMSBytes     = 2000
	solapiSubjectBytes = 40
)

// solapiMessage picks SMS or LMS. A subject rides in the text of an SMS
// when both fit 90 bytes; otherwise the message is an LMS with a subject.
type solapiMessage struct {
	To      string `json:"to"`
	From    string `json:"from"`
	Text    string `json:"text"`
	Type    string `json:"type"`
	Subject string `json:"subject,omitempty"`
}

func (p *solapi) message(to, subject, text string) solapiMessage {
	m := solapiMessage{To: to, From: p.from, Text: text, Type: "SMS"}
	if subject != "" {
		m.Text = subject + "\n" + text
	}
	if euckrBytes(m.Text) <= solapiSMSBytes {
		return m
	}
	m.Text, m.Type, m.Subject = text, "LMS", truncateBytes(subject, solapiSubjectBytes)
	return m
}

// truncateBytes cuts s to at most n EUC-KR bytes on a rune boundary.
func truncateBytes(s string, n int) string {
	used := 0
	for i, r := range s {
		w := 2
		if r < 0x80 {
			w = 1
		}
		if used+w > n {
			return s[:i]
		}
		used += w
	}
	return s
}

// cost: Solapi bills per message, SMS or LMS alike one unit.
func (p *solapi) cost(string, string) int { return 1 }

func (p *solapi) authorization() (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return solapiAuthorization(p.key, p.secret, p.now().UTC().Format(time.RFC3339), hex.EncodeToString(salt)), nil
}

func solapiAuthorization(key, secret, date, salt string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(date + salt))
	return fmt.Sprintf("HMAC-SHA256 apiKey=%s, date=%s, salt=%s, signature=%s",
		key, date, salt, hex.EncodeToString(mac.Sum(nil)))
}

func (p *solapi) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, rd)
	if err != nil {
		return nil, relay.Errorf(relay.KindAuth, "solapi: bad api_url: %w", err)
	}
	auth, err := p.authorization()
	if err != nil {
		return nil, relay.Errorf(relay.KindTemporary, "solapi: salt: %w", err)
	}
	req.Header.Set("Authorization", auth)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		op := "send"
		if method == http.MethodGet {
			op = "probe"
		}
		return nil, classifyTransport("solapi", op, err)
	}
	return resp, nil
}

func (p *solapi) send(ctx context.Context, to, subject, text string) (string, error) {
	m := p.message(to, subject, text)
	if euckrBytes(m.Text) > solapiLMSBytes {
		return "", relay.Errorf(relay.KindInvalid, "solapi: text is %d bytes, LMS takes %d", euckrBytes(m.Text), solapiLMSBytes)
	}
	body, _ := json.Marshal(map[string]any{"message": m})
	resp, err := p.do(ctx, http.MethodPost, "/messages/v4/send", body)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw := readBody(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", classifySolapi(resp.StatusCode, raw)
	}
	var r struct {
		MessageID     string `json:"messageId"`
		StatusCode    string `json:"statusCode"`
		StatusMessage string `json:"statusMessage"`
	}
	_ = json.Unmarshal(raw, &r)
	// A 200 may still carry a refusal in statusCode (docs: "응답 코드가
	// 200이 나와도 … statusCode 를 확인"); 2000/3000/4000 are successes.
	switch r.StatusCode {
	case "", "2000", "3000", "4000":
		return r.MessageID, nil
	}
	return "", classifySolapiStatus(r.StatusCode, r.StatusMessage)
}

func (p *solapi) probe(ctx context.Context) error {
	resp, err := p.do(ctx, http.MethodGet, "/cash/v1/balance", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw := readBody(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return classifySolapi(resp.StatusCode, raw)
	}
	var bal struct {
		Balance float64 `json:"balance"`
		Point   float64 `json:"point"`
	}
	if err := json.Unmarshal(raw, &bal); err != nil {
		return relay.Errorf(relay.KindTemporary, "solapi: probe: unreadable balance: %w", err)
	}
	if bal.Balance+bal.Point <= 0 {
		return relay.Errorf(relay.KindAuth, "solapi: balance is empty (cash %.0f, points %.0f)", bal.Balance, bal.Point)
	}
	return nil
}
