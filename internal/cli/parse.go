package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ErrUsage marks a usage error: an unknown flag, a bad flag value, a
// missing or extra argument. A program prints the command's usage after
// it and exits 2. Wrap it (fmt.Errorf("%w: ...", cli.ErrUsage)) or use
// Usagef.
var ErrUsage = errors.New("usage")

// Usagef returns a usage error with the formatted message.
func Usagef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
}

// ParseError is what Parse returns when it does not parse: a request for
// help (errors.Is(err, flag.ErrHelp)) or a usage error (errors.Is(err,
// ErrUsage)). Flags is the command's flag set, for the help text.
type ParseError struct {
	Flags *flag.FlagSet
	// NArgs is the number of arguments the command takes, or -1 when
	// Parse was not told.
	NArgs int
	Err   error
}

func (e *ParseError) Error() string { return e.Err.Error() }

func (e *ParseError) Unwrap() []error {
	if errors.Is(e.Err, flag.ErrHelp) {
		return []error{e.Err}
	}
	return []error{ErrUsage, e.Err}
}

// Parse parses args into fs and returns the positional arguments. Flags
// may come before, between or after them; everything after "--" is
// positional. -h, -help and --help give a *ParseError that is
// flag.ErrHelp; any other parse failure one that is ErrUsage. A command
// calls it before doing anything else: the program learns a command's
// flags by running it with --help.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			return nil, &ParseError{Flags: fs, NArgs: -1, Err: flag.ErrHelp}
		}
		if err != nil {
			return nil, &ParseError{Flags: fs, NArgs: -1, Err: flagError(err)}
		}
		rest := fs.Args()
		if used := args[:len(args)-len(rest)]; len(used) > 0 && used[len(used)-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// ParseN is Parse for a command that takes exactly n arguments.
func ParseN(fs *flag.FlagSet, args []string, n int) ([]string, error) {
	pos, err := Parse(fs, args)
	var pe *ParseError
	if errors.As(err, &pe) {
		pe.NArgs = n
	}
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		return nil, &ParseError{Flags: fs, NArgs: n, Err: fmt.Errorf("takes %d argument(s), got %d", n, len(pos))}
	}
	return pos, nil
}

// flagError rewords the flag package's "flag provided but not defined".
func flagError(err error) error {
	if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: "); ok {
		return fmt.Errorf("unknown flag %s", dashes(strings.TrimLeft(name, "-")))
	}
	return err
}

// dashes writes a flag name as the help does: -o, --server.
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// isBool reports whether a flag takes no value.
func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// Exit returns an error that only sets the exit status: the command has
// said why already (e.g. in its log).
func Exit(code int) error { return &ExitError{Code: code} }

// ExitError is Exit's error.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }
