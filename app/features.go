package app

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/smtpgate/smtpgate/features/bounce"
	"github.com/smtpgate/smtpgate/features/directives"
	"github.com/smtpgate/smtpgate/features/inline"
	"github.com/smtpgate/smtpgate/features/pipeline"
	"github.com/smtpgate/smtpgate/features/track"
	"github.com/smtpgate/smtpgate/policy"
)

// transforms are the feature transforms built from one policy.
type transforms struct {
	pipeline *pipeline.Pipeline
	codec    *track.Codec // nil without a tracking secret
}

// buildTransforms makes the content pipeline for pol. The click/open and the
// bounce codecs get keys derived from the one tracking secret under
// different labels, so a token of one kind can never pass as the other.
func buildTransforms(pol *policy.Policy) (*transforms, error) {
	t := &transforms{pipeline: &pipeline.Pipeline{
		Inliner: inline.New(inline.Options{}),
		Directives: directives.Config{
			Prefixes:        pol.Directives.Prefixes,
			Vendors:         pol.Directives.Vendors,
			RejectMalformed: pol.Directives.OnError == policy.OnErrorReject,
		},
	}}
	tr := pol.Tracking
	if tr.Secret == "" {
		return t, nil
	}
	codec, err := track.NewCodec(deriveKey(tr.Secret, "smtpgate tracking links v1"))
	if err != nil {
		return nil, fmt.Errorf("app: tracking: %w", err)
	}
	t.codec = codec
	if tr.PublicURL != "" {
		rw, err := track.NewRewriter(codec, tr.PublicURL)
		if err != nil {
			return nil, fmt.Errorf("app: tracking public_url: %w", err)
		}
		t.pipeline.Tracker = rw
	}
	if tr.BounceDomain != "" {
		bc, err := bounce.NewCodec(deriveKey(tr.Secret, "smtpgate bounce addresses v1"), tr.BounceDomain)
		if err != nil {
			return nil, fmt.Errorf("app: tracking bounce_domain: %w", err)
		}
		t.pipeline.Bounce = bc
	}
	return t, nil
}

func deriveKey(secret, label string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(label))
	return m.Sum(nil)
}

// withFixedClock returns a copy of rw that stamps tokens with the Unix epoch,
// so explanations are reproducible; nil stays nil.
func withFixedClock(rw *track.Rewriter) *track.Rewriter {
	if rw == nil {
		return nil
	}
	c := *rw
	c.Now = func() time.Time { return time.Unix(0, 0).UTC() }
	return &c
}
