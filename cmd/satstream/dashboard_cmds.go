package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli"
)

// dashboardCommand prints a one-time login link to a daemon's dashboard.
func dashboardCommand(name string) cli.Command {
	return cli.Command{
		Name:  "dashboard",
		Usage: "print a one-time login link to the daemon's web dashboard",
		Description: "Asks satstream-" + name + " (with the admin " +
			"token) for a login link that works once, within 10 " +
			"minutes, and prints it: open it in a browser. The " +
			"browser then holds a session cookie; the token " +
			"itself never appears in a URL.",
		Flags: []cli.Flag{cli.BoolFlag{Name: "read_only",
			Usage: "log the browser in read-only (no buttons)"}},
		Action: func(c *cli.Context) error {
			client, err := newClient(c, name)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(),
				time.Minute)
			defer cancel()
			url, exp, err := dashboardLink(ctx, client,
				c.Bool("read_only"))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s\n(one-time login link, "+
				"valid until %s)\n", url, exp.Format(time.RFC3339))
			return nil
		},
	}
}

// dashboardLink asks a daemon for a one-time dashboard login link.
func dashboardLink(ctx context.Context, client *apiClient,
	readOnly bool) (string, time.Time, error) {

	path := "/v1/dashboard/login-link"
	if readOnly {
		path += "?read_only=true"
	}
	var out struct {
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := client.do(ctx, "POST", path, nil, &out); err != nil {
		return "", time.Time{}, err
	}
	return out.URL, out.ExpiresAt, nil
}
