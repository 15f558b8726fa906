package kakao

import (
	"errors"
	"fmt"
	"net/url"
)

// LoginRedirectPath is the path of the OAuth redirect that `relay kakao
// login` serves on loopback (http://localhost:PORT/kakao/callback). Kakao
// accepts only redirect URIs registered in the app (Kakao Login > Redirect
// URI) exactly, port included, so the CLI must use a fixed, documented port.
func LoginRedirectPath() string { return "/kakao/callback" }

// ErrLoginDenied is returned by ParseCallback when the user declined.
var ErrLoginDenied = errors.New("kakao: login was cancelled or consent was refused")

// ParseCallback reads the query of the redirect Kakao sends the browser to
// after the authorization page: ?code=...&state=... on success, or
// ?error=access_denied&error_description=...&state=... when the user
// declines. It checks state against the one given to AuthURL and returns
// the code for Authorize.
// https://developers.kakao.com/docs/latest/ko/kakaologin/rest-api#request-code
func ParseCallback(q url.Values, wantState string) (string, error) {
	if q.Get("state") != wantState {
		return "", errors.New("kakao: login callback with a wrong state")
	}
	if e := q.Get("error"); e != "" {
		if e == "access_denied" {
			return "", ErrLoginDenied
		}
		return "", fmt.Errorf("kakao: login failed: %s %s", clean(e), clean(q.Get("error_description")))
	}
	code := q.Get("code")
	if code == "" {
		return "", errors.New("kakao: login callback without a code")
	}
	return code, nil
}
