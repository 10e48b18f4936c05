package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ErrSubjectMismatch: the sub of a UserInfo response differs from the
// expected subject (OpenID Connect Core §5.3.2); the response must not be
// used.
var ErrSubjectMismatch = errors.New("identity: userinfo subject mismatch")

// UserInfoRequest asks the userinfo_endpoint for the claims of the user an
// access token was issued for (OpenID Connect Core §5.3).
type UserInfoRequest struct {
	// ProtocolRequest: Address is the userinfo_endpoint (https unless
	// loopback or AllowHTTP); Header, MaxResponseBytes and AllowHTTP
	// apply; Parameters are sent in the query string (GET) or the form
	// (UsePost). DPoP, when set, sends Token with the DPoP scheme and a
	// proof of the key (RFC 9449 §7), as a DPoP-bound token must be; a
	// use_dpop_nonce challenge is answered once (see [DoDPoPRequest]).
	// ClientAuth must be empty: the endpoint authenticates the token.
	ProtocolRequest
	// Token is the access token, sent as a Bearer Authorization header
	// (DPoP with ProtocolRequest.DPoP).
	Token string
	// ExpectedSubject, when set, must equal the response's sub (the sub of
	// the ID token): else [ErrSubjectMismatch].
	ExpectedSubject string
	// Keys verifies signed (application/jwt) responses, e.g. a [*Provider]
	// or [*KeySet] of the issuer. A signed response without Keys fails
	// with [ErrKeyNotFound].
	Keys KeySource
	// Issuer, when set, must equal the iss of a signed response.
	Issuer string
	// ClientID, when set, must be in the aud of a signed response.
	ClientID string
	// Algorithms is the allow-list for signed responses; empty means the
	// issuer's advertised asymmetric algorithms (if Keys says), else
	// RS256…EdDSA.
	Algorithms []string
	// UsePost sends a POST with a form body (empty, or Parameters)
	// instead of a GET (OpenID Connect Core §5.3.1 allows both; some
	// servers or gateways accept only one). The token stays in the
	// Authorization header.
	UsePost bool
}

// UserInfoAddress is the address claim (OpenID Connect Core §5.1.1).
type UserInfoAddress struct {
	Formatted     string `json:"formatted,omitempty"`
	StreetAddress string `json:"street_address,omitempty"`
	Locality      string `json:"locality,omitempty"`
	Region        string `json:"region,omitempty"`
	PostalCode    string `json:"postal_code,omitempty"`
	Country       string `json:"country,omitempty"`
}

// UserInfoResponse holds the claims of a UserInfo response: the standard
// claims of OpenID Connect Core §5.1 typed, every claim (standard or
// custom) through [UserInfoResponse.Extra] and [UserInfoResponse.Claims].
type UserInfoResponse struct {
	// Subject is the sub claim (always present).
	Subject string
	// Name, GivenName, FamilyName, MiddleName, Nickname, PreferredUsername
	// are the name claims.
	Name, GivenName, FamilyName, MiddleName, Nickname, PreferredUsername string
	// Profile, Picture and Website are URLs.
	Profile, Picture, Website string
	// Email and whether it was verified ("true"/"false" strings, as some
	// providers send, are accepted).
	Email         string
	EmailVerified bool
	// Gender, Birthdate (YYYY-MM-DD, or YYYY), Zoneinfo and Locale.
	Gender, Birthdate, Zoneinfo, Locale string
	// PhoneNumber and whether it was verified.
	PhoneNumber         string
	PhoneNumberVerified bool
	// Address is the address claim, nil when absent.
	Address *UserInfoAddress
	// UpdatedAt is the updated_at claim, zero when absent.
	UpdatedAt time.Time
	// Signed reports that the response was a JWT verified with the
	// request's Keys.
	Signed bool
	// Raw is the JSON claims object (the payload of a signed response).
	Raw []byte

	members wireObject
}

// Extra returns the raw JSON value of any claim, standard or custom.
func (r *UserInfoResponse) Extra(name string) (json.RawMessage, bool) { return r.members.extra(name) }

// Claims returns all claims decoded into a new map (numbers as
// json.Number).
func (r *UserInfoResponse) Claims() map[string]any {
	out := make(map[string]any, len(r.members))
	for k, raw := range r.members {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) == nil {
			out[k] = v
		}
	}
	return out
}

// RequestUserInfo fetches the UserInfo claims. Errors: a [*ProtocolError]
// for a 4xx with an OAuth error body or a WWW-Authenticate challenge
// (Code may be empty when the challenge carries no error; the challenge is
// in WWWAuthenticate), [*HTTPStatusError] for other failure statuses,
// [ErrNotJSON], [ErrBodyTooLarge], [*MissingMembersError] without sub,
// [ErrSubjectMismatch], the verification errors of signed responses
// ([ErrSignature], [ErrKeyNotFound], [ErrUnsupportedAlg], [ErrMalformed],
// [*ClaimError]) or the transport or context error.
func RequestUserInfo(ctx context.Context, client *http.Client, req UserInfoRequest) (*UserInfoResponse, error) {
	if req.Token == "" {
		return nil, fmt.Errorf("%w: the userinfo request needs Token", ErrMissingToken)
	}
	p := req.ProtocolRequest
	method := http.MethodGet
	if req.UsePost {
		method, p.Parameters = http.MethodPost, nil
	}
	call, err := p.tokenCall("userinfo endpoint", method, req.Token)
	if err != nil {
		return nil, err
	}
	call.accept = "application/json, application/jwt"
	if req.UsePost {
		call.body, call.contentType = []byte(req.Parameters.Encode()), "application/x-www-form-urlencoded"
	}
	res, err := doEndpoint(ctx, client, call)
	if err != nil {
		return nil, err
	}
	if res.status != http.StatusOK {
		if challenge := res.header.Get("WWW-Authenticate"); challenge != "" && protocolErrorFromBody(res.status, res.header, res.body) == nil {
			pe := protocolErrorFromChallenge(res.status, res.header, res.body)
			if pe == nil {
				pe = &ProtocolError{StatusCode: res.status, WWWAuthenticate: challenge, Body: capErrorBody(res.body)}
			}
			return nil, pe
		}
		return nil, res.errorFor()
	}
	body, signed := res.body, false
	if res.mediaType() == "application/jwt" {
		body, err = verifySignedResponse(ctx, string(res.body), signedResponseCheck{
			keys:       req.Keys,
			algorithms: req.Algorithms,
			issuer:     req.Issuer,
			audience:   req.ClientID,
		})
		if err != nil {
			return nil, fmt.Errorf("identity: signed userinfo response: %w", err)
		}
		signed = true
	}
	r, err := parseUserInfo(body)
	if err != nil {
		return nil, err
	}
	r.Signed = signed
	if req.ExpectedSubject != "" && r.Subject != req.ExpectedSubject {
		return nil, fmt.Errorf("%w: got %q", ErrSubjectMismatch, r.Subject)
	}
	return r, nil
}

// parseUserInfo decodes a UserInfo claims object.
func parseUserInfo(body []byte) (*UserInfoResponse, error) {
	obj, err := decodeWireObject(body)
	if err != nil {
		return nil, err
	}
	if !obj.present("sub") {
		return nil, &MissingMembersError{Members: []string{"sub"}}
	}
	r := &UserInfoResponse{Raw: body, members: obj}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"sub", &r.Subject}, {"name", &r.Name}, {"given_name", &r.GivenName},
		{"family_name", &r.FamilyName}, {"middle_name", &r.MiddleName},
		{"nickname", &r.Nickname}, {"preferred_username", &r.PreferredUsername},
		{"profile", &r.Profile}, {"picture", &r.Picture}, {"website", &r.Website},
		{"email", &r.Email}, {"gender", &r.Gender}, {"birthdate", &r.Birthdate},
		{"zoneinfo", &r.Zoneinfo}, {"locale", &r.Locale}, {"phone_number", &r.PhoneNumber},
	} {
		if *f.dst, err = obj.str(f.name); err != nil {
			return nil, err
		}
	}
	if r.EmailVerified, err = obj.lenientBool("email_verified"); err != nil {
		return nil, err
	}
	if r.PhoneNumberVerified, err = obj.lenientBool("phone_number_verified"); err != nil {
		return nil, err
	}
	if obj.present("address") {
		r.Address = &UserInfoAddress{}
		if err := json.Unmarshal(obj["address"], r.Address); err != nil {
			return nil, memberTypeError("address", "an address object")
		}
	}
	if r.UpdatedAt, err = obj.unixTime("updated_at"); err != nil {
		return nil, err
	}
	return r, nil
}

// lenientBool reads a boolean member that some providers send as the
// string "true" or "false"; false when absent.
func (o wireObject) lenientBool(name string) (bool, error) {
	if v, _, err := o.boolean(name); err == nil {
		return v, nil
	}
	s, err := o.str(name)
	if err == nil {
		switch strings.ToLower(s) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, memberTypeError(name, "a boolean")
}
