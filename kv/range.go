package kv

// RangeOptions select what a range read returns. The zero value reads every
// key in the range at the current revision, sorted by key.
//
// The options apply in etcd's order: the keys live in the range at Rev are
// read, the revision filters drop some, the rest are sorted, and Limit cuts
// the sorted list.
type RangeOptions struct {
	// Limit caps how many KeyValues are returned; <= 0 means no cap.
	// RangeResult.More says whether it cut any.
	Limit int64
	// Rev is the revision to read at; <= 0 means the current revision (or
	// the view's revision, for a View).
	Rev int64
	// CountOnly returns no KeyValues, only Count.
	CountOnly bool
	// KeysOnly returns KeyValues without their Value.
	KeysOnly bool
	// TotalCount makes Count the number of keys in the range at Rev, not
	// capped by Limit (nor reduced by the revision filters, as etcd counts).
	// It costs a walk of the whole range.
	TotalCount bool

	// SortOrder and SortTarget order the result. SortNone with SortByKey
	// (the zero values) is key order; SortNone with another target sorts
	// ascending, as etcd does. Ties keep the order Go's sort.Sort leaves
	// them in when it is given the keys in key order, which is etcd's.
	SortOrder  SortOrder
	SortTarget SortTarget

	// The revision filters drop keys whose ModRevision or CreateRevision
	// is below a Min or above a Max; 0 means no bound.
	MinModRevision    int64
	MaxModRevision    int64
	MinCreateRevision int64
	MaxCreateRevision int64
}

// Sorted reports whether o asks for an order other than ascending key
// order.
func (o *RangeOptions) Sorted() bool {
	return o.SortTarget != SortByKey || o.SortOrder == SortDescend
}

// LimitFirst reports whether Limit applies to the keys in key order, before
// sorting, as etcd applies it when SortOrder is SortNone (whatever the
// target) or the order is ascending by key, and there is no revision
// filter. Otherwise Limit cuts the sorted, filtered list.
func (o *RangeOptions) LimitFirst() bool {
	return (o.SortOrder == SortNone || o.SortTarget == SortByKey && o.SortOrder == SortAscend) && !o.Filtered()
}

// Filtered reports whether o has a revision filter.
func (o *RangeOptions) Filtered() bool {
	return o.MinModRevision != 0 || o.MaxModRevision != 0 || o.MinCreateRevision != 0 || o.MaxCreateRevision != 0
}

// Keep reports whether kv passes o's revision filters.
func (o *RangeOptions) Keep(kv *KeyValue) bool {
	return (o.MaxModRevision == 0 || kv.ModRevision <= o.MaxModRevision) &&
		(o.MinModRevision == 0 || kv.ModRevision >= o.MinModRevision) &&
		(o.MaxCreateRevision == 0 || kv.CreateRevision <= o.MaxCreateRevision) &&
		(o.MinCreateRevision == 0 || kv.CreateRevision >= o.MinCreateRevision)
}

// Check returns ErrInvalidSortOption if o's sort fields are not defined
// values.
func (o *RangeOptions) Check() error {
	if o.SortOrder > SortDescend || o.SortTarget > SortByValue {
		return ErrInvalidSortOption
	}
	return nil
}

// RangeResult is what a range read returns.
type RangeResult struct {
	// KVs are the keys selected, in the order asked for.
	KVs []KeyValue
	// Rev is the store's revision when the read was made (for a View, its
	// revision; inside a txn, the txn's), not the revision read at. A read
	// that fails still reports it.
	Rev int64
	// Count is the number of keys in the range at the read revision if
	// CountOnly or TotalCount was set, and len(KVs) otherwise.
	Count int64
	// More reports that Limit cut keys that the filters kept.
	More bool
}

// SortOrder is the direction of a sorted range.
type SortOrder uint8

const (
	// SortNone is key order, unless SortTarget names another field.
	SortNone SortOrder = iota
	// SortAscend sorts from the smallest value of the target up.
	SortAscend
	// SortDescend sorts from the largest value of the target down.
	SortDescend
)

// SortTarget is the field a sorted range orders by.
type SortTarget uint8

const (
	SortByKey SortTarget = iota
	SortByVersion
	SortByCreate
	SortByMod
	SortByValue
)
