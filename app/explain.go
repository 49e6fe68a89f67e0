package app

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/smtpgate/smtpgate/features"
	"github.com/smtpgate/smtpgate/features/directives"
	"github.com/smtpgate/smtpgate/features/pipeline"
	"github.com/smtpgate/smtpgate/policy"
)

// Explain runs a message through the pipeline for login exactly as a
// submission would, without storing or sending anything, and writes what the
// login's features resolve to and why: the policy's value, each directive
// header's outcome (applied, refused because the feature is not overridable,
// malformed, ignored), and what the transforms would change. A message a
// policy with on_error = "reject" would refuse is reported as such, with nil
// error.
func Explain(w io.Writer, pol *policy.Policy, login string, raw []byte) error {
	plan, err := pol.Resolve(login)
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	tr, err := buildTransforms(pol)
	if err != nil {
		return err
	}
	tr.pipeline.Tracker = withFixedClock(tr.pipeline.Tracker)
	out, err := tr.pipeline.Apply(pipeline.Input{
		Raw: raw, Base: plan.Features, Overridable: plan.Overridable,
		MessageID: "explain", MailFrom: "sender@explain.invalid", Recipients: []string{"rcpt@explain.invalid"},
	})
	var mal *directives.MalformedError
	switch {
	case errors.As(err, &mal):
		fmt.Fprintf(w, "login %s: the message would be REFUSED: 550 5.6.0 %s\n", login, mal.Error())
		return nil
	case err != nil:
		return fmt.Errorf("explain: %w", err)
	}

	fmt.Fprintf(w, "login %s: route %s (server mode %s)\n", login, plan.Route, pol.Server.Mode)
	src := "all off (the credential names no features block)"
	if c := pol.Credentials[login]; c != nil && c.FeaturesName != "" {
		src = fmt.Sprintf("features %q", c.FeaturesName)
	}
	fmt.Fprintf(w, "policy: %s; overridable by headers: %s\n\n", src, listOrNone(plan.Overridable))

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tPOLICY\tFINAL\tWHY")
	final := out.Directives.Features
	for _, name := range features.AllNames {
		base, _ := plan.Features.Get(name)
		got, _ := final.Get(name)
		why := "policy"
		if base != got {
			why = "header: " + changedBy(tr.pipeline.Directives, plan, out.Directives.Records, name)
		} else if refused := refusedFor(out.Directives.Records, name); refused != "" {
			why = "policy; header refused: " + refused
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, onOff(base), onOff(got), why)
	}
	tw.Flush() //nolint:errcheck

	if len(out.Directives.Records) > 0 {
		fmt.Fprintln(w, "\ndirective headers (all are stripped):")
		for _, r := range out.Directives.Records {
			fmt.Fprintf(w, "  %s: %s  -> %s", r.Header, r.Value, r.Outcome)
			if r.Reason != "" {
				fmt.Fprintf(w, " (%s)", r.Reason)
			}
			fmt.Fprintln(w)
		}
	}
	if len(out.Directives.Tags) > 0 {
		fmt.Fprintf(w, "tags: %s\n", strings.Join(out.Directives.Tags, ", "))
	}
	if len(out.Directives.Metadata) > 0 {
		keys := make([]string, 0, len(out.Directives.Metadata))
		for k := range out.Directives.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "metadata %s = %s\n", k, out.Directives.Metadata[k])
		}
	}
	if !out.Directives.SendAt.IsZero() {
		fmt.Fprintf(w, "send at: %s\n", out.Directives.SendAt.Format(time.RFC3339))
	}
	s := out.Stats
	fmt.Fprintf(w, "\nchanges: %d HTML and %d text body parts; CSS inlined in %d; %d links tracked; %d open pixel(s) added",
		s.HTMLParts, s.TextParts, s.CSSInlined, s.LinksTracked, s.PixelsAdded)
	if out.MailFrom != "sender@explain.invalid" {
		fmt.Fprintf(w, "; envelope sender becomes %s", out.MailFrom)
	}
	fmt.Fprintln(w)
	for _, n := range out.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

// changedBy names the applied directive headers that change feature on
// their own: each is replayed alone through directives.Apply.
func changedBy(cfg directives.Config, plan policy.Plan, rs []directives.Record, feature string) string {
	var out []string
	for _, r := range rs {
		if r.Outcome != directives.Applied {
			continue
		}
		var h textproto.Header
		h.Add(r.Header, r.Value)
		res, err := directives.Apply(&h, cfg, plan.Features, plan.Overridable)
		if err != nil {
			continue
		}
		before, _ := plan.Features.Get(feature)
		after, _ := res.Features.Get(feature)
		if before != after {
			out = append(out, r.Header+": "+r.Value)
		}
	}
	if len(out) == 0 {
		return "directive headers together"
	}
	return strings.Join(out, ", ")
}

// refusedFor finds the refused headers whose reason names feature.
func refusedFor(rs []directives.Record, feature string) string {
	var out []string
	for _, r := range rs {
		if r.Outcome == directives.Refused && strings.Contains(r.Reason, feature) {
			out = append(out, r.Header+": "+r.Value)
		}
	}
	return strings.Join(out, ", ")
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
