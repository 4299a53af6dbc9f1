package proptest_test

import (
	"fmt"
	"time"

	"github.com/revkv/revkv/engine"
	"pgregory.net/rapid"
)

// leaseSteps are TestMetamorphic's lease operations: grants of chosen
// and store-chosen IDs, keep-alives, revokes, puts attached to leases,
// moves of the shared clock, expiries, and a comparison of every lease
// (TTL left, deadline, attached keys). Each runs on every variant through
// each, which fails on any difference.
func leaseSteps(clock *engine.ManualClock, each func(string, func(*engine.Store) (string, error)), key func(string) []byte) map[string]func(*rapid.T) {
	ids := rapid.SampledFrom([]int64{1, 2, 3, 9})
	return map[string]func(*rapid.T){
		"grant": func(t *rapid.T) {
			id := rapid.SampledFrom([]int64{0, 1, 2, 3}).Draw(t, "id")
			ttl := rapid.Int64Range(0, 6).Draw(t, "ttl")
			each("grant", func(s *engine.Store) (string, error) {
				l, err := s.Grant(id, ttl)
				return fmt.Sprint(l.ID, l.TTL, l.Deadline.UnixNano()), err
			})
		},
		"keepAlive": func(t *rapid.T) {
			id := ids.Draw(t, "id")
			each("keepAlive", func(s *engine.Store) (string, error) {
				ttl, err := s.KeepAlive(id)
				return fmt.Sprint(ttl), err
			})
		},
		"revoke": func(t *rapid.T) {
			id := ids.Draw(t, "id")
			each("revoke", func(s *engine.Store) (string, error) {
				rev, err := s.Revoke(id)
				return fmt.Sprint(rev), err
			})
		},
		"putLease": func(t *rapid.T) {
			k, id := key("key"), ids.Draw(t, "id")
			each("putLease", func(s *engine.Store) (string, error) {
				rev, err := s.PutLease(k, []byte("v"), id)
				return fmt.Sprint(rev), err
			})
		},
		"advance": func(t *rapid.T) {
			clock.Advance(time.Duration(rapid.IntRange(0, 6).Draw(t, "halfSeconds")) * time.Second / 2)
		},
		"expire": func(t *rapid.T) {
			each("expire", func(s *engine.Store) (string, error) {
				n, err := s.ExpireLeases(clock.Now())
				return fmt.Sprint(n, s.Rev()), err
			})
		},
		"leases": func(t *rapid.T) {
			each("leases", func(s *engine.Store) (string, error) {
				ls, err := s.Leases()
				if err != nil {
					return "", err
				}
				out := ""
				for _, l := range ls {
					st, err := s.TimeToLive(l.ID, true)
					if err != nil {
						return out, err
					}
					out += fmt.Sprintf("%d: %d of %d s, due %d, keys %q; ", l.ID, st.TTL, l.TTL, l.Deadline.UnixNano(), st.Keys)
				}
				return out, nil
			})
		},
	}
}
