package config

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Problem is one thing wrong with the configuration file. Key is the path
// of the offending key ("contacts.mom.route", "server.tokens[1].secret"),
// empty for problems with the file as a whole. Line is 1-based, 0 when
// unknown. Msg never contains a secret or a file's contents.
type Problem struct {
	File string // the file's path as given to Load or Parse
	Key  string
	Line int
	Msg  string
}

// String formats the problem as "relay.toml:12: contacts.mom.route: msg".
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in one file, sorted by line. It is the
// error Load and Parse return when the file is not usable.
type Problems []Problem

// Error returns one line per problem.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems by line (unknown lines last), then key, so
// that the output reads like the file.
func sortProblems(ps Problems) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.Line == 0) != (b.Line == 0) {
			return a.Line != 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Key < b.Key
	})
}

// collector gathers problems while the file is decoded and checked.
type collector struct {
	file  string
	index *lineIndex
	list  Problems
	// quiet holds key prefixes whose undecoded keys are not reported,
	// because a problem already explains them (a channel of unknown type,
	// a table that failed to decode).
	quiet []string
	// typeErrs holds keys with a decode error; later checks of the same
	// key would only repeat it with a misleading value.
	typeErrs map[string]bool
}

// add records a problem for key; its line is that of the key, or of the
// nearest enclosing table present in the file.
func (c *collector) add(key, format string, args ...any) {
	if c.typeErrs[key] {
		return
	}
	c.list = append(c.list, Problem{File: c.file, Key: key, Line: c.index.line(key), Msg: fmt.Sprintf(format, args...)})
}

// addAt records a problem with a known line.
func (c *collector) addAt(key string, line int, msg string) {
	if line == 0 {
		line = c.index.line(key)
	}
	c.list = append(c.list, Problem{File: c.file, Key: key, Line: line, Msg: msg})
}

func (c *collector) silence(prefix string) { c.quiet = append(c.quiet, prefix) }

func (c *collector) silenced(key string) bool {
	for _, q := range c.quiet {
		if under(key, q) {
			return true
		}
	}
	return false
}

// under reports whether key is prefix or a key inside it.
func under(key, prefix string) bool {
	if !strings.HasPrefix(key, prefix) {
		return false
	}
	rest := key[len(prefix):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}

// lastKeyRE matches BurntSushi's type errors, which carry the key only in
// their text: `toml: line 3 (last key "a.b"): incompatible types: ...`.
var lastKeyRE = regexp.MustCompile(`^toml: (?:line \d+ )?\(last key ("(?:[^"\\]|\\.)*")\): (.*)$`)

var (
	typeRE     = regexp.MustCompile(`^incompatible types: TOML value has type (.+); destination has type (.+)$`)
	mismatchRE = regexp.MustCompile(`^type mismatch for .+: expected (table) but found (.+)$`)
)

// decodeError records a decode error of the table at plainPrefix (as
// BurntSushi names it, without array indexes) whose problems are reported
// under keyPrefix (with indexes). The table's undecoded keys are silenced.
func (c *collector) decodeError(plainPrefix, keyPrefix string, err error) {
	key, msg := keyPrefix, err.Error()
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg = pe.Message
		if pe.LastKey != "" {
			key = pe.LastKey
		}
	} else if m := lastKeyRE.FindStringSubmatch(msg); m != nil {
		if k, uerr := strconv.Unquote(m[1]); uerr == nil {
			key = k
		}
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "toml: ")
	}
	if key != keyPrefix && under(key, plainPrefix) {
		key = keyPrefix + key[len(plainPrefix):]
	} else if !under(key, keyPrefix) {
		key = keyPrefix
	}
	if m := typeRE.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("wrong type: got %s, want %s", tomlTypeName(m[1]), tomlTypeName(m[2]))
	} else if m := mismatchRE.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("wrong type: got %s, want %s", tomlTypeName(m[2]), tomlTypeName(m[1]))
	}
	c.add(key, "%s", msg)
	if c.typeErrs == nil {
		c.typeErrs = map[string]bool{}
	}
	c.typeErrs[key] = true
	c.silence(keyPrefix)
}

// tomlTypeName turns the Go type names in BurntSushi's errors into words
// a person editing a TOML file recognises.
func tomlTypeName(t string) string {
	switch {
	case t == "string":
		return "a string"
	case t == "bool":
		return "a boolean"
	case t == "int64" || strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint") || t == "integer":
		return "an integer"
	case t == "float64" || t == "float32" || t == "float":
		return "a number"
	case strings.HasPrefix(t, "map[") || t == "struct" || strings.Contains(t, "table"):
		return "a table"
	case strings.HasPrefix(t, "[]") || t == "slice" || t == "array":
		return "an array"
	case t == "time.Time" || strings.Contains(t, "toml.Local"):
		return "a date/time"
	}
	return t
}
