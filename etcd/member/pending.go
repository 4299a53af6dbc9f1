package member

// Pending is a request on its way through the log (or a read waiting for
// its read index). A later Ready resolves it, once (or Tick, when it times
// out, or Close): Done is closed and Result gives the outcome. It is safe
// for concurrent use.
type Pending struct {
	done chan struct{}
	res  any
	err  error
	// tick is the member's tick count when it was made (for
	// Config.RequestTimeoutTicks).
	tick uint64
	// lead is the leader when it was made: a change of leader fails it
	// (ErrLeaderChanged), unless it is already answered.
	lead uint64
	// data is the proposed entry's bytes: an applied entry resolves the
	// Pending only if it is the same proposal (see requestID).
	data []byte
}

func newPending(tick, lead uint64) *Pending {
	return &Pending{done: make(chan struct{}), tick: tick, lead: lead}
}

// failed returns a Pending resolved with err.
func failed(err error) *Pending {
	p := newPending(0, 0)
	p.resolve(nil, err)
	return p
}

// Done is closed when the Pending is resolved.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Result returns the outcome once Done is closed (see Request for the
// result of each kind of request), and ErrNotDone before.
func (p *Pending) Result() (any, error) {
	select {
	case <-p.done:
		return p.res, p.err
	default:
		return nil, ErrNotDone
	}
}

func (p *Pending) resolved() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// resolve is called once, under the member's lock (by Ready, Tick or
// Close).
func (p *Pending) resolve(res any, err error) {
	p.res, p.err = res, err
	close(p.done)
}
