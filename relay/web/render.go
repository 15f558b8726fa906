package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"sort"
	"strings"
	"time"

	"golang.org/x/text/language"
)

// catalogues holds one text catalogue per language, from i18n/*.json.
var catalogues = mustCatalogues()

// languages lists the catalogues in the order of the switch.
var languages = []string{"en", "ko"}

func mustCatalogues() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, l := range languages {
		b, err := fs.ReadFile(files, "i18n/"+l+".json")
		if err != nil {
			panic(err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			panic(fmt.Sprintf("web: i18n/%s.json: %v", l, err))
		}
		out[l] = m
	}
	return out
}

var langMatcher = language.NewMatcher([]language.Tag{language.English, language.Korean})

// langOf picks the language: the lang cookie, else Accept-Language.
func langOf(r *http.Request) string {
	if ck, err := r.Cookie(langCookie); err == nil {
		if _, ok := catalogues[ck.Value]; ok {
			return ck.Value
		}
	}
	tags, _, _ := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if len(tags) == 0 {
		return "en"
	}
	_, i, conf := langMatcher.Match(tags...)
	if conf == language.No {
		return "en"
	}
	return languages[i]
}

// translator returns the text of a key in one language; a missing key
// shows itself (the catalogue test keeps that from happening).
func translator(lang string) func(key string, args ...any) string {
	cat := catalogues[lang]
	return func(key string, args ...any) string {
		s, ok := cat[key]
		if !ok {
			s, ok = catalogues["en"][key]
		}
		if !ok {
			return key
		}
		if len(args) > 0 {
			return fmt.Sprintf(s, args...)
		}
		return s
	}
}

type templates struct {
	pages map[string]*template.Template
}

var pageNames = []string{"login", "overview", "message", "send", "conversations", "conversation", "link", "kakao", "error"}

func parseTemplates() (map[string]*templates, error) {
	out := map[string]*templates{}
	for _, l := range languages {
		ts := &templates{pages: map[string]*template.Template{}}
		base, err := template.New("layout.html").Funcs(funcs(l, time.Local)).ParseFS(files, "templates/layout.html")
		if err != nil {
			return nil, err
		}
		for _, p := range pageNames {
			t, err := template.Must(base.Clone()).ParseFS(files, "templates/"+p+".html")
			if err != nil {
				return nil, fmt.Errorf("web: template %s: %w", p, err)
			}
			ts.pages[p] = t
		}
		out[l] = ts
	}
	return out, nil
}

func funcs(lang string, loc *time.Location) template.FuncMap {
	t := translator(lang)
	return template.FuncMap{
		"t": t,
		"time": func(at time.Time) string {
			if at.IsZero() {
				return "—"
			}
			return at.In(loc).Format("2006-01-02 15:04:05")
		},
		"clock": func(at time.Time) string {
			if at.IsZero() {
				return "—"
			}
			return at.In(loc).Format("15:04:05")
		},
		"ago":   func(now, at time.Time) string { return ago(t, now, at) },
		"iso":   func(at time.Time) string { return at.UTC().Format(time.RFC3339) },
		"plain": func(msg string) string { return plainError(t, msg) },
		"lower": strings.ToLower,
	}
}

// ago says how long ago at was, in a compact way ("3 min ago").
func ago(t func(string, ...any) string, now, at time.Time) string {
	if at.IsZero() {
		return "—"
	}
	d := now.Sub(at)
	switch {
	case d < time.Minute:
		return t("ago.seconds", max(0, int(d.Seconds())))
	case d < time.Hour:
		return t("ago.minutes", int(d.Minutes()))
	case d < 48*time.Hour:
		return t("ago.hours", int(d.Hours()))
	default:
		return t("ago.days", int(d.Hours()/24))
	}
}

// plainError says in plain words what an error most likely means; the
// details are shown next to it for whoever wants them. This matches on
// upstream and network error texts for display only; decisions are made
// on error kinds elsewhere.
func plainError(t func(string, ...any) string, msg string) string {
	if msg == "" {
		return ""
	}
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "logged out") || strings.Contains(m, "login") || strings.Contains(m, "401") ||
		strings.Contains(m, "403") || strings.Contains(m, "unauthorized") || strings.Contains(m, "token"):
		return t("plain.auth")
	case strings.Contains(m, "connection refused") || strings.Contains(m, "no such host") || strings.Contains(m, "network is unreachable"):
		return t("plain.unreachable")
	case strings.Contains(m, "timeout") || strings.Contains(m, "deadline"):
		return t("plain.timeout")
	case strings.Contains(m, "429") || strings.Contains(m, "rate") || strings.Contains(m, "quota"):
		return t("plain.rate")
	case strings.Contains(m, " 5") || strings.Contains(m, "maintenance") || strings.Contains(m, "unavailable"):
		return t("plain.server")
	}
	return t("plain.other")
}

// page is what the layout renders around every page.
type page struct {
	Lang      string
	Langs     []string
	Path      string // the request's path and query, for the language switch
	CSRF      string
	User      string
	LoggedIn  bool
	CanLogout bool
	Refresh   int // seconds; 0 for none
	Now       time.Time
	Data      any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, status int, name string, data any) {
	lang := langOf(r)
	p := page{Lang: lang, Langs: languages, Path: r.URL.RequestURI(), Now: c.now(), Data: data}
	if s != nil {
		p.CSRF, p.User, p.LoggedIn = s.csrf, s.user, s.authed
		p.CanLogout = s.authed && s.viaToken
	}
	if name == "overview" {
		p.Refresh = int(c.opt.Refresh / time.Second)
		if p.Refresh < 1 {
			p.Refresh = 1
		}
	}
	var buf bytes.Buffer
	if err := c.tmpl[lang].pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		c.log.Error("render console page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Language", lang)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail renders an error page with a catalogue message.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, status int, key string, detail ...string) {
	c.render(w, r, s, status, "error", map[string]any{"Status": status, "Key": key, "Detail": strings.Join(detail, " ")})
}

// catalogueKeys lists a catalogue's keys, sorted (tests).
func catalogueKeys(lang string) []string {
	var out []string
	for k := range catalogues[lang] {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
