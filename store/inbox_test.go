package store

import (
	"reflect"
	"testing"
)

func TestInboxes(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{nil, []string{}},
		{[]string{"Bob@Example.ORG", "bob@example.org", " carol@example.org\t", "", "  "}, []string{"bob@example.org", "carol@example.org"}},
		{[]string{"ÉLodie@Example.fr", "élodie@example.fr"}, []string{"élodie@example.fr"}},
	}
	for _, tt := range tests {
		if got := Inboxes(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Inboxes(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
