package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"hash"
)

// errBadSignature is the verdict of verifySignature on a signature that
// does not verify; callers report it as ErrSignature.
var errBadSignature = errors.New("identity: signature does not verify")

// verifySignature checks sig, the decoded signature segment of a compact
// JWS, over signingInput (the header and payload segments and the dot
// between them, exactly as received) with key for alg, calling the
// standard library directly on the bytes the strict parser already holds:
// a token is parsed once and verified once. The key must already have been
// checked for alg (checkKeyForAlg, or the length of an HMAC secret); a key
// of the wrong type is refused here anyway, never used.
//
// The algorithms are those of RFC 7518 §3: RS* are RSASSA-PKCS1-v1_5; PS*
// are RSASSA-PSS with MGF1 on the same hash and a salt exactly as long as
// the hash output (§3.5; go-jose accepts any salt length); ES* take the
// fixed-length big-endian R || S of §3.4, 64, 96 or 132 bytes, never
// ASN.1; EdDSA is Ed25519 (RFC 8037); HS* compare the MAC in constant time.
func verifySignature(alg string, key any, signingInput string, sig []byte) error {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		pub, ok := key.(*rsa.PublicKey)
		if !ok || pub == nil || pub.N == nil {
			return errBadSignature
		}
		h, d := jwsDigest(alg, signingInput)
		var err error
		if alg[0] == 'R' {
			err = rsa.VerifyPKCS1v15(pub, h, d.sum(), sig)
		} else {
			err = rsa.VerifyPSS(pub, h, d.sum(), sig, &pssOptions)
		}
		if err != nil {
			return errBadSignature
		}
		return nil
	case "ES256", "ES384", "ES512":
		pub, ok := key.(*ecdsa.PublicKey)
		if !ok || pub == nil || pub.Curve == nil {
			return errBadSignature
		}
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size || size != ecdsaSize(alg) {
			return errBadSignature
		}
		_, d := jwsDigest(alg, signingInput)
		var der [2*(3+66) + 3]byte
		asn1, ok := ecdsaDER(der[:0], sig[:size], sig[size:])
		if !ok || !ecdsa.VerifyASN1(pub, d.sum(), asn1) {
			return errBadSignature
		}
		return nil
	case "EdDSA":
		pub, ok := key.(ed25519.PublicKey)
		if !ok || len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, []byte(signingInput), sig) {
			return errBadSignature
		}
		return nil
	case "HS256", "HS384", "HS512":
		secret, ok := key.([]byte)
		minLen, _ := hmacMinSecret(alg)
		if !ok || len(secret) < minLen {
			return errBadSignature
		}
		var m [sha512.Size]byte
		mac := hmac.New(hmacHash(alg), secret)
		_, _ = mac.Write([]byte(signingInput))
		if !hmac.Equal(mac.Sum(m[:0]), sig) {
			return errBadSignature
		}
		return nil
	}
	return errBadSignature
}

// pssOptions are the RSASSA-PSS parameters of RFC 7518 §3.5.
var pssOptions = rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}

// digest is a hash output of at most SHA-512's size, kept by value so that
// hashing allocates nothing.
type digest struct {
	b [sha512.Size]byte
	n int
}

func (d *digest) sum() []byte { return d.b[:d.n] }

// jwsDigest hashes signingInput with the SHA-2 function that alg names by
// its last three characters.
func jwsDigest(alg, signingInput string) (crypto.Hash, digest) {
	var d digest
	switch alg[len(alg)-3:] {
	case "384":
		s := sha512.Sum384(textBytes(signingInput))
		d.n = copy(d.b[:], s[:])
		return crypto.SHA384, d
	case "512":
		s := sha512.Sum512(textBytes(signingInput))
		d.n = copy(d.b[:], s[:])
		return crypto.SHA512, d
	}
	s := sha256.Sum256(textBytes(signingInput))
	d.n = copy(d.b[:], s[:])
	return crypto.SHA256, d
}

// hmacHash returns the hash constructor of an HS* algorithm.
func hmacHash(alg string) func() hash.Hash {
	switch alg {
	case "HS384":
		return sha512.New384
	case "HS512":
		return sha512.New
	}
	return sha256.New
}

// ecdsaSize is the length of R and of S in an ES* signature (RFC 7518
// §3.4): the byte length of the curve order.
func ecdsaSize(alg string) int {
	switch alg {
	case "ES256":
		return 32
	case "ES384":
		return 48
	case "ES512":
		return 66
	}
	return 0
}

// ecdsaDER appends to dst the ASN.1 DER ECDSA-Sig-Value of the big-endian
// unsigned integers r and s, as crypto/ecdsa.Verify would build it from
// big.Int values: leading zeros dropped, a zero byte added before a high
// bit. ok is false when r or s is zero, which no valid signature has.
func ecdsaDER(dst, r, s []byte) ([]byte, bool) {
	r, s = trimZeros(r), trimZeros(s)
	if len(r) == 0 || len(s) == 0 {
		return nil, false
	}
	rl, sl := derIntLen(r), derIntLen(s)
	body := 2 + rl + 2 + sl
	dst = append(dst, 0x30)
	if body >= 0x80 {
		dst = append(dst, 0x81)
	}
	dst = append(dst, byte(body))
	dst = appendDERInt(dst, r, rl)
	dst = appendDERInt(dst, s, sl)
	return dst, true
}

func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

// derIntLen is the length of the DER content of a positive integer.
func derIntLen(b []byte) int {
	if b[0]&0x80 != 0 {
		return len(b) + 1
	}
	return len(b)
}

func appendDERInt(dst, b []byte, l int) []byte {
	dst = append(dst, 0x02, byte(l))
	if l > len(b) {
		dst = append(dst, 0)
	}
	return append(dst, b...)
}
