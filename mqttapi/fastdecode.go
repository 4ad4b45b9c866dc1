package mqttapi

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// decodeCommandRequestFast decodes a well-formed request in one scan of the
// payload, without reflection: a device decodes every request it gets, and
// this was most of its CPU per command. It reports false for anything out
// of the ordinary (including every malformed request), and the caller then
// runs the field-by-field decoder, which also builds the error.
func decodeCommandRequestFast(b []byte) (CommandRequest, bool) {
	if !utf8.Valid(b) || !json.Valid(b) {
		return CommandRequest{}, false
	}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return CommandRequest{}, false
	}
	var req CommandRequest
	var haveID, haveName bool
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != '}' {
		keyEnd, simple := stringEnd(b, i)
		if !simple {
			return CommandRequest{}, false // escaped key: leave it to encoding/json
		}
		key := b[i+1 : keyEnd-1]
		i = skipSpace(b, keyEnd)
		i = skipSpace(b, i+1) // past ':'
		valEnd := valueEnd(b, i)
		val := b[i:valEnd]
		switch string(key) {
		case "id":
			s, ok := simpleString(val)
			if !ok || s == "" {
				return CommandRequest{}, false
			}
			req.ID, haveID = s, true
		case "name":
			s, ok := simpleString(val)
			if !ok || s == "" {
				return CommandRequest{}, false
			}
			req.Name, haveName = s, true
		case "arguments":
			switch val[0] {
			case '{':
				req.Arguments = bytes.Clone(val)
			case 'n': // null: no arguments
				req.Arguments = nil
			default:
				return CommandRequest{}, false
			}
		}
		i = skipSpace(b, valEnd)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return req, haveID && haveName
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string starting at b[i],
// and whether it has no escapes. b must be valid JSON.
func stringEnd(b []byte, i int) (int, bool) {
	simple := true
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			simple = false
			j++
		case '"':
			return j + 1, simple
		}
	}
	return len(b), false
}

// valueEnd returns the index just past the JSON value starting at b[i].
// b must be valid JSON.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		end, _ := stringEnd(b, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := stringEnd(b, j)
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

// simpleString returns the text of a JSON string value without escapes.
func simpleString(val []byte) (string, bool) {
	if len(val) < 2 || val[0] != '"' || bytes.IndexByte(val, '\\') >= 0 {
		return "", false
	}
	return string(val[1 : len(val)-1]), true
}
