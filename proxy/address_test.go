package proxy

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

func TestCheckAddress(t *testing.T) {
	f, err := os.Open("testdata/addresses.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	cases := 0
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" || text[0] == '#' {
			continue
		}
		verdict, addr, ok := strings.Cut(text, " ")
		if !ok {
			t.Fatalf("addresses.txt:%d: no address", line)
		}
		addr = strings.TrimSpace(addr)
		cases++
		var wantPlain, wantUTF8 error
		switch verdict {
		case "ok":
		case "utf8":
			wantPlain = errAddrUTF8
		case "bad":
			wantPlain, wantUTF8 = errAddrSyntax, errAddrSyntax
		default:
			t.Fatalf("addresses.txt:%d: verdict %q", line, verdict)
		}
		if got := checkAddress(addr, false); got != wantPlain {
			t.Errorf("addresses.txt:%d: checkAddress(%q, false) = %v, want %v", line, addr, got, wantPlain)
		}
		if got := checkAddress(addr, true); got != wantUTF8 {
			t.Errorf("addresses.txt:%d: checkAddress(%q, true) = %v, want %v", line, addr, got, wantUTF8)
		}
	}
	if cases == 0 {
		t.Fatal("no cases")
	}
	if checkAddress("us\xffer@example.com", true) != errAddrSyntax {
		t.Error("invalid UTF-8 accepted")
	}
}
