package sender

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/btcsuite/btclog/v2"
	"github.com/stretchr/testify/require"
)

// TestInternalErrorTextNeverSent reproduces the leak: an unexpected error
// (here one naming a file path and the store) went to the client verbatim
// in the 500's message. Now the client gets a generic message with an id,
// and the log has the cause under that id.
func TestInternalErrorTextNeverSent(t *testing.T) {
	var logs bytes.Buffer
	api := &apiServer{log: btclog.NewSLogger(btclog.NewDefaultHandler(&logs))}
	cause := errors.New("badger: open /home/op/.satstream/sender/ledger/" +
		"000042.vlog: input/output error")
	w := httptest.NewRecorder()
	api.fail(w, cause)

	require.Equal(t, http.StatusInternalServerError, w.Code)
	require.NotContains(t, w.Body.String(), "badger")
	require.NotContains(t, w.Body.String(), "/home/op")
	var body struct {
		Error struct {
			Code, Message, ID string
		}
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
	require.Equal(t, "internal", body.Error.Code)
	require.Regexp(t, `^err_[0-9a-f]{16}$`, body.Error.ID)
	require.Contains(t, body.Error.Message, body.Error.ID)
	require.Contains(t, logs.String(), body.Error.ID)
	require.Contains(t, logs.String(), cause.Error())
}
