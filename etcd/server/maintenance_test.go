package server_test

import (
	"bytes"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/snapshot"
	"go.uber.org/zap"

	"github.com/revkv/revkv/etcd/etcdtest"
	"github.com/revkv/revkv/etcd/server"
)

func TestStatusMemberListAuth(t *testing.T) {
	f := startFake(t, etcdtest.Config{Server: server.Options{Name: "n1", ClientURLs: []string{"http://x:2379"}}})
	cli := f.Client(clientv3.Config{})
	ctx := ctxT(t)
	mustPut(t, cli, "a", "1")
	st, err := cli.Status(ctx, endpoint(cli))
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "3.7.3" || st.Leader != st.Header.MemberId || st.Header.Revision != 2 || st.DbSize <= 0 || st.RaftTerm != 2 || len(st.Errors) != 0 {
		t.Fatalf("status: %+v", st)
	}
	ml, err := cli.MemberList(ctx)
	if err != nil || len(ml.Members) != 1 || ml.Members[0].ID != st.Header.MemberId || ml.Members[0].Name != "n1" || ml.Members[0].ClientURLs[0] != "http://x:2379" {
		t.Fatalf("member list: %+v %v", ml, err)
	}
	// Stable IDs: the same name gives the same IDs in another server.
	g := startFake(t, etcdtest.Config{Server: server.Options{Name: "n1"}}).Client(clientv3.Config{})
	ml2, err := g.MemberList(ctx)
	if err != nil || ml2.Members[0].ID != ml.Members[0].ID || ml2.Header.ClusterId != ml.Header.ClusterId {
		t.Fatalf("IDs not stable: %+v %+v", ml.Header, ml2.Header)
	}
	_, err = cli.Authenticate(ctx, "root", "pw")
	wantErr(t, err, rpctypes.ErrAuthNotEnabled)
	as, err := cli.AuthStatus(ctx)
	if err != nil || as.Enabled {
		t.Fatalf("auth status: %+v %v", as, err)
	}
	_, err = cli.AuthEnable(ctx)
	wantErr(t, err, rpctypes.ErrRootUserNotExist)
	if _, err = cli.Defragment(ctx, endpoint(cli)); err != nil {
		t.Fatalf("defragment: %v", err)
	}
}

func TestHashKV(t *testing.T) {
	f := startFake(t, etcdtest.Config{})
	cli := f.Client(clientv3.Config{})
	ctx := ctxT(t)
	mustPut(t, cli, "a", "1")
	mustPut(t, cli, "a", "2")
	h1, err := cli.HashKV(ctx, endpoint(cli), 0)
	if err != nil || h1.HashRevision != 3 || h1.CompactRevision != -1 || h1.Header.Revision != 3 {
		t.Fatalf("hashkv: %+v %v", h1, err)
	}
	h2, err := cli.HashKV(ctx, endpoint(cli), 2)
	if err != nil || h2.HashRevision != 2 || h2.Hash == h1.Hash {
		t.Fatalf("hashkv at 2: %+v %v", h2, err)
	}
	mustPut(t, cli, "b", "1")
	h3, _ := cli.HashKV(ctx, endpoint(cli), 3)
	if h3.Hash != h1.Hash || h3.Header.Revision != 4 {
		t.Fatalf("hash at 3 changed after a later write: %+v vs %+v", h3, h1)
	}
	_, err = cli.HashKV(ctx, endpoint(cli), 100)
	wantErr(t, err, rpctypes.ErrFutureRev)
	// Compacting at a revision does not change its hash (etcd keeps the
	// hash it took before the compaction).
	if _, err := cli.Compact(ctx, 3); err != nil {
		t.Fatal(err)
	}
	h4, err := cli.HashKV(ctx, endpoint(cli), 3)
	if err != nil || h4.Hash != h1.Hash || h4.CompactRevision != -1 {
		t.Fatalf("hash at 3 after compacting there: %+v, before %+v (%v)", h4, h1, err)
	}
	hr, err := pb.NewMaintenanceClient(etcdtest.Conn(cli)).Hash(ctx, &pb.HashRequest{})
	if err != nil || hr.Header.Revision != 4 {
		t.Fatalf("hash: %+v %v", hr, err)
	}
}

func TestAlarmNoSpace(t *testing.T) {
	cli := newClient(t)
	ctx := ctxT(t)
	a, err := cli.AlarmList(ctx)
	if err != nil || len(a.Alarms) != 0 {
		t.Fatalf("alarms: %+v %v", a, err)
	}
	mc := pb.NewMaintenanceClient(etcdtest.Conn(cli))
	if _, err := mc.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	_, err = cli.Put(ctx, "a", "1")
	wantErr(t, err, rpctypes.ErrNoSpace)
	if _, err := cli.Get(ctx, "a"); err != nil {
		t.Fatalf("reads go on under NOSPACE: %v", err)
	}
	a, _ = cli.AlarmList(ctx)
	if len(a.Alarms) != 1 || a.Alarms[0].Alarm != pb.AlarmType_NOSPACE {
		t.Fatalf("alarm list: %+v", a)
	}
	if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: 1, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, cli, "a", "1")
}

func TestSnapshotSave(t *testing.T) {
	f := etcdtest.StartEndpoint(t, etcdtest.Config{})
	cli := f.Client(clientv3.Config{})
	for i := range 1000 {
		mustPut(t, cli, "key", string(rune('a'+i%26)))
	}
	path := filepath.Join(t.TempDir(), "snap.db")
	ver, err := snapshot.SaveWithVersion(ctxT(t), zap.NewNop(), clientv3.Config{Endpoints: []string{f.Endpoint()}}, path)
	if err != nil || ver != server.StorageVersion {
		t.Fatalf("snapshot save: %q %v", ver, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) || len(body)%512 != 0 {
		t.Fatalf("envelope: %d bytes, checksum ok %v", len(body), bytes.Equal(got[:], sum))
	}
	// The payload is revkv's snapshot, then zero padding.
	sn, _ := f.DB.Snapshot()
	defer sn.Close()
	var want bytes.Buffer
	sn.WriteTo(&want)
	if !bytes.Equal(body[:want.Len()], want.Bytes()) || len(bytes.Trim(body[want.Len():], "\x00")) != 0 {
		t.Fatal("payload is not the DB's snapshot")
	}
}

// TestQuota follows etcd's own alarm test: writes fill a small quota, the
// NOSPACE alarm goes up and puts fail; compaction, defragmentation and a
// disarm make room again.
func TestQuota(t *testing.T) {
	var logs strings.Builder
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	f := startFake(t, etcdtest.Config{Server: server.Options{QuotaBackendBytes: 13 * 4096, Logger: log}})
	cli := f.Client(clientv3.Config{})
	ctx := ctxT(t)
	mustPut(t, cli, "1st", strings.Repeat("a", 64))
	var err error
	for i := 0; err == nil; i++ {
		if i > 100 {
			t.Fatal("100 puts of 4 KiB fit a 52 KiB quota")
		}
		_, err = cli.Put(ctx, "2nd", strings.Repeat("b", 4096))
	}
	wantErr(t, err, rpctypes.ErrNoSpace)
	alarms, err := cli.AlarmList(ctx)
	if err != nil || len(alarms.Alarms) != 1 || alarms.Alarms[0].Alarm != pb.AlarmType_NOSPACE {
		t.Fatalf("alarms: %+v %v", alarms, err)
	}
	_, err = cli.Put(ctx, "3rd", "small")
	wantErr(t, err, rpctypes.ErrNoSpace)
	st, err := cli.Status(ctx, endpoint(cli))
	if err != nil || st.DbSizeQuota != 13*4096 || len(st.Errors) != 1 {
		t.Fatalf("status: %+v %v", st, err)
	}
	if _, err := cli.Compact(ctx, st.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Defragment(ctx, endpoint(cli)); err != nil {
		t.Fatal(err)
	}
	for _, a := range alarms.Alarms {
		if _, err := cli.AlarmDisarm(ctx, (*clientv3.AlarmMember)(a)); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, cli, "4th", "small")
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "NOSPACE alarm raised") || !strings.Contains(logs.String(), "alarm disarmed") {
		t.Fatalf("the alarm was not logged:\n%s", logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
