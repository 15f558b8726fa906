package sms

import (
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/adapters/adaptertest"
)

// fakeSMS is a fake Twilio or Solapi on loopback, following their
// documented wire formats (see providers.go for the doc links).
type fakeSMS struct {
	mode    adaptertest.Mode
	release chan struct{}

	// Twilio credentials.
	sid, token string
	// Solapi credentials.
	apiKey, apiSecret string

	mu       sync.Mutex
	twilio   []map[string]string // form values of accepted Twilio sends
	solapi   []solapiMessage     // accepted Solapi sends
	salts    map[string]bool     // signatures seen (Solapi refuses reuse)
	next     *cannedReply        // answers the next send instead
	accounts string              // Twilio account status (default active)
	balance  float64             // Solapi balance
}

type cannedReply struct {
	status int
	body   string
}

func (f *fakeSMS) delivered() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.twilio) + len(f.solapi)
}

func (f *fakeSMS) setNext(status int, body string) {
	f.mu.Lock()
	f.next = &cannedReply{status, body}
	f.mu.Unlock()
}

func (f *fakeSMS) takeNext() *cannedReply {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.next
	f.next = nil
	return n
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body+"\n")
}

func (f *fakeSMS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch f.mode {
	case adaptertest.Hanging:
		io.Copy(io.Discard, r.Body) // lets the server see the client hang up
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		return
	}
	if strings.HasPrefix(r.URL.Path, "/2010-04-01/") {
		f.serveTwilio(w, r)
		return
	}
	f.serveSolapi(w, r)
}

// serveTwilio: https://www.twilio.com/docs/messaging/api/message-resource
// (create: 201 with the Message JSON) and the Account resource (fetch).
func (f *fakeSMS) serveTwilio(w http.ResponseWriter, r *http.Request) {
	if f.mode == adaptertest.Failing {
		writeJSON(w, 500, `{"code": 20500, "message": "Internal Server Error", "more_info": "https://www.twilio.com/docs/errors/20500", "status": 500}`)
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != f.sid || pass != f.token {
		writeJSON(w, 401, `{"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}`)
		return
	}
	acct := "/2010-04-01/Accounts/" + f.sid
	switch {
	case r.Method == http.MethodGet && r.URL.Path == acct+".json":
		status := f.accounts
		if status == "" {
			status = "active"
		}
		writeJSON(w, 200, fmt.Sprintf(`{"sid": %q, "friendly_name": "relay", "status": %q, "type": "Full"}`, f.sid, status))
	case r.Method == http.MethodPost && r.URL.Path == acct+"/Messages.json":
		if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			writeJSON(w, 400, `{"code": 20001, "message": "Unsupported content type", "status": 400}`)
			return
		}
		if err := r.ParseForm(); err != nil {
			writeJSON(w, 400, `{"code": 20001, "message": "Bad form", "status": 400}`)
			return
		}
		if n := f.takeNext(); n != nil {
			writeJSON(w, n.status, n.body)
			return
		}
		to, body := r.PostForm.Get("To"), r.PostForm.Get("Body")
		if !regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`).MatchString(to) {
			writeJSON(w, 400, `{"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}`)
			return
		}
		if body == "" {
			writeJSON(w, 400, `{"code": 21602, "message": "Message body is required.", "status": 400}`)
			return
		}
		if len([]rune(body)) > 1600 {
			writeJSON(w, 400, `{"code": 21617, "message": "The concatenated message body exceeds the 1600 character limit.", "status": 400}`)
			return
		}
		if r.PostForm.Get("From") == "" && r.PostForm.Get("MessagingServiceSid") == "" {
			writeJSON(w, 400, `{"code": 21603, "message": "A 'From' phone number is required.", "status": 400}`)
			return
		}
		vals := map[string]string{}
		for k := range r.PostForm {
			vals[k] = r.PostForm.Get(k)
		}
		f.mu.Lock()
		f.twilio = append(f.twilio, vals)
		sid := fmt.Sprintf("SM%032d", len(f.twilio))
		f.mu.Unlock()
		segs, _ := Segments(body)
		out, _ := json.Marshal(map[string]any{"sid": sid, "status": "queued", "to": to, "body": body,
			"num_segments": fmt.Sprint(segs), "account_sid": f.sid})
		writeJSON(w, 201, string(out))
	default:
		writeJSON(w, 404, `{"code": 20404, "message": "The requested resource was not found", "status": 404}`)
	}
}

var solapiAuthPattern = regexp.MustCompile(`^HMAC-SHA256 apiKey=([^,]+), date=([^,]+), salt=([^,]+), signature=([0-9a-f]{64})$`)

// serveSolapi: https://docs.solapi.com/authentication/api-key (the HMAC
// header, checked here: key, ±15 min date, 12–64 byte salt, signature,
// no reuse), /messages/v4/send and /cash/v1/balance.
func (f *fakeSMS) serveSolapi(w http.ResponseWriter, r *http.Request) {
	if f.mode == adaptertest.Failing {
		writeJSON(w, 500, `{"errorCode":"InternalError","errorMessage":"일시적으로 처리량이 많아 처리되지 못했습니다."}`)
		return
	}
	m := solapiAuthPattern.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil || m[1] != f.apiKey {
		writeJSON(w, 403, `{"errorCode":"InvalidAPIKey","errorMessage":"유효하지 않은 API Key 입니다."}`)
		return
	}
	date, salt, sig := m[2], m[3], m[4]
	at, err := time.Parse(time.RFC3339, date)
	if err != nil || time.Since(at).Abs() > 15*time.Minute {
		writeJSON(w, 403, `{"errorCode":"RequestTimeTooSkewed","errorMessage":"요청 시간이 서버 시간과 15분 이상 차이가 납니다."}`)
		return
	}
	want := solapiAuthorization(f.apiKey, f.apiSecret, date, salt)
	if len(salt) < 12 || len(salt) > 64 || !hmac.Equal([]byte(want), []byte(r.Header.Get("Authorization"))) {
		writeJSON(w, 403, `{"errorCode":"SignatureDoesNotMatch","errorMessage":"Signature 가 일치하지 않습니다."}`)
		return
	}
	f.mu.Lock()
	dup := f.salts[sig]
	f.salts[sig] = true
	f.mu.Unlock()
	if dup {
		writeJSON(w, 403, `{"errorCode":"DuplicatedSignature","errorMessage":"15분 안에 동일한 signature 가 사용되었습니다."}`)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/cash/v1/balance":
		writeJSON(w, 200, fmt.Sprintf(`{"lowBalanceAlert":{"enabled":false},"point":0,"minimumCash":0,"rechargeTo":0,"autoRecharge":0,"accountId":"13628535","balance":%g}`, f.balance))
	case r.Method == http.MethodPost && r.URL.Path == "/messages/v4/send":
		var req struct {
			Message *solapiMessage `json:"message"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Message == nil {
			writeJSON(w, 400, `{"errorCode":"ValidationError","errorMessage":"child \"message\" fails because [\"message\" is required]"}`)
			return
		}
		if n := f.takeNext(); n != nil {
			writeJSON(w, n.status, n.body)
			return
		}
		msg := *req.Message
		if !regexp.MustCompile(`^0[0-9]{8,10}$`).MatchString(msg.To) {
			writeJSON(w, 400, `{"errorCode":"ValidationError","errorMessage":"수신번호(to)의 형식이 올바르지 않습니다."}`)
			return
		}
		if msg.Text == "" {
			writeJSON(w, 400, `{"errorCode":"ValidationError","errorMessage":"child \"text\" fails because [\"text\" is not allowed to be empty]"}`)
			return
		}
		limit := solapiLMSBytes
		if msg.Type == "SMS" {
			limit = solapiSMSBytes
			if msg.Subject != "" {
				writeJSON(w, 400, `{"errorCode":"InvalidStatusCode","errorMessage":"1013 제목은 문자 타입이 'SMS'일 경우 사용이 불가능합니다."}`)
				return
			}
		}
		if euckrBytes(msg.Text) > limit || euckrBytes(msg.Subject) > solapiSubjectBytes {
			writeJSON(w, 400, `{"errorCode":"InvalidStatusCode","errorMessage":"1031 SMS는 90byte LMS, MMS는 2000byte 까지 사용 가능 합니다."}`)
			return
		}
		f.mu.Lock()
		f.solapi = append(f.solapi, msg)
		id := fmt.Sprintf("M4V%029d", len(f.solapi))
		f.mu.Unlock()
		out, _ := json.Marshal(map[string]any{"groupId": "G4V20200909142323YCYNARPEI60NHQW", "messageId": id,
			"accountId": "12925149", "statusCode": "2000", "statusMessage": "정상 접수(이통사로 접수 예정) ",
			"to": msg.To, "from": msg.From, "type": msg.Type, "country": "82"})
		writeJSON(w, 200, string(out))
	default:
		writeJSON(w, 404, `{"errorCode":"NotFound","errorMessage":"Not Found"}`)
	}
}

func startFake(t *testing.T, mode adaptertest.Mode) (*fakeSMS, *httptest.Server) {
	t.Helper()
	f := &fakeSMS{
		mode: mode, release: make(chan struct{}),
		sid: "AC00000000000000000000000000000001", token: "twilio-secret-token",
		apiKey: "NCSAYU7YDBXYORXC", apiSecret: "solapi-secret", salts: map[string]bool{}, balance: 5000,
	}
	srv := httptest.NewServer(f)
	if mode == adaptertest.Refusing {
		srv.Close()
	} else {
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(f.release) }) // runs first: frees hanging handlers
	}
	return f, srv
}
