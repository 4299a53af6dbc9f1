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
