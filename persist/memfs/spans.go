package memfs

// span is the byte range [lo, hi) of a file.
type span struct{ lo, hi int64 }

// spans is a set of bytes as sorted, disjoint, non-adjacent spans. Files
// are written mostly at their end, so a set rarely holds more than a few.
type spans []span

// add returns s with [lo, hi) added.
func (s spans) add(lo, hi int64) spans {
	if lo >= hi {
		return s
	}
	var out spans
	for _, x := range s {
		switch {
		case x.hi < lo || x.lo > hi: // apart (adjacent spans merge)
			out = append(out, x)
		default:
			lo, hi = min(lo, x.lo), max(hi, x.hi)
		}
	}
	out = append(out, span{lo, hi})
	sortSpans(out)
	return out
}

// remove returns s without the bytes of [lo, hi).
func (s spans) remove(lo, hi int64) spans {
	if lo >= hi || len(s) == 0 {
		return s
	}
	var out spans
	for _, x := range s {
		if x.hi <= lo || x.lo >= hi {
			out = append(out, x)
			continue
		}
		if x.lo < lo {
			out = append(out, span{x.lo, lo})
		}
		if x.hi > hi {
			out = append(out, span{hi, x.hi})
		}
	}
	return out
}

// sortSpans sorts by start; an insertion sort, as s is short and nearly
// sorted.
func sortSpans(s spans) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].lo < s[j-1].lo; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
