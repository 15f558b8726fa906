package config

import "testing"

func TestLineIndex(t *testing.T) {
	src := `a = 1
[t."x.y"]
k = { n = 2, m.o = 3 }
[[arr]]
v = 1
[[arr.sub]]
w = 1
[[arr]]
v = 2
[[arr.sub]]
w = 2
[[arr.sub]]
w = 3
`
	ix := buildLineIndex([]byte(src))
	for key, want := range map[string]int{
		"a": 1, `t."x.y"`: 2, `t."x.y".k.n`: 3, `t."x.y".k.m.o`: 3,
		"arr[0]": 4, "arr[0].v": 5, "arr[0].sub[0].w": 7,
		"arr[1].v": 9, "arr[1].sub[0].w": 11, "arr[1].sub[1].w": 13,
		"arr[1].sub[1].missing": 12, `t."x.y".nope`: 2, "nothing": 0,
	} {
		if got := ix.line(key); got != want {
			t.Errorf("line(%s) = %d, want %d", key, got, want)
		}
	}
	if got := ix.indexed("arr.sub.w", 2); got != "arr[1].sub[1].w" {
		t.Errorf("third arr.sub.w = %q", got)
	}
	if got := trimIndexes(`arr[1].sub[0]."q[1]"`); got != `arr.sub."q[1]"` {
		t.Errorf("trimIndexes = %q", got)
	}
	if got := parentKey(`t."x.y"`); got != "t" {
		t.Errorf("parentKey = %q", got)
	}
}
