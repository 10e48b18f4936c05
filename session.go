package caddyidentity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Cookie sizes. Browsers keep cookies of up to 4096 bytes (name, value and
// attributes); a chunk stays well below, and a session never takes more
// than maxSessionChunks of them, so that the request headers it adds stay
// far from the 16 KiB Caddy and most upstreams accept.
const (
	maxChunkValue    = 3800
	maxSessionChunks = 3
)

// sealer seals and opens cookie values with AES-256-GCM (random 96-bit
// nonces, standard library) under keys derived with HKDF-SHA256 from the
// configured session keys, one key per purpose (session, pre-login), so
// that a value sealed for one purpose never opens for another. The first
// key seals; every key opens, so that rotating session_key signs nobody
// out. The cookie's name is the additional data: a value moved to another
// cookie does not open.
type sealer struct {
	aeads []cipher.AEAD
}

// newSealer derives the purpose's keys from the session keys.
func newSealer(keys [][]byte, purpose string) (*sealer, error) {
	s := &sealer{}
	for _, k := range keys {
		sub, err := hkdf.Key(sha256.New, k, nil, "caddy-identity cookie v1 "+purpose, 32)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(sub)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, err
		}
		s.aeads = append(s.aeads, aead)
	}
	if len(s.aeads) == 0 {
		return nil, errors.New("no session key")
	}
	return s, nil
}

// seal returns the sealed, base64url-encoded plaintext for the cookie
// called name.
func (s *sealer) seal(name string, plaintext []byte) string {
	return base64.RawURLEncoding.EncodeToString(s.aeads[0].Seal(nil, nil, plaintext, []byte(name)))
}

// open returns the plaintext of a value sealed for name by any key, or
// false: tampered, truncated, sealed for another cookie or by an unknown
// key are all the same to the caller, a value that is not there.
func (s *sealer) open(name, value string) ([]byte, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return nil, false
	}
	for _, a := range s.aeads {
		if pt, err := a.Open(nil, nil, raw, []byte(name)); err == nil {
			return pt, true
		}
	}
	return nil, false
}

// parseSessionKey decodes a session key: standard or URL-safe base64,
// padded or not, of at least 32 bytes.
func parseSessionKey(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	var (
		k   []byte
		err error
	)
	if strings.ContainsAny(s, "-_") {
		k, err = base64.RawURLEncoding.DecodeString(s)
	} else {
		k, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, errors.New("session_key is not base64")
	}
	if len(k) < 32 {
		return nil, fmt.Errorf("session_key has %d bytes; at least 32 random bytes are needed (e.g. openssl rand -base64 32)", len(k))
	}
	return k, nil
}

// cookieJar writes and reads the handler's cookies for one request with
// the attributes of its origin: on https they are Secure with the
// __Host- prefix (no Domain, Path=/, so a sibling subdomain cannot set
// or shadow them); all are HttpOnly and SameSite=Lax (Strict would drop
// the session on the way back from the provider).
type cookieJar struct {
	secure bool
	prefix string
}

// newJar returns the jar of an origin.
func newJar(secure bool) cookieJar {
	if secure {
		return cookieJar{secure: true, prefix: "__Host-"}
	}
	return cookieJar{}
}

// cookie returns a cookie of the jar's attributes; maxAge < 0 deletes it.
func (j cookieJar) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		Secure:   j.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// set adds a Set-Cookie line and keeps the response out of shared caches.
func (j cookieJar) set(w http.ResponseWriter, c *http.Cookie) {
	http.SetCookie(w, c)
	w.Header().Set("Cache-Control", "no-store")
}

// chunkName is the name of chunk i of the cookie base: base itself, then
// base_1, base_2...
func chunkName(base string, i int) string {
	if i == 0 {
		return base
	}
	return base + "_" + strconv.Itoa(i)
}

// writeChunked sets the sealed value in as few chunks as it needs, the
// first one prefixed with their count ("2.<chunk>"), and deletes chunks
// of a longer earlier value the request still carries. It fails when the
// value needs more than maxSessionChunks.
func (j cookieJar) writeChunked(w http.ResponseWriter, r *http.Request, base, sealed string, maxAge int) error {
	n := (len(sealed) + maxChunkValue - 1) / maxChunkValue
	if n > maxSessionChunks {
		return fmt.Errorf("session of %d bytes does not fit in %d cookies", len(sealed), maxSessionChunks)
	}
	for i := range n {
		part := sealed[i*maxChunkValue : min(len(sealed), (i+1)*maxChunkValue)]
		if i == 0 {
			part = strconv.Itoa(n) + "." + part
		}
		j.set(w, j.cookie(chunkName(base, i), part, maxAge))
	}
	for i := n; i < maxSessionChunks; i++ {
		if _, err := r.Cookie(chunkName(base, i)); err == nil {
			j.set(w, j.cookie(chunkName(base, i), "", -1))
		}
	}
	return nil
}

// readChunked reassembles a chunked value. A missing, repeated or extra
// chunk gives false; a re-ordered or truncated one passes here and fails
// to open.
func readChunked(r *http.Request, base string) (string, bool) {
	first := r.CookiesNamed(base)
	if len(first) != 1 {
		return "", false
	}
	count, rest, ok := strings.Cut(first[0].Value, ".")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n < 1 || n > maxSessionChunks {
		return "", false
	}
	var b strings.Builder
	b.WriteString(rest)
	for i := 1; i < n; i++ {
		cs := r.CookiesNamed(chunkName(base, i))
		if len(cs) != 1 {
			return "", false
		}
		b.WriteString(cs[0].Value)
	}
	return b.String(), true
}

// deleteChunked deletes every chunk of base the request carries.
func (j cookieJar) deleteChunked(w http.ResponseWriter, r *http.Request, base string) {
	for i := range maxSessionChunks {
		if _, err := r.Cookie(chunkName(base, i)); err == nil {
			j.set(w, j.cookie(chunkName(base, i), "", -1))
		}
	}
}

// session is what the session cookie holds: the identity the headers are
// made of, the session's times and the tokens it needs later.
type session struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	SID     string `json:"sid,omitempty"`
	// Claims are the ID token's claims without its protocol members (and
	// userinfo's, when configured).
	Claims map[string]any `json:"c"`
	// Created is the sign-in time, Seen the last request's (idle
	// timeout), both Unix seconds.
	Created int64 `json:"ct"`
	Seen    int64 `json:"st"`
	// AccessExpiry is when the access token expires (0: unknown).
	AccessExpiry int64  `json:"ae,omitempty"`
	AccessToken  string `json:"at,omitempty"`
	RefreshToken string `json:"rt,omitempty"`
	IDToken      string `json:"it,omitempty"`

	// id is a stored session's id (session_store redis), from the cookie;
	// raw its record as read from the store; stored says that this
	// version is already in the store.
	id, raw string
	stored  bool
}

// createdAt is the sign-in time.
func (s *session) createdAt() time.Time { return time.Unix(s.Created, 0) }

// pending is what a pre-login cookie holds: one sign-in under way.
type pending struct {
	State       string `json:"s"`
	Nonce       string `json:"n"`
	Verifier    string `json:"v"`
	Return      string `json:"r"`
	RedirectURI string `json:"u"`
	Created     int64  `json:"t"`
}
