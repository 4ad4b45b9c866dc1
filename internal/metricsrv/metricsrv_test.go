package metricsrv_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/edk-go/edk/internal/metricsrv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitLimit = 10 * time.Second

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeUntilCancelled(t *testing.T) {
	reg := metricsrv.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "edk_test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- metricsrv.Serve(ctx, "127.0.0.1:0", reg, nil, func(a string) { ready <- a }) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	case <-time.After(waitLimit):
		t.Fatal("Serve never became ready")
	}
	defer http.DefaultClient.CloseIdleConnections()

	code, body := get(t, "http://"+addr+metricsrv.Path)
	for _, want := range []string{"edk_test_things_total 3", "go_goroutines ", "process_cpu_seconds_total "} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("GET /metrics: %d, lacks %q:\n%s", code, want, body)
		}
	}
	if code, _ := get(t, "http://"+addr+"/other"); code != http.StatusNotFound {
		t.Fatalf("GET /other: %d", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("still listening after Serve returned")
	}
}

func TestServeAddrTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = metricsrv.Serve(context.Background(), ln.Addr().String(), metricsrv.NewRegistry(), nil, func(string) {
		t.Error("ready called although listening failed")
	})
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "--metrics") || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("err = %v, want address in use, naming the address and --metrics", err)
	}
}

func TestStartAndStop(t *testing.T) {
	reg := metricsrv.NewRegistry()
	addr, stop, err := metricsrv.Start("127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, "http://"+addr+metricsrv.Path); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("scrape: %d %.200s", code, body)
	}
	stop()
	if _, err := http.Get("http://" + addr + metricsrv.Path); err == nil {
		t.Fatal("still serving after stop")
	}

	// A taken address is an error from Start, with no server left behind.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, _, err := metricsrv.Start(ln.Addr().String(), reg, nil); err == nil || !strings.Contains(err.Error(), "--metrics") {
		t.Fatalf("start on a taken address: %v, want an error naming --metrics", err)
	}
}

func TestProfilesOnlyWhenAsked(t *testing.T) {
	for _, profiles := range []bool{false, true} {
		var opts []metricsrv.Option
		if profiles {
			opts = append(opts, metricsrv.WithProfiles())
		}
		addr, stop, err := metricsrv.Start("127.0.0.1:0", metricsrv.NewRegistry(), nil, opts...)
		if err != nil {
			t.Fatal(err)
		}
		code, body := get(t, "http://"+addr+metricsrv.ProfilesPath+"goroutine?debug=1")
		if profiles && (code != http.StatusOK || !strings.Contains(body, "goroutine profile:")) {
			t.Errorf("with profiles: GET goroutine profile: %d %.200s", code, body)
		}
		if !profiles && code != http.StatusNotFound {
			t.Errorf("without profiles: GET goroutine profile: %d, want 404", code)
		}
		if code, _ := get(t, "http://"+addr+metricsrv.Path); code != http.StatusOK {
			t.Errorf("profiles %v: GET /metrics: %d", profiles, code)
		}
		http.DefaultClient.CloseIdleConnections()
		stop()
	}
}
