// Command edk is the Enapter Device Kit's command line: it runs the demo,
// runs a device from a communication config, sends commands to devices and
// watches their traffic. Each subcommand lives in its own file; this one
// only picks the subcommand and turns its error into an exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// exitError carries an exit code other than 1, and an optional hint.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError is a mistake in the command line. cmd, when set, is the
// subcommand it belongs to ("config encode"), so the hint names its -h.
type usageError struct{ msg, cmd string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

type command struct {
	name, summary string
	run           func(ctx context.Context, env *env, args []string) error
}

func commands() []command {
	return []command{
		{"demo", "run an embedded broker and a simulated inverter, and show them talking", runDemo},
		{"hub", "run a local Enapter-compatible backend: broker, store, HTTP API", runHub},
		{"run", "run the simulated inverter against a broker from a communication config", runRun},
		{"exec", "send a command to a device and wait for its answer", runExec},
		{"watch", "print a device's telemetry, properties, logs and commands as they pass", runWatch},
		{"modbus", "probe a Modbus device by hand (modbus read, modbus scan)", runModbus},
		{"sim", "run simulated devices (sim modbus, sim fleet)", runSim},
		{"config", "work with communication configs (config decode)", runConfig},
		{"blueprint", "check a blueprint's manifest.yml, or print its Markdown reference", runBlueprint},
		{"version", "print the edk version", runVersion},
	}
}

// env is what a subcommand may touch of the outside world; tests swap it.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	readFile       func(string) ([]byte, error)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// A second Ctrl-C means "now": exit without waiting for a clean stop.
		<-ctx.Done()
		stop()
		force := make(chan os.Signal, 1)
		signal.Notify(force, os.Interrupt, syscall.SIGTERM)
		<-force
		fmt.Fprintln(os.Stderr, "edk: interrupted twice, exiting at once")
		os.Exit(130)
	}()
	e := &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, readFile: os.ReadFile}
	os.Exit(run(ctx, e, os.Args[1:]))
}

// run runs one command line and returns the process exit code.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(e.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-v" || args[0] == "-version" {
		return exitCode(e, "version", runVersion(ctx, e, args[1:]))
	}
	var names []string
	for _, c := range commands() {
		if c.name != args[0] {
			names = append(names, c.name)
			continue
		}
		err := c.run(ctx, e, args[1:])
		return exitCode(e, c.name, err)
	}
	// One line that says what to type, not the whole usage: the list is one
	// 'edk help' away.
	what := "command"
	if strings.HasPrefix(args[0], "-") {
		what = "flag"
		names = append(names, "--version")
	}
	fmt.Fprintf(e.stderr, "edk: unknown %s %q.%s Run 'edk help' for the list of commands.\n",
		what, args[0], didYouMean(args[0], names, func(s string) string { return "'edk " + s + "'" }))
	return 2
}

func exitCode(e *env, name string, err error) int {
	if err == nil {
		return 0
	}
	var se *subcommandError
	if errors.As(err, &se) {
		name = se.cmd
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.cmd != "" {
			name = ue.cmd
		}
		fmt.Fprintf(e.stderr, "edk %s: %s\nRun 'edk %s -h' for its flags.\n", name, trimCommand(name, ue.msg), name)
		return 2
	}
	if errors.Is(err, errHelpShown) {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err != errSilent {
			fmt.Fprintf(e.stderr, "edk %s: %s\n", name, trimCommand(name, ee.err.Error()))
		}
		return ee.code
	}
	fmt.Fprintf(e.stderr, "edk %s: %s\n", name, trimCommand(name, err.Error()))
	return 1
}

// trimCommand drops a package prefix that repeats the command's own name:
// "edk blueprint: blueprint: …" says it twice.
func trimCommand(name, msg string) string {
	group, _, _ := strings.Cut(name, " ") // "blueprint check" repeats "blueprint: "
	return strings.TrimPrefix(strings.TrimPrefix(msg, name+": "), group+": ")
}

// errSilent is an exitError cause that the command has already reported.
var errSilent = errors.New("already reported")

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "edk — the Enapter Device Kit\n\nUsage: edk <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'edk <command> -h' for a command's flags; 'edk --version' for the version. Start with: edk demo")
}
