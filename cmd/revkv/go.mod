module github.com/revkv/revkv/cmd/revkv

go 1.24

require (
	github.com/chzyer/readline v1.5.1
	github.com/creack/pty v1.1.24
	github.com/revkv/revkv v0.0.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/klauspost/compress v1.18.2 // indirect
	github.com/tidwall/btree v1.8.2 // indirect
	golang.org/x/sys v0.0.0-20220310020820-b874c991c1a5 // indirect
)

replace github.com/revkv/revkv => ../..
