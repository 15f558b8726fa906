package config

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/pelletier/go-toml/v2/unstable"
)

// lineIndex maps key paths to the line where they appear. BurntSushi's
// decoder does not expose positions, so the file is parsed a second time
// with go-toml's AST parser, which does.
//
// Paths are written as BurntSushi writes keys (toml.Key.String), with the
// element index of arrays of tables and of inline tables in arrays:
// "server.tokens[1].secret". BurntSushi names keys without indexes
// ("server.tokens.secret"); plain maps such a name to the indexed paths
// where it occurs, in document order.
type lineIndex struct {
	lines map[string]int
	plain map[string][]string
}

func newLineIndex() *lineIndex {
	return &lineIndex{lines: map[string]int{}, plain: map[string][]string{}}
}

// buildLineIndex indexes data. On a syntax error it keeps what it indexed
// before it; the syntax error itself is reported by the decoder.
func buildLineIndex(data []byte) *lineIndex {
	ix := newLineIndex()
	var p unstable.Parser
	p.Reset(data)
	w := indexWalker{ix: ix, p: &p, arrays: map[string]string{}, counts: map[string]int{}}
	for p.NextExpression() {
		w.expression(p.Expression())
	}
	return ix
}

type indexWalker struct {
	ix *lineIndex
	p  *unstable.Parser
	// arrays maps the plain path of an array of tables to the indexed path
	// of its current (last opened) element.
	arrays map[string]string
	// counts maps the indexed path of an array to its number of elements.
	counts map[string]int
	// table is the current table's path, indexed and plain.
	table, tablePlain string
}

// record notes the line of a key, keeping the first line seen.
func (ix *lineIndex) record(indexed, plain string, line int) {
	if _, ok := ix.lines[indexed]; ok {
		return
	}
	ix.lines[indexed] = line
	ix.plain[plain] = append(ix.plain[plain], indexed)
}

func joinKey(prefix, part string) string {
	k := toml.Key{part}.String()
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func (w *indexWalker) lineOf(n *unstable.Node) int {
	return w.p.Shape(n.Raw).Start.Line
}

func keyParts(n *unstable.Node) (parts []string, first *unstable.Node) {
	it := n.Key()
	for it.Next() {
		if first == nil {
			first = it.Node()
		}
		parts = append(parts, string(it.Node().Data))
	}
	return parts, first
}

// resolve turns the parts of a table header into an indexed and a plain
// path, entering the current element of any array of tables on the way.
func (w *indexWalker) resolve(parts []string, line int) (indexed, plain string) {
	for _, part := range parts {
		indexed, plain = joinKey(indexed, part), joinKey(plain, part)
		if cur, ok := w.arrays[plain]; ok {
			indexed = cur
		}
		w.ix.record(indexed, plain, line)
	}
	return indexed, plain
}

func (w *indexWalker) expression(e *unstable.Node) {
	switch e.Kind {
	case unstable.Table:
		parts, first := keyParts(e)
		w.table, w.tablePlain = w.resolve(parts, w.lineOf(first))
	case unstable.ArrayTable:
		parts, first := keyParts(e)
		line := w.lineOf(first)
		parent, parentPlain := w.resolve(parts[:len(parts)-1], line)
		last := parts[len(parts)-1]
		base, plain := joinKey(parent, last), joinKey(parentPlain, last)
		w.ix.record(base, plain+"\x00array", line) // the array as a whole
		i := w.counts[base]
		w.counts[base] = i + 1
		elem := base + "[" + strconv.Itoa(i) + "]"
		w.arrays[plain] = elem
		w.ix.record(elem, plain, line)
		w.table, w.tablePlain = elem, plain
	case unstable.KeyValue:
		w.keyValue(e, w.table, w.tablePlain)
	}
}

func (w *indexWalker) keyValue(kv *unstable.Node, prefix, prefixPlain string) {
	parts, first := keyParts(kv)
	line := w.lineOf(first)
	indexed, plain := prefix, prefixPlain
	for _, part := range parts {
		indexed, plain = joinKey(indexed, part), joinKey(plain, part)
		w.ix.record(indexed, plain, line)
	}
	w.value(kv.Value(), indexed, plain)
}

func (w *indexWalker) value(v *unstable.Node, indexed, plain string) {
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if n := it.Node(); n.Kind == unstable.KeyValue {
				w.keyValue(n, indexed, plain)
			}
		}
	case unstable.Array:
		it := v.Children()
		i := 0
		for it.Next() {
			n := it.Node()
			if n.Kind == unstable.Comment {
				continue
			}
			if n.Kind == unstable.InlineTable || n.Kind == unstable.Array {
				w.value(n, indexed+"["+strconv.Itoa(i)+"]", plain)
			}
			i++
		}
	}
}

// line returns the line of key, or of its nearest ancestor in the file,
// or 0.
func (ix *lineIndex) line(key string) int {
	for key != "" {
		if l, ok := ix.lines[key]; ok {
			return l
		}
		key = parentKey(key)
	}
	return 0
}

// parentKey strips the last part of a key path: "a.b[2]" → "a.b",
// "a.b" → "a". Quoted parts are respected.
func parentKey(key string) string {
	cut := -1
	inQuote := false
	for i := 0; i < len(key); i++ {
		switch key[i] {
		case '\\':
			if inQuote {
				i++
			}
		case '"':
			inQuote = !inQuote
		case '.', '[':
			if !inQuote {
				cut = i
			}
		}
	}
	if cut < 0 {
		return ""
	}
	return key[:cut]
}

// indexed maps the n-th occurrence (0-based) of a plain BurntSushi key to
// its indexed path, or returns the plain key when it is not indexed.
func (ix *lineIndex) indexed(plain string, n int) string {
	if paths := ix.plain[plain]; n < len(paths) {
		return paths[n]
	}
	if paths := ix.plain[plain]; len(paths) > 0 {
		return paths[len(paths)-1]
	}
	return plain
}

// trimIndexes removes array indexes from a key path: the plain form.
func trimIndexes(key string) string {
	if !strings.Contains(key, "[") {
		return key
	}
	var b strings.Builder
	inQuote, inIndex := false, false
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case inIndex:
			if c == ']' {
				inIndex = false
			}
			continue
		case c == '\\' && inQuote:
			b.WriteByte(c)
			i++
			if i < len(key) {
				b.WriteByte(key[i])
			}
			continue
		case c == '"':
			inQuote = !inQuote
		case c == '[' && !inQuote:
			inIndex = true
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
