package pipeline

import (
	"bytes"
	"testing"

	"github.com/smtpgate/smtpgate/features"
	"github.com/smtpgate/smtpgate/features/directives"
)

// TestPixelInClickPass: with click tracking and the open pixel both on, the
// pixel goes into the main HTML body during the click-tracking pass. For
// every corpus message the result must be byte for byte what two separate
// runs give, clicks first and then the pixel alone (AddPixel), and Stats must
// count the same links and the same pixel.
func TestPixelInClickPass(t *testing.T) {
	p := newKit(t).pipeline(directives.Config{})
	apply := func(t *testing.T, tc testCase, raw []byte, set features.Set) *Output {
		t.Helper()
		in := tc.input()
		in.Raw, in.Base, in.Overridable = raw, set, nil
		out, err := p.Apply(in)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	both := 0
	for _, name := range corpusNames(t) {
		t.Run(name, func(t *testing.T) {
			tc := readCase(t, name)
			one := apply(t, tc, tc.raw, features.Set{TrackClicks: true, TrackOpens: true})
			clicks := apply(t, tc, tc.raw, features.Set{TrackClicks: true})
			pixel := apply(t, tc, clicks.Raw, features.Set{TrackOpens: true})
			if !bytes.Equal(one.Raw, pixel.Raw) {
				t.Errorf("one pass differs from clicks then pixel:\n one %s\n two %s", quote(one.Raw), quote(pixel.Raw))
			}
			want := clicks.Stats
			want.PixelsAdded = pixel.Stats.PixelsAdded
			if one.Stats != want {
				t.Errorf("Stats = %+v, want %+v", one.Stats, want)
			}
			if one.Stats.PixelsAdded == 1 && one.Stats.LinksTracked > 0 {
				both++
			}
		})
	}
	if both < 10 {
		t.Errorf("only %d corpus messages got both tracked links and the pixel", both)
	}
}
