// Package track implements click, open and bounce tracking tokens for
// smtpgate: pure transforms of message parts plus the HTTP handler that
// redeems the tokens. Nothing here touches the network or the store.
//
// A token is a signed, self-contained record (kind, message id, recipient,
// issue time and, for clicks, the original URL; see Codec), so redeeming a
// click needs no database read and survives the loss of the database.
// Tokens are signed, not encrypted: anyone holding a link can read the
// recipient address and the destination URL inside it, which are the
// recipient's own address and a URL from the recipient's own mail.
//
// Rewriter turns the links of an HTML part (RewriteHTML) or a text part
// (RewriteText) into {PublicURL}/c/{token} and inserts an open pixel
// {PublicURL}/o/{token} (AddPixel, or RewriteHTML with Options.OpenPixel
// to do both in one pass). HTML is rewritten by splicing the raw bytes, so
// everything but the rewritten href values stays byte for byte; the
// tokenizer that finds them (features/internal/htmlscan) mirrors
// golang.org/x/net/html's and is fuzzed against it.
//
// NewHandler serves GET and HEAD on /c/{token} (302 to the original URL)
// and /o/{token} (a transparent GIF), and hands each GET to a one-method
// Recorder as an Event. Mount it at the root of the tracking host, or behind
// http.StripPrefix when PublicURL has a path.
package track
