package common

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxRequestBody bounds every API request body.
const maxRequestBody = 64 << 10

// APIError is the JSON body of every error response: a stable code for
// programs, the field at fault if any, and a message for people.
type APIError struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
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

// DecodeJSON reads a request body strictly: bounded size, one JSON value,
// no unknown fields. Its errors are APIErrors with code bad_request.
func DecodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return &APIError{Code: "bad_request", Field: typeErr.Field,
				Message: fmt.Sprintf("expected %v, got %s",
					typeErr.Type, typeErr.Value)}
		}
		return &APIError{Code: "bad_request",
			Message: "invalid JSON body: " + err.Error()}
	}
	if dec.More() {
		return &APIError{Code: "bad_request",
			Message: "body must hold exactly one JSON object"}
	}
	return nil
}
