package main

import (
	"fmt"
	"math"

	"github.com/urfave/cli"
)

// An amount flag comes in two units, as lncli's --amt and --amt_msat do:
// <name>_sat and <name>_msat. Setting both is refused, and so is the old
// unit-less name (which meant msat, a 1000x trap), with a message naming
// the new ones.
type amount struct {
	// name is the flag's stem: price, min, max_per_day, ...
	name string
	// old is the unit-less name it replaces ("" if none).
	old string
	// what says what the amount is, after its unit ("per second").
	what string
}

// flags returns the amount's flags (the old name hidden, so it can be
// refused with a message instead of "flag provided but not defined").
func (a amount) flags() []cli.Flag {
	fs := []cli.Flag{
		cli.Uint64Flag{Name: a.name + "_sat", Usage: "sat " + a.what},
		cli.Uint64Flag{Name: a.name + "_msat", Usage: "msat " + a.what +
			" (or --" + a.name + "_sat)"},
	}
	if a.old != "" {
		fs = append(fs, cli.StringFlag{Name: a.old, Hidden: true})
	}
	return fs
}

// msat returns the amount in msat and whether it was given.
func (a amount) msat(c *cli.Context) (uint64, bool, error) {
	if a.old != "" && c.IsSet(a.old) {
		return 0, false, fmt.Errorf("--%s is ambiguous and no longer "+
			"accepted (it was msat): use --%s_sat or --%s_msat",
			a.old, a.name, a.name)
	}
	sat, msat := c.IsSet(a.name+"_sat"), c.IsSet(a.name+"_msat")
	switch {
	case sat && msat:
		return 0, false, fmt.Errorf("give --%s_sat or --%s_msat, not "+
			"both", a.name, a.name)
	case msat:
		return c.Uint64(a.name + "_msat"), true, nil
	case sat:
		v := c.Uint64(a.name + "_sat")
		if v > math.MaxUint64/1000 {
			return 0, false, fmt.Errorf("--%s_sat=%d is too large",
				a.name, v)
		}
		return v * 1000, true, nil
	}
	return 0, false, nil
}

// amountFlags returns the flags of several amounts.
func amountFlags(as ...amount) []cli.Flag {
	var fs []cli.Flag
	for _, a := range as {
		fs = append(fs, a.flags()...)
	}
	return fs
}

// setAmounts writes the amounts given into t under their JSON keys.
func setAmounts(c *cli.Context, t map[string]any, keys map[amount]string) error {
	for a, key := range keys {
		v, ok, err := a.msat(c)
		if err != nil {
			return err
		}
		if ok {
			t[key] = v
		}
	}
	return nil
}
