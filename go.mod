module github.com/revkv/revkv

go 1.24

require (
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/klauspost/compress v1.18.2
	github.com/tidwall/btree v1.8.2
	pgregory.net/rapid v1.3.0
)
