// Package keytree is a copy-on-write B+tree of records ordered by key, made
// for the engine's key index: each item is a record and 8 bytes of its key
// (the prefix, big-endian), and a search compares prefixes first and calls
// the tree's key comparison only when they tie.
//
// A node holds its prefixes in an array of their own, apart from its
// record pointers (and, in an inner node, its children), so a search reads
// contiguous uint64s (a node's 31 prefixes are four cache lines, which a
// linear scan asks for at once), and no record, unless prefixes tie.
//
// Items sort by (prefix, key): the caller must make prefixes that order
// as their keys do, except that different keys may share a prefix (for
// example, the first 8 bytes of each key, zero-padded).
//
// Copy is O(1): the two trees share their nodes, and each clones a node the
// first time it writes it afterwards (a node records the tree that owns it,
// as an ownership token). A tree is not safe for concurrent use, but a copy
// may be read by any number of goroutines while the tree it was copied from
// (or another copy) is written: no write changes a node that two trees
// share.
package keytree

import (
	"iter"
	"sync/atomic"
	"unsafe"
)

// order is the most items of a leaf and the most separators of an inner
// node. With 31, a leaf is 512 bytes and an inner node 768, two of the
// allocator's size classes exactly.
const order = 31

// minItems is the fewest items of a leaf and separators of an inner node
// under which a delete merges the node with a sibling or moves items over
// from it. The last nodes of in-order appends may hold fewer (see Load).
const minItems = order / 2

// maxHeight bounds the inner levels of a tree: every inner node but those
// of the right edge has at least minItems+1 children, so a tree this high
// would hold more than 16^15 items.
const maxHeight = 16

// node is a leaf, or the first field of an inner node (see inner): its
// items are (keys[i], recs[i]) for i < n, in order. In an inner node they
// are the separators: separator i is the least item of the subtree kids[i+1]
// at the time it was set (or any item between the subtrees on its sides).
// Slots from n on are zero, so that a node keeps no removed record alive.
type node[R any] struct {
	owner uint64 // the tree that may write the node in place
	n     int
	keys  [order]uint64
	recs  [order]*R
}

// inner is an inner node: n separators and n+1 children, all at the same
// height. Every inner node has at least one separator.
type inner[R any] struct {
	node[R]
	kids [order + 1]*node[R]
}

// asInner returns the inner node whose first field is n; the caller knows
// from the node's height that it is one.
func asInner[R any](n *node[R]) *inner[R] { return (*inner[R])(unsafe.Pointer(n)) }

// Tree is a copy-on-write B+tree of records (see the package comment). The
// zero Tree is not usable: make one with New.
type Tree[R any] struct {
	root   *node[R] // nil when empty
	height int      // inner levels above the leaves
	count  int
	owner  uint64
	cmp    func(key []byte, r *R) int
}

var owners atomic.Uint64

// New returns an empty tree whose items compare, when their prefixes tie,
// by cmp(key, r): negative, zero or positive as key sorts before, equal to
// or after r's key.
func New[R any](cmp func(key []byte, r *R) int) *Tree[R] {
	return &Tree[R]{cmp: cmp, owner: owners.Add(1)}
}

// Len returns the number of items.
func (t *Tree[R]) Len() int { return t.count }

// Copy returns a copy of t in O(1). Both trees get new ownership tokens,
// so neither writes the nodes they share: Copy writes t, and so must be
// called by t's writer only.
func (t *Tree[R]) Copy() *Tree[R] {
	t.owner = owners.Add(1)
	c := *t
	c.owner = owners.Add(1)
	return &c
}

// Hint remembers the path of a search, so that the next search of a key
// near it (the same key, typically: a lookup, then an insert) checks each
// level's remembered position with two comparisons instead of a binary
// search. The zero Hint is ready to use. A Hint of any tree, or a stale
// one, is only slower: it is checked before it is used.
type Hint struct {
	path [maxHeight + 1]uint8
}

// compare compares (p, key) with the item (q, r).
func (t *Tree[R]) compare(p uint64, key []byte, q uint64, r *R) int {
	switch {
	case p < q:
		return -1
	case p > q:
		return 1
	}
	return t.cmp(key, r)
}

// search returns the position of (p, key) among n's items: the index of
// the first item not below it, and whether that item is equal to it.
//
// The prefixes are scanned in order, not bisected: the loads of a linear
// scan do not depend on each other, so the cache lines of a node come in
// together, where each step of a binary search waits for the line before.
// Items whose prefix ties with p are bisected with the key comparison.
func (t *Tree[R]) search(n *node[R], p uint64, key []byte) (int, bool) {
	keys := n.keys[:n.n]
	lo := 0
	for lo < len(keys) && keys[lo] < p {
		lo++
	}
	hi := lo
	for hi < len(keys) && keys[hi] == p {
		hi++
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		c := t.cmp(key, n.recs[m])
		switch {
		case c > 0:
			lo = m + 1
		case c < 0:
			hi = m
		default:
			return m, true
		}
	}
	return lo, false
}

// find is search with the position the hint remembers for level d tried
// first: it holds if the item before it is below (p, key) and the item at
// it is not. The hint is updated.
func (t *Tree[R]) find(n *node[R], p uint64, key []byte, hint *Hint, d int) (int, bool) {
	if hint != nil && d <= maxHeight {
		i := int(hint.path[d])
		if i <= n.n && (i == 0 || t.compare(p, key, n.keys[i-1], n.recs[i-1]) > 0) {
			if i == n.n {
				return i, false
			}
			if c := t.compare(p, key, n.keys[i], n.recs[i]); c <= 0 {
				return i, c == 0
			}
		}
		i, eq := t.search(n, p, key)
		hint.path[d] = uint8(i)
		return i, eq
	}
	return t.search(n, p, key)
}

// child returns the index of the child of inner node n whose subtree holds
// (p, key), and whether the separator before it is equal to it.
func (t *Tree[R]) child(n *node[R], p uint64, key []byte, hint *Hint, d int) (int, bool) {
	i, eq := t.find(n, p, key, hint, d)
	if eq {
		// Equal to separator i: the key is the least of kids[i+1]. The
		// hint remembers i for it, which find accepts again.
		return i + 1, true
	}
	return i, false
}

// Get returns the record of the item (p, key), or nil if there is none.
// hint (nil: none) is tried first and updated (see Hint).
func (t *Tree[R]) Get(p uint64, key []byte, hint *Hint) *R {
	n := t.root
	if n == nil {
		return nil
	}
	for d := 0; d < t.height; d++ {
		i, _ := t.child(n, p, key, hint, d)
		n = asInner(n).kids[i]
	}
	i, eq := t.find(n, p, key, hint, t.height)
	if !eq {
		return nil
	}
	return n.recs[i]
}

// own returns n if t may write it, else a copy of it that t owns (the
// caller links it in place of n). h is n's height (0: a leaf).
func (t *Tree[R]) own(n *node[R], h int) *node[R] {
	if n.owner == t.owner {
		return n
	}
	if h == 0 {
		c := new(node[R])
		*c = *n
		c.owner = t.owner
		return c
	}
	c := new(inner[R])
	*c = *asInner(n)
	c.owner = t.owner
	return &c.node
}

// step is one level of a descent for a write: the inner node (owned) and
// the child taken.
type step[R any] struct {
	n *node[R]
	i int
}

// Set adds the item (p, key) with record r, or replaces the record of that
// item if there is one, and returns the old record (nil if none). key must
// be r's key. hint (nil: none) is tried first and updated (see Hint).
func (t *Tree[R]) Set(p uint64, key []byte, r *R, hint *Hint) (old *R) {
	if t.root == nil {
		t.newRoot(p, r)
		return nil
	}
	var path [maxHeight]step[R]
	n := t.own(t.root, t.height)
	t.root = n
	edge := true // n is on the right edge of the tree
	var sep *node[R]
	sepAt := 0
	for d := 0; d < t.height; d++ {
		i, eq := t.child(n, p, key, hint, d)
		if eq {
			sep, sepAt = n, i-1
		}
		edge = edge && i == n.n
		in := asInner(n)
		c := t.own(in.kids[i], t.height-d-1)
		in.kids[i] = c
		path[d] = step[R]{n, i}
		n = c
	}
	i, eq := t.find(n, p, key, hint, t.height)
	if eq {
		old = n.recs[i]
		n.recs[i] = r
		if sep != nil {
			sep.recs[sepAt] = r // keep no old record alive
		}
		return old
	}
	t.insert(path[:t.height], n, i, p, r, edge && i == n.n)
	return nil
}

// Load adds the item (p, key) with record r if it sorts after every item
// of t, by the right edge of the tree without a search (in-order appends
// fill leaves full: see insert), and otherwise is Set. key must be r's key.
func (t *Tree[R]) Load(p uint64, key []byte, r *R) (old *R) {
	if t.root == nil {
		t.newRoot(p, r)
		return nil
	}
	q, last, _ := t.Max()
	if t.compare(p, key, q, last) <= 0 {
		return t.Set(p, key, r, nil)
	}
	var path [maxHeight]step[R]
	n := t.own(t.root, t.height)
	t.root = n
	for d := 0; d < t.height; d++ {
		in := asInner(n)
		c := t.own(in.kids[n.n], t.height-d-1)
		in.kids[n.n] = c
		path[d] = step[R]{n, n.n}
		n = c
	}
	t.insert(path[:t.height], n, n.n, p, r, true)
	return nil
}

func (t *Tree[R]) newRoot(p uint64, r *R) {
	l := &node[R]{owner: t.owner, n: 1}
	l.keys[0], l.recs[0] = p, r
	t.root, t.height, t.count = l, 0, 1
}

// insert puts (p, r) at position i of leaf l (owned), reached by path, and
// splits the nodes that overflow, up the path. If atEnd, the item goes
// after every item of the tree: a full node then keeps its items and the
// new one starts a node of its own, so in-order appends leave full nodes
// behind, not the half-full ones of a split in the middle.
func (t *Tree[R]) insert(path []step[R], l *node[R], i int, p uint64, r *R, atEnd bool) {
	t.count++
	if l.n < order {
		copy(l.keys[i+1:l.n+1], l.keys[i:l.n])
		copy(l.recs[i+1:l.n+1], l.recs[i:l.n])
		l.keys[i], l.recs[i] = p, r
		l.n++
		return
	}
	// Split the leaf: right takes the upper items.
	right := &node[R]{owner: t.owner}
	if atEnd {
		right.n = 1
		right.keys[0], right.recs[0] = p, r
	} else {
		var keys [order + 1]uint64
		var recs [order + 1]*R
		copy(keys[:i], l.keys[:i])
		copy(recs[:i], l.recs[:i])
		keys[i], recs[i] = p, r
		copy(keys[i+1:], l.keys[i:])
		copy(recs[i+1:], l.recs[i:])
		half := (order + 1) / 2
		l.n = copy(l.keys[:], keys[:half])
		copy(l.recs[:], recs[:half])
		clear(l.keys[half:])
		clear(l.recs[half:])
		right.n = copy(right.keys[:], keys[half:])
		copy(right.recs[:], recs[half:])
	}
	sp, sr := right.keys[0], right.recs[0]
	kid := right
	for d := len(path) - 1; d >= 0; d-- {
		n, at := path[d].n, path[d].i
		// Separator (sp, sr) goes at index at, kid at index at+1.
		in := asInner(n)
		if n.n < order {
			copy(n.keys[at+1:n.n+1], n.keys[at:n.n])
			copy(n.recs[at+1:n.n+1], n.recs[at:n.n])
			copy(in.kids[at+2:n.n+2], in.kids[at+1:n.n+1])
			n.keys[at], n.recs[at], in.kids[at+1] = sp, sr, kid
			n.n++
			return
		}
		rn := &inner[R]{node: node[R]{owner: t.owner}}
		if atEnd {
			// The new node takes the last child with the new one: one
			// separator, as every inner node has; the last separator
			// goes up.
			rn.n = 1
			rn.keys[0], rn.recs[0] = sp, sr
			rn.kids[0], rn.kids[1] = in.kids[order], kid
			sp, sr = n.keys[order-1], n.recs[order-1]
			n.n--
			n.keys[order-1], n.recs[order-1], in.kids[order] = 0, nil, nil
		} else {
			var keys [order + 1]uint64
			var recs [order + 1]*R
			var kids [order + 2]*node[R]
			copy(keys[:at], n.keys[:at])
			copy(recs[:at], n.recs[:at])
			keys[at], recs[at] = sp, sr
			copy(keys[at+1:], n.keys[at:])
			copy(recs[at+1:], n.recs[at:])
			copy(kids[:at+1], in.kids[:at+1])
			kids[at+1] = kid
			copy(kids[at+2:], in.kids[at+1:])
			// order+1 separators: half stay, one goes up, the rest
			// move right.
			half := (order + 1) / 2
			n.n = copy(n.keys[:], keys[:half])
			copy(n.recs[:], recs[:half])
			copy(in.kids[:], kids[:half+1])
			clear(n.keys[half:])
			clear(n.recs[half:])
			clear(in.kids[half+1:])
			sp, sr = keys[half], recs[half]
			rn.n = copy(rn.keys[:], keys[half+1:])
			copy(rn.recs[:], recs[half+1:])
			copy(rn.kids[:], kids[half+1:])
		}
		kid = &rn.node
	}
	// The root split: a new root above it.
	root := &inner[R]{node: node[R]{owner: t.owner, n: 1}}
	root.keys[0], root.recs[0] = sp, sr
	root.kids[0], root.kids[1] = t.root, kid
	t.root = &root.node
	t.height++
}

// Delete removes the item (p, key) and returns its record, or nil if there
// is none (then t is unchanged).
func (t *Tree[R]) Delete(p uint64, key []byte) (old *R) {
	if t.Get(p, key, nil) == nil {
		return nil // no node copied for nothing
	}
	var path [maxHeight]step[R]
	n := t.own(t.root, t.height)
	t.root = n
	isSep := false
	for d := 0; d < t.height; d++ {
		i, eq := t.child(n, p, key, nil, d)
		isSep = isSep || eq
		in := asInner(n)
		c := t.own(in.kids[i], t.height-d-1)
		in.kids[i] = c
		path[d] = step[R]{n, i}
		n = c
	}
	i, _ := t.search(n, p, key)
	old = n.recs[i]
	copy(n.keys[i:n.n], n.keys[i+1:n.n])
	copy(n.recs[i:n.n], n.recs[i+1:n.n])
	n.n--
	n.keys[n.n], n.recs[n.n] = 0, nil
	t.count--
	for d := t.height - 1; d >= 0; d-- {
		pn, ci := path[d].n, path[d].i
		if asInner(pn).kids[ci].n >= minItems {
			break
		}
		t.rebalance(pn, ci, t.height-d-1)
	}
	for t.height > 0 && t.root.n == 0 {
		t.root = asInner(t.root).kids[0]
		t.height--
	}
	if t.height == 0 && t.root.n == 0 {
		t.root = nil
	}
	if isSep {
		t.replaceSeparator(p, key, old)
	}
	return old
}

// rebalance fixes child ci (owned) of inner node pn (owned), which has
// fewer than minItems items, with a sibling: the two are merged if their
// items fit in one node, else shared evenly. h is the children's height.
func (t *Tree[R]) rebalance(pn *node[R], ci, h int) {
	in := asInner(pn)
	li := ci - 1 // the left one of the two; pn has at least one separator
	if ci == 0 {
		li = 0
	}
	in.kids[li] = t.own(in.kids[li], h)
	left, right := in.kids[li], in.kids[li+1] // right is read, and owned only if it stays
	var keys [2*order + 1]uint64
	var recs [2*order + 1]*R
	if h == 0 {
		m := copy(keys[:], left.keys[:left.n])
		copy(recs[:], left.recs[:left.n])
		m += copy(keys[m:], right.keys[:right.n])
		copy(recs[left.n:], right.recs[:right.n])
		clear(left.keys[:])
		clear(left.recs[:])
		if m <= order {
			left.n = copy(left.keys[:], keys[:m])
			copy(left.recs[:], recs[:m])
			t.removeSeparator(pn, li)
			return
		}
		half := m / 2
		right = t.own(right, h)
		in.kids[li+1] = right
		clear(right.keys[:])
		clear(right.recs[:])
		left.n = copy(left.keys[:], keys[:half])
		copy(left.recs[:], recs[:half])
		right.n = copy(right.keys[:], keys[half:m])
		copy(right.recs[:], recs[half:m])
		pn.keys[li], pn.recs[li] = right.keys[0], right.recs[0]
		return
	}
	// Inner children: their separators with pn's between them.
	lin, rin := asInner(left), asInner(right)
	var kids [2*order + 2]*node[R]
	m := copy(keys[:], left.keys[:left.n])
	copy(recs[:], left.recs[:left.n])
	copy(kids[:], lin.kids[:left.n+1])
	keys[m], recs[m] = pn.keys[li], pn.recs[li]
	m++
	copy(keys[m:], right.keys[:right.n])
	copy(recs[m:], right.recs[:right.n])
	copy(kids[m:], rin.kids[:right.n+1])
	m += right.n // separators; m+1 children
	clear(left.keys[:])
	clear(left.recs[:])
	clear(lin.kids[:])
	if m <= order {
		left.n = copy(left.keys[:], keys[:m])
		copy(left.recs[:], recs[:m])
		copy(lin.kids[:], kids[:m+1])
		t.removeSeparator(pn, li)
		return
	}
	half := m / 2
	right = t.own(right, h)
	in.kids[li+1] = right
	rin = asInner(right)
	clear(right.keys[:])
	clear(right.recs[:])
	clear(rin.kids[:])
	left.n = copy(left.keys[:], keys[:half])
	copy(left.recs[:], recs[:half])
	copy(lin.kids[:], kids[:half+1])
	pn.keys[li], pn.recs[li] = keys[half], recs[half]
	right.n = copy(right.keys[:], keys[half+1:m])
	copy(right.recs[:], recs[half+1:m])
	copy(rin.kids[:], kids[half+1:m+1])
}

// removeSeparator removes separator i of inner node n and the child after
// it (merged into the child before it).
func (t *Tree[R]) removeSeparator(n *node[R], i int) {
	in := asInner(n)
	copy(n.keys[i:n.n], n.keys[i+1:n.n])
	copy(n.recs[i:n.n], n.recs[i+1:n.n])
	copy(in.kids[i+1:n.n+1], in.kids[i+2:n.n+1])
	n.n--
	n.keys[n.n], n.recs[n.n], in.kids[n.n+1] = 0, nil, nil
}

// replaceSeparator replaces the separator equal to (p, key), whose record
// old was just deleted, by the least item after it, so that the tree
// keeps no deleted record alive. The separators are distinct, and the one
// equal to the key lies on its search path.
func (t *Tree[R]) replaceSeparator(p uint64, key []byte, old *R) {
	if t.height == 0 {
		return
	}
	n := t.own(t.root, t.height)
	t.root = n
	for d := 0; d < t.height; d++ {
		i, eq := t.child(n, p, key, nil, d)
		in := asInner(n)
		if eq && n.recs[i-1] == old {
			m := in.kids[i]
			for h := t.height - d - 1; h > 0; h-- {
				m = asInner(m).kids[0]
			}
			n.keys[i-1], n.recs[i-1] = m.keys[0], m.recs[0]
			return
		}
		if d+1 < t.height {
			c := t.own(in.kids[i], t.height-d-1)
			in.kids[i] = c
			n = c
		}
	}
}

// Min returns the least item: its prefix and record, and false if t is
// empty.
func (t *Tree[R]) Min() (uint64, *R, bool) {
	n := t.root
	if n == nil {
		return 0, nil, false
	}
	for h := t.height; h > 0; h-- {
		n = asInner(n).kids[0]
	}
	return n.keys[0], n.recs[0], true
}

// Max returns the greatest item: its prefix and record, and false if t is
// empty.
func (t *Tree[R]) Max() (uint64, *R, bool) {
	n := t.root
	if n == nil {
		return 0, nil, false
	}
	for h := t.height; h > 0; h-- {
		n = asInner(n).kids[n.n]
	}
	return n.keys[n.n-1], n.recs[n.n-1], true
}

// Ascend calls fn for each item not below (p, key), in order, until fn
// returns false. fn must not write t.
func (t *Tree[R]) Ascend(p uint64, key []byte, fn func(p uint64, r *R) bool) {
	if t.root != nil {
		t.ascend(t.root, t.height, p, key, true, fn)
	}
}

// Scan calls fn for each item, in order, until fn returns false. fn must
// not write t.
func (t *Tree[R]) Scan(fn func(p uint64, r *R) bool) {
	if t.root != nil {
		t.ascend(t.root, t.height, 0, nil, false, fn)
	}
}

// All returns an iterator over the items (prefix, record) in order. The
// loop's body must not write t.
func (t *Tree[R]) All() iter.Seq2[uint64, *R] {
	return func(yield func(uint64, *R) bool) { t.Scan(yield) }
}

// From returns an iterator over the items not below (p, key), in order.
// The loop's body must not write t.
func (t *Tree[R]) From(p uint64, key []byte) iter.Seq2[uint64, *R] {
	return func(yield func(uint64, *R) bool) { t.Ascend(p, key, yield) }
}

// ascend walks the subtree n of height h, from (p, key) if from.
func (t *Tree[R]) ascend(n *node[R], h int, p uint64, key []byte, from bool, fn func(uint64, *R) bool) bool {
	i := 0
	if h == 0 {
		if from {
			i, _ = t.search(n, p, key)
		}
		for ; i < n.n; i++ {
			if !fn(n.keys[i], n.recs[i]) {
				return false
			}
		}
		return true
	}
	if from {
		var eq bool
		if i, eq = t.search(n, p, key); eq {
			i++
		}
	}
	in := asInner(n)
	if !t.ascend(in.kids[i], h-1, p, key, from, fn) {
		return false
	}
	for i++; i <= n.n; i++ {
		if !t.ascend(in.kids[i], h-1, 0, nil, false, fn) {
			return false
		}
	}
	return true
}

// Build returns a tree of the items that seq yields, which must come in
// strictly increasing order (keyOf gives a record's key): every leaf but
// the last ones is full.
func Build[R any](cmp func(key []byte, r *R) int, keyOf func(*R) []byte, seq iter.Seq2[uint64, *R]) *Tree[R] {
	t := New(cmp)
	for p, r := range seq {
		t.Load(p, keyOf(r), r)
	}
	return t
}
