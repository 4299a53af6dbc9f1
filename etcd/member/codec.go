package member

import (
	"encoding/binary"
	"fmt"

	"github.com/revkv/revkv/kv"
)

// The entry codec: what a normal raft entry's Data holds (the leader's
// empty no-op entries aside), and what a ConfChange's Context holds. Our
// own binary format, versioned by its first byte, so that a later change
// can tell old entries from new ones:
//
//	entry   = version(1 byte, 1) id kind(1 byte) payload
//	id      = uvarint member, uvarint epoch, uvarint seq
//	payload = txn                                   kind 1
//	        | varint rev                            kind 2 (compact)
//	        | varint id, varint ttl                 kind 3 (lease grant)
//	        | varint id                             kind 4 (lease revoke)
//	        | peer (ID, name, client URLs; no peer URLs, not a learner)
//	                                                kind 5 (member attributes)
//	txn     = uvarint n, n × compare, uvarint n, n × op (then), uvarint n, n × op (else)
//	compare = bytes key, bytes end, byte target, byte result, bytes value,
//	          varint version, varint create, varint mod, varint lease
//	op      = byte type, bytes key, bytes end, then by type:
//	          range:  varint limit, varint rev, byte flags (count-only 1,
//	                  keys-only 2, total-count 4), byte sort order,
//	                  byte sort target, varint min-mod, max-mod,
//	                  min-create, max-create
//	          put:    bytes value, varint lease, byte flags (ignore-value
//	                  1, ignore-lease 2, prev-kv 4)
//	          delete: byte flags (prev-kv 1)
//	          txn:    txn
//	bytes   = uvarint 0 (nil) | uvarint n+1, n bytes
//
//	context = version(1 byte, 1) id byte promote (0 or 1) peer
//	peer    = uvarint id, bytes name, uvarint n, n × bytes peer URL,
//	          uvarint n, n × bytes client URL, byte learner (0 or 1)
//
// The decoders accept exactly what the encoders write (every byte used,
// no unknown flag bits, nesting at most maxTxnDepth deep); anything else
// is ErrCorrupt.
const codecVersion = 1

// maxTxnDepth bounds nested txns in a decoded entry, so that hostile
// bytes cannot recurse the decoder off its stack.
const maxTxnDepth = 64

type encoder struct{ b []byte }

func (e *encoder) byte1(v uint8)    { e.b = append(e.b, v) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) bool1(v bool) {
	if v {
		e.byte1(1)
	} else {
		e.byte1(0)
	}
}

// bytes keeps nil apart from empty: kv reads a nil End as "one key" and
// an empty one as "every key from Key".
func (e *encoder) bytes(v []byte) {
	if v == nil {
		e.uvarint(0)
		return
	}
	e.uvarint(uint64(len(v)) + 1)
	e.b = append(e.b, v...)
}

func (e *encoder) id(id requestID) {
	e.uvarint(id.Member)
	e.uvarint(id.Epoch)
	e.uvarint(id.Seq)
}

// decoder reads what encoder writes; its first failure sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("decode %s: %w", what, ErrCorrupt)
	}
}

func (d *decoder) byte1(what string) uint8 {
	if d.err != nil || len(d.b) == 0 {
		d.fail(what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bool1(what string) bool {
	switch d.byte1(what) {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail(what)
	return false
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a list length, which cannot exceed the bytes left (every
// element takes at least one byte): a hostile length never allocates.
func (d *decoder) count(what string) int {
	n := d.uvarint(what)
	if n > uint64(len(d.b)) {
		d.fail(what)
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what)
	if d.err != nil || n == 0 {
		return nil
	}
	n--
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) id() requestID {
	return requestID{Member: d.uvarint("member"), Epoch: d.uvarint("epoch"), Seq: d.uvarint("seq")}
}

// flags reads a flag byte with no bit outside mask.
func (d *decoder) flags(what string, mask uint8) uint8 {
	v := d.byte1(what)
	if v&^mask != 0 {
		d.fail(what)
	}
	return v
}

func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("decode: %d bytes left over: %w", len(d.b), ErrCorrupt)
	}
	return d.err
}

// encodeEntry returns the entry data of req proposed as id. req must set
// exactly one field (Request.kind).
func encodeEntry(id requestID, req *Request, k requestKind) []byte {
	e := &encoder{b: make([]byte, 0, 64)}
	e.byte1(codecVersion)
	e.id(id)
	e.byte1(uint8(k))
	switch k {
	case kindTxn:
		e.txn(req.Txn)
	case kindCompact:
		e.varint(*req.Compact)
	case kindLeaseGrant:
		e.varint(req.LeaseGrant.ID)
		e.varint(req.LeaseGrant.TTL)
	case kindLeaseRevoke:
		e.varint(req.LeaseRevoke)
	case kindAttrs:
		e.peer(req.attrs)
	}
	return e.b
}

// decodeEntry decodes entry data written by encodeEntry.
func decodeEntry(data []byte) (requestID, Request, error) {
	d := &decoder{b: data}
	if v := d.byte1("version"); d.err == nil && v != codecVersion {
		return requestID{}, Request{}, fmt.Errorf("entry codec version %d, want %d: %w", v, codecVersion, ErrCorrupt)
	}
	id := d.id()
	var req Request
	switch requestKind(d.byte1("kind")) {
	case kindTxn:
		req.Txn = d.txn(0)
	case kindCompact:
		rev := d.varint("compact revision")
		req.Compact = &rev
	case kindLeaseGrant:
		req.LeaseGrant = &LeaseGrant{ID: d.varint("lease ID"), TTL: d.varint("lease TTL")}
	case kindLeaseRevoke:
		req.LeaseRevoke = d.varint("lease ID")
		if req.LeaseRevoke == 0 {
			d.fail("lease ID 0")
		}
	case kindAttrs:
		p := d.peer()
		if p.PeerURLs != nil || p.IsLearner {
			d.fail("member attributes")
		}
		req.attrs = &p
	default:
		d.fail("kind")
	}
	if err := d.done(); err != nil {
		return requestID{}, Request{}, err
	}
	return id, req, nil
}

func (e *encoder) txn(t *kv.TxnRequest) {
	e.uvarint(uint64(len(t.Compare)))
	for i := range t.Compare {
		e.compare(&t.Compare[i])
	}
	e.ops(t.Then)
	e.ops(t.Else)
}

func (d *decoder) txn(depth int) *kv.TxnRequest {
	if depth > maxTxnDepth {
		d.fail("txn nested too deep")
		return nil
	}
	t := &kv.TxnRequest{}
	if n := d.count("compares"); n > 0 {
		t.Compare = make([]kv.Compare, n)
		for i := range t.Compare {
			d.compare(&t.Compare[i])
		}
	}
	t.Then = d.ops(depth)
	t.Else = d.ops(depth)
	return t
}

// encodable reports whether t, at nesting depth, is a txn the decoder
// reads back: every op of a known type, nested at most maxTxnDepth deep
// (a nil nested txn is written as an empty one, a level deeper). Checked
// before proposing: an entry that does not decode stops every member that
// applies it.
func encodable(t *kv.TxnRequest, depth int) error {
	if depth > maxTxnDepth {
		return fmt.Errorf("txns nested more than %d deep", maxTxnDepth)
	}
	for _, ops := range [][]kv.Op{t.Then, t.Else} {
		for i := range ops {
			switch o := &ops[i]; o.Type {
			case kv.OpRange, kv.OpPut, kv.OpDeleteRange:
			case kv.OpTxn:
				nested := o.Txn
				if nested == nil {
					nested = &kv.TxnRequest{}
				}
				if err := encodable(nested, depth+1); err != nil {
					return err
				}
			default:
				return fmt.Errorf("op of type %d", o.Type)
			}
		}
	}
	return nil
}

func (e *encoder) compare(c *kv.Compare) {
	e.bytes(c.Key)
	e.bytes(c.End)
	e.byte1(uint8(c.Target))
	e.byte1(uint8(c.Result))
	e.bytes(c.Value)
	e.varint(c.Version)
	e.varint(c.CreateRevision)
	e.varint(c.ModRevision)
	e.varint(c.Lease)
}

func (d *decoder) compare(c *kv.Compare) {
	c.Key = d.bytes("compare key")
	c.End = d.bytes("compare end")
	c.Target = kv.CompareTarget(d.byte1("compare target"))
	c.Result = kv.CompareResult(d.byte1("compare result"))
	c.Value = d.bytes("compare value")
	c.Version = d.varint("compare version")
	c.CreateRevision = d.varint("compare create revision")
	c.ModRevision = d.varint("compare mod revision")
	c.Lease = d.varint("compare lease")
}

func (e *encoder) ops(ops []kv.Op) {
	e.uvarint(uint64(len(ops)))
	for i := range ops {
		e.op(&ops[i])
	}
}

func (d *decoder) ops(depth int) []kv.Op {
	n := d.count("ops")
	if n == 0 {
		return nil
	}
	ops := make([]kv.Op, n)
	for i := range ops {
		d.op(&ops[i], depth)
	}
	return ops
}

const (
	rangeCountOnly  = 1
	rangeKeysOnly   = 2
	rangeTotalCount = 4
	putIgnoreValue  = 1
	putIgnoreLease  = 2
	putPrevKV       = 4
	deletePrevKV    = 1
)

func flag(v bool, bit uint8) uint8 {
	if v {
		return bit
	}
	return 0
}

func (e *encoder) op(o *kv.Op) {
	e.byte1(uint8(o.Type))
	e.bytes(o.Key)
	e.bytes(o.End)
	switch o.Type {
	case kv.OpRange:
		r := &o.Range
		e.varint(r.Limit)
		e.varint(r.Rev)
		e.byte1(flag(r.CountOnly, rangeCountOnly) | flag(r.KeysOnly, rangeKeysOnly) | flag(r.TotalCount, rangeTotalCount))
		e.byte1(uint8(r.SortOrder))
		e.byte1(uint8(r.SortTarget))
		e.varint(r.MinModRevision)
		e.varint(r.MaxModRevision)
		e.varint(r.MinCreateRevision)
		e.varint(r.MaxCreateRevision)
	case kv.OpPut:
		e.bytes(o.Value)
		e.varint(o.Put.Lease)
		e.byte1(flag(o.Put.IgnoreValue, putIgnoreValue) | flag(o.Put.IgnoreLease, putIgnoreLease) | flag(o.Put.PrevKV, putPrevKV))
	case kv.OpDeleteRange:
		e.byte1(flag(o.Delete.PrevKV, deletePrevKV))
	case kv.OpTxn:
		t := o.Txn
		if t == nil {
			t = &kv.TxnRequest{}
		}
		e.txn(t)
	}
}

func (d *decoder) op(o *kv.Op, depth int) {
	o.Type = kv.OpType(d.byte1("op type"))
	o.Key = d.bytes("op key")
	o.End = d.bytes("op end")
	switch o.Type {
	case kv.OpRange:
		r := &o.Range
		r.Limit = d.varint("range limit")
		r.Rev = d.varint("range revision")
		f := d.flags("range flags", rangeCountOnly|rangeKeysOnly|rangeTotalCount)
		r.CountOnly, r.KeysOnly, r.TotalCount = f&rangeCountOnly != 0, f&rangeKeysOnly != 0, f&rangeTotalCount != 0
		r.SortOrder = kv.SortOrder(d.byte1("range sort order"))
		r.SortTarget = kv.SortTarget(d.byte1("range sort target"))
		r.MinModRevision = d.varint("range min mod revision")
		r.MaxModRevision = d.varint("range max mod revision")
		r.MinCreateRevision = d.varint("range min create revision")
		r.MaxCreateRevision = d.varint("range max create revision")
	case kv.OpPut:
		o.Value = d.bytes("put value")
		o.Put.Lease = d.varint("put lease")
		f := d.flags("put flags", putIgnoreValue|putIgnoreLease|putPrevKV)
		o.Put.IgnoreValue, o.Put.IgnoreLease, o.Put.PrevKV = f&putIgnoreValue != 0, f&putIgnoreLease != 0, f&putPrevKV != 0
	case kv.OpDeleteRange:
		o.Delete.PrevKV = d.flags("delete flags", deletePrevKV) != 0
	case kv.OpTxn:
		o.Txn = d.txn(depth + 1)
	default:
		d.fail("op type")
	}
}

// confContext is what a membership change's ConfChange.Context holds: the
// proposal's ID and the member's attributes.
type confContext struct {
	id      requestID
	promote bool // an AddNode that promotes a learner
	peer    Peer
}

func encodeConfContext(c confContext) []byte {
	e := &encoder{}
	e.byte1(codecVersion)
	e.id(c.id)
	e.bool1(c.promote)
	e.peer(&c.peer)
	return e.b
}

func decodeConfContext(data []byte) (confContext, error) {
	d := &decoder{b: data}
	if v := d.byte1("version"); d.err == nil && v != codecVersion {
		return confContext{}, fmt.Errorf("conf change context version %d, want %d: %w", v, codecVersion, ErrCorrupt)
	}
	var c confContext
	c.id = d.id()
	c.promote = d.bool1("promote")
	c.peer = d.peer()
	if err := d.done(); err != nil {
		return confContext{}, err
	}
	return c, nil
}

func (e *encoder) peer(p *Peer) {
	e.uvarint(p.ID)
	e.bytes([]byte(p.Name))
	e.strings(p.PeerURLs)
	e.strings(p.ClientURLs)
	e.bool1(p.IsLearner)
}

func (d *decoder) peer() Peer {
	var p Peer
	p.ID = d.uvarint("peer ID")
	p.Name = string(d.bytes("peer name"))
	p.PeerURLs = d.strings("peer URLs")
	p.ClientURLs = d.strings("client URLs")
	p.IsLearner = d.bool1("learner")
	return p
}

func (e *encoder) strings(ss []string) {
	e.uvarint(uint64(len(ss)))
	for _, s := range ss {
		e.bytes([]byte(s))
	}
}

func (d *decoder) strings(what string) []string {
	n := d.count(what)
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = string(d.bytes(what))
	}
	return ss
}
