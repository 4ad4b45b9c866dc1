package auth_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edk-go/edk/hub/auth"
	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/internal/testutil"
)

// TestLoginBackoff guesses a device's password as an attacker would: after
// the free failures that user name gets no password check at all from the
// address, so even the right password is refused until the backoff ends,
// while other user names from the address and a device certificate still
// get in.
func TestLoginBackoff(t *testing.T) {
	e := newEnv(t, auth.Options{LoginLimits: auth.LoginLimits{FreeFailures: 3, Backoff: time.Hour}})
	a, b := e.provision("HWA"), e.provision("HWB")
	for i := range 4 {
		mustRefuse(t, fmt.Sprintf("guess %d", i), e.opts(a.user, fmt.Sprintf("guess-%d", i)))
	}
	mustRefuse(t, "the right password for a blocked user name", e.opts(a.user, a.pass))
	if !e.log.WaitFor("too many failed logins from this address with this user name", waitLimit) {
		t.Error("the block is not explained in the log")
	}
	if _, err := connect(t, e.opts(b.user, b.pass)); err != nil {
		t.Fatalf("another device from the same address: %v", err)
	}
	if _, err := connect(t, e.tlsOpts(a.tls)); err != nil {
		t.Fatalf("certificate login of the blocked device: %v", err)
	}
	e.noSecretsLogged(a, b)
}

// TestLoginFloodFromOneAddress guesses under ever new user names from one
// address: past the address's burst no user name gets a check from it,
// the admin's and a real device's included, until the bucket refills.
func TestLoginFloodFromOneAddress(t *testing.T) {
	e := newEnv(t, auth.Options{LoginLimits: auth.LoginLimits{AddrBurst: 5, AddrRate: 0.001}})
	a := e.provision("HWA")
	for i := range 5 {
		mustRefuse(t, fmt.Sprintf("guess %d", i), e.opts(fmt.Sprintf("user-%d", i), "guess"))
	}
	mustRefuse(t, "a device from a flooding address", e.opts(a.user, a.pass))
	mustRefuse(t, "the admin from a flooding address", e.opts(adminUser, adminPass))
	if !e.log.WaitFor("too many failed logins from this address: refused", waitLimit) {
		t.Error("the block is not explained in the log")
	}
	if _, err := connect(t, e.tlsOpts(a.tls)); err != nil {
		t.Fatalf("certificate login from a flooding address: %v", err)
	}
}

// slowStore is a Store whose password check takes until release is closed,
// and which records how many checks ran at once.
type slowStore struct {
	release          chan struct{}
	running, maxSeen atomic.Int32
}

func (s *slowStore) VerifyCredentials(ctx context.Context, _, _ string) (store.Device, error) {
	n := s.running.Add(1)
	defer s.running.Add(-1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return store.Device{}, store.ErrUnauthorized
}

func (s *slowStore) GetDeviceByCertFingerprint(context.Context, string) (store.Device, error) {
	return store.Device{}, store.ErrNotFound
}

// TestConcurrentPasswordChecksBounded floods the hook with logins from many
// addresses at once while every password check hangs: only
// MaxConcurrentChecks of them reach the store, and the others are refused
// once they found no turn within CheckWait.
func TestConcurrentPasswordChecksBounded(t *testing.T) {
	st := &slowStore{release: make(chan struct{})}
	h := auth.New(st, auth.Options{LoginLimits: auth.LoginLimits{MaxConcurrentChecks: 2, CheckWait: 50 * time.Millisecond}})
	var wg sync.WaitGroup
	var refused atomic.Int32
	const logins = 20
	for i := range logins {
		wg.Go(func() {
			cl := &mqtt.Client{ID: fmt.Sprintf("c%d", i)}
			cl.Net.Remote = fmt.Sprintf("192.0.2.%d:1000", i)
			pk := packets.Packet{Connect: packets.ConnectParams{UsernameFlag: true, Username: []byte("u"), Password: []byte("p")}}
			if h.OnConnectAuthenticate(cl, pk) {
				t.Error("a wrong password admitted")
			}
			refused.Add(1)
		})
	}
	defer wg.Wait()
	defer close(st.release)
	// The logins run on their own goroutines.
	testutil.Eventually(t, fmt.Sprintf("%d of %d logins refused while the checks hang", logins-2, logins), func() bool {
		return refused.Load() >= logins-2
	})
	if got := st.maxSeen.Load(); got != 2 {
		t.Fatalf("%d password checks ran at once, want 2", got)
	}
}
