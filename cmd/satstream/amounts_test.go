package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli"
)

// TestAmountFlagsNameTheirUnit: --price, --min and --max_per_day were msat
// without saying so, a 1000x trap. The amounts now come as _sat and _msat,
// and the old names are refused with the new ones in the message.
func TestAmountFlagsNameTheirUnit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want uint64
		set  bool
		err  string
	}{
		{"sat", []string{"--price_sat", "2"}, 2000, true, ""},
		{"msat", []string{"--price_msat", "5"}, 5, true, ""},
		{"not given", nil, 0, false, ""},
		{"both", []string{"--price_sat", "1", "--price_msat", "1"}, 0,
			false, "not both"},
		{"old name", []string{"--price", "1000"}, 0, false,
			"use --price_sat or --price_msat"},
		{"overflow", []string{"--price_sat", "18446744073709551615"}, 0,
			false, "too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				got uint64
				set bool
			)
			app := cli.NewApp()
			app.Flags = priceAmount.flags()
			app.Action = func(c *cli.Context) error {
				var err error
				got, set, err = priceAmount.msat(c)
				return err
			}
			err := app.Run(append([]string{"x"}, tc.args...))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.set, set)
		})
	}
}

// TestCompletionAndManComeFromTheDefinition: the scripts and the man page
// are printed by the binary, the man page listing its flags.
func TestCompletionAndManComeFromTheDefinition(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"completion", "bash"}, "complete -o bashdefault"},
		{[]string{"completion", "zsh"}, "#compdef satstream"},
		{[]string{"man"}, "price_sat"},
	} {
		var out bytes.Buffer
		app := newApp()
		app.Writer = &out
		require.NoError(t, app.Run(append([]string{"satstream"},
			tc.args...)))
		require.Contains(t, out.String(), tc.want,
			strings.Join(tc.args, " "))
	}
}
