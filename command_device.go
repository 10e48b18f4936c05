package caddyidentity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/caddy-identity/caddy-identity/identity"
)

// deviceWaitWithoutExpiry bounds the device flow when the provider does
// not say when its code expires.
const deviceWaitWithoutExpiry = 30 * time.Minute

// errDeviceCodeExpired: the user did not approve before the device code
// expired (the provider answered expired_token, or its expires_in passed).
var errDeviceCodeExpired = errors.New("the device code expired before the user approved it")

// deviceView is what the user is shown in a device flow; never the device
// code, which redeems the token.
type deviceView struct {
	VerificationURI         string    `json:"verification_uri"`
	VerificationURIComplete string    `json:"verification_uri_complete,omitempty"`
	UserCode                string    `json:"user_code"`
	Expires                 time.Time `json:"expires,omitzero"`
	Interval                string    `json:"interval"`
}

// tokenClientAuth is the client authentication of token: a secret, a
// private key, or (device flow only) a public client.
func tokenClientAuth(fl *pflag.FlagSet, clientID string, device bool) (identity.ClientAuth, error) {
	secret, _ := fl.GetString("client-secret")
	keyFile, _ := fl.GetString("key-file")
	keyID, _ := fl.GetString("key-id")
	switch {
	case secret != "" && keyFile != "":
		return identity.ClientAuth{}, errors.New("--client-secret and --key-file are exclusive")
	case keyFile != "":
		key, err := loadPrivateKey(keyFile)
		if err != nil {
			return identity.ClientAuth{}, err
		}
		return identity.PrivateKeyJWTAuth(clientID, key, keyID), nil
	case secret != "":
		return identity.ClientSecretBasicAuth(clientID, secret), nil
	case device:
		return identity.PublicClientAuth(clientID), nil
	}
	return identity.ClientAuth{}, errors.New("--client-secret or --key-file is required (without them only --device, for a public client)")
}

// deviceToken runs the device authorization grant: it asks for a code,
// tells the user on standard error where to enter it (a JSON line with
// asJSON), and polls until the user decides or the code expires.
func deviceToken(cmd *cobra.Command, doc *identity.DiscoveryDocument, p identity.ProtocolRequest, scopes, resources []string, asJSON bool) (*identity.TokenResponse, *deviceView, error) {
	if doc.DeviceAuthorizationEndpoint == "" {
		return nil, nil, fmt.Errorf("%w: the discovery document has no device_authorization_endpoint", identity.ErrMissingMember)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), commandTimeout)
	defer cancel()
	authz := p
	authz.Address = doc.DeviceAuthorizationEndpoint
	da, err := identity.RequestDeviceAuthorization(ctx, nil, identity.DeviceAuthorizationRequest{ProtocolRequest: authz, Scopes: scopes, Resource: resources})
	if err != nil {
		return nil, nil, err
	}
	interval := da.Interval
	if interval <= 0 {
		interval = identity.DefaultDevicePollInterval
	}
	view := &deviceView{
		VerificationURI: da.VerificationURI, VerificationURIComplete: da.VerificationURIComplete,
		UserCode: da.UserCode, Expires: da.Expiry, Interval: interval.String(),
	}
	tell := cmd.ErrOrStderr()
	if asJSON {
		_ = printJSONLine(tell, view)
	} else {
		fmt.Fprintf(tell, "To sign in, open %s\nand enter the code: %s\n", da.VerificationURI, da.UserCode)
		if da.VerificationURIComplete != "" {
			fmt.Fprintf(tell, "(or open %s)\n", da.VerificationURIComplete)
		}
		if !da.Expiry.IsZero() {
			fmt.Fprintf(tell, "The code expires at %s.\n", da.Expiry.UTC().Format(time.RFC3339))
		}
	}

	pollCtx, cancelPoll := context.WithTimeout(cmd.Context(), deviceWaitWithoutExpiry)
	defer cancelPoll()
	req := da.TokenRequest(p)
	req.OnWait = func(code string, wait time.Duration) {
		switch {
		case asJSON && code != identity.ErrorAuthorizationPending:
			line := map[string]string{"poll_interval": wait.String()}
			if code != "" {
				line["answer"] = code
			}
			_ = printJSONLine(tell, line)
		case code == "":
			fmt.Fprintf(tell, "Waiting for approval (polling every %s)...\n", wait)
		case code == identity.ErrorSlowDown:
			fmt.Fprintf(tell, "The provider asked to slow down: polling every %s.\n", wait)
		}
	}
	tr, err := identity.PollDeviceToken(pollCtx, nil, req)
	if pe, ok := errors.AsType[*identity.ProtocolError](err); ok && pe.Code == identity.ErrorExpiredToken {
		err = fmt.Errorf("%w (%w)", errDeviceCodeExpired, err)
	} else if errors.Is(err, context.DeadlineExceeded) && cmd.Context().Err() == nil {
		err = errDeviceCodeExpired
		if da.Expiry.IsZero() {
			err = fmt.Errorf("%w: the provider gave no expiry, gave up after %s", errDeviceCodeExpired, deviceWaitWithoutExpiry)
		}
	}
	return tr, view, err
}

// printJSONLine writes v as one line of JSON.
func printJSONLine(out io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}
