// Package features owns the content features smtpgate applies to a message
// between the SMTP front door and the store: header directives (features/
// directives), CSS inlining (features/inline), click and open tracking
// (features/track) and bounce tracking (features/bounce). Every transform is
// pure: no network, no store.
package features

// Set is the resolved feature set for one message: first from the policy for
// the login, then overridden by header directives where the login allows it.
type Set struct {
	InlineCSS      bool `json:"inline_css"`
	TrackClicks    bool `json:"track_clicks"`     // links in HTML parts
	TrackTextLinks bool `json:"track_text_links"` // URLs in text/plain parts too
	TrackOpens     bool `json:"track_opens"`
	TrackBounces   bool `json:"track_bounces"`
	PreventScam    bool `json:"preventscam"` // don't rewrite a link whose text is its own URL
}

// Names of the features as they appear in the policy's `overridable` list and
// in explanations.
const (
	InlineCSS      = "inline_css"
	TrackClicks    = "track_clicks"
	TrackTextLinks = "track_text_links"
	TrackOpens     = "track_opens"
	TrackBounces   = "track_bounces"
	PreventScam    = "preventscam"
)

// AllNames lists every feature name, in the order they apply.
var AllNames = []string{InlineCSS, TrackClicks, TrackTextLinks, TrackOpens, TrackBounces, PreventScam}

// Get returns the value of a named feature and whether the name is known.
func (s Set) Get(name string) (bool, bool) {
	switch name {
	case InlineCSS:
		return s.InlineCSS, true
	case TrackClicks:
		return s.TrackClicks, true
	case TrackTextLinks:
		return s.TrackTextLinks, true
	case TrackOpens:
		return s.TrackOpens, true
	case TrackBounces:
		return s.TrackBounces, true
	case PreventScam:
		return s.PreventScam, true
	}
	return false, false
}

// With returns a copy of s with the named feature set to v; an unknown name
// leaves s unchanged and returns false.
func (s Set) With(name string, v bool) (Set, bool) {
	switch name {
	case InlineCSS:
		s.InlineCSS = v
	case TrackClicks:
		s.TrackClicks = v
	case TrackTextLinks:
		s.TrackTextLinks = v
	case TrackOpens:
		s.TrackOpens = v
	case TrackBounces:
		s.TrackBounces = v
	case PreventScam:
		s.PreventScam = v
	default:
		return s, false
	}
	return s, true
}
