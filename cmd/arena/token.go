package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/arena-mesh/arena/edge/auth"
)

// runToken implements `arena token`: it prints an HS256 client token and
// a newline to stdout. Flags: --secret (or ARENA_TOKEN_SECRET), --user,
// --pub and --sub (repeatable, or comma-separated), --ttl (default 1h).
// -h prints usage to stderr and returns flag.ErrHelp.
func runToken(args []string, stdout, stderr io.Writer) error {
	return tokenCommand(args, os.Getenv, time.Now(), stdout, stderr)
}

// tokenCommand is runToken with its environment and clock passed in.
func tokenCommand(args []string, getenv func(string) string, now time.Time, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("arena token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("secret", "", "HS256 `secret` shared with the server (default $ARENA_TOKEN_SECRET)")
	user := fs.String("user", "", "user `id`: the token's sub (required)")
	var pub, sub patternList
	fs.Var(&pub, "pub", "room `pattern` the user may publish to (repeatable; {user} stands for the user id)")
	fs.Var(&sub, "sub", "room `pattern` the user may subscribe to and read (repeatable)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("arena token: unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	key := *secret
	if key == "" {
		key = getenv("ARENA_TOKEN_SECRET")
	}
	if key == "" {
		return errors.New("arena token: no secret: give --secret or set ARENA_TOKEN_SECRET (the server's --token-secret)")
	}
	if *user == "" {
		return errors.New("arena token: --user is required")
	}
	tok, err := auth.Sign([]byte(key), *user, pub, sub, *ttl, now)
	if err != nil {
		return fmt.Errorf("arena token: %w", err)
	}
	if len(pub) == 0 && len(sub) == 0 {
		fmt.Fprintln(stderr, "arena token: warning: the token grants no room (give --pub and --sub patterns)")
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// patternList is a repeatable flag; each value may also be a
// comma-separated list (a comma never appears in a room pattern).
type patternList []string

func (l *patternList) String() string { return strings.Join(*l, ",") }

func (l *patternList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			if err := auth.CheckPattern(p); err != nil {
				return err
			}
			*l = append(*l, p)
		}
	}
	return nil
}
