package device

import (
	"sync"
	"time"
)

// workerIdle is how long an idle worker waits for the next request
// before it exits.
const workerIdle = 30 * time.Second

// workerPool runs command requests on long-lived goroutines. A worker that
// has served one request keeps its grown stack for the next, which matters:
// starting a fresh goroutine per request (and growing its stack through a
// JSON decode) cost more CPU than the rest of the request put together.
// There is no upper bound on workers: a request never waits for another
// to finish, since handlers may block for minutes.
type workerPool struct {
	jobs chan func() // unbuffered: a send succeeds only if a worker is idle
	stop chan struct{}

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newWorkerPool() *workerPool {
	return &workerPool{jobs: make(chan func()), stop: make(chan struct{})}
}

// submit runs job on an idle worker, or a new one. It reports false when
// the pool is closed and the job was dropped.
func (p *workerPool) submit(job func()) bool {
	select {
	case p.jobs <- job:
		return true
	default:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	go p.work(job)
	return true
}

func (p *workerPool) work(job func()) {
	defer p.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		job()
		idle.Reset(workerIdle)
		select {
		case job = <-p.jobs:
		case <-idle.C:
			return
		case <-p.stop:
			return
		}
	}
}

// close stops idle workers and waits up to limit for busy ones; a handler
// that ignores its context can keep one busy forever. It reports whether
// every worker returned.
func (p *workerPool) close(limit time.Duration) bool {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stop)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
