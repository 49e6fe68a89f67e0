package web

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// sides rebuilds both inputs of an untrimmed edit script.
func sides(script []diffLine) (a, b []string) {
	for _, l := range script {
		switch l.Op {
		case " ":
			a, b = append(a, l.Text), append(b, l.Text)
		case "-":
			a = append(a, l.Text)
		case "+":
			b = append(b, l.Text)
		}
	}
	return a, b
}

// lcs is the length of the longest common subsequence, by dynamic
// programming: the reference for the edit count.
func lcs(a, b []string) int {
	prev := make([]int, len(b)+1)
	for i := range a {
		cur := make([]int, len(b)+1)
		for j := range b {
			if a[i] == b[j] {
				cur[j+1] = prev[j] + 1
			} else {
				cur[j+1] = max(prev[j+1], cur[j])
			}
		}
		prev = cur
	}
	return prev[len(b)]
}

func edits(script []diffLine) int {
	n := 0
	for _, l := range script {
		if l.Op != " " {
			n++
		}
	}
	return n
}

// TestMyersRandom checks on random line lists that the edit script
// rebuilds both sides and is as short as the LCS allows.
func TestMyersRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	words := []string{"a", "b", "c", "d", "e"}
	for i := range 2000 {
		a := make([]string, rng.IntN(12))
		b := make([]string, rng.IntN(12))
		for j := range a {
			a[j] = words[rng.IntN(len(words))]
		}
		for j := range b {
			b[j] = words[rng.IntN(len(words))]
		}
		script := myers(a, b)
		ga, gb := sides(script)
		if !slices.Equal(ga, a) || !slices.Equal(gb, b) {
			t.Fatalf("case %d: script %v rebuilds %v/%v, want %v/%v", i, script, ga, gb, a, b)
		}
		if want := len(a) + len(b) - 2*lcs(a, b); edits(script) != want {
			t.Fatalf("case %d: %d edits for %v -> %v, want %d", i, edits(script), a, b, want)
		}
	}
}

func TestLineDiff(t *testing.T) {
	lines := func(s string) []string { return strings.Split(s, "\n") }
	ops := func(d []diffLine) string {
		var b strings.Builder
		for _, l := range d {
			b.WriteString(l.Op + l.Text + "|")
		}
		return b.String()
	}
	for _, tc := range []struct {
		name, a, b, want string
	}{
		{"equal", "x\ny", "x\ny", ""},
		{"one changed line in a long file", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12", "1\n2\n3\n4\n5\n6\nSIX\n8\n9\n10\n11\n12",
			"~3 unchanged lines| 4| 5| 6|-7|+SIX| 8| 9| 10|~2 unchanged lines|"},
		{"pixel added before </body>", "<p>hi</p>\n</body>", "<p>hi</p>\n<img src=\"https://t.example/o/x\">\n</body>",
			" <p>hi</p>|+<img src=\"https://t.example/o/x\">| </body>|"},
		{"everything new", "", "a\nb", "-|+a|+b|"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ops(lineDiff(lines(tc.a), lines(tc.b))); got != tc.want {
				t.Errorf("diff %q, want %q", got, tc.want)
			}
		})
	}
}

// TestMyersLimit: beyond diffMaxEdits edits the middle is shown as
// replaced, which still rebuilds both sides.
func TestMyersLimit(t *testing.T) {
	var a, b []string
	for i := range diffMaxEdits {
		a = append(a, "a"+strings.Repeat("x", i%7)+string(rune('0'+i%10)))
		b = append(b, "b"+string(rune('0'+i%10)))
	}
	script := myers(a, b)
	ga, gb := sides(script)
	if !slices.Equal(ga, a) || !slices.Equal(gb, b) {
		t.Fatal("the fallback script does not rebuild both sides")
	}
}

func TestHTMLLines(t *testing.T) {
	long := "<table><tr><td style=\"color:red\">one</td><td>two</td></tr></table>" + strings.Repeat("<span>x</span>", 20)
	got := htmlLines("<p>short</p>\r\n" + long)
	if got[0] != "<p>short</p>" || got[1] != "<table>" || got[3] != "<td style=\"color:red\">one" {
		t.Errorf("htmlLines: %q", got[:5])
	}
	if strings.Join(got[1:], "") != long {
		t.Error("splitting lost bytes")
	}
}
