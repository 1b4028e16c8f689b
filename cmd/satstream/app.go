package main

import (
	"fmt"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/tlv"
	"github.com/urfave/cli"
)

// newApp builds the command tree; tests run it in-process.
func newApp() *cli.App {
	app := cli.NewApp()
	app.Name = "satstream"
	app.Usage = "control satstream's receiver and sender daemons"
	app.Version = common.ReadBuildInfo().String()
	app.Flags = append(append([]cli.Flag{jsonFlag, networkFlag},
		daemonFlags("receiver")...), daemonFlags("sender")...)
	app.EnableBashCompletion = true
	app.Commands = []cli.Command{
		receiverCommand,
		senderCommand,
		offerCommand,
		demoCommand,
		completionCommand,
		manCommand,
	}
	return app
}

// offerCommand decodes an offer locally, so a payer can read what they are
// about to agree to before any daemon is involved.
var offerCommand = cli.Command{
	Name:  "offer",
	Usage: "work with offer strings",
	Subcommands: []cli.Command{{
		Name:      "decode",
		Usage:     "show what an offer says",
		ArgsUsage: "<satoffer1...>",
		Flags:     []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("offer decode takes exactly one " +
					"argument, the offer string")
			}
			o, err := tlv.ParseOffer(c.Args().First())
			if err != nil {
				return err
			}
			// nodes lists every destination in the order a
			// sender tries them; node is the primary, kept for
			// scripts that read it.
			nodes := make([]string, 0, len(o.Nodes()))
			for _, n := range o.Nodes() {
				nodes = append(nodes, n.String())
			}
			v := map[string]any{
				"node":                  o.Node.String(),
				"nodes":                 nodes,
				"price_msat_per_sec":    uint64(o.PriceMsatPerSec),
				"min_payment_msat":      uint64(o.MinPayment),
				"default_increment_sec": int64(o.DefaultIncrement.Seconds()),
				"grace_period_sec":      int64(o.GracePeriod.Seconds()),
				"max_prepay_sec":        int64(o.MaxPrepay.Seconds()),
				"label":                 o.Label,
			}
			if o.SubscriptionID != nil {
				v["subscription_id"] = o.SubscriptionID.String()
				v["public_id"] = o.SubscriptionID.PublicID().String()
			}
			if o.PlanID != nil {
				v["plan_id"] = o.PlanID.String()
			}
			return printValue(c, v)
		},
	}},
}
