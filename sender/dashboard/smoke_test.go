//go:build smoke

package dashboard

import (
	"context"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

func TestSmokeBrowser(t *testing.T) {
	h, b := newTest(t)
	_ = b
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	actx, c1 := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath("/usr/bin/chromium"), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.IgnoreCertErrors, chromedp.UserDataDir(t.TempDir()))
	defer c1()
	ctx, c2 := chromedp.NewContext(actx)
	defer c2()
	ctx, c3 := context.WithTimeout(ctx, time.Minute)
	defer c3()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	t.Log(loc)
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("token"), tokens.Admin)))
	_, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#login button")))
	require.NoError(t, err)
	time.Sleep(2 * time.Second)
	txt, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("[data-until]").textContent + " | live=" + document.body.dataset.live`))
	require.NoError(t, err)
	t.Log(txt)
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(390, 800),
		chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
			return chromedp.Void{}, err
		})))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	os.WriteFile("/tmp/dash-smoke.png", png, 0o644)
}
