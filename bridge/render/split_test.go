package render_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/botbridge/botbridge/bridge/render"
)

func TestSplitText(t *testing.T) {
	cases := []struct {
		name string
		in   string
		max  int
		want []string
	}{
		{"fits", "hello", 10, []string{"hello"}},
		{"empty", "", 10, []string{""}},
		{"at a paragraph", "first para\n\nsecond para", 15, []string{"first para", "second para"}},
		{"at a line", "line one\nline two", 12, []string{"line one", "line two"}},
		{"between words", "one two three four", 9, []string{"one two", "three", "four"}},
		{"anywhere when one word is too long", "abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"never inside a character", "ééééé", 3, []string{"é", "é", "é", "é", "é"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := render.SplitText(c.in, c.max, nil)
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("SplitText(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
			}
			for _, p := range got {
				if len(p) > c.max || !utf8.ValidString(p) {
					t.Errorf("piece %q is over %d bytes or cuts a character", p, c.max)
				}
			}
		})
	}
	t.Run("by a measure of the caller", func(t *testing.T) {
		got := render.SplitText("ab ab ab", 2, utf8.RuneCountInString)
		if strings.Join(got, "|") != "ab|ab|ab" {
			t.Errorf("got %q", got)
		}
	})
}
