package watch

import (
	"bytes"
	"math/rand/v2"
)

// index finds the synced watches whose key range holds a key.
//
// Single-key watches, the common case, are in a map. Range watches (a
// prefix, [key, end), or every key >= key) are in an interval treap ordered
// by start and augmented with the largest end in each subtree, so a lookup
// costs O(log W + matches) expected, however many watches there are. The
// zero index is empty and ready to use.
type index struct {
	keys   map[string][]*watch
	ranges *node
	n      int
}

type node struct {
	w           *watch
	prio        uint64
	left, right *node
	maxEnd      []byte // largest end in the subtree; nil means unbounded
}

func (x *index) len() int { return x.n }

func (x *index) add(w *watch) {
	x.n++
	if w.single() {
		if x.keys == nil { // the zero index is empty; made on first use
			x.keys = map[string][]*watch{}
		}
		x.keys[string(w.key)] = append(x.keys[string(w.key)], w)
		return
	}
	x.ranges = insert(x.ranges, &node{w: w, prio: rand.Uint64(), maxEnd: w.end})
}

func (x *index) remove(w *watch) {
	if w.single() {
		ws := x.keys[string(w.key)]
		for i, o := range ws {
			if o == w {
				ws = append(ws[:i], ws[i+1:]...)
				x.n--
				break
			}
		}
		if len(ws) == 0 {
			delete(x.keys, string(w.key))
		} else {
			x.keys[string(w.key)] = ws
		}
		return
	}
	var removed bool
	x.ranges, removed = remove(x.ranges, w)
	if removed {
		x.n--
	}
}

// stab calls fn for each watch whose range holds key.
func (x *index) stab(key []byte, fn func(*watch)) {
	for _, w := range x.keys[string(key)] {
		fn(w)
	}
	stab(x.ranges, key, fn)
}

// endAfter reports whether an end (nil: unbounded) lies after key.
func endAfter(end, key []byte) bool { return end == nil || bytes.Compare(end, key) > 0 }

// maxEnd returns the larger of two ends, nil being the largest.
func maxEnd(a, b []byte) []byte {
	if a == nil || b == nil {
		return nil
	}
	if bytes.Compare(a, b) >= 0 {
		return a
	}
	return b
}

// before orders nodes by start, then by watch identity to keep equal
// starts distinct.
func before(a, b *watch) bool {
	if c := bytes.Compare(a.key, b.key); c != 0 {
		return c < 0
	}
	return a.seq < b.seq
}

func (n *node) fix() {
	m := n.w.end
	if n.left != nil {
		m = maxEnd(m, n.left.maxEnd)
	}
	if n.right != nil {
		m = maxEnd(m, n.right.maxEnd)
	}
	n.maxEnd = m
}

func rotateRight(n *node) *node {
	l := n.left
	n.left = l.right
	l.right = n
	n.fix()
	l.fix()
	return l
}

func rotateLeft(n *node) *node {
	r := n.right
	n.right = r.left
	r.left = n
	n.fix()
	r.fix()
	return r
}

func insert(t, n *node) *node {
	if t == nil {
		return n
	}
	if before(n.w, t.w) {
		t.left = insert(t.left, n)
		if t.left.prio > t.prio {
			t = rotateRight(t)
		}
	} else {
		t.right = insert(t.right, n)
		if t.right.prio > t.prio {
			t = rotateLeft(t)
		}
	}
	t.fix()
	return t
}

func remove(t *node, w *watch) (*node, bool) {
	if t == nil {
		return nil, false
	}
	var removed bool
	switch {
	case t.w == w:
		return merge(t.left, t.right), true
	case before(w, t.w):
		t.left, removed = remove(t.left, w)
	default:
		t.right, removed = remove(t.right, w)
	}
	t.fix()
	return t, removed
}

// merge joins two treaps where every start in a precedes every start in b.
func merge(a, b *node) *node {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		a.right = merge(a.right, b)
		a.fix()
		return a
	default:
		b.left = merge(a, b.left)
		b.fix()
		return b
	}
}

func stab(t *node, key []byte, fn func(*watch)) {
	for t != nil && endAfter(t.maxEnd, key) {
		stab(t.left, key, fn)
		if bytes.Compare(t.w.key, key) > 0 {
			return // this start and every start to the right are after key
		}
		if endAfter(t.w.end, key) {
			fn(t.w)
		}
		t = t.right
	}
}
