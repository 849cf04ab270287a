package drill

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Probe sends one request over connection conn (0 ≤ conn < Connections)
// and returns the name of the cluster that served it, or an error when the
// request failed. It must return by the time ctx is done.
type Probe func(ctx context.Context, conn int) (cluster string, err error)

// Fault is what the drill does to the failing cluster.
type Fault struct {
	// Name says what the fault is, for the summary: "workloads",
	// "partition".
	Name string
	// Inject breaks the cluster; Restore undoes it. Restore is called
	// once Inject has been called, whatever happens after.
	Inject, Restore func(ctx context.Context) error
}

// Options are a drill's parameters; zero values take the defaults.
type Options struct {
	// Cluster is the member cluster that fails.
	Cluster string
	// Rate is the load's requests per second over all connections
	// (default 50).
	Rate float64
	// Connections is how many connections carry the load (default 4).
	Connections int
	// Timeout bounds each request (default 2 s).
	Timeout time.Duration
	// Warmup is the least time the load runs before the fault (default
	// 3 s); WarmupMax the most it waits for Cluster to serve a request
	// and the load to run clean (default 60 s).
	Warmup, WarmupMax time.Duration
	// Settle is how many consecutive successes on other clusters mark
	// the failover done (default 10).
	Settle int
	// FailoverMax bounds the wait for the failover (default 30 s).
	FailoverMax time.Duration
	// Hold is how long the fault stays after the failover (default 3 s).
	Hold time.Duration
	// NoFailback: traffic is not expected to return to Cluster after the
	// restore (manual failback); the drill then runs Hold after the
	// restore and reports no failback time.
	NoFailback bool
	// FailbackMax bounds the wait for the failback (default 60 s).
	FailbackMax time.Duration
	// Progress, when set, is called with each step's start ("warm-up",
	// "fault", "restore") for a person watching.
	Progress func(step string)
}

func (o Options) withDefaults() (Options, error) {
	if o.Cluster == "" {
		return o, errors.New("drill: the failing cluster is not set")
	}
	if o.Rate < 0 || o.Connections < 0 || o.Timeout < 0 || o.Warmup < 0 || o.WarmupMax < 0 || o.Settle < 0 || o.FailoverMax < 0 || o.Hold < 0 || o.FailbackMax < 0 {
		return o, errors.New("drill: negative option")
	}
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.Rate == 0 {
		o.Rate = 50
	}
	if o.Connections == 0 {
		o.Connections = 4
	}
	if o.Settle == 0 {
		o.Settle = 10
	}
	set(&o.Timeout, 2*time.Second)
	set(&o.Warmup, 3*time.Second)
	set(&o.WarmupMax, time.Minute)
	set(&o.FailoverMax, 30*time.Second)
	set(&o.Hold, 3*time.Second)
	set(&o.FailbackMax, time.Minute)
	if o.Rate/float64(o.Connections) > 1000 {
		return o, fmt.Errorf("drill: %g requests per second per connection is more than 1000", o.Rate/float64(o.Connections))
	}
	return o, nil
}

// Record is one request of the load.
type Record struct {
	Conn    int
	Sent    time.Time
	Done    time.Time
	Cluster string // who served it; empty when it failed
	Err     string // why it failed; empty when it succeeded
}

// Failed says whether the request failed.
func (r Record) Failed() bool { return r.Err != "" }

// Run performs the drill and returns its summary. An error means the drill
// could not be carried out (the service was not healthy before the fault,
// the failover or the failback did not happen in time, the fault could not
// be injected or restored); the summary is then filled as far as it got.
func Run(ctx context.Context, probe Probe, fault Fault, opts Options) (*Summary, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	progress := func(step string) {
		if o.Progress != nil {
			o.Progress(step)
		}
	}
	l := startLoad(ctx, probe, o)
	defer l.stop()
	var t Timeline

	progress("warm-up")
	start := time.Now()
	if err := l.waitUntil(ctx, start.Add(o.WarmupMax), func(rs []Record) bool {
		return time.Since(start) >= o.Warmup && warm(rs, o.Cluster, o.Settle)
	}); err != nil {
		return l.summary(o, fault, t), fmt.Errorf("warm-up: within %s the load did not run clean with cluster %s serving (%s)", o.WarmupMax, o.Cluster, l.outcomes())
	}

	progress("fault")
	t.Injected = time.Now()
	injectErr := fault.Inject(ctx)
	restore := func() error {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		return fault.Restore(rctx)
	}
	if injectErr != nil {
		return l.summary(o, fault, t), errors.Join(fmt.Errorf("inject the fault (%s): %w", fault.Name, injectErr), restore())
	}
	err = l.waitUntil(ctx, t.Injected.Add(o.FailoverMax), func(rs []Record) bool {
		return failoverStart(rs, t.Injected, o.Cluster, o.Settle) != nil
	})
	if err != nil {
		return l.summary(o, fault, t), errors.Join(fmt.Errorf("no failover within %s of the fault (%s): %s", o.FailoverMax, fault.Name, l.outcomes()), restore())
	}
	if err := sleep(ctx, o.Hold); err != nil {
		return l.summary(o, fault, t), errors.Join(err, restore())
	}

	progress("restore")
	t.Restored = time.Now()
	if err := restore(); err != nil {
		return l.summary(o, fault, t), fmt.Errorf("restore after the fault (%s): %w", fault.Name, err)
	}
	if o.NoFailback {
		err = sleep(ctx, o.Hold)
	} else {
		err = l.waitUntil(ctx, t.Restored.Add(o.FailbackMax), func(rs []Record) bool {
			return failbackAt(rs, t.Restored, o.Cluster) != nil
		})
		if err != nil {
			err = fmt.Errorf("cluster %s served nothing within %s of the restore", o.Cluster, o.FailbackMax)
		}
	}
	l.stop()
	return l.summary(o, fault, t), err
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// warm says whether the load is ready for the fault: cluster served a
// request, and the last settle requests all succeeded.
func warm(rs []Record, cluster string, settle int) bool {
	served := false
	for _, r := range rs {
		served = served || r.Cluster == cluster
	}
	if !served || len(rs) < settle {
		return false
	}
	for _, r := range rs[len(rs)-settle:] {
		if r.Failed() {
			return false
		}
	}
	return true
}

// load is the running load: one goroutine per connection, records in the
// order requests end.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	records []Record
	changed chan struct{} // closed and replaced on each new record
}

func startLoad(ctx context.Context, probe Probe, o Options) *load {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &load{cancel: cancel, changed: make(chan struct{})}
	interval := time.Duration(float64(time.Second) * float64(o.Connections) / o.Rate)
	for c := range o.Connections {
		l.wg.Go(func() {
			// Connections start spread over one interval.
			next := time.Now().Add(interval * time.Duration(c) / time.Duration(o.Connections))
			for {
				if err := sleep(ctx, time.Until(next)); err != nil {
					return
				}
				rctx, rcancel := context.WithTimeout(ctx, o.Timeout)
				sent := time.Now()
				cluster, err := probe(rctx, c)
				rcancel()
				if ctx.Err() != nil {
					return // the load stopped: this request does not count
				}
				r := Record{Conn: c, Sent: sent, Done: time.Now(), Cluster: cluster}
				if err != nil {
					r.Cluster, r.Err = "", errString(err)
				} else if cluster == "" {
					r.Err = "served by an unknown cluster"
				}
				l.add(r)
				if next = next.Add(interval); next.Before(r.Done) {
					next = r.Done
				}
			}
		})
	}
	return l
}

// errString is a short, stable description of a failed request, for
// counting failures by kind.
func errString(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		return err.Error()
	}
}

func (l *load) add(r Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
	close(l.changed)
	l.changed = make(chan struct{})
}

// snapshot returns the records so far and a channel closed at the next.
func (l *load) snapshot() ([]Record, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.records[:len(l.records):len(l.records)], l.changed
}

// waitUntil waits until cond holds for the records, or deadline.
func (l *load) waitUntil(ctx context.Context, deadline time.Time, cond func([]Record) bool) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		rs, changed := l.snapshot()
		if cond(rs) {
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return errors.New("deadline")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// outcomes describes the last requests, for an error message.
func (l *load) outcomes() string {
	rs, _ := l.snapshot()
	return describeRecent(rs, 20)
}

// stop ends the load and waits for its connections. It may be called
// more than once.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *load) summary(o Options, f Fault, t Timeline) *Summary {
	rs, _ := l.snapshot()
	return Analyze(rs, t, o.Cluster, f.Name, o)
}
