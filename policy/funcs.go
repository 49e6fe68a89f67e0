package policy

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// maxFileSize bounds what file() reads: policies hold keys and hashes, not data.
const maxFileSize = 1 << 20

// functions returns the functions a policy may call:
//
//	env("NAME")      the value of an environment variable; an error if it is unset
//	file("path")     the contents of a file, relative to the policy file's directory
//	trimspace(s)     s without leading and trailing white space
func functions(dir string, lookupEnv func(string) (string, bool)) map[string]function.Function {
	return map[string]function.Function{
		"env": stringFunc("name", func(name string) (string, error) {
			v, ok := lookupEnv(name)
			if !ok {
				return "", fmt.Errorf("environment variable %q is not set", name)
			}
			return v, nil
		}),
		"file": stringFunc("path", func(name string) (string, error) {
			return readFile(resolvePath(dir, name))
		}),
		"trimspace": stringFunc("s", func(s string) (string, error) {
			return strings.TrimSpace(s), nil
		}),
	}
}

// stringFunc makes a function of one string argument that returns a string.
func stringFunc(param string, impl func(string) (string, error)) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: param, Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			s, err := impl(args[0].AsString())
			if err != nil {
				return cty.UnknownVal(cty.String), err
			}
			return cty.StringVal(s), nil
		},
	})
}

// resolvePath makes a relative path relative to dir.
func resolvePath(dir, name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}

// readFile reads a regular file of at most maxFileSize bytes.
func readFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", name)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > maxFileSize {
		return "", fmt.Errorf("%s is larger than %d bytes", name, maxFileSize)
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%s is not UTF-8 text", name)
	}
	return string(b), nil
}
