package main

import (
	"fmt"
	"net/url"
	"time"

	"github.com/urfave/cli"
)

// The payer's amounts: caps, the highest price accepted, the fee limit.
var (
	maxPerDayAmount = amount{name: "max_per_day", old: "max_per_day",
		what: "per UTC day at most, fees included (0: no cap)"}
	maxTotalAmount = amount{name: "max_total", old: "max_total",
		what: "over the subscription's life at most, fees included " +
			"(0: no cap)"}
	maxPriceAmount = amount{name: "max_price", old: "max_price",
		what: "per second at most: dearer offers are refused"}
	feeLimitAmount = amount{name: "fee_limit",
		what: "of routing fees per payment at most"}
)

// payerTermFlags are the payer's own terms for a subscription.
var payerTermFlags = append([]cli.Flag{
	cli.DurationFlag{Name: "increment", Usage: "service time each " +
		"payment buys"},
	cli.DurationFlag{Name: "buffer", Usage: "how far ahead of now to " +
		"stay paid"},
	cli.Uint64Flag{Name: "fee_limit_ppm", Usage: "routing fee limit per " +
		"payment, parts per million"},
}, amountFlags(maxPerDayAmount, maxTotalAmount, maxPriceAmount,
	feeLimitAmount)...)

// payerTerms builds the terms JSON from the flags the user set.
func payerTerms(c *cli.Context) (map[string]any, error) {
	t := map[string]any{}
	for _, d := range []string{"increment", "buffer"} {
		if c.IsSet(d) {
			t[d+"_sec"] = uint64(c.Duration(d) / time.Second)
		}
	}
	if c.IsSet("fee_limit_ppm") {
		t["fee_limit_ppm"] = c.Uint64("fee_limit_ppm")
	}
	err := setAmounts(c, t, map[amount]string{
		maxPerDayAmount: "max_per_day_msat",
		maxTotalAmount:  "max_total_msat",
		maxPriceAmount:  "max_price_msat_per_sec",
		feeLimitAmount:  "fee_limit_msat",
	})
	return t, err
}

// senderCommand is everything a payer does with satstream-sender.
var senderCommand = cli.Command{
	Name:    "sender",
	Aliases: []string{"payer"},
	Usage:   "talk to satstream-sender (the payer's daemon)",
	Subcommands: []cli.Command{
		dashboardCommand("sender"),
		{
			Name:   "status",
			Usage:  "show the daemon's health and its lnd connection",
			Flags:  []cli.Flag{jsonFlag},
			Action: senderAction("GET", "/v1/health", false, ""),
		},
		{
			Name:      "subscribe",
			Usage:     "start paying for an offer",
			ArgsUsage: "<satoffer1...>",
			Flags: append([]cli.Flag{
				cli.StringFlag{Name: "preset", Usage: "mobile " +
					"(1h increments, 1 day ahead), insurance " +
					"(1 day, 1 day) or bike (1m, 15m)"},
				cli.BoolFlag{Name: "paused",
					Usage: "add it paused"},
				jsonFlag,
			}, payerTermFlags...),
			Action: subscribe,
		},
		{
			Name:    "subscriptions",
			Aliases: []string{"subs"},
			Usage:   "inspect and control subscriptions",
			Subcommands: []cli.Command{
				{
					Name:  "list",
					Usage: "list subscriptions",
					Flags: []cli.Flag{
						cli.StringFlag{Name: "state",
							Usage: "only this state"},
						jsonFlag,
					},
					Action: listSenderSubs,
				},
				{
					Name:      "get",
					Usage:     "show one subscription",
					ArgsUsage: "<subscription id>",
					Flags:     []cli.Flag{jsonFlag},
					Action: senderAction("GET",
						"/v1/subscriptions/%s", true, ""),
				},
				{
					Name:      "pause",
					Usage:     "stop paying for now",
					ArgsUsage: "<subscription id>",
					Flags:     []cli.Flag{jsonFlag},
					Action: senderAction("POST",
						"/v1/subscriptions/%s/pause", true, ""),
				},
				{
					Name:      "resume",
					Usage:     "pay again",
					ArgsUsage: "<subscription id>",
					Flags:     []cli.Flag{jsonFlag},
					Action: senderAction("POST",
						"/v1/subscriptions/%s/resume", true, ""),
				},
				{
					Name:      "cancel",
					Usage:     "stop for good and tell the receiver",
					ArgsUsage: "<subscription id>",
					Flags: []cli.Flag{
						cli.BoolFlag{Name: "no_notify",
							Usage: "don't send the receiver " +
								"the cancel message"},
						jsonFlag,
					},
					Action: cancelSenderSub,
				},
				{
					Name:      "update",
					Usage:     "change your terms",
					ArgsUsage: "<subscription id>",
					Flags: append([]cli.Flag{jsonFlag},
						payerTermFlags...),
					Action: updateSenderSub,
				},
				{
					Name:      "payments",
					Usage:     "list payments, totals and spend per day",
					ArgsUsage: "<subscription id>",
					Flags:     []cli.Flag{jsonFlag},
					Action: senderAction("GET",
						"/v1/subscriptions/%s/payments", true,
						"payments", "sequence", "state",
						"amount_msat", "fee_msat",
						"payment_hash", "node", "updated_at"),
				},
			},
		},
	},
}

func senderAction(method, pattern string, withID bool, listKey string,
	columns ...string) cli.ActionFunc {

	return func(c *cli.Context) error {
		path := pattern
		if withID {
			id, err := oneArg(c, "subscription id")
			if err != nil {
				return err
			}
			path = fmt.Sprintf(pattern, id)
		}
		return call(c, "sender", method, path, nil, listKey, columns...)
	}
}

func subscribe(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("subscribe takes exactly one argument, the " +
			"offer string (satoffer1...) the provider gave you")
	}
	body, err := payerTerms(c)
	if err != nil {
		return err
	}
	body["offer"] = c.Args().First()
	if c.IsSet("preset") {
		body["preset"] = c.String("preset")
	}
	if c.Bool("paused") {
		body["paused"] = true
	}
	return call(c, "sender", "POST", "/v1/subscriptions", body, "")
}

func listSenderSubs(c *cli.Context) error {
	path := "/v1/subscriptions"
	if s := c.String("state"); s != "" {
		path += "?state=" + url.QueryEscape(s)
	}
	return call(c, "sender", "GET", path, nil, "subscriptions", "id",
		"label", "state", "retry_at", "paid_until", "service_until",
		"payments", "paying_node",
		"sent_msat", "fees_msat")
}

func cancelSenderSub(c *cli.Context) error {
	id, err := oneArg(c, "subscription id")
	if err != nil {
		return err
	}
	return call(c, "sender", "POST", "/v1/subscriptions/"+id+"/cancel",
		map[string]any{"notify_receiver": !c.Bool("no_notify")}, "")
}

func updateSenderSub(c *cli.Context) error {
	id, err := oneArg(c, "subscription id")
	if err != nil {
		return err
	}
	body, err := payerTerms(c)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return fmt.Errorf("nothing to change: give at least one of " +
			"--increment, --buffer, --max_per_day_sat|_msat, " +
			"--max_total_sat|_msat, --max_price_sat|_msat, " +
			"--fee_limit_ppm, --fee_limit_sat|_msat")
	}
	return call(c, "sender", "PATCH", "/v1/subscriptions/"+id, body, "")
}
