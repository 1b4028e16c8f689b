package common

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/satstream/satstream/store"
	"io"
	"net/http"
	"strings"
)

// maxRequestBody bounds every API request body.
const maxRequestBody = 64 << 10

// APIError is the JSON body of every error response: a stable code for
// programs, the field at fault if any, and a message for people.
type APIError struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`

	// ID, on internal errors, is the id the daemon logged the cause
	// under; the cause itself is never sent to the client.
	ID string `json:"id,omitempty"`
}

// Error makes APIError an error, so handlers can return one.
func (e *APIError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError writes an APIError.
func WriteError(w http.ResponseWriter, status int, code, field, msg string) {
	WriteJSON(w, status, struct {
		Error APIError `json:"error"`
	}{APIError{Code: code, Field: field, Message: msg}})
}

// ErrBadJSON is wrapped by the APIErrors DecodeJSON returns, for callers
// that decode outside a request.
var ErrBadJSON = errors.New("bad JSON body")

// InternalErrorLogger is the part of a btclog.Logger WriteInternalError
// needs.
type InternalErrorLogger interface {
	Errorf(format string, params ...any)
}

// WriteInternalError answers a failure that is ours, not the client's: the
// cause (which may hold paths, store or lnd details) goes to the log under
// a fresh id, and the client gets a generic 500 carrying that id, so a
// report can be matched to the log line.
//
// A write the ledger refused for a full disk (store.ErrDiskFull) is no bug
// and passes once space returns: it is 503 disk_full with Retry-After
// (the store logs the episode, and health names the disk).
func WriteInternalError(w http.ResponseWriter, log InternalErrorLogger,
	err error) {

	if errors.Is(err, store.ErrDiskFull) {
		w.Header().Set("Retry-After", DiskFullRetryAfter)
		WriteError(w, http.StatusServiceUnavailable, "disk_full", "",
			"the daemon's ledger disk is full; nothing was changed, "+
				"try again later")
		return
	}
	id := newErrorID()
	log.Errorf("API request failed (error id %s): %v", id, err)
	WriteJSON(w, http.StatusInternalServerError, struct {
		Error APIError `json:"error"`
	}{APIError{Code: "internal", ID: id, Message: "internal error; " +
		"the daemon's log has the details under id " + id}})
}

// DiskFullRetryAfter is the Retry-After, in seconds, of a disk_full
// answer.
const DiskFullRetryAfter = "30"

// newErrorID is a short random id for one internal error.
func newErrorID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "unknown"
	}
	return "err_" + hex.EncodeToString(b[:])
}

// DecodeJSON reads a request body strictly: at most 64 KiB, exactly one
// JSON value with nothing after it, no key twice in an object (encoding/json
// would silently keep the last; keys are compared case-insensitively, as
// it matches them to fields), no unknown fields. Its errors are APIErrors
// with code bad_request that name the offending key, field or byte.
func DecodeJSON(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		return &APIError{Code: "bad_request",
			Message: "reading the body failed: " + err.Error()}
	}
	if len(data) > maxRequestBody {
		return &APIError{Code: "bad_request", Message: fmt.Sprintf(
			"body is larger than %d bytes", maxRequestBody)}
	}
	return DecodeStrict(data, v)
}

// DecodeStrict is DecodeJSON on bytes already read.
func DecodeStrict(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &APIError{Code: "bad_request",
			Message: "empty body; send one JSON object"}
	}
	if err := checkDuplicateKeys(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var (
			typeErr   *json.UnmarshalTypeError
			syntaxErr *json.SyntaxError
		)
		switch {
		case errors.As(err, &typeErr):
			return &APIError{Code: "bad_request", Field: typeErr.Field,
				Message: fmt.Sprintf("expected %v, got %s",
					typeErr.Type, typeErr.Value)}
		case errors.As(err, &syntaxErr):
			return &APIError{Code: "bad_request", Message: fmt.Sprintf(
				"invalid JSON body at byte %d: %v",
				syntaxErr.Offset, err)}
		}
		return &APIError{Code: "bad_request",
			Message: "invalid JSON body: " + err.Error()}
	}
	// Anything but whitespace after the value is refused: a client
	// that sends two objects or a stray bracket has a bug we should
	// not guess around.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &APIError{Code: "bad_request", Message: fmt.Sprintf(
			"trailing data after the JSON object at byte %d; send "+
				"exactly one object", dec.InputOffset())}
	}
	return nil
}

// maxJSONDepth bounds nesting in checkDuplicateKeys (the API's bodies are
// flat; encoding/json itself allows 10000).
const maxJSONDepth = 32

// checkDuplicateKeys walks data's first value and refuses an object that
// holds a key twice (compared case-insensitively), naming the key and its
// path, or nesting deeper than maxJSONDepth. Syntax errors are left for
// the decoder to report.
func checkDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	err := walkJSON(dec, "", 0)
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return err
	}
	return nil
}

// walkJSON reads one value from dec, checking every object in it.
func walkJSON(dec *json.Decoder, path string, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') && tok != json.Delim('[') {
		return nil
	}
	if depth >= maxJSONDepth {
		return &APIError{Code: "bad_request", Field: path,
			Message: fmt.Sprintf("JSON nested deeper than %d levels",
				maxJSONDepth)}
	}
	if tok == json.Delim('[') {
		for i := 0; dec.More(); i++ {
			err := walkJSON(dec, fmt.Sprintf("%s[%d]", path, i),
				depth+1)
			if err != nil {
				return err
			}
		}
		_, err := dec.Token()
		return err
	}
	seen := map[string]bool{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := kt.(string)
		if !ok {
			return errors.New("object key is not a string")
		}
		field := key
		if path != "" {
			field = path + "." + key
		}
		folded := strings.ToLower(key)
		if seen[folded] {
			return &APIError{Code: "bad_request", Field: field,
				Message: fmt.Sprintf("key %q appears more than "+
					"once in the object", key)}
		}
		seen[folded] = true
		if err := walkJSON(dec, field, depth+1); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}
