package identitytest

import (
	"crypto/subtle"
	"html/template"
	"net/http"
	"net/url"
)

// maxLoginForm bounds the body of a login form post.
const maxLoginForm = 64 << 10

// WithLoginPage makes the authorization endpoint ask who signs in, as a
// real provider does, instead of signing in login_hint or DefaultSubject
// at once: it answers with an HTML login form (the user name prefilled
// from login_hint) that is POSTed back to the authorization endpoint.
// users maps user names to passwords; the user who signs in is the
// subject of the grant. A wrong password shows the form again with a
// message, and the pending request stays valid until someone signs in
// with it.
func WithLoginPage(users map[string]string) Option {
	return func(c *config) {
		c.users = make(map[string]string, len(users))
		for u, p := range users {
			c.users[u] = p
		}
	}
}

// Form field names of the login page.
const (
	LoginFieldRequest  = "request"
	LoginFieldUsername = "username"
	LoginFieldPassword = "password"
)

// LoginFailedMessage is shown on the login page after a wrong user name
// or password.
const LoginFailedMessage = "Wrong user name or password."

// loginPage is the HTML of the login form.
var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Sign in – identitytest</title>
<style>body{font-family:sans-serif;max-width:22em;margin:4em auto}label,input,button{display:block;width:100%;margin:.3em 0}.error{color:#b00}</style>
</head>
<body>
<h1>Sign in</h1>
<p>to <b>{{.Client}}</b> at the identitytest provider</p>
{{if .Message}}<p class="error" role="alert">{{.Message}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="` + LoginFieldRequest + `" value="{{.Request}}">
<label for="username">User name</label><input id="username" name="` + LoginFieldUsername + `" value="{{.Username}}" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="` + LoginFieldPassword + `" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</body>
</html>
`))

// pendingLogin keeps the authorization request q until the user signs in
// and returns its handle for the form.
func (i *Issuer) pendingLogin(q url.Values) string {
	id := randomValue()
	s := i.lockOAuth()
	s.logins[id] = q
	s.mu.Unlock()
	return id
}

// showLoginForm answers with the login form of the pending request id.
func (i *Issuer) showLoginForm(w http.ResponseWriter, id, username, message string) {
	s := i.lockOAuth()
	q := s.logins[id]
	s.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	_ = loginPage.Execute(w, map[string]string{
		"Action": i.URL + AuthorizePath, "Request": id, "Client": q.Get("client_id"),
		"Username": username, "Message": message,
	})
}

// serveLoginForm checks a posted login form: the right password of a
// known user completes the pending request (303 to its redirect_uri),
// anything else shows the form again.
func (i *Issuer) serveLoginForm(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginForm)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "identitytest: bad login form", http.StatusBadRequest)
		return
	}
	id, user, password := r.PostForm.Get(LoginFieldRequest), r.PostForm.Get(LoginFieldUsername), r.PostForm.Get(LoginFieldPassword)
	s := i.lockOAuth()
	q, pending := s.logins[id]
	want, known := i.cfg.users[user]
	ok := pending && known && subtle.ConstantTimeCompare([]byte(password), []byte(want)) == 1
	if ok {
		delete(s.logins, id) // single use
	}
	s.mu.Unlock()
	switch {
	case !pending:
		http.Error(w, "identitytest: unknown or finished sign-in; start again from the application", http.StatusBadRequest)
	case !ok:
		i.showLoginForm(w, id, user, LoginFailedMessage)
	default:
		i.grantCode(w, r, q, user, http.StatusSeeOther)
	}
}
