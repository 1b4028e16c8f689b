package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/urfave/cli"
)

// termFlags are the plan terms a provider sets, as people write them
// (durations like 90s or 1h); the API takes msat and whole seconds.
var termFlags = append(amountFlags(priceAmount, minAmount),
	cli.Uint64Flag{Name: "increment_msat", Usage: "amounts above the " +
		"minimum must be a multiple of this (0: any)"},
	cli.DurationFlag{Name: "grace", Usage: "service continues this long " +
		"after paid time ends"},
	cli.DurationFlag{Name: "max_prepay", Usage: "most paid time a payer " +
		"may hold ahead of now"},
	cli.DurationFlag{Name: "default_increment", Usage: "time a sender " +
		"buys per payment, published in offers (plans only)"},
)

// The provider's amounts: the price per second and the smallest payment.
var (
	priceAmount = amount{name: "price", old: "price",
		what: "per second the subscription costs"}
	minAmount = amount{name: "min", old: "min",
		what: "of the smallest payment accepted"}
)

// termsFromFlags builds the JSON terms from the flags the user set, so an
// update changes only what was given.
func termsFromFlags(c *cli.Context, plan bool) (map[string]any, error) {
	t := map[string]any{}
	price, ok, err := priceAmount.msat(c)
	if err != nil {
		return nil, err
	}
	if ok {
		if price == 0 {
			return nil, fmt.Errorf("--price_sat or --price_msat " +
				"must be > 0")
		}
		t["price_msat_per_sec"] = price
	}
	if err := setAmounts(c, t, map[amount]string{
		minAmount: "min_payment_msat",
	}); err != nil {
		return nil, err
	}
	if c.IsSet("increment_msat") {
		t["increment_msat"] = c.Uint64("increment_msat")
	}
	for flag, key := range map[string]string{
		"grace":             "grace_period_sec",
		"max_prepay":        "max_prepay_sec",
		"default_increment": "default_increment_sec",
	} {
		if !c.IsSet(flag) {
			continue
		}
		if flag == "default_increment" && !plan {
			return nil, fmt.Errorf("--default_increment is a plan " +
				"setting; change the plan instead")
		}
		d := c.Duration(flag)
		if d < 0 || d%time.Second != 0 {
			return nil, fmt.Errorf("--%s must be whole seconds >= 0, "+
				"got %v", flag, d)
		}
		t[key] = uint64(d / time.Second)
	}
	return t, nil
}

// receiverCommand is everything a provider does with satstream-receiver.
var receiverCommand = cli.Command{
	Name:    "receiver",
	Aliases: []string{"provider"},
	Usage:   "talk to satstream-receiver (the provider's daemon)",
	Subcommands: []cli.Command{
		dashboardCommand("receiver"),
		{
			Name:   "status",
			Usage:  "show the daemon's health and its lnd connection",
			Flags:  []cli.Flag{jsonFlag},
			Action: receiverGet("/v1/health", ""),
		},
		{
			Name:  "plans",
			Usage: "create, list and change plans",
			Subcommands: []cli.Command{
				{
					Name:  "list",
					Usage: "list plans",
					Flags: []cli.Flag{jsonFlag},
					Action: receiverGet("/v1/plans", "plans",
						"id", "label", "open_enrolment",
						"default_increment_sec"),
				},
				{
					Name:      "get",
					Usage:     "show one plan",
					ArgsUsage: "<plan id>",
					Flags:     []cli.Flag{jsonFlag},
					Action:    receiverGetID("/v1/plans/%s", ""),
				},
				{
					Name:  "create",
					Usage: "create a plan",
					Flags: append([]cli.Flag{
						cli.StringFlag{Name: "label",
							Usage: "name payers see"},
						cli.BoolFlag{Name: "open",
							Usage: "open enrolment: anyone " +
								"paying with the plan's offer " +
								"gets a subscription"},
						jsonFlag,
					}, termFlags...),
					Action: plansWrite("POST", false),
				},
				{
					Name:      "update",
					Usage:     "change a plan (future subscriptions only)",
					ArgsUsage: "<plan id>",
					Flags: append([]cli.Flag{
						cli.StringFlag{Name: "label"},
						jsonFlag,
					}, termFlags...),
					Action: plansWrite("PATCH", true),
				},
			},
		},
		{
			Name:    "subscriptions",
			Aliases: []string{"subs"},
			Usage:   "create, inspect and cancel subscriptions",
			Subcommands: []cli.Command{
				{
					Name:  "list",
					Usage: "list subscriptions",
					Flags: []cli.Flag{
						cli.StringFlag{Name: "state",
							Usage: "only this state (pending, " +
								"active, past_due, expired, " +
								"cancelled_by_provider, " +
								"cancelled_by_payer)"},
						cli.StringFlag{Name: "after",
							Usage: "page after this id"},
						cli.IntFlag{Name: "limit", Value: 100},
						jsonFlag,
					},
					Action: listReceiverSubs,
				},
				{
					Name:      "create",
					Usage:     "create a subscription and print its offer for the payer",
					ArgsUsage: "<plan id>",
					Flags:     append([]cli.Flag{jsonFlag}, termFlags...),
					Action:    createReceiverSub,
				},
				{
					Name:      "get",
					ArgsUsage: "<subscription id>",
					Usage:     "show one subscription",
					Flags:     []cli.Flag{jsonFlag},
					Action:    receiverGetID("/v1/subscriptions/%s", ""),
				},
				{
					Name:      "paid",
					ArgsUsage: "<subscription id>",
					Usage:     "is this subscription paid right now?",
					Flags:     []cli.Flag{jsonFlag},
					Action:    receiverGetID("/v1/subscriptions/%s/paid", ""),
				},
				{
					Name:      "offer",
					ArgsUsage: "<subscription id>",
					Usage:     "print the subscription's offer string again",
					Flags:     []cli.Flag{jsonFlag},
					Action:    receiverGetID("/v1/subscriptions/%s/offer", ""),
				},
				{
					Name:      "payments",
					ArgsUsage: "<subscription id>",
					Usage:     "list the subscription's payments",
					Flags:     []cli.Flag{jsonFlag},
					Action: receiverGetID("/v1/subscriptions/%s/payments",
						"payments", "sequence", "amount_msat",
						"seconds", "state", "reason",
						"received_at"),
				},
				{
					Name:      "update",
					ArgsUsage: "<subscription id>",
					Usage:     "override this subscription's terms",
					Flags:     append([]cli.Flag{jsonFlag}, termFlags...),
					Action:    updateReceiverSub,
				},
				{
					Name:      "cancel",
					ArgsUsage: "<subscription id>",
					Usage:     "cancel a subscription (the provider's side)",
					Flags:     []cli.Flag{jsonFlag},
					Action:    cancelReceiverSub,
				},
			},
		},
		{
			Name:      "payment",
			ArgsUsage: "<payment hash>",
			Usage:     "show one ledger entry by payment hash",
			Flags:     []cli.Flag{jsonFlag},
			Action:    receiverGetID("/v1/payments/%s", ""),
		},
		{
			Name:  "events",
			Usage: "list events (what webhooks receive)",
			Flags: []cli.Flag{
				cli.BoolFlag{Name: "pending",
					Usage: "only events not yet delivered"},
				cli.Uint64Flag{Name: "after", Usage: "events after this sequence number"},
				cli.IntFlag{Name: "limit", Value: 100},
				jsonFlag,
			},
			Action: listEvents,
		},
		{
			Name: "refusals",
			Usage: "count refused payments by reason (refusals of " +
				"unknown subscriptions leave no ledger entry)",
			Flags:  []cli.Flag{jsonFlag},
			Action: receiverGet("/v1/refusals", ""),
		},
	},
}

// call runs one request against daemon name and prints the answer.
func call(c *cli.Context, name, method, path string, body any,
	listKey string, columns ...string) error {

	client, err := newClient(c, name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var raw json.RawMessage
	if err := client.do(ctx, method, path, body, &raw); err != nil {
		return err
	}
	return show(c, c.App.Writer, raw, listKey, columns...)
}

func receiverGet(path, listKey string, columns ...string) cli.ActionFunc {
	return func(c *cli.Context) error {
		return call(c, "receiver", "GET", path, nil, listKey, columns...)
	}
}

// oneArg returns the single positional argument, or a usage error.
func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("%s takes exactly one argument, the %s "+
			"(got %d)", c.Command.FullName(), what, c.NArg())
	}
	return url.PathEscape(c.Args().First()), nil
}

func receiverGetID(pattern, listKey string, columns ...string) cli.ActionFunc {
	return func(c *cli.Context) error {
		id, err := oneArg(c, "id")
		if err != nil {
			return err
		}
		return call(c, "receiver", "GET", fmt.Sprintf(pattern, id), nil,
			listKey, columns...)
	}
}

func plansWrite(method string, withID bool) cli.ActionFunc {
	return func(c *cli.Context) error {
		body, err := termsFromFlags(c, true)
		if err != nil {
			return err
		}
		if c.IsSet("label") {
			body["label"] = c.String("label")
		}
		path := "/v1/plans"
		if withID {
			id, err := oneArg(c, "plan id")
			if err != nil {
				return err
			}
			path += "/" + id
		} else {
			if _, ok := body["price_msat_per_sec"]; !ok {
				return fmt.Errorf("--price_sat or --price_msat " +
					"(per second) is required")
			}
			body["open_enrolment"] = c.Bool("open")
		}
		return call(c, "receiver", method, path, body, "")
	}
}

func listReceiverSubs(c *cli.Context) error {
	q := url.Values{}
	if s := c.String("state"); s != "" {
		q.Set("state", s)
	}
	if a := c.String("after"); a != "" {
		q.Set("after", a)
	}
	q.Set("limit", fmt.Sprint(c.Int("limit")))
	return call(c, "receiver", "GET", "/v1/subscriptions?"+q.Encode(), nil,
		"subscriptions", "id", "state", "paid_until", "ends_at",
		"payments", "total_paid_msat")
}

func createReceiverSub(c *cli.Context) error {
	if _, err := oneArg(c, "plan id"); err != nil {
		return err
	}
	terms, err := termsFromFlags(c, false)
	if err != nil {
		return err
	}
	body := map[string]any{"plan_id": c.Args().First()}
	if len(terms) > 0 {
		body["terms"] = terms
	}
	return call(c, "receiver", "POST", "/v1/subscriptions", body, "")
}

func updateReceiverSub(c *cli.Context) error {
	id, err := oneArg(c, "subscription id")
	if err != nil {
		return err
	}
	terms, err := termsFromFlags(c, false)
	if err != nil {
		return err
	}
	if len(terms) == 0 {
		return fmt.Errorf("nothing to change: give at least one of " +
			"--price, --min, --increment_msat, --grace, --max_prepay")
	}
	return call(c, "receiver", "PATCH", "/v1/subscriptions/"+id,
		map[string]any{"terms": terms}, "")
}

func cancelReceiverSub(c *cli.Context) error {
	id, err := oneArg(c, "subscription id")
	if err != nil {
		return err
	}
	return call(c, "receiver", "POST", "/v1/subscriptions/"+id+"/cancel",
		nil, "")
}

func listEvents(c *cli.Context) error {
	q := url.Values{}
	if c.Bool("pending") {
		q.Set("pending", "true")
	}
	if c.IsSet("after") {
		q.Set("after", fmt.Sprint(c.Uint64("after")))
	}
	q.Set("limit", fmt.Sprint(c.Int("limit")))
	return call(c, "receiver", "GET", "/v1/events?"+q.Encode(), nil,
		"events", "sequence", "id", "type", "subscription_id", "delivered",
		"attempts", "last_error")
}
