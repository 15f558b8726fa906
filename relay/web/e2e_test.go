package web

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var saveScreenshots = flag.Bool("screenshots", os.Getenv("RELAY_SCREENSHOTS") != "",
	"write the end-to-end test's screenshots to testdata/screenshots (else to a temp dir)")

// chromium finds a Chromium binary: Debian's /usr/bin/chromium, else PATH.
func chromium() string {
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestConsoleInABrowser drives the console in headless Chromium against a
// real daemon with tokens: login, a channel going down and up again, a
// test message that fails over, WhatsApp linking by QR code, Korean.
func TestConsoleInABrowser(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("no chromium binary found (apt-get install chromium)")
	}
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	s := start(t, setupOpts{tokens: true, refresh: time.Second, extra: "[channels.wa]\ntype = \"fakewa\"\n"})
	shots := t.TempDir()
	if *saveScreenshots {
		shots = filepath.Join("testdata", "screenshots")
	}

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// The first run starts the browser; its context must outlive the test
	// (cancelling it closes the browser), so steps get their own timeouts.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			dctx, dcancel := context.WithTimeout(bctx, 5*time.Second)
			defer dcancel()
			loc, lerr := chromedp.Run(dctx, chromedp.Location())
			html, herr := chromedp.Run(dctx, chromedp.OuterHTML(chromedp.CSS("body")))
			t.Fatalf("%s: %v\nat %s (%v):\n%s (%v)", what, err, loc, lerr, html, herr)
		}
	}
	eval := func(expr string) bool {
		t.Helper()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return ok
	}
	// until reloads path until the expression holds in the page.
	until := func(what, path, expr string) {
		t.Helper()
		waitFor(t, what, 20*time.Second, func() bool {
			do("open "+path, chromedp.Navigate(s.base+path))
			return eval(expr)
		})
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Log in: the console sends us to the login form first.
	do("open the console", chromedp.Navigate(s.base+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	do("type the token", chromedp.SendKeys(chromedp.CSS("#token"), adminSecret))
	do("submit", chromedp.Click(chromedp.CSS("#login-submit")))
	do("see the overview", chromedp.WaitVisible(chromedp.CSS("#ch-hook")))

	// The webhook channel is up, then its upstream fails and it goes down.
	until("hook up", "/ui/", `document.querySelector("#ch-hook").dataset.state === "up"`)
	s.up.set(true, true)
	until("hook down", "/ui/", `document.querySelector("#ch-hook").dataset.state === "down"`)
	if !eval(`document.querySelector("#ch-hook .strip .cell:last-child").classList.contains("down")`) {
		t.Error("the history strip does not end in down")
	}
	// It recovers; its sends still fail, so a test message fails over.
	s.up.set(false, true)
	until("hook up again", "/ui/", `document.querySelector("#ch-hook").dataset.state === "up"`)

	do("send a test message",
		chromedp.Navigate(s.base+"/ui/send"),
		chromedp.WaitVisible(chromedp.CSS("#text")),
		chromedp.SetValue(chromedp.CSS("#to"), "owner"),
		chromedp.SendKeys(chromedp.CSS("#text"), "Table 4 asks for the bill"),
		chromedp.Click(chromedp.CSS("#send-submit")),
		chromedp.WaitVisible(chromedp.CSS("#message")))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	id := loc[strings.LastIndex(loc, "/")+1:]
	until("delivered", "/ui/messages/"+id, `document.querySelector("#message").dataset.status === "delivered"`)
	do("overview", chromedp.Navigate(s.base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#recent")))
	route, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`tr[data-message="`+id+`"] td.route`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(route, "hook ✗") || !strings.Contains(route, "backup ✓") || strings.Index(route, "hook") > strings.Index(route, "backup") {
		t.Fatalf("recent delivery route = %q, want hook ✗ → backup ✓", route)
	}
	shot("overview.png")

	// WhatsApp: start pairing and see the QR code the adapter issued.
	do("link page",
		chromedp.Navigate(s.base+"/ui/channels/wa/link"),
		chromedp.Click(chromedp.CSS("#link-qr")),
		chromedp.WaitVisible(chromedp.CSS("#qr")))
	waitFor(t, "the QR image", 10*time.Second, func() bool {
		return eval(`(() => { const i = document.querySelector("#qr"); return i.complete && i.naturalWidth === 320; })()`)
	})
	shot("whatsapp-link.png")
	// The page follows the pairing by itself (JS polling): linked.
	fakeFor("wa").succeed("+82 10-5555-0100")
	do("linked", chromedp.WaitVisible(chromedp.CSS("#unlink")))

	// Korean, from the switch on the page.
	do("switch to Korean",
		chromedp.Navigate(s.base+"/ui/"),
		chromedp.Click(chromedp.CSS("#lang-ko")),
		chromedp.WaitVisible(chromedp.CSS("#recent")))
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"채널", "최근 전달", "대기열"} {
		if !strings.Contains(text, want) {
			t.Errorf("Korean page lacks %q", want)
		}
	}
}
