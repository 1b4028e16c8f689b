package main

import (
	"fmt"
	"net/url"

	"github.com/urfave/cli"
)

// payerTermFlags are the payer's own terms for a subscription.
var payerTermFlags = []cli.Flag{
	cli.DurationFlag{Name: "increment", Usage: "service time each " +
		"payment buys"},
	cli.DurationFlag{Name: "buffer", Usage: "how far ahead of now to " +
		"stay paid"},
	cli.Uint64Flag{Name: "max_per_day", Usage: "cap per UTC day, msat, " +
		"fees included (0: no cap)"},
	cli.Uint64Flag{Name: "max_total", Usage: "cap over the " +
		"subscription's life, msat, fees included (0: no cap)"},
	cli.Uint64Flag{Name: "max_price", Usage: "refuse offers dearer than " +
		"this, msat per second"},
	cli.Uint64Flag{Name: "fee_limit_ppm", Usage: "routing fee limit per " +
		"payment, parts per million"},
	cli.Uint64Flag{Name: "fee_limit_msat", Usage: "routing fee limit per " +
		"payment, msat"},
}

// payerTerms builds the terms JSON from the flags the user set.
func payerTerms(c *cli.Context) map[string]any {
	t := map[string]any{}
	for _, d := range []string{"increment", "buffer"} {
		if c.IsSet(d) {
			t[d] = c.Duration(d).String()
		}
	}
	for flag, key := range map[string]string{
		"max_per_day":    "max_per_day_msat",
		"max_total":      "max_total_msat",
		"max_price":      "max_price_msat_per_sec",
		"fee_limit_ppm":  "fee_limit_ppm",
		"fee_limit_msat": "fee_limit_msat",
	} {
		if c.IsSet(flag) {
			t[key] = c.Uint64(flag)
		}
	}
	return t
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
						"payment_hash", "updated_at"),
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
	body := payerTerms(c)
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
		"payments",
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
	body := payerTerms(c)
	if len(body) == 0 {
		return fmt.Errorf("nothing to change: give at least one of " +
			"--increment, --buffer, --max_per_day, --max_total, " +
			"--max_price, --fee_limit_ppm, --fee_limit_msat")
	}
	return call(c, "sender", "PATCH", "/v1/subscriptions/"+id, body, "")
}
