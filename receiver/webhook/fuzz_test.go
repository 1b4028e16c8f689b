package webhook_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/satstream/satstream/receiver/webhook"
)

// FuzzVerify: any signature header either verifies, and then it carries
// the HMAC of its own timestamp and the body under the secret, or fails
// with ErrBadSignature; never a panic.
func FuzzVerify(f *testing.F) {
	secret := []byte(strings.Repeat("k", 32))
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	good := webhook.Sign(secret, now, body)
	for _, h := range []string{
		good,
		good + ",v1=00",
		"v1=00," + good,
		"t=1700000000",
		"t=+1700000000,v1=" + strings.Repeat("0", 64),
		"t=-9223372036854775808,v1=ab",
		"t=9223372036854775807,v1=ab",
		",,,=",
		"",
	} {
		f.Add(h, body)
	}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := webhook.Verify(secret, header, body, now, 5*time.Minute)
		if err != nil {
			if !errors.Is(err, webhook.ErrBadSignature) {
				t.Fatalf("error %v does not wrap ErrBadSignature",
					err)
			}
			return
		}
		var ts string
		for _, part := range strings.Split(header, ",") {
			if v, ok := strings.CutPrefix(part, "t="); ok {
				ts = v
			}
		}
		sec, perr := strconv.ParseInt(ts, 10, 64)
		if perr != nil {
			t.Fatalf("accepted header %q without a timestamp", header)
		}
		want := webhook.Sign(secret, time.Unix(sec, 0), body)
		_, mac, _ := strings.Cut(want, ",v1=")
		if !strings.Contains(header, "v1="+mac) {
			t.Fatalf("accepted header %q without the body's HMAC",
				header)
		}
	})
}
