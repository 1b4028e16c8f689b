// Package docs embeds the OpenAPI documents committed beside the API docs,
// so the daemons serve at /v1/openapi.json exactly the file in docs/.
package docs

import _ "embed"

// OpenAPIReceiver is docs/openapi-receiver.json.
//
//go:embed openapi-receiver.json
var OpenAPIReceiver []byte

// OpenAPISender is docs/openapi-sender.json.
//
//go:embed openapi-sender.json
var OpenAPISender []byte
