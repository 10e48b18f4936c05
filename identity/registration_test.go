package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/caddy-identity/caddy-identity/identity"
)

func TestClientMetadataJSON(t *testing.T) {
	md := identity.ClientMetadata{
		RedirectURIs: []string{"https://app/cb"}, TokenEndpointAuthMethod: "private_key_jwt", DefaultMaxAge: 300, RequireAuthTime: true,
		Extra:      map[string]json.RawMessage{"introspection_signed_response_alg": json.RawMessage(`"ES256"`), "client_name": json.RawMessage(`"ignored"`)},
		ClientName: "App",
	}
	b, err := json.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	_ = json.Unmarshal(b, &obj)
	if obj["client_name"] != "App" || obj["introspection_signed_response_alg"] != "ES256" || obj["default_max_age"] != 300.0 || obj["require_auth_time"] != true {
		t.Errorf("marshalled %s", b)
	}
	if _, ok := obj["jwks_uri"]; ok {
		t.Error("empty field sent")
	}
	var back identity.ClientMetadata
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.ClientName != "App" || string(back.Extra["introspection_signed_response_alg"]) != `"ES256"` || len(back.Extra) != 1 {
		t.Errorf("round trip %+v", back)
	}
	plain, _ := json.Marshal(identity.ClientMetadata{ClientName: "x"})
	if string(plain) != `{"client_name":"x"}` {
		t.Errorf("without extras: %s", plain)
	}
	empty, _ := json.Marshal(identity.ClientMetadata{ResponseTypes: []string{}, RedirectURIs: nil})
	if string(empty) != `{"response_types":[]}` {
		t.Errorf("explicitly empty array: %s", empty)
	}
	if err := json.Unmarshal([]byte(`{"redirect_uris":"one"}`), &back); err == nil {
		t.Error("wrong member type accepted")
	}
	if err := json.Unmarshal([]byte(`[]`), &back); err == nil {
		t.Error("array accepted")
	}
}

func TestRegistrationLifecycle(t *testing.T) {
	var srvURL string
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
		info := `{"client_id":"c1","client_secret":"s1","client_id_issued_at":1700000000,"client_secret_expires_at":0,` +
			`"registration_access_token":"rat","registration_client_uri":"` + srvURL + `/reg/c1",` +
			`"redirect_uris":["https://app/cb"],"token_endpoint_auth_method":"client_secret_basic","vendor_x":{"a":1}}`
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/reg":
			writeJSON(w, 201, info)
		case r.Method == http.MethodGet || r.Method == http.MethodPut:
			writeJSON(w, 200, info)
		case r.Method == http.MethodDelete:
			w.WriteHeader(204)
		}
	})
	srvURL = f.URL
	ctx := context.Background()
	reg, err := identity.RegisterClient(ctx, nil, identity.RegistrationRequest{
		ProtocolRequest:    identity.ProtocolRequest{Address: f.URL + "/reg"},
		InitialAccessToken: "iat",
		Metadata:           identity.ClientMetadata{RedirectURIs: []string{"https://app/cb"}, GrantTypes: []string{"authorization_code"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := f.last(t)
	var sent map[string]any
	if err := json.Unmarshal(got.Body, &sent); err != nil || got.Header.Get("Authorization") != "Bearer iat" || got.Header.Get("Content-Type") != "application/json" {
		t.Errorf("register request %s %v", got.Body, got.Header)
	}
	if reg.ClientID != "c1" || reg.ClientSecret != "s1" || !reg.ClientIDIssuedAt.Equal(time.Unix(1700000000, 0)) || !reg.ClientSecretExpiresAt.IsZero() ||
		reg.RegistrationAccessToken != "rat" || reg.RegistrationClientURI != f.URL+"/reg/c1" {
		t.Errorf("registration %+v", reg)
	}
	if reg.Metadata.TokenEndpointAuthMethod != "client_secret_basic" || !reflect.DeepEqual(reg.Metadata.Extra, map[string]json.RawMessage{"vendor_x": json.RawMessage(`{"a":1}`)}) {
		t.Errorf("metadata %+v", reg.Metadata)
	}

	cfg := identity.ClientConfigurationRequest{ProtocolRequest: identity.ProtocolRequest{Address: reg.RegistrationClientURI}, RegistrationAccessToken: reg.RegistrationAccessToken}
	read, err := identity.ReadClientConfiguration(ctx, nil, cfg)
	if err != nil || read.ClientID != "c1" || f.last(t).Header.Get("Authorization") != "Bearer rat" || f.last(t).Method != http.MethodGet {
		t.Fatalf("read: %+v %v", read, err)
	}

	cfg.ClientID, cfg.ClientSecret = reg.ClientID, reg.ClientSecret
	cfg.Metadata = reg.Metadata
	cfg.Metadata.ClientName = "renamed"
	if _, err := identity.UpdateClientConfiguration(ctx, nil, cfg); err != nil {
		t.Fatal(err)
	}
	got = f.last(t)
	_ = json.Unmarshal(got.Body, &sent)
	if got.Method != http.MethodPut || sent["client_id"] != "c1" || sent["client_secret"] != "s1" || sent["client_name"] != "renamed" || sent["vendor_x"] == nil {
		t.Errorf("update sent %s", got.Body)
	}
	if reg.Metadata.Extra["client_id"] != nil {
		t.Error("update modified the caller's metadata")
	}

	if err := identity.DeleteClientConfiguration(ctx, nil, cfg); err != nil || f.last(t).Method != http.MethodDelete {
		t.Fatalf("delete: %v", err)
	}

	if _, err := identity.UpdateClientConfiguration(ctx, nil, identity.ClientConfigurationRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, RegistrationAccessToken: "x"}); err == nil {
		t.Error("update without client ID accepted")
	}
	if _, err := identity.ReadClientConfiguration(ctx, nil, identity.ClientConfigurationRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}}); err == nil {
		t.Error("read without registration access token accepted")
	}
}

func TestRegistrationErrors(t *testing.T) {
	ctx := context.Background()
	f := jsonFake(t, 400, `{"error":"invalid_redirect_uri","error_description":"https only"}`)
	_, err := identity.RegisterClient(ctx, nil, identity.RegistrationRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}})
	var pe *identity.ProtocolError
	if !errors.As(err, &pe) || pe.Code != "invalid_redirect_uri" || pe.StatusCode != 400 {
		t.Errorf("register error: %v", err)
	}
	f = newFake(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(401)
	})
	_, err = identity.ReadClientConfiguration(ctx, nil, identity.ClientConfigurationRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, RegistrationAccessToken: "old"})
	if !errors.As(err, &pe) || pe.Code != "invalid_token" || pe.StatusCode != 401 {
		t.Errorf("read with revoked token: %v", err)
	}
	for body, want := range map[string]error{
		`{"client_secret":"s"}`:                             identity.ErrMissingMember,
		`{"client_id":5}`:                                   identity.ErrNotJSON,
		`{"client_id":"c","client_id_issued_at":"x"}`:       identity.ErrNotJSON,
		`{"client_id":"c","client_secret_expires_at":true}`: identity.ErrNotJSON,
		`{"client_id":"c","redirect_uris":"x"}`:             identity.ErrNotJSON,
		`{"client_id":"c","registration_client_uri":1}`:     identity.ErrNotJSON,
	} {
		f := jsonFake(t, 201, body)
		if _, err := identity.RegisterClient(ctx, nil, identity.RegistrationRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}}); !errors.Is(err, want) {
			t.Errorf("%s: got %v", body, err)
		}
	}
	f = jsonFake(t, 200, `{"client_id":"c","client_secret_expires_at":1900000000}`)
	reg, err := identity.RegisterClient(ctx, nil, identity.RegistrationRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}})
	if err != nil || !reg.ClientSecretExpiresAt.Equal(time.Unix(1900000000, 0)) || reg.Metadata.Extra != nil {
		t.Errorf("expiring secret: %+v %v", reg, err)
	}
	if _, err := identity.RegisterClient(ctx, nil, identity.RegistrationRequest{ProtocolRequest: identity.ProtocolRequest{Address: f.URL}, Metadata: identity.ClientMetadata{JWKS: json.RawMessage(`{bad`)}}); err == nil {
		t.Error("invalid JWKS metadata marshalled")
	}
}
