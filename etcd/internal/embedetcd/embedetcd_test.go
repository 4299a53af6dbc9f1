package embedetcd

import (
	"context"
	"testing"
)

func TestStart(t *testing.T) {
	e := Start(t)
	c := e.Client(t)
	ctx := context.Background()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("got %v", resp.Kvs)
	}
	t.Logf("startup %v", e.Startup)
}
