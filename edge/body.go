package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// publishBody is the JSON body of POST /v1/rooms/{room}/messages.
type publishBody struct {
	Data json.RawMessage `json:"data"`
	Key  string          `json:"key"`
}

// decodePublishBody reads a publish body strictly: one JSON object with
// "data" (required, any JSON value) and "key" (optional, 1 to 64 bytes),
// no other field and nothing after it. The data is compacted, so that a
// message never carries a newline (frames are newline-separated on the
// wire). A body over limit bytes is CodeTooLarge; anything else wrong is
// CodeBadRequest. Room and From are left for the caller.
func decodePublishBody(r io.Reader, limit int64) (router.PublishRequest, error) {
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || int64(len(body)) > limit:
		return router.PublishRequest{}, protocol.Errorf(protocol.CodeTooLarge, "body is larger than %d bytes", limit)
	case err != nil:
		return router.PublishRequest{}, protocol.Errorf(protocol.CodeBadRequest, "reading the body failed")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var b publishBody
	if err := dec.Decode(&b); err != nil {
		return router.PublishRequest{}, protocol.Errorf(protocol.CodeBadRequest, "body must be a JSON object with data and key: %s", bodyProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return router.PublishRequest{}, protocol.Errorf(protocol.CodeBadRequest, "body has data after the JSON object")
	}
	if len(b.Data) == 0 {
		return router.PublishRequest{}, protocol.Errorf(protocol.CodeBadRequest, "body needs data")
	}
	if err := protocol.CheckKey(b.Key); err != nil {
		return router.PublishRequest{}, err
	}
	var compact bytes.Buffer
	compact.Grow(len(b.Data))
	if err := json.Compact(&compact, b.Data); err != nil {
		// Unreachable: Decode validated data.
		return router.PublishRequest{}, protocol.Errorf(protocol.CodeBadRequest, "data is not valid JSON")
	}
	return router.PublishRequest{Key: b.Key, Data: compact.Bytes()}, nil
}

// bodyProblem describes a decode error without echoing the input.
func bodyProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "invalid JSON"
	case errors.As(err, &te):
		if te.Field != "" {
			return "field " + truncate(te.Field, 32) + " has the wrong type"
		}
		return "not a JSON object"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated body"
	default:
		// Unknown fields: encoding/json says `json: unknown field "x"`.
		msg := err.Error()
		return truncate(msg, 80)
	}
}
