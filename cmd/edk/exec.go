package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edk-go/edk/controller"
	"github.com/edk-go/edk/mqttapi"
)

// Exit codes of edk exec, so scripts can tell the outcomes apart.
const (
	exitCompleted = 0
	exitFailed    = 1
	exitTimeout   = 2
)

func runExec(ctx context.Context, e *env, args []string) error {
	fs := newFlags("exec", "--hardware-id ID [flags] COMMAND [name=value ...]", e.stderr)
	var bf brokerFlags
	bf.register(fs, "primary")
	timeout := fs.Duration("timeout", 30*time.Second, "give up waiting for the final response after this long (exit code 2)")
	rawArgs := fs.String("args", "", `arguments as a JSON object, e.g. '{"power": 4700}' (instead of name=value pairs)`)
	asJSON := fs.Bool("json", false, "print every response as one JSON line instead of text")
	fs.Usage = func() {
		fmt.Fprint(e.stderr, `Usage: edk exec --hardware-id ID [flags] COMMAND [name=value ...]

Sends COMMAND to a device through an MQTT broker, prints its progress and
its final payload. Each name=value becomes an argument; the value is read
as JSON when it is valid JSON (4700, true, "text", [1,2]) and as a string
otherwise. Exit code: 0 completed, 1 error, 2 timeout.

Example: edk exec --hardware-id demo-inverter set_power power=4700

Flags:
`)
		printDefaults(fs, e.stderr)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("name the command to send, e.g. edk exec --hardware-id ID set_power power=4700")
	}
	if bf.hardwareID == "" {
		return usagef("--hardware-id is required")
	}
	name := fs.Arg(0)
	arguments, err := commandArguments(*rawArgs, fs.Args()[1:])
	if err != nil {
		return err
	}

	client, err := dialController(ctx, e, bf)
	if err != nil {
		return err
	}
	defer client.Close()

	execCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	out := newResponsePrinter(e, *asJSON)
	resp, err := client.Execute(execCtx, bf.hardwareID, bf.channelID,
		controller.Request{Name: name, Arguments: arguments}, out.print)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &exitError{exitTimeout, fmt.Errorf("no final response to %q within %s: is device %s connected to %s? (edk watch shows its traffic)", name, *timeout, bf.hardwareID, bf.url)}
	case ctx.Err() != nil:
		return &exitError{exitTimeout, fmt.Errorf("interrupted while waiting for %q", name)}
	case err != nil:
		return err
	}
	out.print(resp)
	if resp.State == mqttapi.StateError {
		return &exitError{exitFailed, errSilent}
	}
	return nil
}

// commandArguments builds the arguments object from --args or from
// name=value pairs.
func commandArguments(raw string, pairs []string) (map[string]any, error) {
	args := map[string]any{}
	if raw != "" {
		if len(pairs) > 0 {
			return nil, usagef("give arguments as --args or as name=value pairs, not both")
		}
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			return nil, usagef("--args must be a JSON object: %v", err)
		}
		return args, nil
	}
	for _, p := range pairs {
		name, value, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return nil, usagef("argument %q: want name=value", p)
		}
		var v any
		if err := json.Unmarshal([]byte(value), &v); err != nil {
			v = value
		}
		args[name] = v
	}
	if len(args) == 0 {
		return nil, nil
	}
	return args, nil
}

func dialController(ctx context.Context, e *env, bf brokerFlags) (*controller.Client, error) {
	password := bf.password
	if password == "" {
		password = e.getenv("EDK_MQTT_PASSWORD")
	}
	tlsCfg, err := bf.tlsConfig(e)
	if err != nil {
		return nil, err
	}
	client, err := controller.Dial(ctx, controller.Config{
		BrokerURL: bf.url,
		Username:  bf.username,
		Password:  password,
		TLSConfig: tlsCfg,
	})
	if err != nil {
		return nil, err
	}
	return client, nil
}

// responsePrinter prints command responses as text or JSON lines.
type responsePrinter struct {
	e      *env
	asJSON bool
}

func newResponsePrinter(e *env, asJSON bool) *responsePrinter {
	return &responsePrinter{e: e, asJSON: asJSON}
}

func (p *responsePrinter) print(r mqttapi.CommandResponse) {
	if p.asJSON {
		b, err := json.Marshal(r)
		if err != nil {
			b, _ = json.Marshal(map[string]string{"id": r.ID, "state": string(r.State), "error": err.Error()})
		}
		fmt.Fprintf(p.e.stdout, "%s\n", b)
		return
	}
	fmt.Fprintf(p.e.stdout, "%-9s %s\n", r.State, compact(r.Payload))
}

func compact(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
