package js

import (
	"io/fs"
	"regexp"
	"testing"
)

// TestDeclarationsCoverExports: every name arena.js exports is declared
// in arena.d.ts, so TypeScript users see the whole API.
func TestDeclarationsCoverExports(t *testing.T) {
	js, err := fs.ReadFile(FS, "arena.js")
	if err != nil {
		t.Fatal(err)
	}
	dts, err := fs.ReadFile(FS, "arena.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	exports := regexp.MustCompile(`(?m)^export (?:async )?(?:class|function|const) ([A-Za-z_]\w*)`).FindAllSubmatch(js, -1)
	if len(exports) < 5 {
		t.Fatalf("found %d exports in arena.js; the pattern no longer matches the file", len(exports))
	}
	for _, m := range exports {
		name := string(m[1])
		decl := regexp.MustCompile(`(?m)^export (?:declare )?(?:class|function|const) ` + name + `\b`)
		if !decl.Match(dts) {
			t.Errorf("arena.js exports %s, arena.d.ts does not declare it", name)
		}
	}
}
