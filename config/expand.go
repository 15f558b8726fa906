package config

import (
	"os"
	"reflect"
	"strconv"
	"strings"
)

// expandEnv replaces every ${NAME} in s with the environment variable
// NAME. It returns the names that are not set (their ${NAME} is left in
// place). A "$" not followed by "{NAME}" is kept as it is.
func expandEnv(s string) (string, []string) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	var missing []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		j := strings.IndexByte(s[i+2:], '}')
		if j < 0 || !isEnvName(s[i+2:i+2+j]) {
			b.WriteString(s[:i+2])
			s = s[i+2:]
			continue
		}
		name := s[i+2 : i+2+j]
		b.WriteString(s[:i])
		if v, ok := os.LookupEnv(name); ok {
			b.WriteString(v)
		} else {
			missing = append(missing, name)
			b.WriteString(s[i : i+3+j])
		}
		s = s[i+3+j:]
	}
	return b.String(), missing
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// expandString expands s, reporting unset variables as problems at key.
func (c *collector) expandString(key, s string) string {
	out, missing := expandEnv(s)
	for _, name := range missing {
		c.add(key, "environment variable %s is not set", name)
	}
	return out
}

var durationType = reflect.TypeOf(duration{})

// expandValue expands ${ENV} in every string reachable from v (struct
// fields, pointers, slices, arrays, string-keyed maps) and then fills
// secret fields X from X_file. key is v's key path; struct fields are named
// by their toml tag (or field name, as the decoder matches them).
func (c *collector) expandValue(key string, v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			c.expandValue(key, v.Elem())
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString(c.expandString(key, v.String()))
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			c.expandValue(key+"["+strconv.Itoa(i)+"]", v.Index(i))
		}
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return
		}
		iter := v.MapRange()
		for iter.Next() {
			k, e := iter.Key(), iter.Value()
			// Map elements are not addressable: expand a copy and store it.
			cp := reflect.New(e.Type()).Elem()
			cp.Set(e)
			c.expandValue(joinKey(key, k.String()), cp)
			v.SetMapIndex(k, cp)
		}
	case reflect.Struct:
		if v.Type() == durationType {
			d := v.Addr().Interface().(*duration)
			if s, ok := d.raw.(string); ok {
				d.raw = c.expandString(key, s)
			}
			return
		}
		c.expandStruct(key, v)
	}
}

func (c *collector) expandStruct(key string, v reflect.Value) {
	t := v.Type()
	byName := map[string]reflect.Value{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := tomlName(f)
		if name == "-" {
			continue
		}
		fv := v.Field(i)
		if f.Anonymous && f.Tag.Get("toml") == "" && fv.Kind() == reflect.Struct {
			// Embedded structs' fields are keys of this table.
			c.expandStruct(key, fv)
			continue
		}
		c.expandValue(joinKey(key, name), fv)
		if fv.Kind() == reflect.String {
			byName[name] = fv
			names = append(names, name)
		}
	}
	for _, name := range names {
		secret, ok := strings.CutSuffix(name, "_file")
		if !ok {
			continue
		}
		target, ok := byName[secret]
		if !ok {
			continue
		}
		path := byName[name].String()
		if path == "" {
			continue
		}
		if target.String() != "" {
			c.add(joinKey(key, name), "%s and %s are both set: use one", secret, name)
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			// The *PathError names the path and the reason, never contents.
			c.add(joinKey(key, name), "cannot read secret file: %v", err)
			continue
		}
		s := string(data)
		if t, ok := strings.CutSuffix(s, "\n"); ok {
			s = strings.TrimSuffix(t, "\r")
		}
		if target.CanSet() {
			target.SetString(s)
		}
	}
}

// tomlName is the key a struct field is decoded from.
func tomlName(f reflect.StructField) string {
	tag := f.Tag.Get("toml")
	if name, _, _ := strings.Cut(tag, ","); name != "" {
		return name
	}
	return f.Name
}
