//go:build smoke

package receiver

import (
	"context"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

func TestSmokeProviderBrowser(t *testing.T) {
	d := newDashHarness(t)
	srv := httptest.NewTLSServer(d.h)
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
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("token"), d.api.tokens.Admin)))
	_, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#login button")))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/plans")))
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("label"), "Gym")))
	_, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#save-plan")))
	require.NoError(t, err)
	txt, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 500)`))
	require.NoError(t, err)
	t.Log(txt)
	png, _ := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	os.WriteFile("/tmp/dash-smoke-plans.png", png, 0o644)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")))
	png, _ = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	os.WriteFile("/tmp/dash-smoke-prov.png", png, 0o644)
}
