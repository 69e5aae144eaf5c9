package protocol

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is an error code of PROTOCOL.md, carried by error frames and HTTP
// error bodies.
type Code string

// The error codes a client can see.
const (
	CodeBadRequest    Code = "bad_request"  // malformed frame, unknown op, bad room name
	CodeUnauthorized  Code = "unauthorized" // missing, bad or expired token
	CodeForbidden     Code = "forbidden"    // the token lacks the permission for that room
	CodeNotSubscribed Code = "not_subscribed"
	CodeRateLimited   Code = "rate_limited" // with retry_ms
	CodeTooLarge      Code = "too_large"
	CodeUnavailable   Code = "unavailable" // the room's home cannot be reached now; retry with the same key
	CodeNotFound      Code = "not_found"   // HTTP only: no such route or resource
	CodeInternal      Code = "internal"
)

// HTTPStatus is the status an HTTP error with this code is sent with.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeBadRequest:
		return http.StatusBadRequest
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeNotSubscribed:
		return http.StatusConflict
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeNotFound:
		return http.StatusNotFound
	default:
		return http.StatusInternalServerError
	}
}

// Error is a failure a client is told about: a code from the list above
// and a human-readable message. RetryMS is set for CodeRateLimited.
type Error struct {
	Code    Code
	Message string
	RetryMS int64
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf makes an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as an *Error; an error that carries no code becomes
// CodeInternal with a generic message, so internal details never reach a
// client.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}

// ErrorFrame is the error reply for a failed frame with the given id (nil
// when the frame had none or could not be parsed).
func ErrorFrame(id *int64, err error) ErrorReply {
	e := AsError(err)
	return ErrorReply{Op: OpError, ID: id, Code: e.Code, Message: e.Message, RetryMS: e.RetryMS}
}

// HTTPError is the JSON body of every HTTP API error:
// {"error": {"code", "message"}}.
type HTTPError struct {
	Error HTTPErrorBody `json:"error"`
}

// HTTPErrorBody is the inner object of HTTPError.
type HTTPErrorBody struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	RetryMS int64  `json:"retry_ms,omitempty"`
}
