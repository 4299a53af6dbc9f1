package persist_test

import (
	"testing"

	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/fstest"
)

func TestOS(t *testing.T) { fstest.Run(t, persist.OS, t.TempDir()) }
