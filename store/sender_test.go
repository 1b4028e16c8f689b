package store

import (
	"testing"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/stretchr/testify/require"
)

func TestSenderSubscriptions(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	ss, ctx := db.Sender(), testCtx(t)

	put := func(id uint64, state SenderState) *SenderSubscription {
		s := &SenderSubscription{ID: subID(id), State: state, NextSeq: id,
			Offer:  Offer{Destination: [33]byte{3}, PlanID: "basic", Terms: creditTerms},
			Limits: Limits{MaxPerDay: 1_000_000, MaxFee: 50}}
		require.NoError(t, ss.Update(ctx, func(tx SenderTx) error {
			return tx.PutSubscription(s)
		}))
		return s
	}
	one := put(1, SenderActive)
	put(2, SenderActive)
	put(3, SenderPaused)
	put(2, SenderCapReached)

	list := func(state SenderState, page Page) []SubID {
		var ids []SubID
		require.NoError(t, ss.View(ctx, func(tx SenderTx) error {
			return tx.ForEachSubscription(state, page, func(s *SenderSubscription) error {
				ids = append(ids, s.ID)
				return nil
			})
		}))
		return ids
	}
	tests := []struct {
		name  string
		state SenderState
		page  Page
		want  []SubID
	}{
		{"all", 0, Page{}, []SubID{subID(1), subID(2), subID(3)}},
		{"all page", 0, Page{After: ptr(subID(1)), Limit: 1}, []SubID{subID(2)}},
		{"active", SenderActive, Page{}, []SubID{subID(1)}},
		{"cap reached", SenderCapReached, Page{}, []SubID{subID(2)}},
		{"paused", SenderPaused, Page{}, []SubID{subID(3)}},
		{"paused after 3", SenderPaused, Page{After: ptr(subID(3))}, nil},
		{"cancelled", SenderCancelled, Page{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, list(tc.state, tc.page))
		})
	}

	t.Run("get", func(t *testing.T) {
		require.NoError(t, ss.View(ctx, func(tx SenderTx) error {
			got, err := tx.Subscription(subID(1))
			require.NoError(t, err)
			require.Equal(t, one, got)
			_, err = tx.Subscription(subID(9))
			require.ErrorIs(t, err, ErrNotFound)
			return nil
		}))
	})

	t.Run("invalid", func(t *testing.T) {
		for _, s := range []*SenderSubscription{{State: SenderActive}, {ID: subID(1)}} {
			err := ss.Update(ctx, func(tx SenderTx) error { return tx.PutSubscription(s) })
			require.ErrorIs(t, err, ErrInvalid)
		}
	})
}

func TestSenderAttempts(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	ss, ctx := db.Sender(), testCtx(t)
	a, b := subID(1), subID(2)

	mk := func(sub SubID, seq uint64, state AttemptState) *Attempt {
		return &Attempt{SubID: sub, Seq: seq, Preimage: Preimage{byte(seq)},
			Hash: hashOf(seq*10 + uint64(sub[15])), Amount: 1000, State: state,
			CreatedAt: at(int64(seq))}
	}
	atts := []*Attempt{
		mk(a, 1, AttemptSucceeded), mk(a, 2, AttemptInFlight), mk(a, 3, AttemptCreated),
		mk(b, 1, AttemptFailed), mk(b, 2, AttemptCreated),
	}
	// The send intent and the sequence advance are one step.
	require.NoError(t, ss.Update(ctx, func(tx SenderTx) error {
		for _, at := range atts {
			if err := tx.PutAttempt(at); err != nil {
				return err
			}
		}
		return nil
	}))

	t.Run("get", func(t *testing.T) {
		require.NoError(t, ss.View(ctx, func(tx SenderTx) error {
			for _, want := range atts {
				got, err := tx.Attempt(want.SubID, want.Seq)
				require.NoError(t, err)
				require.Equal(t, want, got)
				got, err = tx.AttemptByHash(want.Hash)
				require.NoError(t, err)
				require.Equal(t, want, got)
			}
			_, err := tx.Attempt(a, 9)
			require.ErrorIs(t, err, ErrNotFound)
			_, err = tx.AttemptByHash(hashOf(999))
			require.ErrorIs(t, err, ErrNotFound)
			return nil
		}))
	})

	open := func() []*Attempt {
		var got []*Attempt
		require.NoError(t, ss.View(ctx, func(tx SenderTx) error {
			return tx.ForEachOpenAttempt(func(at *Attempt) error {
				got = append(got, at)
				return nil
			})
		}))
		return got
	}
	require.Equal(t, []*Attempt{atts[1], atts[2], atts[4]}, open())

	listTests := []struct {
		name  string
		sub   SubID
		after uint64
		want  []*Attempt
	}{
		{"a", a, 0, atts[:3]},
		{"a after 2", a, 2, atts[2:3]},
		{"b", b, 0, atts[3:]},
		{"b after max", b, ^uint64(0), nil},
	}
	for _, tc := range listTests {
		t.Run("for each "+tc.name, func(t *testing.T) {
			var got []*Attempt
			require.NoError(t, ss.View(ctx, func(tx SenderTx) error {
				return tx.ForEachAttempt(tc.sub, tc.after, func(at *Attempt) error {
					got = append(got, at)
					return nil
				})
			}))
			require.Equal(t, tc.want, got)
		})
	}

	t.Run("finish leaves open index", func(t *testing.T) {
		done := *atts[1]
		done.State, done.Fee = AttemptSucceeded, 3
		require.NoError(t, ss.Update(ctx, func(tx SenderTx) error {
			return tx.PutAttempt(&done)
		}))
		require.Equal(t, []*Attempt{atts[2], atts[4]}, open())
	})

	errTests := []struct {
		name string
		at   *Attempt
		want error
	}{
		{"hash of another attempt", &Attempt{SubID: b, Seq: 5, Hash: atts[0].Hash,
			State: AttemptCreated}, ErrDuplicateHash},
		{"no subscription", &Attempt{Seq: 1, State: AttemptCreated}, ErrInvalid},
		{"bad state", &Attempt{SubID: a, Seq: 1, State: 9}, ErrInvalid},
	}
	for _, tc := range errTests {
		t.Run(tc.name, func(t *testing.T) {
			err := ss.Update(ctx, func(tx SenderTx) error { return tx.PutAttempt(tc.at) })
			require.ErrorIs(t, err, tc.want)
		})
	}

	t.Run("rehash frees old hash", func(t *testing.T) {
		re := *atts[2]
		re.Hash = hashOf(12345)
		require.NoError(t, ss.Update(ctx, func(tx SenderTx) error {
			return tx.PutAttempt(&re)
		}))
		require.NoError(t, ss.View(ctx, func(tx SenderTx) error {
			_, err := tx.AttemptByHash(atts[2].Hash)
			require.ErrorIs(t, err, ErrNotFound)
			got, err := tx.AttemptByHash(re.Hash)
			require.NoError(t, err)
			require.Equal(t, &re, got)
			return nil
		}))
	})
}

func TestSenderSpend(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	ss, ctx := db.Sender(), testCtx(t)
	day := DayOf(at(86400*20000 + 5))
	require.Equal(t, Day(20000), day)
	require.True(t, day.Start().Equal(at(86400*20000)))

	tests := []struct {
		name string
		sub  SubID
		day  Day
		add  lnwire.MilliSatoshi
		want lnwire.MilliSatoshi
	}{
		{"first", subID(1), day, 1000, 1000},
		{"same day adds up", subID(1), day, 500, 1500},
		{"next day is separate", subID(1), day + 1, 7, 7},
		{"other subscription", subID(2), day, 9, 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, ss.Update(ctx, func(tx SenderTx) error {
				total, err := tx.AddSpend(tc.sub, tc.day, tc.add)
				require.NoError(t, err)
				require.Equal(t, tc.want, total)
				return nil
			}))
			require.NoError(t, ss.View(ctx, func(tx SenderTx) error {
				got, err := tx.SpendOn(tc.sub, tc.day)
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
				return nil
			}))
		})
	}
	t.Run("none", func(t *testing.T) {
		require.NoError(t, ss.View(ctx, func(tx SenderTx) error {
			got, err := tx.SpendOn(subID(3), day)
			require.NoError(t, err)
			require.Zero(t, got)
			return nil
		}))
	})
	t.Run("overflow", func(t *testing.T) {
		err := ss.Update(ctx, func(tx SenderTx) error {
			_, err := tx.AddSpend(subID(1), day, ^lnwire.MilliSatoshi(0))
			return err
		})
		require.ErrorIs(t, err, ErrInvalid)
	})
}
