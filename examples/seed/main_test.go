package main_test

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// The seed example, built and run as a user would, against the embedded
// broker: properties vendor/fw_ver, and any command answered with
// {"new_power": 4700}.
func TestSeed(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "seed")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b := testutil.StartBroker(t)
	host, port, _ := net.SplitHostPort(b.Addr())
	p, _ := strconv.Atoi(port)
	blob, err := commconfig.Config{Version: commconfig.Version3, HardwareID: "seed", ChannelID: "primary",
		Host: host, Port: p, Protocol: commconfig.ProtocolMQTT}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	cloud := testutil.Connect(t, b.Addr())
	props := testutil.Subscribe(t, cloud, "v1/from/seed/primary/v1/properties")
	responses := testutil.Subscribe(t, cloud, "v1/from/seed/primary/v1/command/responses")

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), commconfig.EnvConfig+"="+blob)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })

	pr, err := mqttapi.DecodeProperties(testutil.Receive(t, props).Payload())
	if err != nil || pr.Values["vendor"] != "Enapter" || pr.Values["fw_ver"] != "1.0.0" {
		t.Fatalf("properties = %+v, %v", pr, err)
	}
	for i, name := range []string{"set_power", "anything_else"} {
		req, _ := json.Marshal(map[string]any{"id": strconv.Itoa(i), "name": name})
		if err := testutil.Wait(cloud.Publish("v1/to/seed/primary/v1/command/requests", 1, false, req)); err != nil {
			t.Fatal(err)
		}
		r, err := mqttapi.DecodeCommandResponse(testutil.Receive(t, responses).Payload())
		if err != nil || r.State != mqttapi.StateCompleted || string(r.Payload) != `{"new_power":4700}` {
			t.Fatalf("%s: response %+v %s, %v", name, r, r.Payload, err)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("exit after SIGINT: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGINT")
	}
}
