package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"
)

// ClientMetadata is the metadata of a dynamically registered client
// (RFC 7591 §2, OpenID Connect Dynamic Client Registration §2). Members
// not named here travel in Extra, both ways. Empty strings and nil slices
// are not sent; an empty non-nil slice is sent as [] (e.g. ResponseTypes:
// []string{} for a client without front-channel flows).
type ClientMetadata struct {
	// RedirectURIs are the redirection URIs of the client.
	RedirectURIs []string `json:"redirect_uris,omitzero"`
	// TokenEndpointAuthMethod is an AuthMethod* value; the server defaults to client_secret_basic.
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	// TokenEndpointAuthSigningAlg is the JWS alg of private_key_jwt/client_secret_jwt assertions.
	TokenEndpointAuthSigningAlg string `json:"token_endpoint_auth_signing_alg,omitempty"`
	// GrantTypes and ResponseTypes are the grant and response types the client uses.
	GrantTypes    []string `json:"grant_types,omitzero"`
	ResponseTypes []string `json:"response_types,omitzero"`
	// ClientName, ClientURI and LogoURI describe the client to users.
	ClientName string `json:"client_name,omitempty"`
	ClientURI  string `json:"client_uri,omitempty"`
	LogoURI    string `json:"logo_uri,omitempty"`
	// Scope is the space-delimited scope the client may request.
	Scope string `json:"scope,omitempty"`
	// Contacts are people responsible for the client; TOSURI and PolicyURI
	// link its terms of service and privacy policy.
	Contacts  []string `json:"contacts,omitzero"`
	TOSURI    string   `json:"tos_uri,omitempty"`
	PolicyURI string   `json:"policy_uri,omitempty"`
	// JWKSURI or JWKS publish the client's public keys (private_key_jwt, encryption).
	JWKSURI string          `json:"jwks_uri,omitempty"`
	JWKS    json.RawMessage `json:"jwks,omitempty"`
	// SoftwareID, SoftwareVersion and SoftwareStatement identify the client software (RFC 7591 §2.3).
	SoftwareID        string `json:"software_id,omitempty"`
	SoftwareVersion   string `json:"software_version,omitempty"`
	SoftwareStatement string `json:"software_statement,omitempty"`
	// ApplicationType ("web" or "native") and SubjectType ("public" or "pairwise", with
	// SectorIdentifierURI) are OpenID Connect registration members.
	ApplicationType     string `json:"application_type,omitempty"`
	SubjectType         string `json:"subject_type,omitempty"`
	SectorIdentifierURI string `json:"sector_identifier_uri,omitempty"`
	// IDTokenSignedResponseAlg and UserinfoSignedResponseAlg ask for signed ID tokens and UserInfo responses.
	IDTokenSignedResponseAlg  string `json:"id_token_signed_response_alg,omitempty"`
	UserinfoSignedResponseAlg string `json:"userinfo_signed_response_alg,omitempty"`
	// DefaultMaxAge (seconds) and RequireAuthTime govern authentication age.
	DefaultMaxAge   int64 `json:"default_max_age,omitempty"`
	RequireAuthTime bool  `json:"require_auth_time,omitempty"`
	// InitiateLoginURI, RequestURIs and PostLogoutRedirectURIs are further OpenID Connect URIs.
	InitiateLoginURI       string   `json:"initiate_login_uri,omitempty"`
	RequestURIs            []string `json:"request_uris,omitzero"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitzero"`

	// Extra holds any other member (e.g. "introspection_signed_response_alg"
	// or server extensions). It never overrides a named field.
	Extra map[string]json.RawMessage `json:"-"`
}

// clientMetadataFields is ClientMetadata without its JSON methods.
type clientMetadataFields ClientMetadata

// clientMetadataNames returns the JSON names of the named fields.
func clientMetadataNames() map[string]bool {
	t := reflect.TypeFor[clientMetadataFields]()
	names := make(map[string]bool, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names[name] = true
		}
	}
	return names
}

// MarshalJSON writes the named fields and the Extra members.
func (m ClientMetadata) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(clientMetadataFields(m))
	if err != nil || len(m.Extra) == 0 {
		return b, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, err
	}
	known := clientMetadataNames()
	for k, v := range m.Extra {
		if !known[k] {
			obj[k] = v
		}
	}
	return json.Marshal(obj)
}

// UnmarshalJSON reads the named fields and keeps every other member in
// Extra.
func (m *ClientMetadata) UnmarshalJSON(data []byte) error {
	var f clientMetadataFields
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return err
	}
	known := clientMetadataNames()
	for k, v := range obj {
		if !known[k] {
			if f.Extra == nil {
				f.Extra = map[string]json.RawMessage{}
			}
			f.Extra[k] = v
		}
	}
	*m = ClientMetadata(f)
	return nil
}

// RegistrationResponse is a client information response (RFC 7591 §3.2.1,
// RFC 7592 §3): the registered metadata plus the credentials.
type RegistrationResponse struct {
	// ClientID is the issued client identifier.
	ClientID string
	// ClientSecret is the issued secret, if any.
	ClientSecret string
	// ClientIDIssuedAt is when the ID was issued (zero when not sent).
	ClientIDIssuedAt time.Time
	// ClientSecretExpiresAt is when the secret expires; zero when it never
	// does (0 on the wire) or no secret was issued.
	ClientSecretExpiresAt time.Time
	// RegistrationAccessToken authorizes RFC 7592 management calls.
	RegistrationAccessToken string
	// RegistrationClientURI is the client configuration endpoint.
	RegistrationClientURI string
	// Metadata is the registered metadata as the server returned it
	// (possibly changed from the request); unknown members are in
	// Metadata.Extra.
	Metadata ClientMetadata
	// Raw is the response body.
	Raw []byte
}

// RegistrationRequest registers a client at a registration_endpoint
// (RFC 7591 §3.1).
type RegistrationRequest struct {
	// ProtocolRequest: Address is the registration_endpoint; Header,
	// MaxResponseBytes, AllowHTTP and DPoP (for a DPoP-bound initial
	// access token) apply, Parameters go in the query string, and
	// ClientAuth must be empty.
	ProtocolRequest
	// InitialAccessToken, when the server requires one, is sent as a
	// Bearer token.
	InitialAccessToken string
	// Metadata is the metadata to register.
	Metadata ClientMetadata
}

// ClientConfigurationRequest addresses a registered client's
// configuration endpoint (RFC 7592 §2).
type ClientConfigurationRequest struct {
	// ProtocolRequest: Address is the registration_client_uri; the other
	// fields apply as for [RegistrationRequest].
	ProtocolRequest
	// RegistrationAccessToken is sent as a Bearer token (required).
	RegistrationAccessToken string
	// ClientID and ClientSecret are sent with an update, as RFC 7592 §2.2
	// requires (the secret only when one was issued).
	ClientID, ClientSecret string
	// Metadata is the complete new metadata of an update.
	Metadata ClientMetadata
}

// RegisterClient registers a client. Errors: [*ProtocolError] (e.g.
// invalid_redirect_uri, invalid_client_metadata, invalid_token),
// [*HTTPStatusError], [ErrNotJSON], [ErrBodyTooLarge],
// [*MissingMembersError] without client_id, or the transport or context
// error.
func RegisterClient(ctx context.Context, client *http.Client, req RegistrationRequest) (*RegistrationResponse, error) {
	body, err := json.Marshal(req.Metadata)
	if err != nil {
		return nil, err
	}
	call, err := req.tokenCall("registration endpoint", http.MethodPost, req.InitialAccessToken)
	if err != nil {
		return nil, err
	}
	call.body, call.contentType, call.accept = body, "application/json", "application/json"
	res, err := doEndpoint(ctx, client, call)
	if err != nil {
		return nil, err
	}
	return parseRegistrationResponse(res, http.StatusCreated, http.StatusOK)
}

// ReadClientConfiguration reads a registered client's current
// configuration (RFC 7592 §2.1). Errors as for [RegisterClient].
func ReadClientConfiguration(ctx context.Context, client *http.Client, req ClientConfigurationRequest) (*RegistrationResponse, error) {
	res, err := req.do(ctx, client, http.MethodGet, nil)
	if err != nil {
		return nil, err
	}
	return parseRegistrationResponse(res, http.StatusOK)
}

// UpdateClientConfiguration replaces a registered client's metadata with
// req.Metadata (RFC 7592 §2.2). Errors as for [RegisterClient].
func UpdateClientConfiguration(ctx context.Context, client *http.Client, req ClientConfigurationRequest) (*RegistrationResponse, error) {
	if req.ClientID == "" {
		return nil, fmt.Errorf("%w: a client configuration update needs ClientID", ErrMissingClientID)
	}
	md := req.Metadata
	md.Extra = make(map[string]json.RawMessage, len(req.Metadata.Extra)+2)
	for k, v := range req.Metadata.Extra {
		md.Extra[k] = v
	}
	id, _ := json.Marshal(req.ClientID)
	md.Extra["client_id"] = id
	if req.ClientSecret != "" {
		secret, _ := json.Marshal(req.ClientSecret)
		md.Extra["client_secret"] = secret
	}
	body, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	res, err := req.do(ctx, client, http.MethodPut, body)
	if err != nil {
		return nil, err
	}
	return parseRegistrationResponse(res, http.StatusOK)
}

// DeleteClientConfiguration deregisters a client (RFC 7592 §2.3); 204 (or
// 200) is success. Errors: [*ProtocolError], [*HTTPStatusError], or the
// transport or context error.
func DeleteClientConfiguration(ctx context.Context, client *http.Client, req ClientConfigurationRequest) error {
	res, err := req.do(ctx, client, http.MethodDelete, nil)
	if err != nil {
		return err
	}
	if res.status != http.StatusNoContent && res.status != http.StatusOK {
		return res.errorFor()
	}
	return nil
}

// do sends one request to the client configuration endpoint.
func (r ClientConfigurationRequest) do(ctx context.Context, client *http.Client, method string, body []byte) (*endpointResult, error) {
	if r.RegistrationAccessToken == "" {
		return nil, fmt.Errorf("%w: a client configuration request needs RegistrationAccessToken", ErrMissingToken)
	}
	call, err := r.tokenCall("client configuration endpoint", method, r.RegistrationAccessToken)
	if err != nil {
		return nil, err
	}
	call.body, call.accept = body, "application/json"
	if body != nil {
		call.contentType = "application/json"
	}
	return doEndpoint(ctx, client, call)
}

// parseRegistrationResponse decodes a client information response with
// one of the ok statuses.
func parseRegistrationResponse(res *endpointResult, ok ...int) (*RegistrationResponse, error) {
	good := false
	for _, s := range ok {
		good = good || res.status == s
	}
	if !good {
		return nil, res.errorFor()
	}
	obj, err := decodeWireObject(res.body)
	if err != nil {
		return nil, err
	}
	if !obj.present("client_id") {
		return nil, &MissingMembersError{Members: []string{"client_id"}}
	}
	r := &RegistrationResponse{Raw: res.body}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"client_id", &r.ClientID}, {"client_secret", &r.ClientSecret},
		{"registration_access_token", &r.RegistrationAccessToken},
		{"registration_client_uri", &r.RegistrationClientURI},
	} {
		if *f.dst, err = obj.str(f.name); err != nil {
			return nil, err
		}
	}
	if r.ClientIDIssuedAt, err = obj.unixTime("client_id_issued_at"); err != nil {
		return nil, err
	}
	if r.ClientSecretExpiresAt, err = obj.unixTime("client_secret_expires_at"); err != nil {
		return nil, err
	}
	if r.ClientSecretExpiresAt.Unix() == 0 {
		r.ClientSecretExpiresAt = time.Time{}
	}
	if err := json.Unmarshal(res.body, &r.Metadata); err != nil {
		return nil, fmt.Errorf("%w: client metadata: %v", ErrNotJSON, err)
	}
	for _, name := range []string{
		"client_id", "client_secret", "client_id_issued_at", "client_secret_expires_at",
		"registration_access_token", "registration_client_uri",
	} {
		delete(r.Metadata.Extra, name)
	}
	if len(r.Metadata.Extra) == 0 {
		r.Metadata.Extra = nil
	}
	return r, nil
}
