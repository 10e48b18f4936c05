package identity

// Claim names (RFC 7519 §4.1, OpenID Connect Core §2 and §5.1, RFC 9068, RFC 8693, RFC 7800).
const (
	// ClaimIssuer identifies the principal that issued the token (RFC 7519 §4.1.1).
	ClaimIssuer = "iss"

	// ClaimSubject identifies the subject of the token (RFC 7519 §4.1.2).
	ClaimSubject = "sub"

	// ClaimAudience lists the recipients the token is intended for (RFC 7519 §4.1.3).
	ClaimAudience = "aud"

	// ClaimExpiration is the expiration time (RFC 7519 §4.1.4).
	ClaimExpiration = "exp"

	// ClaimNotBefore is the time before which the token must not be accepted (RFC 7519 §4.1.5).
	ClaimNotBefore = "nbf"

	// ClaimIssuedAt is the time the token was issued (RFC 7519 §4.1.6).
	ClaimIssuedAt = "iat"

	// ClaimJWTID is the unique identifier of the token (RFC 7519 §4.1.7).
	ClaimJWTID = "jti"

	// ClaimScope holds the granted scopes as a space-separated string (RFC 8693 §4.2, RFC 9068).
	ClaimScope = "scope"

	// ClaimScp holds the granted scopes as a string or array (Microsoft Entra ID, Okta and others).
	ClaimScp = "scp"

	// ClaimClientID is the client the token was issued to (RFC 8693 §4.3, RFC 9068).
	ClaimClientID = "client_id"

	// ClaimAuthorizedParty is the party the ID token was issued to (OpenID Connect Core §2).
	ClaimAuthorizedParty = "azp"

	// ClaimNonce binds an ID token to the authentication request (OpenID Connect Core §2).
	ClaimNonce = "nonce"

	// ClaimAuthTime is the time the end-user authenticated (OpenID Connect Core §2).
	ClaimAuthTime = "auth_time"

	// ClaimAuthContextClassRef is the authentication context class reference (OpenID Connect Core §2).
	ClaimAuthContextClassRef = "acr"

	// ClaimAuthMethodsRef lists the authentication methods used (OpenID Connect Core §2, RFC 8176).
	ClaimAuthMethodsRef = "amr"

	// ClaimAccessTokenHash is the access token hash in an ID token (OpenID Connect Core §3.1.3.6).
	ClaimAccessTokenHash = "at_hash"

	// ClaimCodeHash is the authorization code hash in an ID token (OpenID Connect Core §3.3.2.11).
	ClaimCodeHash = "c_hash"

	// ClaimStateHash is the state hash in an ID token (FAPI 1.0).
	ClaimStateHash = "s_hash"

	// ClaimSessionID is the session identifier (OpenID Connect Front-/Back-Channel Logout).
	ClaimSessionID = "sid"

	// ClaimEvents holds the events of a logout token or security event token (RFC 8417).
	ClaimEvents = "events"

	// ClaimName is the end-user's full name (OpenID Connect Core §5.1).
	ClaimName = "name"

	// ClaimGivenName is the end-user's given name (OpenID Connect Core §5.1).
	ClaimGivenName = "given_name"

	// ClaimFamilyName is the end-user's family name (OpenID Connect Core §5.1).
	ClaimFamilyName = "family_name"

	// ClaimMiddleName is the end-user's middle name (OpenID Connect Core §5.1).
	ClaimMiddleName = "middle_name"

	// ClaimNickname is the end-user's casual name (OpenID Connect Core §5.1).
	ClaimNickname = "nickname"

	// ClaimPreferredUsername is the end-user's preferred user name (OpenID Connect Core §5.1).
	ClaimPreferredUsername = "preferred_username"

	// ClaimProfile is the URL of the end-user's profile page (OpenID Connect Core §5.1).
	ClaimProfile = "profile"

	// ClaimPicture is the URL of the end-user's picture (OpenID Connect Core §5.1).
	ClaimPicture = "picture"

	// ClaimWebsite is the URL of the end-user's web site (OpenID Connect Core §5.1).
	ClaimWebsite = "website"

	// ClaimEmail is the end-user's e-mail address (OpenID Connect Core §5.1).
	ClaimEmail = "email"

	// ClaimEmailVerified says whether the e-mail address was verified (OpenID Connect Core §5.1).
	ClaimEmailVerified = "email_verified"

	// ClaimGender is the end-user's gender (OpenID Connect Core §5.1).
	ClaimGender = "gender"

	// ClaimBirthdate is the end-user's birthday (OpenID Connect Core §5.1).
	ClaimBirthdate = "birthdate"

	// ClaimZoneInfo is the end-user's time zone (OpenID Connect Core §5.1).
	ClaimZoneInfo = "zoneinfo"

	// ClaimLocale is the end-user's locale (OpenID Connect Core §5.1).
	ClaimLocale = "locale"

	// ClaimPhoneNumber is the end-user's telephone number (OpenID Connect Core §5.1).
	ClaimPhoneNumber = "phone_number"

	// ClaimPhoneNumberVerified says whether the phone number was verified (OpenID Connect Core §5.1).
	ClaimPhoneNumberVerified = "phone_number_verified"

	// ClaimAddress is the end-user's postal address object (OpenID Connect Core §5.1).
	ClaimAddress = "address"

	// ClaimUpdatedAt is the time the end-user's information was last updated (OpenID Connect Core §5.1).
	ClaimUpdatedAt = "updated_at"

	// ClaimRoles lists the subject's roles (RFC 9068 §2.2.3.1, RFC 7643).
	ClaimRoles = "roles"

	// ClaimRole is the role claim of many .NET-style providers.
	ClaimRole = "role"

	// ClaimGroups lists the subject's groups (RFC 9068 §2.2.3.1, RFC 7643).
	ClaimGroups = "groups"

	// ClaimEntitlements lists the subject's entitlements (RFC 9068 §2.2.3.1, RFC 7643).
	ClaimEntitlements = "entitlements"

	// ClaimActor identifies the acting party in delegation (RFC 8693 §4.1).
	ClaimActor = "act"

	// ClaimMayAct names who may act for the subject (RFC 8693 §4.4).
	ClaimMayAct = "may_act"

	// ClaimConfirmation holds the proof-of-possession key confirmation (RFC 7800).
	ClaimConfirmation = "cnf"

	// ClaimIdentityProvider names the upstream identity provider (Duende IdentityServer and others).
	ClaimIdentityProvider = "idp"
)

// JOSE header parameter names (RFC 7515 §4.1) and typ values.
const (
	// HeaderAlgorithm is the signature algorithm (RFC 7515 §4.1.1).
	HeaderAlgorithm = "alg"

	// HeaderKeyID is the key identifier (RFC 7515 §4.1.4).
	HeaderKeyID = "kid"

	// HeaderType is the media type of the whole token (RFC 7515 §4.1.9).
	HeaderType = "typ"

	// HeaderContentType is the media type of the payload (RFC 7515 §4.1.10).
	HeaderContentType = "cty"

	// HeaderCritical lists extensions that must be understood (RFC 7515 §4.1.11).
	HeaderCritical = "crit"

	// HeaderJWKSetURL is a JWK Set URL; never used by this package to select keys (RFC 7515 §4.1.2).
	HeaderJWKSetURL = "jku"

	// HeaderJSONWebKey is an embedded public key; never used by this package (RFC 7515 §4.1.3).
	HeaderJSONWebKey = "jwk"

	// HeaderX509URL is an X.509 URL; never used by this package (RFC 7515 §4.1.5).
	HeaderX509URL = "x5u"

	// HeaderX509CertChain is an X.509 certificate chain; never used by this package (RFC 7515 §4.1.6).
	HeaderX509CertChain = "x5c"

	// HeaderX509Thumbprint is an X.509 SHA-1 thumbprint (RFC 7515 §4.1.7).
	HeaderX509Thumbprint = "x5t"

	// HeaderX509ThumbprintS256 is an X.509 SHA-256 thumbprint (RFC 7515 §4.1.8).
	HeaderX509ThumbprintS256 = "x5t#S256"

	// JWTTypeJWT is the generic JWT typ value (RFC 7519 §5.1).
	JWTTypeJWT = "JWT"

	// JWTTypeAccessToken is the typ of JWT access tokens (RFC 9068 §2.1).
	JWTTypeAccessToken = "at+jwt"

	// JWTTypeLogoutToken is the typ of back-channel logout tokens (OpenID Connect Back-Channel Logout §2.4).
	JWTTypeLogoutToken = "logout+jwt"

	// JWTTypeDPoPProof is the typ of DPoP proofs (RFC 9449 §4.2).
	JWTTypeDPoPProof = "dpop+jwt"

	// JWTTypeTokenIntrospection is the typ of JWT introspection responses (RFC 9701).
	JWTTypeTokenIntrospection = "token-introspection+jwt"
)

// OAuth 2.0 and OpenID Connect request and response parameter names.
const (
	// ParamClientID identifies the client (RFC 6749 §2.2).
	ParamClientID = "client_id"

	// ParamClientSecret is the client secret (RFC 6749 §2.3.1).
	ParamClientSecret = "client_secret"

	// ParamClientAssertion is a client authentication assertion (RFC 7521 §4.2).
	ParamClientAssertion = "client_assertion"

	// ParamClientAssertionType is the format of client_assertion (RFC 7521 §4.2).
	ParamClientAssertionType = "client_assertion_type"

	// ParamGrantType is the grant type of a token request (RFC 6749 §4).
	ParamGrantType = "grant_type"

	// ParamResponseType is the requested response type (RFC 6749 §3.1.1).
	ParamResponseType = "response_type"

	// ParamResponseMode is how the authorization response is returned (OAuth 2.0 Multiple Response Types).
	ParamResponseMode = "response_mode"

	// ParamRedirectURI is the client's redirection endpoint (RFC 6749 §3.1.2).
	ParamRedirectURI = "redirect_uri"

	// ParamScope is the requested or granted scope (RFC 6749 §3.3).
	ParamScope = "scope"

	// ParamState is the client's opaque request state (RFC 6749 §4.1.1).
	ParamState = "state"

	// ParamNonce binds the ID token to the request (OpenID Connect Core §3.1.2.1).
	ParamNonce = "nonce"

	// ParamCode is the authorization code (RFC 6749 §4.1.2).
	ParamCode = "code"

	// ParamCodeVerifier is the PKCE code verifier (RFC 7636 §4.5).
	ParamCodeVerifier = "code_verifier"

	// ParamCodeChallenge is the PKCE code challenge (RFC 7636 §4.3).
	ParamCodeChallenge = "code_challenge"

	// ParamCodeChallengeMethod is the PKCE challenge method (RFC 7636 §4.3).
	ParamCodeChallengeMethod = "code_challenge_method"

	// ParamAccessToken is the access token of a token response (RFC 6749 §5.1).
	ParamAccessToken = "access_token"

	// ParamRefreshToken is the refresh token (RFC 6749 §5.1, §6).
	ParamRefreshToken = "refresh_token"

	// ParamIDToken is the ID token (OpenID Connect Core §3.1.3.3).
	ParamIDToken = "id_token"

	// ParamTokenType is the type of the issued token, e.g. Bearer (RFC 6749 §5.1).
	ParamTokenType = "token_type"

	// ParamExpiresIn is the access token lifetime in seconds (RFC 6749 §5.1).
	ParamExpiresIn = "expires_in"

	// ParamUsername is the resource owner's user name (RFC 6749 §4.3.2).
	ParamUsername = "username"

	// ParamPassword is the resource owner's password (RFC 6749 §4.3.2).
	ParamPassword = "password"

	// ParamAssertion is the assertion of an assertion grant (RFC 7521 §4.1).
	ParamAssertion = "assertion"

	// ParamDeviceCode is the device verification code (RFC 8628 §3.2).
	ParamDeviceCode = "device_code"

	// ParamUserCode is the end-user verification code (RFC 8628 §3.2).
	ParamUserCode = "user_code"

	// ParamVerificationURI is the end-user verification URI (RFC 8628 §3.2).
	ParamVerificationURI = "verification_uri"

	// ParamVerificationURIComplete is the verification URI including the user code (RFC 8628 §3.2).
	ParamVerificationURIComplete = "verification_uri_complete"

	// ParamInterval is the device polling interval in seconds (RFC 8628 §3.2).
	ParamInterval = "interval"

	// ParamToken is the token to introspect or revoke (RFC 7662 §2.1, RFC 7009 §2.1).
	ParamToken = "token"

	// ParamTokenTypeHint hints at the type of token (RFC 7662 §2.1, RFC 7009 §2.1).
	ParamTokenTypeHint = "token_type_hint"

	// ParamActive says whether an introspected token is active (RFC 7662 §2.2).
	ParamActive = "active"

	// ParamPrompt asks for re-authentication or consent (OpenID Connect Core §3.1.2.1).
	ParamPrompt = "prompt"

	// ParamMaxAge is the maximum authentication age in seconds (OpenID Connect Core §3.1.2.1).
	ParamMaxAge = "max_age"

	// ParamUILocales lists preferred UI languages (OpenID Connect Core §3.1.2.1).
	ParamUILocales = "ui_locales"

	// ParamClaimsLocales lists preferred languages for claims (OpenID Connect Core §5.2).
	ParamClaimsLocales = "claims_locales"

	// ParamIDTokenHint is a previously issued ID token (OpenID Connect Core §3.1.2.1).
	ParamIDTokenHint = "id_token_hint"

	// ParamLoginHint hints at the login identifier (OpenID Connect Core §3.1.2.1).
	ParamLoginHint = "login_hint"

	// ParamACRValues lists requested authentication context classes (OpenID Connect Core §3.1.2.1).
	ParamACRValues = "acr_values"

	// ParamDisplay is how the authorization UI is displayed (OpenID Connect Core §3.1.2.1).
	ParamDisplay = "display"

	// ParamClaims requests individual claims (OpenID Connect Core §5.5).
	ParamClaims = "claims"

	// ParamRequest is a request object (OpenID Connect Core §6.1, RFC 9101).
	ParamRequest = "request"

	// ParamRequestURI references a request object or a pushed request (RFC 9101, RFC 9126).
	ParamRequestURI = "request_uri"

	// ParamResource is the target resource (RFC 8707).
	ParamResource = "resource"

	// ParamAudience is the target service of a token exchange (RFC 8693 §2.1).
	ParamAudience = "audience"

	// ParamSubjectToken is the token of the subject of a token exchange (RFC 8693 §2.1).
	ParamSubjectToken = "subject_token"

	// ParamSubjectTokenType is the type of subject_token (RFC 8693 §2.1).
	ParamSubjectTokenType = "subject_token_type"

	// ParamActorToken is the token of the acting party (RFC 8693 §2.1).
	ParamActorToken = "actor_token"

	// ParamActorTokenType is the type of actor_token (RFC 8693 §2.1).
	ParamActorTokenType = "actor_token_type"

	// ParamRequestedTokenType is the type of token wanted from an exchange (RFC 8693 §2.1).
	ParamRequestedTokenType = "requested_token_type"

	// ParamIssuedTokenType is the type of token an exchange issued (RFC 8693 §2.2.1).
	ParamIssuedTokenType = "issued_token_type"

	// ParamPostLogoutRedirectURI is where to return after logout (OpenID Connect RP-Initiated Logout).
	ParamPostLogoutRedirectURI = "post_logout_redirect_uri"

	// ParamLogoutToken carries a back-channel logout token (OpenID Connect Back-Channel Logout).
	ParamLogoutToken = "logout_token"

	// ParamIssuer names the issuer of an authorization response (RFC 9207).
	ParamIssuer = "iss"

	// ParamAuthorizationDetails carries rich authorization requests (RFC 9396).
	ParamAuthorizationDetails = "authorization_details"

	// ParamDPoPJKT binds an authorization code to a DPoP key (RFC 9449 §10).
	ParamDPoPJKT = "dpop_jkt"

	// ParamError is the error code of an error response (RFC 6749 §5.2).
	ParamError = "error"

	// ParamErrorDescription is the human-readable error text (RFC 6749 §5.2).
	ParamErrorDescription = "error_description"

	// ParamErrorURI points to a page about the error (RFC 6749 §5.2).
	ParamErrorURI = "error_uri"
)

// Grant types (grant_type values).
const (
	// GrantTypeAuthorizationCode is the authorization code grant (RFC 6749 §4.1).
	GrantTypeAuthorizationCode = "authorization_code"

	// GrantTypeImplicit is the implicit grant (RFC 6749 §4.2; discouraged, OAuth 2.0 Security BCP).
	GrantTypeImplicit = "implicit"

	// GrantTypePassword is the resource owner password credentials grant (RFC 6749 §4.3).
	GrantTypePassword = "password"

	// GrantTypeClientCredentials is the client credentials grant (RFC 6749 §4.4).
	GrantTypeClientCredentials = "client_credentials"

	// GrantTypeRefreshToken is the refresh token grant (RFC 6749 §6).
	GrantTypeRefreshToken = "refresh_token"

	// GrantTypeDeviceCode is the device authorization grant (RFC 8628 §3.4).
	GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

	// GrantTypeTokenExchange is the token exchange grant (RFC 8693 §2.1).
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

	// GrantTypeJWTBearer is the JWT bearer assertion grant (RFC 7523 §2.1).
	GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

	// GrantTypeSAML2Bearer is the SAML 2.0 bearer assertion grant (RFC 7522 §2.1).
	GrantTypeSAML2Bearer = "urn:ietf:params:oauth:grant-type:saml2-bearer"

	// GrantTypeCIBA is the client-initiated backchannel authentication grant (OpenID Connect CIBA §10.1).
	GrantTypeCIBA = "urn:openid:params:grant-type:ciba"
)

// Response types and response modes (RFC 6749 §3.1.1, OAuth 2.0 Multiple Response Types, Form Post Response Mode).
const (
	// ResponseTypeCode requests an authorization code.
	ResponseTypeCode = "code"

	// ResponseTypeToken requests an access token (implicit).
	ResponseTypeToken = "token"

	// ResponseTypeIDToken requests an ID token.
	ResponseTypeIDToken = "id_token"

	// ResponseTypeCodeIDToken requests a code and an ID token (hybrid).
	ResponseTypeCodeIDToken = "code id_token"

	// ResponseTypeNone requests no credential.
	ResponseTypeNone = "none"

	// ResponseModeQuery returns the response in the query string.
	ResponseModeQuery = "query"

	// ResponseModeFragment returns the response in the fragment.
	ResponseModeFragment = "fragment"

	// ResponseModeFormPost returns the response as an auto-submitted form.
	ResponseModeFormPost = "form_post"

	// ResponseModeJWT returns the response as a signed JWT (JARM).
	ResponseModeJWT = "jwt"
)

// Token type identifiers (RFC 8693 §3), token type hints (RFC 7009 §2.1) and access token types (RFC 6749 §7.1).
const (
	// TokenTypeAccessToken identifies an OAuth 2.0 access token (RFC 8693 §3).
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"

	// TokenTypeRefreshToken identifies an OAuth 2.0 refresh token (RFC 8693 §3).
	TokenTypeRefreshToken = "urn:ietf:params:oauth:token-type:refresh_token"

	// TokenTypeIDToken identifies an OpenID Connect ID token (RFC 8693 §3).
	TokenTypeIDToken = "urn:ietf:params:oauth:token-type:id_token"

	// TokenTypeSAML1 identifies a base64url SAML 1.1 assertion (RFC 8693 §3).
	TokenTypeSAML1 = "urn:ietf:params:oauth:token-type:saml1"

	// TokenTypeSAML2 identifies a base64url SAML 2.0 assertion (RFC 8693 §3).
	TokenTypeSAML2 = "urn:ietf:params:oauth:token-type:saml2"

	// TokenTypeJWT identifies a JWT (RFC 8693 §3, RFC 7519 §9).
	TokenTypeJWT = "urn:ietf:params:oauth:token-type:jwt"

	// TokenTypeHintAccessToken is the token_type_hint for access tokens (RFC 7009 §2.1).
	TokenTypeHintAccessToken = "access_token"

	// TokenTypeHintRefreshToken is the token_type_hint for refresh tokens (RFC 7009 §2.1).
	TokenTypeHintRefreshToken = "refresh_token"

	// TokenTypeBearer is the bearer access token type (RFC 6750); compare case-insensitively.
	TokenTypeBearer = "Bearer"

	// TokenTypeDPoP is the DPoP-bound access token type (RFC 9449 §5).
	TokenTypeDPoP = "DPoP"

	// TokenTypeNA is the token_type of exchanged tokens that are not access tokens (RFC 8693 §2.2.1).
	TokenTypeNA = "N_A"

	// ClientAssertionTypeJWTBearer is the client_assertion_type of JWT client assertions (RFC 7523 §2.2).
	ClientAssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// Error codes (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 8628 §3.5, RFC 8693 §2.2.2, OpenID Connect Core §3.1.2.6, RFC 7591 §3.2.2, RFC 9449, RFC 9396).
const (
	// ErrorInvalidRequest means the request is missing or has an invalid parameter.
	ErrorInvalidRequest = "invalid_request"

	// ErrorInvalidClient means client authentication failed.
	ErrorInvalidClient = "invalid_client"

	// ErrorInvalidGrant means the grant or refresh token is invalid, expired or revoked.
	ErrorInvalidGrant = "invalid_grant"

	// ErrorUnauthorizedClient means the client may not use this grant or response type.
	ErrorUnauthorizedClient = "unauthorized_client"

	// ErrorUnsupportedGrantType means the server does not support the grant type.
	ErrorUnsupportedGrantType = "unsupported_grant_type"

	// ErrorUnsupportedResponseType means the server does not support the response type.
	ErrorUnsupportedResponseType = "unsupported_response_type"

	// ErrorInvalidScope means the requested scope is invalid or exceeds the grant.
	ErrorInvalidScope = "invalid_scope"

	// ErrorAccessDenied means the resource owner or server denied the request.
	ErrorAccessDenied = "access_denied"

	// ErrorServerError means the server failed unexpectedly.
	ErrorServerError = "server_error"

	// ErrorTemporarilyUnavailable means the server is overloaded or down for maintenance.
	ErrorTemporarilyUnavailable = "temporarily_unavailable"

	// ErrorInvalidToken means the access token is expired, revoked, malformed or invalid (RFC 6750 §3.1).
	ErrorInvalidToken = "invalid_token"

	// ErrorInsufficientScope means the access token lacks the required scope (RFC 6750 §3.1).
	ErrorInsufficientScope = "insufficient_scope"

	// ErrorAuthorizationPending means the device authorization is still pending (RFC 8628 §3.5).
	ErrorAuthorizationPending = "authorization_pending"

	// ErrorSlowDown means the client polls too fast and must add 5 s (RFC 8628 §3.5).
	ErrorSlowDown = "slow_down"

	// ErrorExpiredToken means the device code expired (RFC 8628 §3.5).
	ErrorExpiredToken = "expired_token"

	// ErrorInvalidTarget means the resource or audience is unknown or not allowed (RFC 8707, RFC 8693).
	ErrorInvalidTarget = "invalid_target"

	// ErrorUnsupportedTokenType means the server cannot revoke or exchange this token type (RFC 7009 §2.2.1).
	ErrorUnsupportedTokenType = "unsupported_token_type"

	// ErrorInteractionRequired means the user must interact (OpenID Connect Core §3.1.2.6).
	ErrorInteractionRequired = "interaction_required"

	// ErrorLoginRequired means the user must authenticate (OpenID Connect Core §3.1.2.6).
	ErrorLoginRequired = "login_required"

	// ErrorAccountSelectionRequired means the user must choose an account (OpenID Connect Core §3.1.2.6).
	ErrorAccountSelectionRequired = "account_selection_required"

	// ErrorConsentRequired means the user must consent (OpenID Connect Core §3.1.2.6).
	ErrorConsentRequired = "consent_required"

	// ErrorInvalidRequestURI means request_uri is invalid (OpenID Connect Core §3.1.2.6).
	ErrorInvalidRequestURI = "invalid_request_uri"

	// ErrorInvalidRequestObject means the request object is invalid (OpenID Connect Core §3.1.2.6).
	ErrorInvalidRequestObject = "invalid_request_object"

	// ErrorRequestNotSupported means the request parameter is not supported (OpenID Connect Core §3.1.2.6).
	ErrorRequestNotSupported = "request_not_supported"

	// ErrorRequestURINotSupported means request_uri is not supported (OpenID Connect Core §3.1.2.6).
	ErrorRequestURINotSupported = "request_uri_not_supported"

	// ErrorRegistrationNotSupported means the registration parameter is not supported (OpenID Connect Core §3.1.2.6).
	ErrorRegistrationNotSupported = "registration_not_supported"

	// ErrorInvalidRedirectURI means a registered redirect URI is invalid (RFC 7591 §3.2.2).
	ErrorInvalidRedirectURI = "invalid_redirect_uri"

	// ErrorInvalidClientMetadata means a client metadata value is invalid (RFC 7591 §3.2.2).
	ErrorInvalidClientMetadata = "invalid_client_metadata"

	// ErrorInvalidSoftwareStatement means the software statement is invalid (RFC 7591 §3.2.2).
	ErrorInvalidSoftwareStatement = "invalid_software_statement"

	// ErrorUnapprovedSoftwareStatement means the software statement is not approved (RFC 7591 §3.2.2).
	ErrorUnapprovedSoftwareStatement = "unapproved_software_statement"

	// ErrorInvalidDPoPProof means the DPoP proof is invalid (RFC 9449 §5).
	ErrorInvalidDPoPProof = "invalid_dpop_proof"

	// ErrorUseDPoPNonce means the server requires a DPoP nonce (RFC 9449 §8).
	ErrorUseDPoPNonce = "use_dpop_nonce"

	// ErrorInvalidAuthorizationDetails means authorization_details is invalid (RFC 9396 §5).
	ErrorInvalidAuthorizationDetails = "invalid_authorization_details"
)

// Discovery metadata member names (OpenID Connect Discovery 1.0 §3, RFC 8414 §2, and their extensions).
const (
	// DiscoveryIssuer is the issuer identifier.
	DiscoveryIssuer = "issuer"

	// DiscoveryAuthorizationEndpoint is the authorization endpoint URL.
	DiscoveryAuthorizationEndpoint = "authorization_endpoint"

	// DiscoveryTokenEndpoint is the token endpoint URL.
	DiscoveryTokenEndpoint = "token_endpoint"

	// DiscoveryUserInfoEndpoint is the userinfo endpoint URL.
	DiscoveryUserInfoEndpoint = "userinfo_endpoint"

	// DiscoveryJWKSURI is the JWK Set URL.
	DiscoveryJWKSURI = "jwks_uri"

	// DiscoveryRegistrationEndpoint is the dynamic client registration endpoint URL (RFC 7591).
	DiscoveryRegistrationEndpoint = "registration_endpoint"

	// DiscoveryIntrospectionEndpoint is the introspection endpoint URL (RFC 7662).
	DiscoveryIntrospectionEndpoint = "introspection_endpoint"

	// DiscoveryRevocationEndpoint is the revocation endpoint URL (RFC 7009).
	DiscoveryRevocationEndpoint = "revocation_endpoint"

	// DiscoveryEndSessionEndpoint is the RP-initiated logout endpoint URL.
	DiscoveryEndSessionEndpoint = "end_session_endpoint"

	// DiscoveryDeviceAuthorizationEndpoint is the device authorization endpoint URL (RFC 8628).
	DiscoveryDeviceAuthorizationEndpoint = "device_authorization_endpoint"

	// DiscoveryPushedAuthorizationRequestEndpoint is the PAR endpoint URL (RFC 9126).
	DiscoveryPushedAuthorizationRequestEndpoint = "pushed_authorization_request_endpoint"

	// DiscoveryBackchannelAuthenticationEndpoint is the CIBA endpoint URL.
	DiscoveryBackchannelAuthenticationEndpoint = "backchannel_authentication_endpoint"

	// DiscoveryCheckSessionIframe is the session management iframe URL.
	DiscoveryCheckSessionIframe = "check_session_iframe"

	// DiscoveryScopesSupported lists the supported scopes.
	DiscoveryScopesSupported = "scopes_supported"

	// DiscoveryResponseTypesSupported lists the supported response types.
	DiscoveryResponseTypesSupported = "response_types_supported"

	// DiscoveryResponseModesSupported lists the supported response modes.
	DiscoveryResponseModesSupported = "response_modes_supported"

	// DiscoveryGrantTypesSupported lists the supported grant types.
	DiscoveryGrantTypesSupported = "grant_types_supported"

	// DiscoveryACRValuesSupported lists the supported authentication context classes.
	DiscoveryACRValuesSupported = "acr_values_supported"

	// DiscoverySubjectTypesSupported lists the supported subject identifier types.
	DiscoverySubjectTypesSupported = "subject_types_supported"

	// DiscoveryIDTokenSigningAlgValuesSupported lists the ID token signing algorithms.
	DiscoveryIDTokenSigningAlgValuesSupported = "id_token_signing_alg_values_supported"

	// DiscoveryIDTokenEncryptionAlgValuesSupported lists the ID token key management algorithms.
	DiscoveryIDTokenEncryptionAlgValuesSupported = "id_token_encryption_alg_values_supported"

	// DiscoveryIDTokenEncryptionEncValuesSupported lists the ID token content encryption algorithms.
	DiscoveryIDTokenEncryptionEncValuesSupported = "id_token_encryption_enc_values_supported"

	// DiscoveryUserInfoSigningAlgValuesSupported lists the userinfo signing algorithms.
	DiscoveryUserInfoSigningAlgValuesSupported = "userinfo_signing_alg_values_supported"

	// DiscoveryRequestObjectSigningAlgValuesSupported lists the request object signing algorithms.
	DiscoveryRequestObjectSigningAlgValuesSupported = "request_object_signing_alg_values_supported"

	// DiscoveryTokenEndpointAuthMethodsSupported lists the token endpoint client authentication methods.
	DiscoveryTokenEndpointAuthMethodsSupported = "token_endpoint_auth_methods_supported"

	// DiscoveryTokenEndpointAuthSigningAlgValuesSupported lists the algorithms for JWT client authentication.
	DiscoveryTokenEndpointAuthSigningAlgValuesSupported = "token_endpoint_auth_signing_alg_values_supported"

	// DiscoveryIntrospectionEndpointAuthMethodsSupported lists the introspection client authentication methods (RFC 8414).
	DiscoveryIntrospectionEndpointAuthMethodsSupported = "introspection_endpoint_auth_methods_supported"

	// DiscoveryRevocationEndpointAuthMethodsSupported lists the revocation client authentication methods (RFC 8414).
	DiscoveryRevocationEndpointAuthMethodsSupported = "revocation_endpoint_auth_methods_supported"

	// DiscoveryCodeChallengeMethodsSupported lists the supported PKCE methods (RFC 8414).
	DiscoveryCodeChallengeMethodsSupported = "code_challenge_methods_supported"

	// DiscoveryDisplayValuesSupported lists the supported display values.
	DiscoveryDisplayValuesSupported = "display_values_supported"

	// DiscoveryClaimTypesSupported lists the supported claim types.
	DiscoveryClaimTypesSupported = "claim_types_supported"

	// DiscoveryClaimsSupported lists the claims the provider may supply.
	DiscoveryClaimsSupported = "claims_supported"

	// DiscoveryClaimsLocalesSupported lists the languages of claim values.
	DiscoveryClaimsLocalesSupported = "claims_locales_supported"

	// DiscoveryUILocalesSupported lists the languages of the user interface.
	DiscoveryUILocalesSupported = "ui_locales_supported"

	// DiscoveryClaimsParameterSupported says whether the claims parameter is supported.
	DiscoveryClaimsParameterSupported = "claims_parameter_supported"

	// DiscoveryRequestParameterSupported says whether the request parameter is supported.
	DiscoveryRequestParameterSupported = "request_parameter_supported"

	// DiscoveryRequestURIParameterSupported says whether the request_uri parameter is supported.
	DiscoveryRequestURIParameterSupported = "request_uri_parameter_supported"

	// DiscoveryRequireRequestURIRegistration says whether request_uri values must be registered.
	DiscoveryRequireRequestURIRegistration = "require_request_uri_registration"

	// DiscoveryRequirePushedAuthorizationRequests says whether PAR is required (RFC 9126).
	DiscoveryRequirePushedAuthorizationRequests = "require_pushed_authorization_requests"

	// DiscoveryServiceDocumentation is the URL of developer documentation.
	DiscoveryServiceDocumentation = "service_documentation"

	// DiscoveryOPPolicyURI is the URL of the provider's policy.
	DiscoveryOPPolicyURI = "op_policy_uri"

	// DiscoveryOPTosURI is the URL of the provider's terms of service.
	DiscoveryOPTosURI = "op_tos_uri"

	// DiscoveryFrontchannelLogoutSupported says whether front-channel logout is supported.
	DiscoveryFrontchannelLogoutSupported = "frontchannel_logout_supported"

	// DiscoveryFrontchannelLogoutSessionSupported says whether front-channel logout sends iss and sid.
	DiscoveryFrontchannelLogoutSessionSupported = "frontchannel_logout_session_supported"

	// DiscoveryBackchannelLogoutSupported says whether back-channel logout is supported.
	DiscoveryBackchannelLogoutSupported = "backchannel_logout_supported"

	// DiscoveryBackchannelLogoutSessionSupported says whether logout tokens carry sid.
	DiscoveryBackchannelLogoutSessionSupported = "backchannel_logout_session_supported"

	// DiscoveryAuthorizationResponseIssParameterSupported says whether authorization responses carry iss (RFC 9207).
	DiscoveryAuthorizationResponseIssParameterSupported = "authorization_response_iss_parameter_supported"

	// DiscoveryDPoPSigningAlgValuesSupported lists the DPoP proof algorithms (RFC 9449).
	DiscoveryDPoPSigningAlgValuesSupported = "dpop_signing_alg_values_supported"

	// DiscoveryMTLSEndpointAliases maps endpoints to their mutual-TLS aliases (RFC 8705).
	DiscoveryMTLSEndpointAliases = "mtls_endpoint_aliases"

	// WellKnownOpenIDConfigurationPath is appended to an issuer for OpenID Connect Discovery.
	WellKnownOpenIDConfigurationPath = "/.well-known/openid-configuration"

	// WellKnownOAuthAuthorizationServerPath is inserted between host and path for RFC 8414 metadata.
	WellKnownOAuthAuthorizationServerPath = "/.well-known/oauth-authorization-server"
)

// Client authentication methods (token_endpoint_auth_method values, RFC 7591 §2, OpenID Connect Core §9, RFC 8705).
const (
	// AuthMethodClientSecretBasic sends the client secret with HTTP Basic authentication.
	AuthMethodClientSecretBasic = "client_secret_basic"

	// AuthMethodClientSecretPost sends the client secret in the request body.
	AuthMethodClientSecretPost = "client_secret_post"

	// AuthMethodClientSecretJWT signs a client assertion with the client secret (HMAC).
	AuthMethodClientSecretJWT = "client_secret_jwt"

	// AuthMethodPrivateKeyJWT signs a client assertion with the client's private key.
	AuthMethodPrivateKeyJWT = "private_key_jwt"

	// AuthMethodTLSClientAuth authenticates with a PKI-bound TLS client certificate (RFC 8705).
	AuthMethodTLSClientAuth = "tls_client_auth"

	// AuthMethodSelfSignedTLSClientAuth authenticates with a self-signed TLS client certificate (RFC 8705).
	AuthMethodSelfSignedTLSClientAuth = "self_signed_tls_client_auth"

	// AuthMethodNone is a public client that does not authenticate.
	AuthMethodNone = "none"
)

// PKCE code challenge methods (RFC 7636 §4.2).
const (
	// CodeChallengeMethodS256 is the SHA-256 challenge method; always prefer it.
	CodeChallengeMethodS256 = "S256"

	// CodeChallengeMethodPlain sends the verifier itself as the challenge; avoid it.
	CodeChallengeMethodPlain = "plain"
)

// Standard scope values (OpenID Connect Core §5.4, §11).
const (
	// ScopeOpenID requests an OpenID Connect authentication.
	ScopeOpenID = "openid"

	// ScopeProfile requests the default profile claims.
	ScopeProfile = "profile"

	// ScopeEmail requests email and email_verified.
	ScopeEmail = "email"

	// ScopeAddress requests the address claim.
	ScopeAddress = "address"

	// ScopePhone requests phone_number and phone_number_verified.
	ScopePhone = "phone"

	// ScopeOfflineAccess requests a refresh token for offline access.
	ScopeOfflineAccess = "offline_access"
)

// DPoP HTTP headers, authorization scheme and proof claims (RFC 9449 §4, §6, §7, §8).
const (
	// HTTPHeaderDPoP carries a DPoP proof JWT on a request (RFC 9449 §4.1).
	HTTPHeaderDPoP = "DPoP"

	// HTTPHeaderDPoPNonce carries a server-provided nonce for later proofs (RFC 9449 §8).
	HTTPHeaderDPoPNonce = "DPoP-Nonce"

	// AuthSchemeDPoP is the Authorization scheme of DPoP-bound access tokens (RFC 9449 §7.1).
	AuthSchemeDPoP = "DPoP"

	// ClaimHTTPMethod is the HTTP method a DPoP proof was made for (RFC 9449 §4.2).
	ClaimHTTPMethod = "htm"

	// ClaimHTTPURI is the request URI, without query and fragment, a DPoP proof was made for (RFC 9449 §4.2).
	ClaimHTTPURI = "htu"

	// ClaimDPoPAccessTokenHash is the base64url SHA-256 hash of the access token in a DPoP proof (RFC 9449 §4.2).
	ClaimDPoPAccessTokenHash = "ath"

	// ConfirmationJWKThumbprint is the cnf member holding the SHA-256 JWK thumbprint of the bound key (RFC 9449 §6.1).
	ConfirmationJWKThumbprint = "jkt"
)

// Claims of multi-tenant providers.
const (
	// ClaimTenantID is the tenant that issued the token (Microsoft Entra ID); see [TenantPlaceholder].
	ClaimTenantID = "tid"
)
