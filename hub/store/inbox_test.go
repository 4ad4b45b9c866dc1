package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestInbox(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	if _, err := s.AppendInbox(ctx, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("AppendInbox(nil) = %v, want ErrInvalid", err)
	}
	at := time.Unix(1700000000, 123456789)
	r1, err := s.AppendInbox(ctx, []InboxMessage{{Topic: "a", Payload: []byte("1"), ReceivedAt: at}, {Topic: "b", ReceivedAt: at}})
	if err != nil || r1.Last != r1.First+1 {
		t.Fatalf("AppendInbox = %+v, %v", r1, err)
	}
	r2, err := s.AppendInbox(ctx, []InboxMessage{{Topic: "c", Payload: []byte("3"), ReceivedAt: at}})
	if err != nil || r2.First != r1.Last+1 || r2.Last != r2.First {
		t.Fatalf("AppendInbox = %+v, %v (after %+v)", r2, err, r1)
	}
	ms, err := s.ReadInbox(ctx, 0, 10)
	if err != nil || len(ms) != 3 || ms[0].Topic != "a" || string(ms[0].Payload) != "1" || !ms[0].ReceivedAt.Equal(at) ||
		ms[1].ID != r1.Last || len(ms[1].Payload) != 0 || ms[2].Topic != "c" {
		t.Fatalf("ReadInbox = %+v, %v", ms, err)
	}
	if ms, err := s.ReadInbox(ctx, r1.First, 1); err != nil || len(ms) != 1 || ms[0].ID != r1.Last {
		t.Fatalf("ReadInbox after the first = %+v, %v", ms, err)
	}
	// A batch deletes its inbox rows with what it writes, in one
	// transaction; a failed batch deletes none.
	bad := Batch{Samples: []Sample{{DeviceID: d.ID, Time: t0, Values: vals("", "1")}}, Inbox: []InboxRange{r1}}
	if _, err := s.WriteBatch(ctx, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("WriteBatch(invalid) = %v", err)
	}
	if n, err := s.InboxLength(ctx); err != nil || n != 3 {
		t.Fatalf("InboxLength after a failed batch = %d, %v", n, err)
	}
	if _, err := s.WriteBatch(ctx, Batch{Samples: []Sample{{DeviceID: d.ID, Time: t0, Values: vals("power", "1")}}, Inbox: []InboxRange{r1}}); err != nil {
		t.Fatal(err)
	}
	if ms, err := s.ReadInbox(ctx, 0, 10); err != nil || len(ms) != 1 || ms[0].ID != r2.First {
		t.Fatalf("ReadInbox after the batch = %+v, %v", ms, err)
	}
	if err := s.DeleteInbox(ctx, []InboxRange{r2}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.InboxLength(ctx); err != nil || n != 0 {
		t.Fatalf("InboxLength = %d, %v", n, err)
	}
}
