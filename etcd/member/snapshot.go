package member

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math"
	"slices"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
)

// The snapshot container: what a raft snapshot's Data holds.
//
//	container = magic "RKVMSNAP", version(1 byte, 1), body, crc(4 bytes)
//	body      = uvarint n, n × peer (the members, in ID order),
//	            uvarint n, n × uvarint (the removed IDs, ascending),
//	            uvarint n, n × window (the applied-proposal record, dedup.go,
//	            in (member, epoch) order),
//	            uvarint n, n × hash (the last compactions' hashes, oldest
//	            first: Member.CompactionHash),
//	            bytes engine (the DB's snapshot, engine.Snapshot.WriteTo)
//	hash      = uvarint hash, varint compacted revision, varint revision
//	window    = uvarint member, uvarint epoch, uvarint first index,
//	            uvarint floor, uvarint n, n × uvarint seq (ascending, above
//	            the floor)
//	crc       = CRC-32C (Castagnoli) of everything before it, little-endian
//
// peer and bytes are the entry codec's (codec.go). The checksum is
// checked before anything is parsed; the engine bytes carry their own
// checksums as well, which loading them checks.
const (
	snapMagic   = "RKVMSNAP"
	snapVersion = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// snapshotContents is a decoded container.
type snapshotContents struct {
	table         membership
	dedup         dedup
	compactHashes []kv.KeyValueHash
	engine        []byte
}

// encodeSnapshot writes the container of t and the engine snapshot that
// writeEngine writes.
func encodeSnapshot(t *membership, dd dedup, hashes []kv.KeyValueHash, writeEngine func(io.Writer) (int64, error)) ([]byte, error) {
	var eng bytes.Buffer
	if _, err := writeEngine(&eng); err != nil {
		return nil, fmt.Errorf("snapshot of the DB: %w", err)
	}
	e := &encoder{b: make([]byte, 0, eng.Len()+256)}
	e.b = append(e.b, snapMagic...)
	e.byte1(snapVersion)
	members := t.list()
	e.uvarint(uint64(len(members)))
	for i := range members {
		e.peer(&members[i])
	}
	removed := t.removedIDs()
	e.uvarint(uint64(len(removed)))
	for _, id := range removed {
		e.uvarint(id)
	}
	e.dedup(dd)
	e.uvarint(uint64(len(hashes)))
	for _, h := range hashes {
		e.uvarint(uint64(h.Hash))
		e.varint(h.CompactRev)
		e.varint(h.Rev)
	}
	e.bytes(eng.Bytes())
	e.b = binary.LittleEndian.AppendUint32(e.b, crc32.Checksum(e.b, castagnoli))
	return e.b, nil
}

// decodeSnapshot decodes a container; anything damaged is ErrCorrupt.
func decodeSnapshot(data []byte) (snapshotContents, error) {
	head := len(snapMagic) + 1
	if len(data) < head+4 || string(data[:len(snapMagic)]) != snapMagic {
		return snapshotContents{}, fmt.Errorf("snapshot container: no magic: %w", ErrCorrupt)
	}
	if v := data[len(snapMagic)]; v != snapVersion {
		return snapshotContents{}, fmt.Errorf("snapshot container version %d, want %d: %w", v, snapVersion, ErrCorrupt)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return snapshotContents{}, fmt.Errorf("snapshot container checksum %08x, want %08x: %w", got, sum, ErrCorrupt)
	}
	d := &decoder{b: body[head:]}
	c := snapshotContents{table: newMembership(), dedup: dedup{}}
	n := d.count("members")
	for range n {
		p := d.peer()
		if d.err == nil {
			if _, dup := c.table.members[p.ID]; dup || p.ID == 0 {
				d.fail("member ID repeated or 0")
			}
			c.table.members[p.ID] = p
		}
	}
	n = d.count("removed IDs")
	for range n {
		id := d.uvarint("removed ID")
		if d.err == nil {
			c.table.removed[id] = true
		}
	}
	d.dedup(c.dedup)
	n = d.count("compaction hashes")
	for range n {
		sum := d.uvarint("hash")
		if sum > math.MaxUint32 {
			d.fail("hash above 32 bits")
		}
		h := kv.KeyValueHash{Hash: uint32(sum), CompactRev: d.varint("hash compacted revision"), Rev: d.varint("hash revision")}
		c.compactHashes = append(c.compactHashes, h)
	}
	c.engine = d.bytes("engine snapshot")
	if c.engine == nil {
		d.fail("engine snapshot")
	}
	if err := d.done(); err != nil {
		return snapshotContents{}, fmt.Errorf("snapshot container: %w", err)
	}
	return c, nil
}

func (e *encoder) dedup(dd dedup) {
	incs := dd.sorted()
	e.uvarint(uint64(len(incs)))
	for _, inc := range incs {
		w := dd[inc]
		e.uvarint(inc.member)
		e.uvarint(inc.epoch)
		e.uvarint(w.first)
		e.uvarint(w.floor)
		seqs := slices.Sorted(maps.Keys(w.above))
		e.uvarint(uint64(len(seqs)))
		for _, s := range seqs {
			e.uvarint(s)
		}
	}
}

// dedup decodes into dd what encoder.dedup wrote, checking its shape
// (incarnations in order, seqs ascending above the floor).
func (d *decoder) dedup(dd dedup) {
	n := d.count("dedup incarnations")
	var last incarnation
	for i := range n {
		inc := incarnation{member: d.uvarint("dedup member"), epoch: d.uvarint("dedup epoch")}
		if i > 0 && (inc.member < last.member || inc.member == last.member && inc.epoch <= last.epoch) {
			d.fail("dedup incarnations out of order")
		}
		last = inc
		w := &seqWindow{first: d.uvarint("dedup first index"), floor: d.uvarint("dedup floor"), above: map[uint64]bool{}}
		k := d.count("dedup seqs")
		prev := w.floor
		for range k {
			s := d.uvarint("dedup seq")
			if s <= prev {
				d.fail("dedup seqs out of order")
			}
			prev = s
			w.above[s] = true
		}
		if d.err != nil {
			return
		}
		dd[inc] = w
	}
}

// snapshotLoader is the persister of a DB built from a snapshot: it feeds
// the snapshot to the engine once (Recover) and keeps nothing after. The
// DB is otherwise in memory: the raft log is the member's durable state.
type snapshotLoader struct{ data []byte }

var _ persist.Persister = (*snapshotLoader)(nil)

func (l *snapshotLoader) Recover(t persist.Target) error {
	data := l.data
	l.data = nil // a later Recover (a Restore) finds the state as it is
	if data == nil {
		return nil
	}
	return t.LoadSnapshot(bytes.NewReader(data))
}

func (l *snapshotLoader) Append(*persist.Batch) (uint64, error) { return 0, nil }
func (l *snapshotLoader) Wait(uint64) error                     { return nil }
func (l *snapshotLoader) Sync() error                           { return nil }
func (l *snapshotLoader) Close() error                          { return nil }
