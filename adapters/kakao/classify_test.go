package kakao

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

// 2026-11-25 19:00 KST: five hours before the daily reset.
var classifyNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClassifyAPI checks canned kapi answers (bodies from the Kakao REST API
// reference and the Kakao Talk Message trouble-shooting page) against the
// kind and the adapter's own reaction.
func TestClassifyAPI(t *testing.T) {
	for _, tc := range []struct {
		file       string
		status     int
		kind       relay.Kind
		effect     effect
		retryAfter time.Duration
		msg        string
	}{
		{"kapi_401_invalid_token.json", 401, relay.KindAuth, effectTokenRefused, 0, "-401"},
		{"kapi_401_expired.json", 401, relay.KindAuth, effectTokenRefused, 0, "already expired"},
		{"kapi_402_insufficient_scopes.json", 403, relay.KindAuth, effectConsentMissing, 0, "consent missing: talk_message"},
		{"kapi_10_api_limit.json", 400, relay.KindAuth, effectQuotaSpent, 5 * time.Hour, "-10"},
		{"kapi_532_sender_quota.json", 400, relay.KindAuth, effectQuotaSpent, 5 * time.Hour, "-532"},
		{"kapi_533_receiver_quota.json", 400, relay.KindPermanent, effectRecipientQuota, 5 * time.Hour, "-533"},
		{"kapi_536_pair_quota.json", 400, relay.KindPermanent, effectRecipientQuota, 5 * time.Hour, "-536"},
		{"kapi_7_maintenance.json", 400, relay.KindTemporary, effectNone, 0, "-7"},
		{"kapi_9798_maintenance.json", 503, relay.KindTemporary, effectNone, 0, "kakao: 503 -9798 서비스 점검중"},
		{"kapi_1_internal.json", 400, relay.KindTemporary, effectNone, 0, "-1"},
		{"kapi_530_rejects.json", 400, relay.KindPermanent, effectNone, 0, "-530"},
		{"kapi_502_not_friend.json", 400, relay.KindPermanent, effectNone, 0, "-502"},
		{"kapi_2_bad_receiver.json", 400, relay.KindPermanent, effectNone, 0, "receiver_uuids"},
		{"kapi_2_bad_template.json", 400, relay.KindInvalid, effectNone, 0, "-2"},
		{"kapi_3_scope_disabled.json", 403, relay.KindAuth, effectAppRefused, 0, "-3"},
		{"kapi_603_timeout.json", 400, relay.KindAmbiguous, effectNone, 0, "-603"},
		{"kapi_999_unknown.json", 400, relay.KindPermanent, effectNone, 0, "-999 something new"},
		{"kapi_999_unknown.json", 500, relay.KindTemporary, effectNone, 0, "-999"},
		{"html_502.html", 502, relay.KindTemporary, effectNone, 0, "kakao: 502 Bad Gateway"},
		{"html_404.html", 404, relay.KindPermanent, effectNone, 0, "404"},
	} {
		t.Run(tc.file+"/"+http.StatusText(tc.status), func(t *testing.T) {
			v := classifyAPI(tc.status, http.Header{}, readTestdata(t, tc.file), classifyNow)
			if v.err == nil {
				t.Fatal("no error")
			}
			if v.err.Kind != tc.kind || v.effect != tc.effect || v.err.RetryAfter != tc.retryAfter {
				t.Errorf("got kind %v effect %v retry %v, want %v %v %v", v.err.Kind, v.effect, v.err.RetryAfter, tc.kind, tc.effect, tc.retryAfter)
			}
			if !strings.Contains(v.err.Error(), tc.msg) {
				t.Errorf("message %q does not contain %q", v.err.Error(), tc.msg)
			}
		})
	}
}

func TestClassify429HonoursRetryAfter(t *testing.T) {
	v := classifyAPI(429, http.Header{"Retry-After": {"7"}}, nil, classifyNow)
	if v.err.Kind != relay.KindRateLimited || v.err.RetryAfter != 7*time.Second {
		t.Fatalf("got %v %v", v.err.Kind, v.err.RetryAfter)
	}
}

func TestClassifyFriendsPartialFailure(t *testing.T) {
	for _, tc := range []struct {
		file string
		addr string
		kind relay.Kind
	}{
		{"friends_partial_530.json", "refuser01", relay.KindPermanent},
		{"friends_partial_530.json", "ok001", 0},
		{"friends_partial_532_infos.json", "refuser01", relay.KindAuth},
	} {
		v := friendsVerdict(readTestdata(t, tc.file), tc.addr, classifyNow)
		if got := relay.KindOf(errOrNil(v.err)); got != tc.kind {
			t.Errorf("%s for %s: kind %v, want %v", tc.file, tc.addr, got, tc.kind)
		}
	}
}

func errOrNil(e *relay.Error) error {
	if e == nil {
		return nil
	}
	return e
}

func TestClassifyAuth(t *testing.T) {
	for _, tc := range []struct {
		file   string
		status int
		kind   relay.Kind
		code   string
	}{
		{"kauth_koe322.json", 400, relay.KindAuth, "KOE322"},
		{"kauth_koe320.json", 400, relay.KindAuth, "KOE320"},
		{"kauth_koe010.json", 401, relay.KindAuth, "KOE010"},
		{"html_502.html", 502, relay.KindTemporary, "502"},
	} {
		v := classifyAuth(tc.status, readTestdata(t, tc.file))
		if v.err.Kind != tc.kind || !strings.Contains(v.err.Error(), tc.code) {
			t.Errorf("%s: %v %q, want %v naming %s", tc.file, v.err.Kind, v.err, tc.kind, tc.code)
		}
		if tc.kind == relay.KindAuth && v.effect != effectLoginNeeded {
			t.Errorf("%s: effect %v, want login needed", tc.file, v.effect)
		}
	}
}

func TestNextMidnightKST(t *testing.T) {
	for _, tc := range []struct{ now, want time.Time }{
		{time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)},
		{time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC), time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)},
		{time.Date(2026, 12, 31, 14, 59, 0, 0, time.UTC), time.Date(2026, 12, 31, 15, 0, 0, 0, time.UTC)},
	} {
		if got := nextMidnightKST(tc.now); !got.Equal(tc.want) {
			t.Errorf("nextMidnightKST(%v) = %v, want %v", tc.now, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if errs := (&Config{}).Validate(); len(errs) != 2 ||
		!strings.HasPrefix(errs[0].Error(), "rest_api_key:") || !strings.HasPrefix(errs[1].Error(), "link_url:") {
		t.Errorf("empty config: %v", errs)
	}
	bad := &Config{RestAPIKey: "k", LinkURL: "shop.example.com", APIURL: "ftp://x", AuthURL: "::"}
	errs := bad.Validate()
	if len(errs) != 3 {
		t.Fatalf("errors %v, want link_url, api_url, auth_url", errs)
	}
	for i, key := range []string{"link_url:", "api_url:", "auth_url:"} {
		if !strings.HasPrefix(errs[i].Error(), key) {
			t.Errorf("error %d %q does not start with %s", i, errs[i], key)
		}
	}
	good := &Config{RestAPIKeyFile: "/run/credentials/kakao", LinkURL: "https://shop.example.com"}
	if errs := good.Validate(); len(errs) != 0 {
		t.Errorf("good config: %v", errs)
	}
}

func TestValidateAddress(t *testing.T) {
	c := &Config{}
	for _, ok := range []string{"me", "abcdefg0001", "ZWtVZ2pUZ1NoRnRBc0V0Q3FHd0R6S3lE_-="} {
		if err := c.ValidateAddress(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Me ", `a","b`, "[x]", "친구"} {
		if err := c.ValidateAddress(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseCallback(t *testing.T) {
	code, err := ParseCallback(url.Values{"code": {"abc"}, "state": {"s1"}}, "s1")
	if err != nil || code != "abc" {
		t.Errorf("success: %q %v", code, err)
	}
	if _, err := ParseCallback(url.Values{"code": {"abc"}, "state": {"evil"}}, "s1"); err == nil {
		t.Error("wrong state accepted")
	}
	if _, err := ParseCallback(url.Values{"error": {"access_denied"}, "state": {"s1"}}, "s1"); err != ErrLoginDenied {
		t.Errorf("denied: %v", err)
	}
}
