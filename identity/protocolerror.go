package identity

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// ProtocolError is an OAuth 2.0 error response (RFC 6749 §5.2, RFC 7009
// §2.2.1, RFC 7662 §2.3, RFC 7591 §3.2.2, RFC 8628 §3.5, RFC 6750 §3): the
// server answered with an "error" code instead of a result. Every endpoint
// call of this package returns it, so one [errors.As] serves them all:
//
//	var pe *identity.ProtocolError
//	if errors.As(err, &pe) && pe.Code == "invalid_client" { ... }
//
// An error response in an authorization callback (RFC 6749 §4.1.2.1) is a
// ProtocolError with StatusCode 0.
type ProtocolError struct {
	// Code is the "error" member, e.g. "invalid_grant".
	Code string
	// Description is the optional "error_description" member. It is text
	// from the server: log it, do not show it to end users unfiltered.
	Description string
	// URI is the optional "error_uri" member.
	URI string
	// StatusCode is the HTTP status of the response (0 for callbacks).
	StatusCode int
	// WWWAuthenticate is the WWW-Authenticate header of the response, if
	// any (RFC 6750 §3 bearer challenges from userinfo endpoints).
	WWWAuthenticate string
	// Body is the start of the raw response body (at most a few KiB).
	Body []byte
}

// Error describes the protocol error with its code, description and status.
func (e *ProtocolError) Error() string {
	var b strings.Builder
	b.WriteString("identity: protocol error ")
	b.WriteString(fmt.Sprintf("%q", e.Code))
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.StatusCode)
	}
	return b.String()
}

// protocolErrorFromBody builds a ProtocolError from a JSON error body, or
// returns nil when body is not a JSON object with a string "error" member.
func protocolErrorFromBody(status int, header http.Header, body []byte) *ProtocolError {
	var doc struct {
		Error       *string `json:"error"`
		Description string  `json:"error_description"`
		URI         string  `json:"error_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Error == nil || *doc.Error == "" {
		return nil
	}
	return &ProtocolError{
		Code:            *doc.Error,
		Description:     doc.Description,
		URI:             doc.URI,
		StatusCode:      status,
		WWWAuthenticate: header.Get("WWW-Authenticate"),
		Body:            capErrorBody(body),
	}
}

// protocolErrorFromChallenge builds a ProtocolError from a Bearer
// WWW-Authenticate challenge carrying an error parameter (RFC 6750 §3), or
// returns nil when there is none.
func protocolErrorFromChallenge(status int, header http.Header, body []byte) *ProtocolError {
	for _, challenge := range header.Values("WWW-Authenticate") {
		params := challengeParams(challenge)
		if params["error"] == "" {
			continue
		}
		return &ProtocolError{
			Code:            params["error"],
			Description:     params["error_description"],
			URI:             params["error_uri"],
			StatusCode:      status,
			WWWAuthenticate: challenge,
			Body:            capErrorBody(body),
		}
	}
	return nil
}

// challengeParams returns the auth-params of a Bearer or DPoP challenge
// (the auth-param syntax is that of every scheme, RFC 9110 §11.2), nil for
// other schemes.
func challengeParams(h string) map[string]string {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if strings.EqualFold(scheme, AuthSchemeDPoP) {
		return parseBearerChallenge(TokenTypeBearer + " " + rest)
	}
	return parseBearerChallenge(h)
}

// parseBearerChallenge returns the auth-params of a "Bearer" challenge
// (quoted-string or token values). Other schemes yield nil.
func parseBearerChallenge(h string) map[string]string {
	h = strings.TrimSpace(h)
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return nil
	}
	params := map[string]string{}
	s := strings.TrimSpace(rest)
	for s != "" {
		name, after, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		name = strings.ToLower(strings.TrimSpace(strings.TrimLeft(name, ", ")))
		after = strings.TrimLeft(after, " ")
		var val string
		if strings.HasPrefix(after, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(after); i++ {
				c := after[i]
				if c == '\\' && i+1 < len(after) {
					i++
					b.WriteByte(after[i])
					continue
				}
				if c == '"' {
					break
				}
				b.WriteByte(c)
			}
			val = b.String()
			if i < len(after) {
				i++
			}
			s = after[i:]
		} else {
			val, s, _ = strings.Cut(after, ",")
			val = strings.TrimSpace(val)
		}
		params[name] = val
		s = strings.TrimLeft(s, ", ")
	}
	return params
}

// capErrorBody returns a copy of at most maxErrorBodyBytes of body.
func capErrorBody(body []byte) []byte {
	if len(body) > maxErrorBodyBytes {
		body = body[:maxErrorBodyBytes]
	}
	return append([]byte(nil), body...)
}
