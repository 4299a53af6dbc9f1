package server_test

import (
	"context"
	"fmt"
	"net"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/etcd/server"
)

// Serve a revkv DB with etcd's API and use it with etcd's own client.
func Example() {
	db, err := revkv.Open("", revkv.Options{}) // a directory persists it
	if err != nil {
		panic(err)
	}
	defer db.Close() // last: after the server has stopped

	srv := server.New(server.DB(db), server.Options{Name: "example"})
	g := grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go g.Serve(lis)
	defer func() {
		srv.Close() // ends watch streams, which GracefulStop would wait for
		g.GracefulStop()
	}()

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{lis.Addr().String()}, Logger: zap.NewNop()})
	if err != nil {
		panic(err)
	}
	defer cli.Close()
	ctx := context.Background()
	if _, err := cli.Put(ctx, "greeting", "hello"); err != nil {
		panic(err)
	}
	r, err := cli.Get(ctx, "greeting")
	if err != nil {
		panic(err)
	}
	fmt.Println(string(r.Kvs[0].Value), r.Header.Revision)
	// Output: hello 2
}
