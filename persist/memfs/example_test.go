package memfs_test

import (
	"fmt"
	"io"
	"log"

	"github.com/revkv/revkv/persist/memfs"
)

// What a crash keeps: synced data and synced directory entries only.
func Example() {
	fs := memfs.New(memfs.Options{})
	write := func(name, data string, sync bool) {
		f, err := fs.Create(name)
		if err != nil {
			log.Fatal(err)
		}
		f.Write([]byte(data))
		if sync {
			f.Sync()
		}
		f.Close()
	}
	write("synced", "kept", true)
	write("unsynced", "lost", false)
	fs.SyncDir(".") // both names are durable; only one file's data is

	fs.Crash()
	for _, name := range []string{"synced", "unsynced"} {
		f, err := fs.Open(name)
		if err != nil {
			log.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		fmt.Printf("%s: %q\n", name, b)
	}
	// Output:
	// synced: "kept"
	// unsynced: ""
}

// Fault injection: the second write from now fails.
func ExampleFS_FailWrite() {
	fs := memfs.New(memfs.Options{})
	f, _ := fs.Create("f")
	fs.FailWrite(2)
	_, err1 := f.Write([]byte("a"))
	_, err2 := f.Write([]byte("b"))
	fmt.Println(err1, err2 != nil)
	// Output: <nil> true
}

// Linux's fsync failure semantics: the bytes of a failed Sync stay
// readable, a later Sync succeeds, and a crash still loses them.
func ExampleOptions_linuxSyncFailures() {
	fs := memfs.New(memfs.Options{LinuxSyncFailures: true})
	f, _ := fs.Create("log")
	fs.SyncDir(".")
	f.Write([]byte("one "))
	fs.FailSync(1)
	fmt.Println(f.Sync() != nil)
	f.Write([]byte("two"))
	fmt.Println(f.Sync())
	fs.Crash()
	r, _ := fs.Open("log")
	b, _ := io.ReadAll(r)
	fmt.Printf("%q\n", b)
	// Output:
	// true
	// <nil>
	// "\x00\x00\x00\x00two"
}
