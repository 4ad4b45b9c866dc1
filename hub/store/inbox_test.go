package store

import (
	"context"
	"errors"
	"slices"
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

func TestMergeRanges(t *testing.T) {
	for _, tt := range []struct {
		in, want []InboxRange
	}{
		{nil, nil},
		{[]InboxRange{{5, 5}}, []InboxRange{{5, 5}}},
		// one id a device, in device order: one range
		{[]InboxRange{{3, 3}, {1, 1}, {2, 2}, {4, 4}}, []InboxRange{{1, 4}}},
		{[]InboxRange{{7, 9}, {1, 2}, {3, 3}, {12, 13}, {8, 10}}, []InboxRange{{1, 3}, {7, 10}, {12, 13}}},
		{[]InboxRange{{1, 10}, {2, 3}}, []InboxRange{{1, 10}}},
	} {
		in := slices.Clone(tt.in)
		got := mergeRanges(in)
		if !slices.Equal(got, tt.want) {
			t.Errorf("mergeRanges(%v) = %v, want %v", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("mergeRanges changed its input: %v, was %v", in, tt.in)
		}
	}
}

// TestDeleteInboxScattered deletes a batch's ids given one a device, out of
// order, with gaps: exactly those rows go.
func TestDeleteInboxScattered(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	var msgs []InboxMessage
	for range 10 {
		msgs = append(msgs, InboxMessage{Topic: "t", ReceivedAt: time.Unix(1700000000, 0)})
	}
	r, err := s.AppendInbox(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	f := r.First
	if err := s.DeleteInbox(ctx, []InboxRange{{f + 3, f + 3}, {f, f}, {f + 1, f + 2}, {f + 8, f + 8}, {f + 6, f + 6}}); err != nil {
		t.Fatal(err)
	}
	left, err := s.ReadInbox(ctx, 0, 20)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, m := range left {
		ids = append(ids, m.ID-f)
	}
	if want := []int64{4, 5, 7, 9}; !slices.Equal(ids, want) {
		t.Fatalf("left after the delete: %v, want %v", ids, want)
	}
}
