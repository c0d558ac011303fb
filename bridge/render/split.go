package render

import (
	"strings"
	"unicode/utf8"
)

// SplitText cuts s into pieces that each fit (size(piece) <= max; size nil
// counts bytes), cutting at a paragraph break where it can, else at a line
// break, else between words, else anywhere between two characters. Pieces
// lose the spaces and line breaks around the cuts; s itself comes back as
// the only piece when it fits.
func SplitText(s string, max int, size func(string) int) []string {
	if size == nil {
		size = func(s string) int { return len(s) }
	}
	var out []string
	for {
		if size(s) <= max {
			if s != "" || len(out) == 0 {
				out = append(out, s)
			}
			return out
		}
		cut := cutPoint(s, max, size)
		if piece := strings.TrimRight(s[:cut], " \n"); piece != "" {
			out = append(out, piece)
		}
		s = strings.TrimLeft(s[cut:], " \n")
		if s == "" {
			return out
		}
	}
}

// cutPoint finds where to cut s so that the first piece fits.
func cutPoint(s string, max int, size func(string) int) int {
	limit := min(len(s), max)
	for limit > 0 && size(s[:limit]) > max {
		limit /= 2
	}
	for limit > 0 && !utf8.RuneStart(s[limit]) {
		limit--
	}
	head := s[:limit]
	for _, sep := range []string{"\n\n", "\n", " "} {
		if i := strings.LastIndex(head, sep); i > limit/2 {
			return i + len(sep)
		}
	}
	if limit == 0 {
		_, n := utf8.DecodeRuneInString(s)
		return n
	}
	return limit
}
