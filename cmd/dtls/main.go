// Command dtls is the command-line tool of the dtls-go library: a DTLS 1.3
// and 1.2 echo server and a line-oriented client, the Go counterparts of mbedTLS's
// dtls_server and dtls_client sample programs.
//
//	dtls server [flags]   echo every datagram back to its sender
//	dtls client [flags]   send stdin lines as datagrams, print what comes back
//	dtls help [command]   show usage
//
// Each subcommand lives in its own file and registers itself in commands.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// processStart is the origin of the timestamps in -v output.
var processStart = time.Now()

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the operation failed: handshake, network, I/O
	exitUsage = 2 // bad flags or arguments (the flag package's convention)
)

// stdio is what a subcommand talks to, so that tests can run one in-process.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// command is one subcommand. run gets the arguments after the subcommand's
// name and returns the exit status; it returns when ctx is cancelled
// (SIGINT/SIGTERM) or its work is done.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, std stdio) int
}

// commands is filled in by the subcommands' files in init, so adding one
// (demo, analyze) touches no other file.
var commands []*command

func register(c *command) { commands = append(commands, c) }

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], stdio{os.Stdin, os.Stdout, os.Stderr})
	stop()
	os.Exit(code)
}

// dispatch runs the subcommand named by args[0].
func dispatch(ctx context.Context, args []string, std stdio) int {
	if len(args) == 0 {
		usage(std.err)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				return c.run(ctx, []string{"-h"}, std)
			}
			fmt.Fprintf(std.err, "dtls help: unknown command %q\n", args[1])
			usage(std.err)
			return exitUsage
		}
		usage(std.out)
		return exitOK
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(std.err, "dtls: unknown command %q\n", args[0])
		usage(std.err)
		return exitUsage
	}
	return c.run(ctx, args[1:], std)
}

func usage(w io.Writer) {
	fmt.Fprint(w, "dtls is a DTLS 1.3 and 1.2 tool built on github.com/dtls-go/dtls.\n\nUsage:\n\n\tdtls <command> [flags]\n\nCommands:\n\n")
	for _, c := range commands {
		fmt.Fprintf(w, "\t%-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun 'dtls help <command>' for a command's flags.\n")
}
