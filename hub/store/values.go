// The encoding of a telemetry row's values: one JSON object per message,
// attribute → value, each value the text the device sent, verbatim.

package store

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
)

var errBadObject = errors.New("stored telemetry is not a JSON object")

// appendObject appends {"attr":value,…} to buf, attributes sorted, each
// value's text as it is (checked JSON already).
func appendObject(buf []byte, values map[string]string) []byte {
	buf = append(buf, '{')
	for i, a := range slices.Sorted(maps.Keys(values)) {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendKey(buf, a)
		buf = append(buf, values[a]...)
	}
	return append(buf, '}')
}

// latestValue is the latest value of one attribute and when it was sent.
type latestValue struct {
	ts    int64
	value string
}

// appendLatest appends {"attr":[ts,value],…} to buf, attributes sorted.
func appendLatest(buf []byte, values map[string]latestValue) []byte {
	buf = append(buf, '{')
	for i, a := range slices.Sorted(maps.Keys(values)) {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendKey(buf, a)
		buf = append(buf, '[')
		buf = strconv.AppendInt(buf, values[a].ts, 10)
		buf = append(buf, ',')
		buf = append(buf, values[a].value...)
		buf = append(buf, ']')
	}
	return append(buf, '}')
}

// appendKey appends a as a JSON string and a colon.
func appendKey(buf []byte, a string) []byte {
	plain := true
	for i := 0; i < len(a); i++ {
		if c := a[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		buf = append(buf, '"')
		buf = append(buf, a...)
		buf = append(buf, '"', ':')
		return buf
	}
	q, _ := json.Marshal(a) // a string always marshals
	buf = append(buf, q...)
	return append(buf, ':')
}

// eachMember calls fn with each member of the JSON object obj, in order:
// its name, unescaped, and its value's text as stored. It stops at the
// first error fn returns.
func eachMember(obj string, fn func(name, value string) error) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errBadObject
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return errBadObject
		}
		end := skipString(obj, i)
		if end < 0 {
			return errBadObject
		}
		name := obj[i+1 : end-1]
		if strings.IndexByte(name, '\\') >= 0 {
			if err := json.Unmarshal([]byte(obj[i:end]), &name); err != nil {
				return errBadObject
			}
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return errBadObject
		}
		start := i + 1
		i = skipValue(obj, start)
		if i < 0 || i >= len(obj) {
			return errBadObject
		}
		if err := fn(name, obj[start:i]); err != nil {
			return err
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return nil
		default:
			return errBadObject
		}
	}
}

// splitLatest splits a telemetry_latest member's value, [ts,value].
func splitLatest(v string) (latestValue, error) {
	if len(v) < 4 || v[0] != '[' || v[len(v)-1] != ']' {
		return latestValue{}, errBadObject
	}
	comma := strings.IndexByte(v, ',')
	if comma < 0 {
		return latestValue{}, errBadObject
	}
	ts, err := strconv.ParseInt(v[1:comma], 10, 64)
	if err != nil {
		return latestValue{}, errBadObject
	}
	return latestValue{ts: ts, value: v[comma+1 : len(v)-1]}, nil
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the JSON string starting at
// s[i], or -1.
func skipString(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue skips the white space, the JSON value and the white space from
// s[i] on and returns the index of what follows, or -1.
func skipValue(s string, i int) int {
	i = skipSpace(s, i)
	if i >= len(s) {
		return -1
	}
	switch s[i] {
	case '"':
		i = skipString(s, i)
	case '{', '[':
		depth := 0
	loop:
		for ; i < len(s); i++ {
			switch s[i] {
			case '"':
				if i = skipString(s, i); i < 0 {
					return -1
				}
				i-- // the loop's i++
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					i++
					break loop
				}
			}
		}
		if depth != 0 {
			return -1
		}
	default:
		start := i
		for i < len(s) && !strings.ContainsRune(",}] \t\n\r", rune(s[i])) {
			i++
		}
		if i == start {
			return -1
		}
	}
	if i < 0 {
		return -1
	}
	return skipSpace(s, i)
}
