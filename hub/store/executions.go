package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ExecutionState is where a command execution stands.
type ExecutionState string

// Execution states, as Enapter's v3 HTTP API names them.
const (
	ExecutionNew        ExecutionState = "NEW"
	ExecutionInProgress ExecutionState = "IN_PROGRESS"
	ExecutionSuccess    ExecutionState = "SUCCESS"
	ExecutionError      ExecutionState = "ERROR"
	ExecutionTimeout    ExecutionState = "TIMEOUT"
)

// Finished reports whether the state is final.
func (st ExecutionState) Finished() bool {
	return st == ExecutionSuccess || st == ExecutionError || st == ExecutionTimeout
}

func (st ExecutionState) valid() bool {
	return st == ExecutionNew || st == ExecutionInProgress || st.Finished()
}

// ResponseState is the state of one response of a device to a command.
type ResponseState string

// Response states, as Enapter's v3 HTTP API names them. A device's "log"
// answer is ResponseInProgress, "completed" ResponseSucceeded, "error"
// ResponseError.
const (
	ResponseStarted    ResponseState = "STARTED"
	ResponseInProgress ResponseState = "IN_PROGRESS"
	ResponseSucceeded  ResponseState = "SUCCEEDED"
	ResponseError      ResponseState = "ERROR"
)

// executionState is the execution state a response moves its execution to.
func (rs ResponseState) executionState() (ExecutionState, bool) {
	switch rs {
	case ResponseStarted, ResponseInProgress:
		return ExecutionInProgress, true
	case ResponseSucceeded:
		return ExecutionSuccess, true
	case ResponseError:
		return ExecutionError, true
	}
	return "", false
}

// ExecutionRequest is the command sent to the device.
type ExecutionRequest struct {
	Name string `json:"name"`
	// Arguments is a JSON object, nil when the command has none.
	Arguments    json.RawMessage `json:"arguments"`
	ManifestName string          `json:"manifest_name"`
}

// ExecutionResponse is one response of the device.
type ExecutionResponse struct {
	State ResponseState `json:"state"`
	// Payload is JSON, nil when the response had none.
	Payload    json.RawMessage `json:"payload"`
	ReceivedAt time.Time       `json:"received_at"`
}

// Execution is one command sent to a device and what came back.
type Execution struct {
	ID        string           `json:"id"`
	DeviceID  string           `json:"device_id"`
	State     ExecutionState   `json:"state"`
	CreatedAt time.Time        `json:"created_at"`
	UpdatedAt time.Time        `json:"updated_at"`
	Request   ExecutionRequest `json:"request"`
	// Response is the latest response (the final one once State is
	// finished), nil before any.
	Response *ExecutionResponse `json:"response"`
	// Log is every response, oldest first.
	Log []ExecutionResponse `json:"log"`
	// Seq orders executions as they were created, across devices: a
	// tiebreak for those created in the same millisecond.
	Seq int64 `json:"-"`
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// nullJSON checks an optional JSON value and turns it into a column value.
func nullJSON(what string, v json.RawMessage) (any, error) {
	if len(v) == 0 {
		return nil, nil
	}
	if !json.Valid(v) {
		return nil, fmt.Errorf("%s is not valid JSON: %w", what, ErrInvalid)
	}
	return string(v), nil
}

// CreateExecution stores a NEW execution of req for the device, with a fresh
// id. Fails with ErrNotFound for an unknown device, ErrInvalid for an empty
// name or arguments that are not JSON.
func (s *Store) CreateExecution(ctx context.Context, deviceID string, req ExecutionRequest) (Execution, error) {
	fail := func(err error) (Execution, error) {
		return Execution{}, fmt.Errorf("store: create execution for %s: %w", deviceID, err)
	}
	if req.Name == "" {
		return fail(fmt.Errorf("empty command name: %w", ErrInvalid))
	}
	args, err := nullJSON("arguments", req.Arguments)
	if err != nil {
		return fail(err)
	}
	e := Execution{
		ID: newID(), DeviceID: deviceID, State: ExecutionNew,
		CreatedAt: s.now(), Request: req, Log: []ExecutionResponse{},
	}
	e.UpdatedAt = e.CreatedAt
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO executions
			(id, device_id, state, created_at, updated_at, name, arguments, manifest_name)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			e.ID, deviceID, e.State, ms(e.CreatedAt), ms(e.UpdatedAt), req.Name, args, req.ManifestName)
		return err
	})
	if isForeignKey(err) {
		err = ErrNotFound
	}
	if err != nil {
		return fail(err)
	}
	return e, nil
}

// AddExecutionResponse records a response of the device and moves the
// execution's state to match it; it returns the execution as stored. Fails
// with ErrNotFound for an unknown execution, ErrConflict when the execution
// is already finished (the response is not recorded), ErrInvalid for an
// unknown state or a payload that is not JSON. A zero ReceivedAt means now.
func (s *Store) AddExecutionResponse(ctx context.Context, executionID string, r ExecutionResponse) (Execution, error) {
	fail := func(err error) (Execution, error) {
		return Execution{}, fmt.Errorf("store: add response to execution %s: %w", executionID, err)
	}
	next, ok := r.State.executionState()
	if !ok {
		return fail(fmt.Errorf("unknown response state %q: %w", r.State, ErrInvalid))
	}
	payload, err := nullJSON("payload", r.Payload)
	if err != nil {
		return fail(err)
	}
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = s.now()
	}
	var e Execution
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := checkUnfinished(ctx, tx, executionID); err != nil {
			return err
		}
		now := ms(s.now())
		if _, err := tx.ExecContext(ctx, `INSERT INTO execution_responses (execution_id, n, state, payload, received_at)
			SELECT ?1, coalesce(max(n), 0) + 1, ?2, ?3, ?4 FROM execution_responses WHERE execution_id = ?1`,
			executionID, r.State, payload, ms(r.ReceivedAt)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE executions SET state = ?, updated_at = ? WHERE id = ?",
			next, now, executionID); err != nil {
			return err
		}
		var err error
		e, err = getExecution(ctx, tx, executionID)
		return err
	})
	if err != nil {
		return fail(err)
	}
	return e, nil
}

// SetExecutionState moves an unfinished execution to another state (TIMEOUT
// when the device did not answer in time, ERROR when the request could not
// be sent) and returns it. Fails with ErrNotFound, ErrConflict when the
// execution is already finished (whoever finishes it first wins), ErrInvalid
// for an unknown state or NEW.
func (s *Store) SetExecutionState(ctx context.Context, executionID string, st ExecutionState) (Execution, error) {
	fail := func(err error) (Execution, error) {
		return Execution{}, fmt.Errorf("store: set state of execution %s: %w", executionID, err)
	}
	if !st.valid() || st == ExecutionNew {
		return fail(fmt.Errorf("state %q: %w", st, ErrInvalid))
	}
	var e Execution
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := checkUnfinished(ctx, tx, executionID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE executions SET state = ?, updated_at = ? WHERE id = ?",
			st, ms(s.now()), executionID); err != nil {
			return err
		}
		var err error
		e, err = getExecution(ctx, tx, executionID)
		return err
	})
	if err != nil {
		return fail(err)
	}
	return e, nil
}

// checkUnfinished returns ErrNotFound or ErrConflict unless the execution
// exists and is not finished.
func checkUnfinished(ctx context.Context, q querier, executionID string) error {
	var st ExecutionState
	err := q.QueryRowContext(ctx, "SELECT state FROM executions WHERE id = ?", executionID).Scan(&st)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return err
	case st.Finished():
		return fmt.Errorf("execution is already %s: %w", st, ErrConflict)
	}
	return nil
}

// GetExecution returns an execution with every response. Fails with ErrNotFound.
func (s *Store) GetExecution(ctx context.Context, executionID string) (Execution, error) {
	e, err := getExecution(ctx, s.r, executionID)
	if err != nil {
		return Execution{}, fmt.Errorf("store: get execution %s: %w", executionID, err)
	}
	return e, nil
}

// ListExecutions returns up to limit of the device's executions after
// skipping offset, newest first, each with every response. A limit <= 0
// means no limit. Fails with ErrNotFound for an unknown device.
func (s *Store) ListExecutions(ctx context.Context, deviceID string, offset, limit int) ([]Execution, error) {
	fail := func(err error) ([]Execution, error) {
		return nil, fmt.Errorf("store: list executions of %s: %w", deviceID, err)
	}
	if err := s.checkDevice(ctx, s.r, deviceID); err != nil {
		return fail(err)
	}
	if limit <= 0 {
		limit = -1
	}
	es, err := scanExecutions(s.r.QueryContext(ctx, "SELECT "+executionColumns+
		" FROM executions WHERE device_id = ? ORDER BY seq DESC LIMIT ? OFFSET ?", deviceID, limit, max(offset, 0)))
	if err != nil {
		return fail(err)
	}
	if err := loadResponses(ctx, s.r, es); err != nil {
		return fail(err)
	}
	return es, nil
}

const executionColumns = "id, device_id, state, created_at, updated_at, name, arguments, manifest_name, seq"

func scanExecutions(rows *sql.Rows, err error) ([]Execution, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Execution{}
	for rows.Next() {
		var (
			e                Execution
			created, updated int64
			args             sql.NullString
		)
		if err := rows.Scan(&e.ID, &e.DeviceID, &e.State, &created, &updated,
			&e.Request.Name, &args, &e.Request.ManifestName, &e.Seq); err != nil {
			return nil, err
		}
		e.CreatedAt, e.UpdatedAt = fromMS(created), fromMS(updated)
		if args.Valid {
			e.Request.Arguments = json.RawMessage(args.String)
		}
		e.Log = []ExecutionResponse{}
		out = append(out, e)
	}
	return out, rows.Err()
}

// getExecution reads one execution and its responses through q.
func getExecution(ctx context.Context, q querier, executionID string) (Execution, error) {
	es, err := scanExecutions(q.QueryContext(ctx, "SELECT "+executionColumns+" FROM executions WHERE id = ?", executionID))
	if err != nil {
		return Execution{}, err
	}
	if len(es) == 0 {
		return Execution{}, ErrNotFound
	}
	if err := loadResponses(ctx, q, es); err != nil {
		return Execution{}, err
	}
	return es[0], nil
}

// loadResponses fills Log and Response of es, a few hundred executions per
// query to stay under SQLite's limit on parameters.
func loadResponses(ctx context.Context, q querier, es []Execution) error {
	const chunk = 500
	for len(es) > chunk {
		if err := loadResponses(ctx, q, es[:chunk]); err != nil {
			return err
		}
		es = es[chunk:]
	}
	if len(es) == 0 {
		return nil
	}
	idx := make(map[string]int, len(es))
	args := make([]any, len(es))
	for i, e := range es {
		idx[e.ID] = i
		args[i] = e.ID
	}
	rows, err := q.QueryContext(ctx, "SELECT execution_id, state, payload, received_at FROM execution_responses"+
		" WHERE execution_id IN "+inList(len(es))+" ORDER BY execution_id, n", args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id      string
			r       ExecutionResponse
			payload sql.NullString
			at      int64
		)
		if err := rows.Scan(&id, &r.State, &payload, &at); err != nil {
			return err
		}
		if payload.Valid {
			r.Payload = json.RawMessage(payload.String)
		}
		r.ReceivedAt = fromMS(at)
		e := &es[idx[id]]
		e.Log = append(e.Log, r)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for i := range es {
		if n := len(es[i].Log); n > 0 {
			last := es[i].Log[n-1]
			es[i].Response = &last
		}
	}
	return nil
}
