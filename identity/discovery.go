package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// DiscoveryDocument is provider metadata: OpenID Connect Discovery 1.0 and
// RFC 8414 authorization server metadata, with the members added by later
// specifications (RFC 7009, 7662, 8628, 8705, 9101, 9126, 9207, 9396, 9449,
// 9701, OpenID logout and CIBA). Every member, known or not, stays readable
// through [DiscoveryDocument.Extra]. Absent booleans read false, whatever
// default the specification gives them; use Extra to tell absent from false.
type DiscoveryDocument struct {
	Issuer                             string   `json:"issuer"`
	AuthorizationEndpoint              string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                      string   `json:"token_endpoint,omitempty"`
	UserInfoEndpoint                   string   `json:"userinfo_endpoint,omitempty"`
	JWKSURI                            string   `json:"jwks_uri,omitempty"`
	RegistrationEndpoint               string   `json:"registration_endpoint,omitempty"`
	IntrospectionEndpoint              string   `json:"introspection_endpoint,omitempty"`
	RevocationEndpoint                 string   `json:"revocation_endpoint,omitempty"`
	EndSessionEndpoint                 string   `json:"end_session_endpoint,omitempty"`
	CheckSessionIframe                 string   `json:"check_session_iframe,omitempty"`
	DeviceAuthorizationEndpoint        string   `json:"device_authorization_endpoint,omitempty"`
	PushedAuthorizationRequestEndpoint string   `json:"pushed_authorization_request_endpoint,omitempty"`
	BackchannelAuthenticationEndpoint  string   `json:"backchannel_authentication_endpoint,omitempty"`
	ScopesSupported                    []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported             []string `json:"response_types_supported,omitempty"`
	ResponseModesSupported             []string `json:"response_modes_supported,omitempty"`
	GrantTypesSupported                []string `json:"grant_types_supported,omitempty"`
	ACRValuesSupported                 []string `json:"acr_values_supported,omitempty"`
	SubjectTypesSupported              []string `json:"subject_types_supported,omitempty"`
	PromptValuesSupported              []string `json:"prompt_values_supported,omitempty"`

	IDTokenSigningAlgValuesSupported          []string `json:"id_token_signing_alg_values_supported,omitempty"`
	IDTokenEncryptionAlgValuesSupported       []string `json:"id_token_encryption_alg_values_supported,omitempty"`
	IDTokenEncryptionEncValuesSupported       []string `json:"id_token_encryption_enc_values_supported,omitempty"`
	UserInfoSigningAlgValuesSupported         []string `json:"userinfo_signing_alg_values_supported,omitempty"`
	UserInfoEncryptionAlgValuesSupported      []string `json:"userinfo_encryption_alg_values_supported,omitempty"`
	UserInfoEncryptionEncValuesSupported      []string `json:"userinfo_encryption_enc_values_supported,omitempty"`
	RequestObjectSigningAlgValuesSupported    []string `json:"request_object_signing_alg_values_supported,omitempty"`
	RequestObjectEncryptionAlgValuesSupported []string `json:"request_object_encryption_alg_values_supported,omitempty"`
	RequestObjectEncryptionEncValuesSupported []string `json:"request_object_encryption_enc_values_supported,omitempty"`

	TokenEndpointAuthMethodsSupported                  []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	TokenEndpointAuthSigningAlgValuesSupported         []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	RevocationEndpointAuthMethodsSupported             []string `json:"revocation_endpoint_auth_methods_supported,omitempty"`
	RevocationEndpointAuthSigningAlgValuesSupported    []string `json:"revocation_endpoint_auth_signing_alg_values_supported,omitempty"`
	IntrospectionEndpointAuthMethodsSupported          []string `json:"introspection_endpoint_auth_methods_supported,omitempty"`
	IntrospectionEndpointAuthSigningAlgValuesSupported []string `json:"introspection_endpoint_auth_signing_alg_values_supported,omitempty"`
	// RFC 9701 JWT introspection responses.
	IntrospectionSigningAlgValuesSupported    []string `json:"introspection_signing_alg_values_supported,omitempty"`
	IntrospectionEncryptionAlgValuesSupported []string `json:"introspection_encryption_alg_values_supported,omitempty"`
	IntrospectionEncryptionEncValuesSupported []string `json:"introspection_encryption_enc_values_supported,omitempty"`
	// JARM (JWT-secured authorization responses).
	AuthorizationSigningAlgValuesSupported    []string `json:"authorization_signing_alg_values_supported,omitempty"`
	AuthorizationEncryptionAlgValuesSupported []string `json:"authorization_encryption_alg_values_supported,omitempty"`
	AuthorizationEncryptionEncValuesSupported []string `json:"authorization_encryption_enc_values_supported,omitempty"`

	DisplayValuesSupported         []string `json:"display_values_supported,omitempty"`
	ClaimTypesSupported            []string `json:"claim_types_supported,omitempty"`
	ClaimsSupported                []string `json:"claims_supported,omitempty"`
	ClaimsLocalesSupported         []string `json:"claims_locales_supported,omitempty"`
	UILocalesSupported             []string `json:"ui_locales_supported,omitempty"`
	CodeChallengeMethodsSupported  []string `json:"code_challenge_methods_supported,omitempty"`
	ServiceDocumentation           string   `json:"service_documentation,omitempty"`
	OPPolicyURI                    string   `json:"op_policy_uri,omitempty"`
	OPTosURI                       string   `json:"op_tos_uri,omitempty"`
	SignedMetadata                 string   `json:"signed_metadata,omitempty"`
	ClaimsParameterSupported       bool     `json:"claims_parameter_supported,omitempty"`
	RequestParameterSupported      bool     `json:"request_parameter_supported,omitempty"`
	RequestURIParameterSupported   bool     `json:"request_uri_parameter_supported,omitempty"`
	RequireRequestURIRegistration  bool     `json:"require_request_uri_registration,omitempty"`
	RequireSignedRequestObject     bool     `json:"require_signed_request_object,omitempty"`
	RequirePushedAuthorizationReqs bool     `json:"require_pushed_authorization_requests,omitempty"`

	FrontchannelLogoutSupported        bool `json:"frontchannel_logout_supported,omitempty"`
	FrontchannelLogoutSessionSupported bool `json:"frontchannel_logout_session_supported,omitempty"`
	BackchannelLogoutSupported         bool `json:"backchannel_logout_supported,omitempty"`
	BackchannelLogoutSessionSupported  bool `json:"backchannel_logout_session_supported,omitempty"`

	// RFC 9207.
	AuthorizationResponseIssParameterSupported bool `json:"authorization_response_iss_parameter_supported,omitempty"`
	// RFC 8705 mutual TLS.
	TLSClientCertificateBoundAccessTokens bool              `json:"tls_client_certificate_bound_access_tokens,omitempty"`
	MTLSEndpointAliases                   map[string]string `json:"mtls_endpoint_aliases,omitempty"`
	// RFC 9449 DPoP.
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
	// RFC 9396 rich authorization requests.
	AuthorizationDetailsTypesSupported []string `json:"authorization_details_types_supported,omitempty"`
	// OpenID CIBA.
	BackchannelTokenDeliveryModesSupported                    []string `json:"backchannel_token_delivery_modes_supported,omitempty"`
	BackchannelAuthenticationRequestSigningAlgValuesSupported []string `json:"backchannel_authentication_request_signing_alg_values_supported,omitempty"`
	BackchannelUserCodeParameterSupported                     bool     `json:"backchannel_user_code_parameter_supported,omitempty"`

	raw map[string]json.RawMessage
}

// discoveryFields is DiscoveryDocument without its methods, for decoding.
type discoveryFields DiscoveryDocument

// ParseDiscovery parses a metadata document. It fails with [ErrNotJSON]
// when data is not a JSON object or a known member has the wrong type;
// unknown members are kept (see [DiscoveryDocument.Extra]). It does not
// validate the document against a policy: see [DiscoveryDocument.Validate].
func ParseDiscovery(data []byte) (*DiscoveryDocument, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrNotJSON)
	}
	var f discoveryFields
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	d := DiscoveryDocument(f)
	d.raw = raw
	return &d, nil
}

// UnmarshalJSON parses like [ParseDiscovery].
func (d *DiscoveryDocument) UnmarshalJSON(data []byte) error {
	p, err := ParseDiscovery(data)
	if err != nil {
		return err
	}
	*d = *p
	return nil
}

// MarshalJSON returns every member the document was parsed with, known or
// unknown; a document built in code marshals its typed fields.
func (d DiscoveryDocument) MarshalJSON() ([]byte, error) {
	if d.raw != nil {
		return json.Marshal(d.raw)
	}
	return json.Marshal(discoveryFields(d))
}

// Extra returns the raw JSON of any member, known or unknown, and whether
// the document has it.
func (d *DiscoveryDocument) Extra(name string) (json.RawMessage, bool) {
	v, ok := d.raw[name]
	return slices.Clone(v), ok
}

// Members returns the names of all members of the parsed document, sorted.
func (d *DiscoveryDocument) Members() []string {
	names := make([]string, 0, len(d.raw))
	for k := range d.raw {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// SigningAlgorithms returns the union of every *_signing_alg_values_supported
// list of the document (known or extension members), in order of first
// appearance by sorted member name.
func (d *DiscoveryDocument) SigningAlgorithms() []string {
	return d.signingAlgorithms(func(string) bool { return true })
}

// IssuedSigningAlgorithms is [DiscoveryDocument.SigningAlgorithms] without
// the lists of algorithms the provider accepts from others rather than
// signs with: client authentication JWTs (*_endpoint_auth_signing_alg_…),
// request objects, DPoP proofs and CIBA requests. What remains (ID tokens,
// userinfo, introspection and authorization responses, extension members)
// is what the provider may sign its own tokens with, the only algorithms an
// access token of this provider can honestly carry.
func (d *DiscoveryDocument) IssuedSigningAlgorithms() []string {
	return d.signingAlgorithms(func(member string) bool { return !acceptedFromOthers(member) })
}

// signingAlgorithms is the union of the *_signing_alg_values_supported
// members that keep accepts, in order of first appearance by sorted name.
func (d *DiscoveryDocument) signingAlgorithms(keep func(member string) bool) []string {
	var out []string
	for _, name := range d.Members() {
		if !strings.HasSuffix(name, "_signing_alg_values_supported") || !keep(name) {
			continue
		}
		var algs []string
		if json.Unmarshal(d.raw[name], &algs) != nil {
			continue
		}
		for _, a := range algs {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// acceptedFromOthers reports whether a *_signing_alg_values_supported
// member lists algorithms the provider verifies (signed by clients) rather
// than uses.
func acceptedFromOthers(member string) bool {
	return strings.Contains(member, "_endpoint_auth_signing_alg_") ||
		strings.HasPrefix(member, "request_object_") ||
		strings.HasPrefix(member, "dpop_") ||
		strings.HasPrefix(member, "backchannel_authentication_request_")
}

// MetadataKind selects the well-known path of a metadata document.
type MetadataKind int

const (
	// OpenIDConfiguration is OpenID Connect Discovery 1.0:
	// issuer + "/.well-known/openid-configuration".
	OpenIDConfiguration MetadataKind = iota
	// OAuthAuthorizationServer is RFC 8414: "/.well-known/oauth-authorization-server"
	// inserted between the host and the issuer's path.
	OAuthAuthorizationServer
)

// String returns the well-known suffix of the kind.
func (k MetadataKind) String() string {
	if k == OAuthAuthorizationServer {
		return "oauth-authorization-server"
	}
	return "openid-configuration"
}

// DiscoveryPolicy says what a metadata document must satisfy. The zero value
// is the strict default: https (http only on loopback hosts), issuer equal
// to the authority exactly, trailing slash included (or the issuer template of a
// multi-tenant authority, see [DiscoveryDocument.Validate]), every *_endpoint member and
// jwks_uri absolute and on the authority's scheme and host, jwks_uri and the
// members required by the specification present, body at most
// DefaultMaxDocumentBytes.
type DiscoveryPolicy struct {
	// AllowHTTP allows http authorities and endpoints beyond loopback hosts
	// (development only).
	AllowHTTP bool
	// AdditionalEndpointBases are URL prefixes (scheme, host and optional
	// path) where endpoints may live besides the authority, e.g. a
	// separate login host.
	AdditionalEndpointBases []string
	// ExcludedEndpoints are member names exempt from the endpoint check.
	ExcludedEndpoints []string
	// CheckedEndpoints, when not empty, limits the endpoint check to these
	// members. A resource server that only fetches jwks_uri sets it to
	// that: where a provider serves its other endpoints (userinfo,
	// authorization, a hosted login domain) does not concern it, and
	// Entra ID, Google and AWS Cognito all serve some on other hosts.
	CheckedEndpoints []string
	// AllowMissingJWKSURI accepts a document without jwks_uri (for
	// clients that never validate JWTs locally).
	AllowMissingJWKSURI bool
	// Kind selects OpenID Connect or RFC 8414 metadata (path and required
	// members).
	Kind MetadataKind
	// MaxBytes caps the document; 0 means DefaultMaxDocumentBytes.
	MaxBytes int64
}

// DiscoveryURL returns the metadata URL of issuer: for OpenIDConfiguration
// the issuer (without trailing slash) + "/.well-known/openid-configuration";
// for OAuthAuthorizationServer "/.well-known/oauth-authorization-server"
// inserted between host and path (RFC 8414 §3.1). The issuer must be an
// absolute http(s) URL without query or fragment.
func DiscoveryURL(issuer string, kind MetadataKind) (string, error) {
	u, err := parseAuthority(issuer)
	if err != nil {
		return "", err
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	base := u.Scheme + "://" + u.Host
	if kind == OAuthAuthorizationServer {
		return base + "/.well-known/oauth-authorization-server" + path, nil
	}
	return base + path + "/.well-known/openid-configuration", nil
}

// parseAuthority parses an issuer or authority URL.
func parseAuthority(issuer string) (*url.URL, error) {
	if issuer == "" {
		return nil, fmt.Errorf("%w: the issuer address is empty", ErrMissingAddress)
	}
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%w: issuer %q is not an absolute http(s) URL without query or fragment", ErrEndpointNotAllowed, redactURL(issuer))
	}
	return u, nil
}

// requiredMembers lists what the specification of kind requires, plus
// jwks_uri unless allowed to be missing.
func requiredMembers(p DiscoveryPolicy) []string {
	var req []string
	if p.Kind == OAuthAuthorizationServer {
		req = []string{"issuer", "response_types_supported"}
	} else {
		req = []string{"issuer", "authorization_endpoint", "token_endpoint", "response_types_supported",
			"subject_types_supported", "id_token_signing_alg_values_supported"}
	}
	if !p.AllowMissingJWKSURI {
		req = append(req, "jwks_uri")
	}
	return req
}

// Validate checks the document against the policy for the authority (the
// issuer URL it was fetched for), in this order, each failure its own error:
// the authority must be https ([ErrHTTPSRequired]); required members must be
// present and non-empty ([*MissingMembersError], matching [ErrMissingMember]);
// the issuer must be identical to the authority, trailing slash included
// (OpenID Connect Discovery 1.0 §4.3, RFC 8414 §3.3: the tokens carry the
// document's spelling, which a validator configured with the other one
// refuses), or be the
// issuer template of a multi-tenant authority (see [TenantPlaceholder]:
// "https://login.microsoftonline.com/{tenantid}/v2.0" for the authority
// "https://login.microsoftonline.com/common/v2.0", and likewise for
// "organizations" and "consumers"; a validator then needs the template as
// its issuer, with its tenants) ([ErrIssuerMismatch]); every *_endpoint member and jwks_uri must be an
// absolute URL ([ErrEndpointNotAllowed]), https unless allowed
// ([ErrHTTPSRequired]), on the authority's scheme and host or under one of
// AdditionalEndpointBases ([ErrEndpointNotAllowed]) unless excluded (or,
// with CheckedEndpoints, not listed).
func (d *DiscoveryDocument) Validate(authority string, p DiscoveryPolicy) error {
	au, err := parseAuthority(authority)
	if err != nil {
		return err
	}
	if err := requireHTTPS(au, p.AllowHTTP); err != nil {
		return err
	}
	var missing []string
	for _, m := range requiredMembers(p) {
		if !d.hasValue(m) {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		return &MissingMembersError{Members: missing}
	}
	if !issuerFitsAuthority(d.Issuer, authority) {
		return fmt.Errorf("%w: the discovery document says %q, the configured issuer is %q; they must be identical, trailing slash included (OpenID Connect Discovery 1.0 §4.3): configure the issuer as %q, the value the provider puts in its tokens",
			ErrIssuerMismatch, d.Issuer, authority, d.Issuer)
	}
	bases := make([]*url.URL, 0, len(p.AdditionalEndpointBases)+1)
	bases = append(bases, &url.URL{Scheme: au.Scheme, Host: au.Host})
	for _, b := range p.AdditionalEndpointBases {
		bu, err := url.Parse(b)
		if err != nil || bu.Host == "" {
			return fmt.Errorf("%w: invalid additional endpoint base %q", ErrEndpointNotAllowed, b)
		}
		bases = append(bases, bu)
	}
	for _, name := range d.endpointMembers() {
		if slices.Contains(p.ExcludedEndpoints, name) ||
			(len(p.CheckedEndpoints) > 0 && !slices.Contains(p.CheckedEndpoints, name)) {
			continue
		}
		var v string
		if json.Unmarshal(d.raw[name], &v) != nil {
			return fmt.Errorf("%w: %s is not a string", ErrEndpointNotAllowed, name)
		}
		if err := checkEndpoint(name, v, bases, p.AllowHTTP); err != nil {
			return err
		}
	}
	return nil
}

// issuerFitsAuthority reports whether a document's issuer fits the authority
// it was fetched for: identical to it; or, for a
// multi-tenant authority such as https://login.microsoftonline.com/common/v2.0,
// an issuer template with [TenantPlaceholder] once that gives the authority
// back when the placeholder is replaced by "common", "organizations" or
// "consumers". No other issuer is accepted.
func issuerFitsAuthority(issuer, authority string) bool {
	if issuer == authority {
		return true
	}
	if strings.Count(issuer, TenantPlaceholder) != 1 {
		return false
	}
	// The tenant segments of Entra ID's multi-tenant authorities.
	for _, seg := range [...]string{"common", "organizations", "consumers"} {
		filled := strings.Replace(issuer, TenantPlaceholder, seg, 1)
		// The authority of a template only locates the document (tokens
		// carry the tenant's own issuer), so its trailing slash is free.
		if strings.TrimSuffix(filled, "/") == strings.TrimSuffix(authority, "/") {
			return true
		}
	}
	return false
}

// hasValue reports whether member m is present and neither null, "" nor an
// empty array or object.
func (d *DiscoveryDocument) hasValue(m string) bool {
	var v any
	if raw, ok := d.raw[m]; !ok || json.Unmarshal(raw, &v) != nil {
		return false
	}
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// endpointMembers returns the members checked as endpoints: jwks_uri and
// every member whose name ends in "_endpoint", sorted.
func (d *DiscoveryDocument) endpointMembers() []string {
	var out []string
	for _, name := range d.Members() {
		if name == "jwks_uri" || strings.HasSuffix(name, "_endpoint") {
			if d.hasValue(name) {
				out = append(out, name)
			}
		}
	}
	return out
}

// checkEndpoint requires an absolute URL under one of bases.
func checkEndpoint(name, v string, bases []*url.URL, allowHTTP bool) error {
	u, err := url.Parse(v)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%w: %s %q is not an absolute URL", ErrEndpointNotAllowed, name, redactURL(v))
	}
	if err := requireHTTPS(u, allowHTTP); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	for _, b := range bases {
		if !strings.EqualFold(u.Scheme, b.Scheme) || !strings.EqualFold(u.Host, b.Host) {
			continue
		}
		bp := strings.TrimSuffix(b.EscapedPath(), "/")
		if p := u.EscapedPath(); bp == "" || p == bp || strings.HasPrefix(p, bp+"/") {
			return nil
		}
	}
	return fmt.Errorf("%w: %s %q", ErrEndpointNotAllowed, name, redactURL(v))
}

// FetchDiscovery fetches and validates the metadata of issuer: the issuer
// is checked for https first (no I/O otherwise), then the document is
// fetched from [DiscoveryURL] following only same-host redirects
// ([ErrRedirect]), answered 200 ([*HTTPStatusError]), declared as JSON
// ([ErrContentType]), at most p.MaxBytes ([ErrBodyTooLarge]), parsed
// ([ErrNotJSON]) and validated ([DiscoveryDocument.Validate]). The
// discovery address itself (".../.well-known/openid-configuration", or
// the RFC 8414 one with Kind OAuthAuthorizationServer) is accepted in
// place of the issuer. A nil client
// means one with DefaultHTTPTimeout. The response header is returned for
// caching decisions, also with most errors.
func FetchDiscovery(ctx context.Context, client *http.Client, issuer string, p DiscoveryPolicy) (*DiscoveryDocument, http.Header, error) {
	issuer, err := issuerFromAddress(issuer, p.Kind)
	if err != nil {
		return nil, nil, err
	}
	au, err := parseAuthority(issuer)
	if err != nil {
		return nil, nil, err
	}
	if err := requireHTTPS(au, p.AllowHTTP); err != nil {
		return nil, nil, err
	}
	u, err := DiscoveryURL(issuer, p.Kind)
	if err != nil {
		return nil, nil, err
	}
	body, hdr, err := getJSON(ctx, client, u, p.MaxBytes)
	if err != nil {
		return nil, hdr, err
	}
	d, err := ParseDiscovery(body)
	if err != nil {
		return nil, hdr, err
	}
	if err := d.Validate(issuer, p); err != nil {
		return nil, hdr, err
	}
	return d, hdr, nil
}

// issuerFromAddress returns the issuer of address, accepting the metadata
// URL itself where a caller obviously passed it (py-identity-model and
// Duende take the discovery address): an address whose path ends in
// "/.well-known/openid-configuration" gives the issuer before it, and one
// whose path starts with "/.well-known/oauth-authorization-server" the
// issuer it was built from (RFC 8414 §3.1), each only for its own kind; the
// other kind's address is refused with an error naming the fix. Any other
// address is returned as it is.
func issuerFromAddress(address string, kind MetadataKind) (string, error) {
	const oidcSuffix, oauthPrefix = "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"
	u, err := url.Parse(address)
	if err != nil || u.Host == "" {
		return address, nil
	}
	origin := u.Scheme + "://" + u.Host
	switch path := strings.TrimSuffix(u.EscapedPath(), "/"); {
	case strings.HasSuffix(path, oidcSuffix):
		if kind != OpenIDConfiguration {
			return "", fmt.Errorf("%w: %q is an OpenID Connect discovery address: pass the issuer, or leave DiscoveryPolicy.Kind at OpenIDConfiguration", ErrEndpointNotAllowed, redactURL(address))
		}
		return origin + strings.TrimSuffix(path, oidcSuffix), nil
	case path == oauthPrefix || strings.HasPrefix(path, oauthPrefix+"/"):
		if kind != OAuthAuthorizationServer {
			return "", fmt.Errorf("%w: %q is an RFC 8414 metadata address: pass the issuer, or set DiscoveryPolicy.Kind to OAuthAuthorizationServer", ErrEndpointNotAllowed, redactURL(address))
		}
		return origin + strings.TrimPrefix(path, oauthPrefix), nil
	}
	return address, nil
}
