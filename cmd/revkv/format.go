package main

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/revkv/revkv/kv"
)

// Keys and values are bytes, and every way in and out keeps them whole:
//
//   - JSON output holds them as base64 strings (JSON []byte), as etcdctl's
//     JSON output does, so they round-trip exactly.
//   - --hex reads KEY, VALUE and --end in hexadecimal and prints keys and
//     values in hexadecimal.
//   - Text output prints a key or value as it is when that is unambiguous,
//     and otherwise Go-quoted ("a\x00b", "two\nlines"): quoted when it
//     holds a tab, a newline or another unprintable or invalid UTF-8 byte,
//     a backslash, or starts with a double quote; in a line of words (watch
//     events, dump) also when it holds a space, a quote or '=', or is
//     empty. The shell reads the quoted form back (splitArgs).

// bytesArg is an argument as bytes: as given, or hex-decoded with --hex.
func (e *env) bytesArg(s, what string) ([]byte, error) {
	if !e.g.hex {
		return []byte(s), nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, usagef("%s %q is not hexadecimal (--hex)", what, s)
	}
	return b, nil
}

// field formats b for a tab-separated text line.
func (e *env) field(b []byte) string {
	if e.g.hex {
		return hex.EncodeToString(b)
	}
	return quoteIfNeeded(b, false)
}

// word formats b for a space-separated text line.
func (e *env) word(b []byte) string {
	if e.g.hex {
		return hex.EncodeToString(b)
	}
	return quoteIfNeeded(b, true)
}

func quoteIfNeeded(b []byte, word bool) string {
	if needsQuote(b, word) {
		return strconv.Quote(string(b))
	}
	return string(b)
}

func needsQuote(b []byte, word bool) bool {
	if len(b) == 0 {
		return word
	}
	if b[0] == '"' || !utf8.Valid(b) {
		return true
	}
	for _, r := range string(b) {
		switch {
		case r == '\\' || !unicode.IsPrint(r):
			return true
		case word && (r == ' ' || r == '=' || r == '\''):
			return true
		}
	}
	return false
}

// splitArgs splits a shell line into words. Spaces separate words;
// "double quotes" group and take Go's escapes (\x00, \n, \t, \", \\,
// \u00e9, \377); 'single quotes' group and take none; outside quotes a
// backslash takes Go's escapes too, and otherwise keeps the next character
// as it is ("a\ b" is one word). Bytes that are not UTF-8 pass through.
func splitArgs(line string) ([]string, error) {
	var args []string
	var cur []byte
	inWord := false
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				args = append(args, string(cur))
				cur, inWord = cur[:0], false
			}
			i++
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, usagef("unterminated ' quote in %q", shorten(line))
			}
			cur = append(cur, line[i+1:i+1+end]...)
			i += end + 2
			inWord = true
		case c == '"':
			i++
			for {
				if i >= len(line) {
					return nil, usagef("unterminated \" quote in %q", shorten(line))
				}
				if line[i] == '"' {
					i++
					break
				}
				var err error
				if cur, i, err = appendChar(cur, line, i, '"'); err != nil {
					return nil, err
				}
			}
			inWord = true
		case c == '\\':
			var err error
			if cur, i, err = appendChar(cur, line, i, 0); err != nil {
				return nil, err
			}
			inWord = true
		default: // a run of plain bytes, at once (a line may be 16 MiB)
			n := strings.IndexAny(line[i:], " \t'\"\\")
			if n < 0 {
				n = len(line) - i
			}
			cur = append(cur, line[i:i+n]...)
			i += n
			inWord = true
		}
	}
	if inWord {
		args = append(args, string(cur))
	}
	if len(args) == 0 {
		return nil, usagef("empty line")
	}
	return args, nil
}

// appendChar appends the character at line[i] (an escape if it is a
// backslash) and returns the index after it. quote is the quote the
// character is in, or 0.
func appendChar(cur []byte, line string, i int, quote byte) ([]byte, int, error) {
	if line[i] != '\\' {
		return append(cur, line[i]), i + 1, nil
	}
	if i+1 >= len(line) {
		return nil, 0, usagef("a backslash ends %q", shorten(line))
	}
	r, multibyte, tail, err := strconv.UnquoteChar(line[i:], quote)
	if err != nil {
		if quote != 0 {
			return nil, 0, usagef("bad escape %q in %q", line[i:min(i+4, len(line))], shorten(line))
		}
		// Outside quotes, an unknown escape keeps the next byte (a\ b).
		return append(cur, line[i+1]), i + 2, nil
	}
	if r < utf8.RuneSelf || !multibyte {
		cur = append(cur, byte(r))
	} else {
		cur = utf8.AppendRune(cur, r)
	}
	return cur, len(line) - len(tail), nil
}

func shorten(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// maxLine bounds a line of the shell or of a txn: the largest key and
// value, each byte written as a four-byte escape, and room for the rest.
// A variable so that a test can lower it.
var maxLine = 4*(kv.MaxKeySize+kv.MaxValueSize) + 4096

// errLineTooLong: a line above maxLine, which was read and dropped.
var errLineTooLong = errors.New("line too long")

// readLine reads a line of any length up to maxLine, without its end of
// line. A longer line is read to its end and dropped, and reported as
// errLineTooLong; the next call reads the line after it. The last line
// needs no newline; after it, io.EOF.
func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	tooLong := false
	for {
		part, err := r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(part) > maxLine+1 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, part...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && (len(buf) > 0 || tooLong):
		case err != nil:
			return "", err
		}
		if tooLong {
			return "", fmt.Errorf("%w: over %d bytes; dropped", errLineTooLong, maxLine)
		}
		s := strings.TrimSuffix(string(buf), "\n")
		return strings.TrimSuffix(s, "\r"), nil
	}
}
