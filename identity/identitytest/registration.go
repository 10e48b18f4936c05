package identitytest

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// serveRegistration registers a client (RFC 7591 §3): any JSON object of
// metadata is accepted and echoed with a new client_id, a client_secret
// (unless token_endpoint_auth_method is "none"), a registration access
// token and the client configuration URI. The new client can use every
// endpoint at once.
func (i *Issuer) serveRegistration(w http.ResponseWriter, r *http.Request) {
	md, ok := readMetadata(w, r)
	if !ok {
		return
	}
	id, secret := "dyn-"+randomValue()[:12], randomValue()
	if method, _ := md["token_endpoint_auth_method"]; string(method) == `"none"` {
		secret = ""
	}
	reg := &registration{metadata: md, token: randomValue(), issuedAt: time.Now().Unix()}
	s := i.lockOAuth()
	s.clients[id] = secret
	s.registered[id] = reg
	s.mu.Unlock()
	i.writeRegistration(w, http.StatusCreated, id, secret, reg)
}

// serveClientConfiguration reads, replaces or deletes a registered client
// (RFC 7592 §2) with its registration access token.
func (i *Issuer) serveClientConfiguration(w http.ResponseWriter, r *http.Request, id string) {
	s := i.lockOAuth()
	reg, secret := s.registered[id], s.clients[id]
	s.mu.Unlock()
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if reg == nil || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(token), []byte(reg.token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	switch r.Method {
	case http.MethodGet:
		i.writeRegistration(w, http.StatusOK, id, secret, reg)
	case http.MethodPut:
		md, ok := readMetadata(w, r)
		if !ok {
			return
		}
		if string(md["client_id"]) != `"`+id+`"` {
			oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "client_id must be the client's")
			return
		}
		delete(md, "client_id")
		delete(md, "client_secret")
		updated := &registration{metadata: md, token: reg.token, issuedAt: reg.issuedAt}
		s := i.lockOAuth()
		s.registered[id] = updated
		s.mu.Unlock()
		i.writeRegistration(w, http.StatusOK, id, secret, updated)
	case http.MethodDelete:
		s := i.lockOAuth()
		delete(s.registered, id)
		delete(s.clients, id)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		allowMethods(w, r, http.MethodGet, http.MethodPut, http.MethodDelete)
	}
}

// readMetadata decodes a JSON object of client metadata, answering 400
// when the body is not one.
func readMetadata(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	var md map[string]json.RawMessage
	if err != nil || json.Unmarshal(body, &md) != nil || md == nil {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "the body must be a JSON object")
		return nil, false
	}
	return md, true
}

// writeRegistration answers a client information response (RFC 7591
// §3.2.1).
func (i *Issuer) writeRegistration(w http.ResponseWriter, status int, id, secret string, reg *registration) {
	out := make(map[string]any, len(reg.metadata)+6)
	for k, v := range reg.metadata {
		out[k] = v
	}
	out["client_id"], out["client_id_issued_at"] = id, reg.issuedAt
	out["registration_access_token"], out["registration_client_uri"] = reg.token, i.URL+RegistrationPath+"/"+id
	if secret != "" {
		out["client_secret"], out["client_secret_expires_at"] = secret, 0
	}
	writeJSONBody(w, status, out)
}
