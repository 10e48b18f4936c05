package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxJSONDepth bounds the nesting of arrays and objects in a token header
// or payload; real claims nest two or three levels.
const maxJSONDepth = 32

// linearKeys is how many member names of one object are checked for
// duplicates by comparing them one by one; past it a set takes over, so
// that an object of many short names costs linear time, not quadratic.
const linearKeys = 16

// parseJSONObject parses data, which must be one JSON object, into a map
// as encoding/json would with UseNumber (numbers as [json.Number]), but
// refuses duplicate member names at any depth, invalid UTF-8, nesting deeper
// than maxJSONDepth and trailing data. Duplicate names are how two parsers
// are made to disagree about a claim, so they are never resolved silently.
func parseJSONObject(data []byte) (map[string]any, error) {
	return parseJSONText(string(data))
}

// parseJSONText is parseJSONObject on text; the strings in the result are
// substrings of it where no escape had to be decoded.
func parseJSONText(data string) (map[string]any, error) {
	p := jsonParser{data: data}
	if err := p.start(); err != nil {
		return nil, err
	}
	m, err := p.object(1)
	if err != nil {
		return nil, err
	}
	return m, p.end()
}

// start checks that the text begins with an object, and leaves p.pos at
// its '{'.
func (p *jsonParser) start() error {
	p.skipSpace()
	if p.pos >= len(p.data) || p.data[p.pos] != '{' {
		return errors.New("not a JSON object")
	}
	return nil
}

// end checks that nothing but white space follows the object.
func (p *jsonParser) end() error {
	p.skipSpace()
	if p.pos != len(p.data) {
		return errors.New("trailing data after JSON object")
	}
	return nil
}

// bytesText returns buf as a string without copying it. The caller owns
// buf and never writes to it again.
func bytesText(buf []byte) string {
	return unsafe.String(unsafe.SliceData(buf), len(buf))
}

// textBytes returns the bytes of s without copying them, for functions
// that only read their input.
func textBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// jsonParser is a small strict recursive-descent JSON parser. It either
// decodes a value (value) or only checks it (skip), with the same rules:
// a skipped value costs no allocation unless it holds an object of more
// than linearKeys members or a string with escapes.
type jsonParser struct {
	data string
	pos  int
	// keys are the member names seen so far in the objects being parsed,
	// innermost object last (see members).
	keys []string
}

var errJSONSyntax = errors.New("invalid JSON")

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, 0 at the end.
func (p *jsonParser) peek() byte {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return 0
	}
	return p.data[p.pos]
}

// value decodes the value at p.pos; depth is that of its container.
func (p *jsonParser) value(depth int) (any, error) {
	switch c := p.peek(); {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		a := []any{}
		err := p.elements(depth+1, func() error {
			v, err := p.value(depth + 1)
			a = append(a, v)
			return err
		})
		if err != nil {
			return nil, err
		}
		return a, nil
	case c == '"':
		return p.str()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		n, err := p.number()
		if err != nil {
			return nil, err
		}
		return json.Number(n), nil
	}
	return nil, errJSONSyntax
}

// skip checks the value at p.pos as value would decode it, decoding
// nothing.
func (p *jsonParser) skip(depth int) error {
	switch c := p.peek(); {
	case c == '{':
		return p.members(depth+1, func(string) error { return p.skip(depth + 1) })
	case c == '[':
		return p.elements(depth+1, func() error { return p.skip(depth + 1) })
	case c == '"':
		_, err := p.str()
		return err
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		_, err := p.number()
		return err
	}
	return errJSONSyntax
}

func (p *jsonParser) literal(lit string) error {
	if !strings.HasPrefix(p.data[p.pos:], lit) {
		return errJSONSyntax
	}
	p.pos += len(lit)
	return nil
}

// object decodes the object at p.pos, at nesting depth depth.
func (p *jsonParser) object(depth int) (map[string]any, error) {
	m := make(map[string]any, 8)
	err := p.members(depth, func(k string) error {
		v, err := p.value(depth)
		m[k] = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// members parses the object at p.pos, at nesting depth depth: for each
// member it reads the name and calls member with p.pos at the value, which
// member must parse; a name seen before in the object is refused once its
// value has been parsed.
func (p *jsonParser) members(depth int, member func(name string) error) error {
	if depth > maxJSONDepth {
		return errors.New("JSON nested too deeply")
	}
	if p.keys == nil {
		p.keys = make([]string, 0, 2*linearKeys)
	}
	from := len(p.keys)
	defer func() { p.keys = p.keys[:from] }()
	var set map[string]struct{} // the names, once there are more than linearKeys
	p.pos++                     // '{'
	if p.peek() == '}' {
		p.pos++
		return nil
	}
	for {
		if p.peek() != '"' {
			return errJSONSyntax
		}
		k, err := p.str()
		if err != nil {
			return err
		}
		if p.peek() != ':' {
			return errJSONSyntax
		}
		p.pos++
		if err := member(k); err != nil {
			return err
		}
		if set != nil {
			if _, dup := set[k]; dup {
				return duplicateMember(k)
			}
			set[k] = struct{}{}
		} else {
			if slices.Contains(p.keys[from:], k) {
				return duplicateMember(k)
			}
			p.keys = append(p.keys, k)
			if len(p.keys)-from > linearKeys {
				set = make(map[string]struct{}, 2*linearKeys)
				for _, name := range p.keys[from:] {
					set[name] = struct{}{}
				}
			}
		}
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

func duplicateMember(name string) error {
	return fmt.Errorf("duplicate member %q", truncate(name, 64))
}

// elements parses the array at p.pos, at nesting depth depth, calling
// element with p.pos at each element, which element must parse.
func (p *jsonParser) elements(depth int, element func() error) error {
	if depth > maxJSONDepth {
		return errors.New("JSON nested too deeply")
	}
	p.pos++ // '['
	if p.peek() == ']' {
		p.pos++
		return nil
	}
	for {
		if err := element(); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

// str parses a string starting at the opening quote; without escapes it
// is a substring of the input.
func (p *jsonParser) str() (string, error) {
	p.pos++ // '"'
	start := p.pos
	ascii := true
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			s := p.data[start:p.pos]
			p.pos++
			if !ascii && !utf8.ValidString(s) {
				return "", errors.New("invalid UTF-8 in JSON string")
			}
			return s, nil
		case c == '\\':
			return p.escapedStr(start)
		case c < 0x20:
			return "", errJSONSyntax
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.pos++
	}
	return "", errJSONSyntax
}

// escapedStr continues parsing a string that contains escapes; p.pos is at
// the first backslash.
func (p *jsonParser) escapedStr(start int) (string, error) {
	buf := make([]byte, 0, p.pos-start+16)
	buf = append(buf, p.data[start:p.pos]...)
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			if !utf8.Valid(buf) {
				return "", errors.New("invalid UTF-8 in JSON string")
			}
			return string(buf), nil
		case c < 0x20:
			return "", errJSONSyntax
		case c != '\\':
			buf = append(buf, c)
			p.pos++
			continue
		}
		// Escape sequence.
		if p.pos+1 >= len(p.data) {
			return "", errJSONSyntax
		}
		e := p.data[p.pos+1]
		p.pos += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", errJSONSyntax
			}
			if utf16.IsSurrogate(r) {
				// A valid pair becomes one rune; anything else is
				// replaced, as encoding/json does.
				r2 := rune(-1)
				if p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
					save := p.pos
					p.pos += 2
					var ok2 bool
					if r2, ok2 = p.hex4(); !ok2 {
						return "", errJSONSyntax
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						r = dec
					} else {
						p.pos = save
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", errJSONSyntax
		}
	}
	return "", errJSONSyntax
}

// hex4 reads four hex digits.
func (p *jsonParser) hex4() (rune, bool) {
	if p.pos+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for i := p.pos; i < p.pos+4; i++ {
		c := p.data[i]
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.pos += 4
	return r, true
}

// number parses a JSON number per RFC 8259 §6 and returns its text.
func (p *jsonParser) number() (string, error) {
	start := p.pos
	d := p.data
	if d[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(d) && '0' <= d[p.pos] && d[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.pos < len(d) && d[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		return "", errJSONSyntax
	}
	if p.pos < len(d) && d[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return "", errJSONSyntax
		}
	}
	if p.pos < len(d) && (d[p.pos] == 'e' || d[p.pos] == 'E') {
		p.pos++
		if p.pos < len(d) && (d[p.pos] == '+' || d[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return "", errJSONSyntax
		}
	}
	return d[start:p.pos], nil
}
