package persist_test

import (
	"fmt"

	"github.com/revkv/revkv/persist"
)

// Batches are idempotent on a state that already holds them: a persister
// may replay its log from before the snapshot it loaded, and the engine
// skips what the snapshot covers.
func ExampleBatch_Covered() {
	put := persist.Batch{Rev: 5, Changes: []persist.Change{{Key: []byte("k"), Value: []byte("v")}}}
	compact := persist.Batch{Rev: 5, Compaction: true, Compact: 3}
	// A snapshot state at revision 6, compacted at 2, consistent index 0:
	fmt.Println(put.Covered(6, 2, 0), compact.Covered(6, 2, 0))
	// Output: true false
}
