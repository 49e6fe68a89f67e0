package app

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/smtpgate/smtpgate/relay/dkim"
)

// KeygenOptions say what DKIMKeygen makes.
type KeygenOptions struct {
	Domain, Selector string
	Algorithm        string // "ed25519" or "rsa"
	Bits             int    // RSA modulus size; 0 = 2048
	Out              string // key file; default "<selector>.<domain>.<algorithm>.key"
	Force            bool   // overwrite an existing key file
}

// DKIMKeygen writes a new DKIM private key (PKCS #8 PEM, mode 0600) and
// prints the DNS TXT record that publishes it, split into strings of at most
// 255 characters as zone files need, and the policy block that uses it.
func DKIMKeygen(w io.Writer, o KeygenOptions) error {
	if o.Domain == "" || o.Selector == "" {
		return errors.New("dkim keygen: --domain and --selector are required")
	}
	if o.Algorithm == "" {
		o.Algorithm = dkim.AlgorithmEd25519
	}
	if o.Out == "" {
		o.Out = fmt.Sprintf("%s.%s.%s.key", o.Selector, o.Domain, o.Algorithm)
	}
	signer, pemKey, err := dkim.Generate(o.Algorithm, o.Bits)
	if err != nil {
		return err
	}
	// Check the pair the way the signer will load it.
	if _, err := dkim.ParseKey(o.Domain, o.Selector, o.Algorithm, pemKey); err != nil {
		return err
	}
	record, err := dkim.DNSRecord(signer.Public())
	if err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if o.Force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(o.Out, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("dkim keygen: %s exists; use --force to replace it", o.Out)
	}
	if err != nil {
		return fmt.Errorf("dkim keygen: %w", err)
	}
	if _, err := f.Write(pemKey); err != nil {
		f.Close()
		return fmt.Errorf("dkim keygen: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("dkim keygen: %w", err)
	}

	fmt.Fprintf(w, "wrote %s (%s private key, keep it secret)\n\n", o.Out, o.Algorithm)
	fmt.Fprintf(w, "Publish this DNS record:\n\n%s. IN TXT %s\n\n", dkim.RecordName(o.Selector, o.Domain), quoteTXT(record))
	fmt.Fprintf(w, "and add to the policy:\n\ndkim %q {\n  selector  = %q\n  algorithm = %q\n  key_file  = %q\n}\n",
		strings.ToLower(o.Domain), o.Selector, o.Algorithm, o.Out)
	return nil
}

// quoteTXT splits a TXT value into quoted strings of at most 255 bytes.
func quoteTXT(v string) string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, `"`+v[:255]+`"`)
		v = v[255:]
	}
	parts = append(parts, `"`+v+`"`)
	return strings.Join(parts, " ")
}
